"""Cluster-level faults, done by the target (the API cannot break itself):
the control plane stopped, etcd stopped or its data lost, the whole cluster deleted.

The destructive ones take a safety etcd snapshot first (into the run folder), so
rollback can put the cluster back even when the drill's own recovery failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from dirt.drivers import CheckResult, Fault, Params

Component = Literal["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


class ControlPlaneStopParams(Params):
    components: list[Component] = Field(min_length=1, description="Which control-plane components to stop.")
    graceful: bool = Field(False, description="SIGTERM and wait, instead of a crash (SIGKILL).")


class _ComponentsStop(Fault):
    """Stop target components by name; revert starts the ones still down."""

    reversible = True

    def components(self) -> list[str]:
        raise NotImplementedError

    def inject(self) -> None:
        for component in self.components():
            self.ctx.target.stop_component(component, graceful=self.params.graceful)
        self.state = {"stopped": self.components()}

    def verify_injected(self) -> CheckResult:
        running = [c for c in self.components() if self.ctx.target.component_running(c)]
        return CheckResult(not running, f"stopped: {', '.join(self.components())}" if not running
                           else f"still running: {', '.join(running)}")

    def revert(self) -> None:
        for component in self.state.get("stopped", self.components()):
            if not self.ctx.target.component_running(component):
                self.ctx.target.start_component(component)


class ControlPlaneStop(_ComponentsStop):
    """Stop control-plane components (kube-apiserver, controller-manager, scheduler)."""

    name = "control_plane.stop"
    family = "control-plane"
    Params = ControlPlaneStopParams

    def components(self) -> list[str]:
        return list(self.params.components)

    def plan(self) -> list[str]:
        how = "stop gracefully" if self.params.graceful else "kill (crash)"
        return [f"{how}: {', '.join(self.params.components)} on target {self.ctx.target.name}",
                "rollback: start them again"]


class EtcdStopParams(Params):
    graceful: bool = Field(False, description="SIGTERM and wait, instead of a crash (SIGKILL).")


class EtcdStop(_ComponentsStop):
    """Stop etcd (the API server stays up but can neither read nor write)."""

    name = "etcd.stop"
    family = "etcd"
    Params = EtcdStopParams

    def components(self) -> list[str]:
        return ["etcd"]

    def plan(self) -> list[str]:
        return [f"{'stop' if self.params.graceful else 'kill'} etcd on target {self.ctx.target.name}",
                "rollback: start etcd again"]


class SafetyParams(Params):
    safety_snapshot: bool = Field(True, description="Snapshot etcd first so rollback can restore the cluster.")


def _safety_snapshot(fault: Fault, label: str) -> None:
    path = fault.ctx.run_dir / "safety" / f"{label}.etcd.db"
    info = fault.ctx.target.etcd_snapshot_save(path)
    fault.state["safety_snapshot"] = str(path)
    fault.state["keys_before"] = info.total_keys
    fault.ctx.emit("safety.snapshot", fault=fault.name, path=str(path), revision=info.revision,
                   total_keys=info.total_keys)


class EtcdWipe(Fault):
    """etcd loses its data directory: it restarts empty, the cluster's state is gone."""

    name = "etcd.wipe"
    family = "etcd"
    reversible = True
    Params = SafetyParams

    def plan(self) -> list[str]:
        lines = ["stop etcd, delete its data directory, start it again empty: every object is lost"]
        if self.params.safety_snapshot:
            lines.append("a safety snapshot is taken first; rollback restores it")
        return lines

    def inject(self) -> None:
        kube = self.ctx.target.kube()
        self.state["namespaces_before"] = sorted(n["metadata"]["name"] for n in kube.list("v1", "Namespace"))
        self.state["kube_system_uid"] = kube.get("v1", "Namespace", "kube-system")["metadata"]["uid"]
        if self.params.safety_snapshot:
            _safety_snapshot(self, "before-etcd-wipe")
        self.effective_at = time.monotonic()  # the data is gone from here on
        self.ctx.target.etcd_wipe()
        self.ctx.target.reset_kube()

    def verify_injected(self) -> CheckResult:
        """The cluster forgot its objects: kube-system was recreated (new UID) or is gone."""
        from dirt.errors import DirtError

        kube = self.ctx.target.kube()
        try:
            system = kube.find("v1", "Namespace", "kube-system")
            left = {n["metadata"]["name"] for n in kube.list("v1", "Namespace")}
        except DirtError as exc:
            return CheckResult(True, f"the API cannot read the cluster state: {exc}")
        lost = sorted(set(self.state.get("namespaces_before", [])) - left)
        forgotten = system is None or system["metadata"]["uid"] != self.state.get("kube_system_uid")
        return CheckResult(forgotten, f"state lost: namespaces gone: {', '.join(lost) or 'none'}; "
                                      f"kube-system {'recreated' if system else 'missing'}" if forgotten
                           else "kube-system still has its old UID: the data is still there")

    def revert(self) -> None:
        snapshot = self.state.get("safety_snapshot")
        if snapshot:
            self.ctx.target.etcd_snapshot_restore(Path(snapshot))


class ClusterDelete(Fault):
    """Delete the whole cluster: every process and all of its state."""

    name = "cluster.delete"
    family = "cluster"
    reversible = True
    Params = SafetyParams

    def plan(self) -> list[str]:
        lines = [f"delete the whole cluster of target {self.ctx.target.name} "
                 f"({self.ctx.target.cluster_name()}): control plane, etcd, nodes, every object"]
        if self.params.safety_snapshot:
            lines.append("a safety snapshot is taken first; rollback recreates the cluster and restores it")
        return lines

    def inject(self) -> None:
        if self.params.safety_snapshot:
            _safety_snapshot(self, "before-cluster-delete")
        self.effective_at = time.monotonic()
        self.ctx.target.delete_cluster()

    def verify_injected(self) -> CheckResult:
        exists = self.ctx.target.cluster_exists()
        return CheckResult(not exists, "the cluster is gone" if not exists else "the cluster still exists")

    def revert(self) -> None:
        target = self.ctx.target
        if not target.cluster_exists():
            target.create_cluster()
        snapshot = self.state.get("safety_snapshot")
        if snapshot:
            target.etcd_snapshot_restore(Path(snapshot))


DRIVERS = [ControlPlaneStop, EtcdStop, EtcdWipe, ClusterDelete]

"""Cluster-level faults, done by the target (the API cannot break itself):
the control plane stopped, etcd stopped or its data lost, the whole cluster deleted or frozen.

Each works while other faults are in effect, because real disasters rarely come
one at a time: nothing here needs the API server to answer.  Whether a
component runs is the target's process state; whether etcd lost its data is
asked of the API when it answers and of etcd itself when it does not.

The destructive ones take a safety etcd snapshot first (into the run folder),
so rollback can put the cluster back even when the drill's own recovery failed.
Their revert restores that snapshot, which loses every write made since: it is
never done to a fault a recovery step already undid (see
``dirt.journal.faults``), and ``dirt rollback`` says how old the snapshot is.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from dirt.core.errors import DirtError
from dirt.drivers import CheckResult, Fault, Params
from dirt.journal.events import SafetySnapshot

Component = Literal["kube-apiserver", "kube-controller-manager", "kube-scheduler"]

#: Seconds a probe waits for the API server: a compound fault may leave it up but unable to answer.
PROBE_TIMEOUT = 5.0
#: Where the API server keeps the kube-system Namespace in etcd (its default --etcd-prefix).
KUBE_SYSTEM_KEY = "/registry/namespaces/kube-system"
_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ControlPlaneStopParams(Params):
    components: list[Component] = Field(min_length=1, description="Which control-plane components to stop.")
    graceful: bool = Field(False, description="SIGTERM and wait, instead of a crash (SIGKILL).")


class _ComponentsStop(Fault):
    """Stop target components by name; revert starts the ones still down."""

    reversible = True
    requires = frozenset({"components"})

    def components(self) -> list[str]:
        raise NotImplementedError

    def inject(self) -> None:
        self.state = {"stopped": self.components()}
        for component in self.components():
            self.ctx.target.stop_component(component, graceful=self.params.graceful)

    def verify_injected(self) -> CheckResult:
        running = [c for c in self.state.get("stopped", self.components()) if self.ctx.target.component_running(c)]
        return CheckResult(not running, f"stopped: {', '.join(self.components())}" if not running
                           else f"running: {', '.join(running)}")

    def in_effect(self) -> CheckResult:
        """While any component it stopped is down (a run killed half-way stopped some)."""
        down = [c for c in self.state.get("stopped", self.components()) if not self.ctx.target.component_running(c)]
        return CheckResult(bool(down), f"down: {', '.join(down)}" if down else "every component runs")

    def revert(self) -> str:
        started = []
        for component in self.state.get("stopped", self.components()):
            if not self.ctx.target.component_running(component):
                self.ctx.target.start_component(component)
                started.append(component)
        return f"started {', '.join(started)}" if started else "already running"


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


def _with_safety_snapshot(requires: frozenset[str], params: Params) -> frozenset[str]:
    """A safety snapshot is saved before the fault and restored by its revert."""
    return requires | {"etcd_snapshot"} if getattr(params, "safety_snapshot", False) else requires


def _safety_snapshot(fault: Fault, label: str) -> None:
    path = fault.ctx.run_dir / "safety" / f"{label}.etcd.db"
    info = fault.ctx.target.etcd_snapshot_save(path)
    fault.state["safety_snapshot"] = str(path)
    fault.state["safety_snapshot_at"] = info.created_at
    fault.state["keys_before"] = info.total_keys
    fault.ctx.emit(SafetySnapshot(fault=fault.name, path=str(path), revision=info.revision,
                                  total_keys=info.total_keys))


def kube_system_uid(fault: Fault) -> str | None:
    """The UID of the kube-system Namespace: from the API if it answers, else from etcd.

    It never changes while the cluster keeps its data, and a cluster that lost its
    data (or was recreated) makes a new one, so it tells "the data is back" from
    "the data is gone" whoever else is down.  None: nobody could say.
    """
    target = fault.ctx.target
    etcd_runs = _etcd_running(fault)
    if not etcd_runs:
        return None  # the API server cannot read what etcd does not serve, nor can we
    try:
        return str(target.kube().get("v1", "Namespace", "kube-system", timeout=PROBE_TIMEOUT)["metadata"]["uid"])
    except DirtError:
        pass
    if "etcd_read" not in target.capabilities:
        return None
    try:
        value = target.etcd_read(KUBE_SYSTEM_KEY)
    except DirtError:
        return None
    found = _UID.search(value or "")
    return found.group(0) if found else ""


def _etcd_running(fault: Fault) -> bool:
    if "components" not in fault.ctx.target.capabilities:
        return True  # the target cannot tell: ask and see
    try:
        return fault.ctx.target.component_running("etcd")
    except DirtError:
        return True


def _data_lost(fault: Fault, what: str) -> CheckResult:
    """In effect while kube-system's UID differs from the one recorded before the fault."""
    before = fault.state.get("kube_system_uid")
    now = kube_system_uid(fault)
    if now is None:
        if not _etcd_running(fault):
            return CheckResult(True, f"{what}: etcd is stopped, and its data directory was deleted by the target")
        return CheckResult(True, f"{what}: neither the API server nor etcd can say; taken as still lost")
    if before and now == before:
        return CheckResult(False, "kube-system has its old UID: the cluster's data is there")
    return CheckResult(True, f"{what}: kube-system " + ("is missing" if not now else "was recreated (new UID)"))


class EtcdWipe(Fault):
    """etcd loses its data directory: it restarts empty, the cluster's state is gone."""

    name = "etcd.wipe"
    family = "etcd"
    reversible = True
    snapshot_revert = True
    Params = SafetyParams
    requires = frozenset({"etcd_wipe"})

    @classmethod
    def requirements(cls, params: Params) -> frozenset[str]:
        return _with_safety_snapshot(cls.requires, params)

    def plan(self) -> list[str]:
        lines = ["delete etcd's data directory (etcd and the API server restart empty if they ran): "
                 "every object is lost"]
        if self.params.safety_snapshot:
            lines.append("a safety snapshot is taken first; rollback restores it")
        return lines

    def inject(self) -> None:
        self.state["kube_system_uid"] = kube_system_uid(self)
        if self.state["kube_system_uid"]:
            try:
                self.state["namespaces_before"] = sorted(
                    n["metadata"]["name"] for n in self.ctx.target.kube().list("v1", "Namespace",
                                                                               timeout=PROBE_TIMEOUT))
            except DirtError:
                pass  # the API is down (another fault): the list is only for the record
        if self.params.safety_snapshot:
            _safety_snapshot(self, "before-etcd-wipe")
        self.effective_at = time.monotonic()  # the data is gone from here on
        self.ctx.target.etcd_wipe()
        self.ctx.target.reset_kube()

    def verify_injected(self) -> CheckResult:
        """The cluster forgot its objects: kube-system was recreated (new UID) or is gone."""
        return _data_lost(self, "state lost")

    def revert(self) -> str:
        snapshot = self.state.get("safety_snapshot")
        if not snapshot:
            return "no safety snapshot was taken: nothing to restore"
        self.ctx.target.etcd_snapshot_restore(Path(snapshot))
        return f"restored the safety snapshot {Path(snapshot).name}"


class ClusterDelete(Fault):
    """Delete the whole cluster: every process and all of its state."""

    name = "cluster.delete"
    family = "cluster"
    reversible = True
    snapshot_revert = True
    Params = SafetyParams
    requires = frozenset({"cluster"})

    @classmethod
    def requirements(cls, params: Params) -> frozenset[str]:
        return _with_safety_snapshot(cls.requires, params)

    def plan(self) -> list[str]:
        lines = [f"delete the whole cluster of target {self.ctx.target.name} "
                 f"({self.ctx.target.cluster_name()}): control plane, etcd, nodes, every object"]
        if self.params.safety_snapshot:
            lines.append("a safety snapshot is taken first; rollback recreates the cluster and restores it")
        return lines

    def inject(self) -> None:
        self.state["kube_system_uid"] = kube_system_uid(self)
        if self.params.safety_snapshot:
            _safety_snapshot(self, "before-cluster-delete")
        self.effective_at = time.monotonic()
        self.ctx.target.delete_cluster()

    def verify_injected(self) -> CheckResult:
        exists = self.ctx.target.cluster_exists()
        return CheckResult(not exists, "the cluster is gone" if not exists else "the cluster still exists")

    def in_effect(self) -> CheckResult:
        """Gone, or recreated without its data (a new kube-system), is still in effect."""
        if not self.ctx.target.cluster_exists():
            return CheckResult(True, "the cluster is gone")
        return _data_lost(self, "the cluster was recreated without its data")

    def revert(self) -> str:
        target = self.ctx.target
        done = []
        if not target.cluster_exists():
            target.create_cluster()
            done.append("recreated the cluster")
        snapshot = self.state.get("safety_snapshot")
        if snapshot:
            target.etcd_snapshot_restore(Path(snapshot))
            done.append(f"restored the safety snapshot {Path(snapshot).name}")
        return "; ".join(done) or "nothing to do"


class ClusterFreeze(Fault):
    """The whole cluster goes silent: every process of it stops (SIGSTOP) and none exits; revert thaws it."""

    name = "cluster.freeze"
    family = "cluster"
    reversible = True
    requires = frozenset({"freeze"})

    def plan(self) -> list[str]:
        return [f"freeze every process of target {self.ctx.target.name} ({self.ctx.target.cluster_name()}): its "
                "control plane, its nodes and their containers stop answering but hold their connections, as hung "
                "machines or a network that drops every packet do; rollback thaws them"]

    def inject(self) -> None:
        self.effective_at = time.monotonic()
        self.state["frozen"] = self.ctx.target.freeze_cluster()

    def verify_injected(self) -> CheckResult:
        frozen = self.ctx.target.cluster_frozen()
        return CheckResult(frozen, "every process of the cluster is frozen" if frozen else "the cluster runs")

    def revert(self) -> str:
        thawed = self.ctx.target.thaw_cluster()
        return f"thawed {thawed} processes" if thawed else "nothing was frozen"


DRIVERS = [ControlPlaneStop, EtcdStop, EtcdWipe, ClusterDelete, ClusterFreeze]

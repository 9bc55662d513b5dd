"""One named sandbox: a real control plane run by ``kwokctl --runtime binary``, plus monitoring, and
(when its settings ask) Velero and a real node; each of them a component (:mod:`dirt.sandbox.component`).

Layout (``$DIRT_SANDBOX_HOME`` or ``${XDG_STATE_HOME:-~/.local/state}/dirt/sandboxes``)::

    <name>/sandbox.json          ports, versions, settings (what `status` reads)
    <name>/kwokctl.yaml          the KwokctlConfiguration (every binary a local path)
    <name>/kwok/clusters/<name>/ kwokctl's working dir: kubeconfig.yaml, pki/, etcd/, pids/, logs/
    <name>/prometheus/           prometheus.yml, rules/, data/
    <name>/alertmanager/         alertmanager.yml, data/
    <name>/pushgateway/          the Pushgateway's persistence file (sandboxes with ``pushgateway: true``)
    <name>/velero/               Velero's bucket, plugin and credentials (sandboxes with ``velero: true``)
    <name>/realnode/             the real node's containerd and kubelet (sandboxes with ``real_nodes: 1``)
    <name>/pids/, <name>/logs/   the processes dirt starts itself beside the control plane

kwokctl creates and deletes the cluster and forks the control-plane processes;
dirt stops and starts single components itself (kwokctl has no command for
that) by PID from ``pids/<component>.pid``, with the exact command line kwokctl
recorded in ``kwok.yaml``.  Every server binds to 127.0.0.1.

The sandbox keeps the state and the ports, and knows its components only as such:
:mod:`~dirt.sandbox.controlplane`, :mod:`~dirt.sandbox.monitoring`, :mod:`~dirt.sandbox.velero` and
:mod:`~dirt.sandbox.realnode`.  ``up`` starts them in that order, ``down`` takes them down in reverse,
and the sandbox wires what one needs after another changed: a new cluster (a new PKI, nothing in
etcd) restarts kube-state-metrics, Velero's server and the kubelet; a restored etcd restarts
kube-state-metrics.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dirt.clients.commands import CommandResult
from dirt.config import state_home
from dirt.core.errors import TargetError
from dirt.sandbox import process
from dirt.sandbox import realnode as realnode_parts
from dirt.sandbox.binaries import Binaries, VeleroBinaries, locate
from dirt.sandbox.component import (
    Log,
    Ports,
    ProcessGroup,
    SandboxContext,
    merge_state,
    quiet,
    read_state,
    wait_until_healthy,
)
from dirt.sandbox.controlplane import CONTROL_PLANE, LEASE_HOLDERS, LEASE_RENEW_DEADLINE, ControlPlane
from dirt.sandbox.monitoring import MONITORS, Monitoring
from dirt.sandbox.realnode import RealNode
from dirt.sandbox.velero import Velero

__all__ = ["CONTROL_PLANE", "LEASE_HOLDERS", "LEASE_RENEW_DEADLINE", "MONITORS", "Sandbox", "sandbox_home"]


def sandbox_home() -> Path:
    env = os.environ.get("DIRT_SANDBOX_HOME")
    if env:
        return Path(env)
    return state_home() / "sandboxes"


class Sandbox:
    """One sandbox: its settings, its state (``sandbox.json``) and ports, and its components."""

    def __init__(self, name: str = "dirt", *, nodes: int = 3, scrape_interval: float = 1.0,
                 evaluation_interval: float = 1.0, alert_for: float | None = None,
                 rules: list[Path] | None = None, kube_state_metrics: bool = True,
                 node_grace_period: float = 10.0, velero: bool = False, real_nodes: int = 0,
                 pushgateway: bool = False, home: Path | None = None,
                 shared_store: Callable[[], int] | None = None) -> None:
        if real_nodes not in (0, 1):
            raise TargetError(f"sandbox {name!r}: real_nodes must be 0 or 1 (one kubelet per machine for now)")
        self.name = name
        self.nodes = nodes
        self.velero = velero
        self.real_nodes = real_nodes
        self.pushgateway = pushgateway
        self.root = (home or sandbox_home()) / name
        self.kwok_workdir = self.root / "kwok"
        self.cluster_dir = self.kwok_workdir / "clusters" / name
        self._binaries: Binaries | None = None
        ctx = SandboxContext(name=name, root=self.root, cluster_dir=self.cluster_dir, ports=lambda: self.ports,
                             binaries=self.binaries, state=self.state, save_state=self._save_state)
        self.control_plane = ControlPlane(ctx, workdir=self.kwok_workdir, nodes=nodes,
                                          node_grace_period=node_grace_period, on_new_cluster=self._rejoin)
        self.monitoring = Monitoring(ctx, scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
                                     alert_for=alert_for, rules=rules, kube_state_metrics=kube_state_metrics,
                                     pushgateway=pushgateway)
        self.velero_server = Velero(ctx, shared_store=shared_store)
        self.real_node = RealNode(ctx, count=real_nodes, cluster=self.control_plane)

    # -- components -----------------------------------------------------------------------
    def _every(self) -> list[tuple[ProcessGroup, bool, bool]]:
        """Each component, whether these settings want it, and whether an earlier ``up`` (perhaps with
        other settings) started it."""
        state = self.state()
        return [(self.control_plane, True, True), (self.monitoring, True, True),
                (self.velero_server, self.velero, bool(state.get("velero"))),
                (self.real_node, bool(self.real_nodes), bool(state.get("real_nodes")))]

    @property
    def components(self) -> tuple[ProcessGroup, ...]:
        """The components this sandbox runs, in start order."""
        return tuple(component for component, wanted, ran in self._every() if wanted or ran)

    def _owner(self, name: str) -> ProcessGroup:
        for component, _, _ in self._every():
            if name in component.PROCESSES:
                return component
        raise TargetError(f"no component {name!r}; one of "
                          f"{', '.join(n for c in self.components for n in c.processes)}")

    @property
    def monitors(self) -> tuple[str, ...]:
        """The processes dirt starts beside the control plane (Velero's only when the sandbox runs it)."""
        return tuple(name for c in self.components if c is not self.control_plane for name in c.processes)

    # -- paths and state ----------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def pki(self) -> Path:
        return self.cluster_dir / "pki"

    @property
    def state_file(self) -> Path:
        return self.root / "sandbox.json"

    def state(self) -> dict[str, Any]:
        return read_state(self.state_file)

    def _save_state(self, **fields: Any) -> None:
        merge_state(self.state_file, **fields)

    @property
    def ports(self) -> Ports:
        stored = self.state().get("ports") or {}
        known = {k: v for k, v in stored.items() if k in Ports.names() and v}
        if len(known) == len(Ports.names()):
            return Ports(**known)
        # Each sandbox name gets its own neighbourhood of ports below the ephemeral range; a
        # sandbox from an older dirt keeps its ports and gets the ones it lacks.
        start = 20000 + (zlib.crc32(self.name.encode()) % 1000) * 12
        missing = [n for n in Ports.names() if n not in known]
        taken = set(known.values())
        fresh = iter(p for p in process.free_ports(len(missing) + len(taken), start=start) if p not in taken)
        ports = Ports(**known, **{name: next(fresh) for name in missing})
        if self.root.is_dir():  # a sandbox that does not exist yet is not made by asking (`dirt plan` touches nothing)
            self._save_state(ports=asdict(ports))
        return ports

    def binaries(self, *, build_missing: bool = False, log: Log = quiet) -> Binaries:
        if self._binaries is None:
            self._binaries = locate(build_missing=build_missing, log=log)
        return self._binaries

    def exists(self) -> bool:
        return self.control_plane.exists()

    # -- up / down / status ---------------------------------------------------------------
    def up(self, *, log: Log = print, timeout: float = 180.0) -> dict[str, Any]:
        """Create (or resume) the sandbox; return its status once everything is healthy."""
        started = time.monotonic()
        versions = self.binaries(build_missing=True, log=log).versions()
        for component, wanted, ran in self._every():
            if wanted:
                versions |= component.prepare(log=log)  # a missing binary is said before anything starts
            elif ran:  # switched off in the settings: take down what an earlier up started
                component.down(log=lambda message, c=component: log(f"{message} (the sandbox no longer runs {c.name})"))
                component.record({})
        self.root.mkdir(parents=True, exist_ok=True)
        self._save_state(name=self.name, versions=versions, nodes=self.nodes, velero=self.velero,
                         real_nodes=self.real_nodes, pushgateway=self.pushgateway)
        timings: dict[str, Any] = {"prepared": round(time.monotonic() - started, 2), "components": {},
                                   "healthy": {}}
        for component in self.components:
            begun = time.monotonic()
            if component is self.control_plane:
                self.control_plane.start(log=log, timeout=timeout)  # creates the cluster when there is none
            else:
                component.start(log=log)
            timings["components"][component.name] = {"at": round(begun - started, 2),
                                                      "seconds": round(time.monotonic() - begun, 2)}
        self.wait_healthy(timeout=max(30.0, timeout - (time.monotonic() - started)), seen=timings["healthy"],
                          since=started)
        timings["healthy_at"] = round(time.monotonic() - started, 2)
        self.monitoring.wait_settled(timeout=60.0, log=log)
        timings["settled_at"] = round(time.monotonic() - started, 2)
        self._save_state(up_seconds=round(time.monotonic() - started, 2), up_timings=timings)
        log(f"sandbox {self.name!r} is up in {time.monotonic() - started:.1f}s")
        return self.status()

    def down(self, *, log: Log = print) -> None:
        """Stop every process the sandbox started and remove its state."""
        if self.state().get("frozen"):
            self.thaw()  # a stopped process would not hear the SIGTERM
        for component in reversed(self.components):
            component.down(log=log)
        shutil.rmtree(self.root, ignore_errors=True)
        log(f"sandbox {self.name!r} removed")

    def status(self) -> dict[str, Any]:
        state = self.state()
        allocated = bool(state.get("ports"))  # asking for the URLs of a sandbox never up would allocate ports
        cluster = self.control_plane.status() if allocated else {}
        monitoring = self.monitoring.status() if allocated else {}
        return {
            "name": self.name,
            "exists": self.exists(),
            "kubeconfig": str(self.kubeconfig),
            "prometheus_url": monitoring.get("prometheus_url"),
            "alertmanager_url": monitoring.get("alertmanager_url"),
            "pushgateway_url": monitoring.get("pushgateway_url"),
            "api_server": cluster.get("api_server"),
            "components": [entry for component in self.components for entry in component.process_status()],
            "versions": state.get("versions", {}),
            "root": str(self.root),
            "up_seconds": state.get("up_seconds"),
            "up_timings": state.get("up_timings"),
            "velero": self.velero_server.status() if self.velero else None,
            "real_nodes": self.real_node.status() if self.real_nodes else None,
        }

    def wait_healthy(self, timeout: float = 60.0, components: tuple[str, ...] | None = None, *,
                     seen: dict[str, float] | None = None, since: float | None = None) -> None:
        checked = [(c, name) for c in self.components for name in c.checked() if not components or name in components]
        wait_until_healthy(self.name, lambda: {name: c.running(name) and c.answers(name) for c, name in checked},
                           timeout, seen=seen, since=since)

    def _rejoin(self, log: Log) -> None:
        """A new cluster (new etcd, new PKI): what runs beside it joins it again, as after a real rebuild."""
        self.monitoring.reconnect()  # kube-state-metrics' client certificate came from the old PKI
        if self.velero and self.velero_server.running("velero"):
            # A new cluster has no Velero CRDs and the server holds the old PKI.  Like a real rebuild:
            # install Velero again against the same bucket; it finds the old backups there.
            self.velero_server.start(log=log, restart=True)
        if self.real_nodes:
            # Its machine went with the old cluster (``delete_cluster``), its node object too, and its
            # certificate with the old CA: like a machine of the rebuilt cluster, it starts with new
            # credentials and registers again.
            self.real_node.start(log=log, restart=True)

    # -- what drills, the CLI and tests ask of the sandbox, answered by its components ------------
    def log_path(self, name: str) -> Path:
        for component in self.components:
            if name in component.processes:
                return component.log_path(name)
        raise TargetError(f"no component {name!r}; one of "
                          f"{', '.join(n for c in self.components for n in c.processes)}")

    def component_running(self, name: str) -> bool:
        return self._owner(name).running(name)

    def restart_monitor(self, name: str) -> None:
        self._owner(name).restart(name)

    # the control plane
    def create_cluster(self, *, log: Log = quiet) -> None:
        self.control_plane.create(log=log)

    def delete_cluster(self) -> None:
        """The whole cluster gone: its machines too (the real node's containers killed, its kubelet and
        containerd stopped, as a deleted cloud cluster takes its nodes), then the control plane and its data."""
        if self.real_nodes:
            self.real_node.stop()
        self.control_plane.delete()

    # a hung cluster
    def _cluster_pids(self) -> list[int]:
        """Every process of the cluster and its machine, in start order: the control plane, the real node's
        containerd and kubelet, the shims and the containers.  Monitoring and Velero run beside it, not in it."""
        pids = [self.control_plane.pid(n) for n in self.control_plane.processes if self.control_plane.running(n)]
        if self.real_nodes:
            pids += [self.real_node.pid(n) for n in self.real_node.processes if self.real_node.running(n)]
            pids += realnode_parts.shim_pids(self.root) + realnode_parts.cgroup_pids(self.node_id)
        return list(dict.fromkeys(p for p in pids if p))

    def freeze(self) -> list[str]:
        """Every process of the cluster stopped (SIGSTOP), none exited: connections to it hang.  The PIDs are
        kept in the state, so ``thaw`` (and a later ``dirt rollback``) finds them; what was frozen, in words."""
        pids = self._cluster_pids()
        self._save_state(frozen={str(pid): process.start_time(pid) for pid in pids})
        for pid in pids:
            process.send_signal(pid, signal.SIGSTOP)
        names = [n for c in (self.control_plane, *([self.real_node] if self.real_nodes else [])) for n in c.processes]
        return [f"{len(pids)} processes frozen: {', '.join(names)} and the containers of the real node"]

    def thaw(self) -> int:
        """The frozen processes continue (SIGCONT), in reverse order; how many there were."""
        frozen = self.state().get("frozen") or {}
        thawed = 0
        for pid, started in reversed(list(frozen.items())):
            if process.start_time(int(pid)) == started and process.send_signal(int(pid), signal.SIGCONT):
                thawed += 1
        self._save_state(frozen={})
        return thawed

    def frozen(self) -> bool:
        """Is the cluster frozen: every process ``freeze`` stopped still there and stopped?"""
        frozen = self.state().get("frozen") or {}
        return bool(frozen) and all(process.stopped(int(pid)) for pid in frozen)

    def wait_api(self, timeout: float = 60.0) -> None:
        self.control_plane.wait_api(timeout)

    def stop_component(self, name: str, *, graceful: bool = False) -> None:
        self.control_plane.stop_component(name, graceful=graceful)

    def start_component(self, name: str, *, wait: bool = True) -> None:
        self.control_plane.start_component(name, wait=wait)

    def kubectl(self, *args: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        return self.control_plane.kubectl(*args, timeout=timeout, check=check)

    def ready_nodes(self) -> list[str]:
        return self.control_plane.ready_nodes()

    @property
    def etcd_data(self) -> Path:
        return self.control_plane.etcd_data

    def etcd_endpoint(self) -> str:
        return self.control_plane.etcd_endpoint()

    def snapshot_save(self, path: Path) -> dict[str, Any]:
        return self.control_plane.snapshot_save(path)

    def snapshot_status(self, path: Path) -> dict[str, Any]:
        return self.control_plane.snapshot_status(path)

    def snapshot_restore(self, path: Path, *, log: Log = quiet) -> dict[str, Any]:
        status = self.control_plane.snapshot_restore(path, log=log)
        if self.real_nodes:  # the procedure's last step: every kubelet too (the playbook says so)
            self.real_node.restart_kubelet(log=log)
        self.monitoring.reconnect()  # its watches hold the objects of the etcd that was
        return status

    def etcd_wipe(self) -> None:
        self.control_plane.etcd_wipe()

    def etcd_read(self, key: str) -> str | None:
        return self.control_plane.etcd_read(key)

    # monitoring
    @property
    def extra_rules(self) -> list[Path]:
        return self.monitoring.extra_rules

    @property
    def prometheus_url(self) -> str:
        return self.monitoring.prometheus_url

    @property
    def alertmanager_url(self) -> str:
        return self.monitoring.alertmanager_url

    @property
    def pushgateway_url(self) -> str:
        return self.monitoring.pushgateway_url

    def sync_rules(self, *, log: Log = quiet) -> bool:
        return self.monitoring.sync_rules(log=log)

    # Velero
    def velero_binaries(self, *, build_missing: bool = False, log: Log = quiet) -> VeleroBinaries:
        return self.velero_server.binaries(build_missing=build_missing, log=log)

    def start_velero(self, *, log: Log = quiet, restart: bool = False, timeout: float = 90.0) -> None:
        self.velero_server.start(log=log, restart=restart, timeout=timeout)

    def velero_status(self) -> dict[str, Any]:
        return self.velero_server.status()

    # the real node
    @property
    def real_node_names(self) -> list[str]:
        return self.real_node.names

    @property
    def node_id(self) -> str:
        return self.real_node.node_id

    def start_real_node(self, *, log: Log = quiet, restart: bool = False, timeout: float = 90.0) -> None:
        self.real_node.start(log=log, restart=restart, timeout=timeout)

    def stop_real_node(self) -> None:
        self.real_node.stop()

    def wait_real_node_ready(self, timeout: float = 90.0) -> None:
        self.real_node.wait_ready(timeout)

    def build_images(self, *, log: Log = quiet) -> list[str]:
        return self.real_node.build_images(log=log)

    def import_image(self, archive: Path) -> list[str]:
        return self.real_node.import_image(archive)

    def images(self) -> list[str]:
        return self.real_node.images()

    def kill_container(self, pod: dict[str, Any], container: str, *, sig: str = "SIGKILL") -> str:
        return self.real_node.kill_container(pod, container, sig=sig)

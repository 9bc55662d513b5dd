"""The ``sandbox`` target: the local control plane of ``dirt.sandbox``, breakable at will.

Everything a drill needs is real: the Kubernetes API (client from the sandbox's
kubeconfig), Prometheus and Alertmanager (URLs from the sandbox's state),
stopping and starting each control-plane component by the PIDs it owns, etcd
snapshots with ``etcdctl``/``etcdutl``, and deleting and recreating the whole
cluster with the same name (fresh etcd, fresh PKI).  ``prepare`` brings the
sandbox up if it is not (idempotent), so ``dirt run`` works on a fresh machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from dirt.clients.monitoring import Endpoint
from dirt.config import SettingsCheck, TargetConfig
from dirt.core.durations import Duration, Interval
from dirt.core.errors import TargetError
from dirt.targets.base import Settings, SnapshotInfo, Target

if TYPE_CHECKING:  # pragma: no cover
    from dirt.sandbox.cluster import Sandbox


class SandboxSettings(Settings):
    name: str = Field("dirt", pattern=r"^[a-z0-9][-a-z0-9]*$", description="Sandbox name (several can coexist).")
    nodes: int = Field(3, ge=1, le=200, description="KWOK nodes, all Ready.")
    scrape_interval: Interval = Field(1.0, description="Prometheus scrape interval.")
    evaluation_interval: Interval = Field(1.0, description="Prometheus rule evaluation interval.")
    alert_for: Duration | None = Field(None, description="Override every rule's 'for:'.")
    rules: list[str] = Field(default_factory=list, description="Extra rule files or folders.")
    kube_state_metrics: bool = Field(True, description="Run kube-state-metrics (workload and node alerts).")
    node_grace_period: Duration = Field(10.0, description="controller-manager node monitor grace period.")
    auto_up: bool = Field(True, description="Bring the sandbox up before a drill if it is not.")
    velero: bool = Field(False, description="Run a real Velero server (with an S3-compatible store) in the sandbox; "
                                            "`velero` backups and the `velero` CLI then work.")
    real_nodes: int = Field(0, ge=0, le=1, description="Real nodes beside the KWOK ones: a kubelet with containerd "
                                                       "and runc running real containers (label dirt.dev/node=real, "
                                                       "taint dirt.dev/real-node=true:NoSchedule).")
    pushgateway: bool = Field(False, description="Run a Prometheus Pushgateway (Debian's prometheus-pushgateway) "
                                                 "scraped by the sandbox's Prometheus with honor_labels: "
                                                 "`dirt history export --pushgateway` can push to it.")


def _say(message: str) -> None:
    print(f"dirt sandbox: {message}", file=sys.stderr, flush=True)


class SandboxTarget(Target):
    provider = "sandbox"
    Settings = SandboxSettings
    capabilities = frozenset({"components", "etcd_snapshot", "etcd_wipe", "etcd_read", "cluster", "containers",
                              "node_power", "freeze"})

    def __init__(self, name: str, config: Any, root: Path) -> None:
        super().__init__(name, config, root)
        s = self.settings
        from dirt.sandbox.cluster import Sandbox

        self.extra_variables: dict[str, Any] = {}
        self.sandbox = Sandbox(
            s.name, nodes=s.nodes, scrape_interval=s.scrape_interval, evaluation_interval=s.evaluation_interval,
            alert_for=s.alert_for, rules=[root / r for r in s.rules], kube_state_metrics=s.kube_state_metrics,
            node_grace_period=s.node_grace_period, velero=s.velero,
            real_nodes=s.real_nodes, pushgateway=s.pushgateway,
        )

    @classmethod
    def of(cls, name: str, sandbox: Sandbox, root: Path, *, variables: dict[str, Any] | None = None) -> SandboxTarget:
        """A member of a fleet dirt made (``dirt.sandbox.fleet``): its sandbox is the fleet's, and its
        variables (the port it serves the app on) are the fleet's to say."""
        config = TargetConfig(provider=cls.provider, settings={
            "name": sandbox.name, "nodes": sandbox.nodes, "velero": sandbox.velero,
            "real_nodes": sandbox.real_nodes, "pushgateway": sandbox.pushgateway, "auto_up": False})
        target = cls(name, config, root)
        target.sandbox = sandbox
        target.extra_variables = dict(variables or {})
        return target

    @classmethod
    def check_settings(cls, settings: SandboxSettings, check: SettingsCheck) -> None:
        """Extra rule files and folders exist and can be read."""
        for i, rule in enumerate(settings.rules):
            check.file_or_folder(("rules", i), rule)

    @property
    def is_sandbox(self) -> bool:
        return True

    def cluster_name(self) -> str:
        return self.sandbox.name

    def describe(self) -> dict[str, Any]:
        state = self.sandbox.state()
        return {"name": self.name, "provider": self.provider, "sandbox": self.sandbox.name,
                "versions": state.get("versions", {}), "nodes": self.settings.nodes,
                "api_server": f"https://127.0.0.1:{state['ports']['kube_apiserver']}" if state.get("ports") else None}

    def prepare(self) -> None:
        status = self.sandbox.status() if self.sandbox.exists() else None
        healthy = status is not None and all(c["healthy"] for c in status["components"])
        if not healthy:
            if not self.settings.auto_up:
                raise TargetError(f"sandbox {self.sandbox.name!r} is not up: run `dirt sandbox up`")
            # on a fresh machine this may build the binaries first: say what is going on
            self.sandbox.up(log=_say)
        else:
            self.sandbox.sync_rules(log=_say)  # up by another project: judge this drill by this project's rules
        self.reset_kube()

    def drill_lock_path(self) -> Path:
        """Beside the sandbox's state: whoever would start or stop its components finds it there."""
        return self.sandbox.root / "drill.lock"

    def kubeconfig_path(self) -> str | None:
        return str(self.sandbox.kubeconfig)

    def command_env(self) -> dict[str, str]:
        """Commands a drill runs (playbook steps, exec, redeploy) get the sandbox's own
        kubectl/etcdctl first on PATH, so the written procedure uses matching versions."""
        import os

        env = super().command_env()
        b = self.sandbox.binaries()
        folders = [str(b.kubectl.parent), str(b.etcdctl.parent)]
        if self.settings.velero:
            from dirt.sandbox.velero import NAMESPACE

            folders.append(str(self.sandbox.velero_binaries().velero.parent))
            env["VELERO_NAMESPACE"] = NAMESPACE  # the velero CLI's namespace, as `velero client config` would set
        env["PATH"] = os.pathsep.join([*folders, os.environ.get("PATH", "")])
        if self.settings.real_nodes:
            from dirt.sandbox.realnode import CRI_NAMESPACE, socket_path

            # `ctr` (containerd's CLI) reaches the real node's containerd, as on the node itself
            env["CONTAINERD_ADDRESS"] = str(socket_path(self.sandbox.root))
            env["CONTAINERD_NAMESPACE"] = CRI_NAMESPACE
        env["ETCDCTL_API"] = "3"
        env["ETCDCTL_ENDPOINTS"] = self.sandbox.etcd_endpoint()
        return env

    def variables(self) -> dict[str, Any]:
        values = super().variables()
        values.update(etcd_endpoint=self.sandbox.etcd_endpoint(), sandbox=self.sandbox.name,
                      etcd_data_dir=str(self.sandbox.etcd_data), pushgateway_url=self.pushgateway_url or "")
        values.update(self.extra_variables)
        return values

    @property
    def pushgateway_url(self) -> str | None:
        """Where batch jobs push metrics for the sandbox's Prometheus; None unless ``pushgateway: true``."""
        return self.sandbox.pushgateway_url if self.settings.pushgateway else None

    @property
    def prometheus(self) -> Endpoint | None:
        return self.config.prometheus or Endpoint(url=self.sandbox.prometheus_url, timeout=5.0)

    @property
    def alertmanager(self) -> Endpoint | None:
        return self.config.alertmanager or Endpoint(url=self.sandbox.alertmanager_url, timeout=5.0)

    # -- cluster-level operations -------------------------------------------------------
    def stop_component(self, component: str, *, graceful: bool = False) -> None:
        self.sandbox.stop_component(component, graceful=graceful)

    def start_component(self, component: str) -> None:
        self.sandbox.start_component(component)
        if component == "kube-apiserver":
            self.reset_kube()

    def component_running(self, component: str) -> bool:
        return self.sandbox.component_running(component)

    def etcd_snapshot_save(self, path: Path) -> SnapshotInfo:
        status = self.sandbox.snapshot_save(path)
        return _snapshot_info(path, status)

    def etcd_snapshot_status(self, path: Path) -> SnapshotInfo:
        return _snapshot_info(path, self.sandbox.snapshot_status(path))

    def etcd_snapshot_restore(self, path: Path) -> None:
        self.sandbox.snapshot_restore(path)
        self.reset_kube()

    def etcd_wipe(self) -> None:
        self.sandbox.etcd_wipe()

    def etcd_read(self, key: str) -> str | None:
        return self.sandbox.etcd_read(key)

    def delete_cluster(self) -> None:
        self.sandbox.delete_cluster()
        self.reset_kube()

    def create_cluster(self) -> None:
        self.sandbox.create_cluster()
        self.reset_kube()

    def cluster_exists(self) -> bool:
        return self.sandbox.exists()

    def freeze_cluster(self) -> list[str]:
        frozen = self.sandbox.freeze()
        self.reset_kube()
        return frozen

    def thaw_cluster(self) -> int:
        thawed = self.sandbox.thaw()
        self.reset_kube()
        return thawed

    def cluster_frozen(self) -> bool:
        return self.sandbox.frozen()

    def kill_container(self, pod: dict[str, Any], container: str, *, signal: str = "SIGKILL") -> str:
        return self.sandbox.kill_container(pod, container, sig=signal)

    def _real_node(self, node: str) -> None:
        if node not in self.sandbox.real_node_names:
            raise TargetError(f"node {node} is not one of sandbox {self.sandbox.name!r}'s real nodes "
                              f"({', '.join(self.sandbox.real_node_names) or 'it has none: settings.real_nodes: 1'}); "
                              "a KWOK node has no machine to power off (node.delete loses it from the API)")

    def stop_node(self, node: str) -> None:
        self._real_node(node)
        self.sandbox.stop_real_node()

    def start_node(self, node: str) -> None:
        self._real_node(node)
        self.sandbox.start_real_node()

    def node_running(self, node: str) -> bool:
        self._real_node(node)
        return self.sandbox.component_running("kubelet")


def _snapshot_info(path: Path, status: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(path=str(path), hash=int(status.get("hash", 0)), revision=int(status.get("revision", 0)),
                        total_keys=int(status.get("totalKey", 0)), size_bytes=int(status.get("totalSize", 0)),
                        created_at=path.stat().st_mtime if path.exists() else time.time())

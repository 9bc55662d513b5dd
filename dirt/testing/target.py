"""``FakeTarget``: a cluster that exists only in memory, for tests and examples.

Like httpx's ``MockTransport``, it ships in the package so the engine, reports
and pytest plugin can be exercised without a cluster.  It models just enough:
a set of broken things (faults put entries in, repairs take them out), control
plane components that can be stopped and started, etcd "snapshots" of its
object store, and alerts that fire a configurable delay after something breaks
and resolve once it is repaired (with server timestamps, like Prometheus).
Select it in dirt.yaml with ``provider: fake``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from dirt.clients.monitoring import ActiveAlert, AlertSource
from dirt.config import TargetConfig
from dirt.targets.base import COMPONENTS, Settings, SnapshotInfo, Target


class FakeSettings(Settings):
    alert_delay: float = Field(0.2, description="Seconds from a break to its alerts firing.")
    resolve_delay: float = Field(0.2, description="Seconds from the repair to the alerts resolving.")
    prepare_fails: bool = False
    objects: dict[str, str] = Field(default_factory=dict, description="Initial object store.")
    capabilities: list[str] | None = Field(None, description="Pretend to be able to do only these (default: all).")


@dataclass
class FakeAlert:
    name: str
    labels: dict[str, str]
    fired_at: float  # server time
    cause: str
    resolved_at: float | None = None


class FakeAlertSource(AlertSource):
    def __init__(self, target: FakeTarget, source: str) -> None:
        self.target = target
        self.source = source  # type: ignore[assignment]

    def active(self) -> list[ActiveAlert]:
        now = time.time()
        out = []
        with self.target.lock:
            for alert in self.target.alerts:
                if alert.fired_at <= now and (alert.resolved_at is None or alert.resolved_at > now):
                    out.append(ActiveAlert(
                        name=alert.name, labels={"alertname": alert.name, **alert.labels},
                        source=self.source,  # type: ignore[arg-type]
                        state="firing" if self.source == "prometheus" else "active",
                        fired_at=alert.fired_at, active_at=alert.fired_at, for_seconds=0.0,
                    ))
        return out


class FakeTarget(Target):
    provider = "fake"
    Settings = FakeSettings
    capabilities = frozenset({"components", "etcd_snapshot", "etcd_wipe", "etcd_read", "cluster"})

    def __init__(self, name: str = "fake", config: TargetConfig | None = None, root: Path | None = None) -> None:
        super().__init__(name, config or TargetConfig(provider="fake"), root or Path.cwd())
        self.lock = threading.RLock()
        self.broken: dict[str, list[str]] = {}  # cause -> alert names it fires
        self.alerts: list[FakeAlert] = []
        self.running = set(COMPONENTS)
        self.objects: dict[str, str] = dict(self.settings.objects)
        self.exists = True
        self.prepared = 0
        self.calls: list[str] = []  # every cluster-level operation, in order
        if self.settings.capabilities is not None:
            self.capabilities = frozenset(self.settings.capabilities)  # type: ignore[misc]  # per instance

    @property
    def is_sandbox(self) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "provider": self.provider, "fake": True}

    def drill_lock_path(self) -> Path:
        """In the project folder, so that test runs in parallel never share a lock."""
        return self.root / ".dirt" / "locks" / self.name / "drill.lock"

    def prepare(self) -> None:
        self.prepared += 1
        if self.settings.prepare_fails:
            from dirt.core.errors import TargetError

            raise TargetError("fake target configured to fail in prepare")

    # -- the fake world -------------------------------------------------------------
    def breaks(self, cause: str, alerts: list[str], labels: dict[str, str] | None = None) -> None:
        with self.lock:
            self.broken[cause] = alerts
            fired = time.time() + self.settings.alert_delay
            for name in alerts:
                self.alerts.append(FakeAlert(name, dict(labels or {}), fired, cause))

    def repairs(self, cause: str | None = None) -> None:
        with self.lock:
            causes = [cause] if cause else list(self.broken)
            for c in causes:
                self.broken.pop(c, None)
                for alert in self.alerts:
                    if alert.cause == c and alert.resolved_at is None:
                        alert.resolved_at = time.time() + self.settings.resolve_delay

    @property
    def healthy(self) -> bool:
        with self.lock:
            return not self.broken and self.exists and "kube-apiserver" in self.running

    def alert_sources(self) -> list[AlertSource]:
        return [FakeAlertSource(self, "prometheus"), FakeAlertSource(self, "alertmanager")]

    # -- cluster-level operations (recorded) -----------------------------------------
    def stop_component(self, component: str, *, graceful: bool = False) -> None:
        self.calls.append(f"stop {component}")
        self.running.discard(component)
        self.breaks(f"component:{component}", [_ALERT_FOR.get(component, "TargetDown")])

    def start_component(self, component: str) -> None:
        self.calls.append(f"start {component}")
        self.running.add(component)
        self.repairs(f"component:{component}")

    def component_running(self, component: str) -> bool:
        return component in self.running

    def etcd_snapshot_save(self, path: Path) -> SnapshotInfo:
        self.calls.append(f"snapshot save {path.name}")
        data = json.dumps(self.objects, sort_keys=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data)
        return SnapshotInfo(str(path), hash(data) & 0xFFFFFFFF, len(self.objects), len(self.objects),
                            len(data), time.time())

    def etcd_snapshot_restore(self, path: Path) -> None:
        self.calls.append(f"snapshot restore {path.name}")
        self.objects = json.loads(path.read_text())
        self.repairs("etcd:wiped")
        for component in COMPONENTS:  # the restore procedure leaves the control plane running
            if component not in self.running:
                self.start_component(component)

    def etcd_wipe(self) -> None:
        self.calls.append("etcd wipe")
        self.objects = {}
        self.breaks("etcd:wiped", ["etcdMembersDown"])

    def etcd_read(self, key: str) -> str | None:
        return self.objects.get(key)

    def delete_cluster(self) -> None:
        self.calls.append("delete cluster")
        self.exists = False
        self.objects = {}
        self.breaks("cluster:deleted", ["KubeAPIDown"])

    def create_cluster(self) -> None:
        self.calls.append("create cluster")
        self.exists = True
        self.repairs("cluster:deleted")

    def cluster_exists(self) -> bool:
        return self.exists


_ALERT_FOR = {
    "kube-apiserver": "KubeAPIDown",
    "kube-controller-manager": "KubeControllerManagerDown",
    "kube-scheduler": "KubeSchedulerDown",
    "etcd": "etcdMembersDown",
}

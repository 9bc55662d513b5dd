"""The target protocol: how the engine and the drivers reach and break a cluster.

One class per provider (``sandbox``, ``kind``, ``kubeconfig``, and the test
double in ``dirt.testing``).  API-level faults only need ``kube()``; the
cluster-level operations below are what the Kubernetes API cannot do (stop the
API server, lose etcd, delete the cluster), and each provider implements the
ones it can.  A provider that cannot do one raises ``TargetError`` naming it,
and ``capabilities`` says up front which it can, so ``dirt plan`` and the
guardrails can refuse early.

Capabilities are data, in one place: ``CAPABILITIES`` names each and says it in
words; a target lists the ones it has (``capabilities``), a driver the ones it
needs (``Driver.requirements``), and ``why_not`` words a missing one for the
person who can fix it.  ``check_settings`` is each provider's load-time look at
what its settings name (files, contexts), so dirt.yaml's problems are all found
when it is loaded, not half-way through a drill.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from dirt.clients.credentials import kubeconfig_secrets
from dirt.clients.monitoring import Endpoint, endpoint_secrets
from dirt.config import SettingsCheck, TargetConfig, state_home
from dirt.core.errors import APIUnavailableError, ConfigError, TargetError
from dirt.core.plugins import load_target_provider, target_providers
from dirt.core.redact import is_secret_key, register_secrets
from dirt.documents.problems import did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from dirt.clients.kube import KubeClient
    from dirt.clients.monitoring import AlertSource, MonitoringClient

#: The control-plane components a target may be asked to stop and start.
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok-controller")

#: The cluster-level operations a target may be able to do, as a person would say them.
CAPABILITIES: dict[str, str] = {
    "components": "stop and start control-plane components",
    "etcd_snapshot": "save and restore etcd snapshots",
    "etcd_wipe": "wipe etcd's data",
    "etcd_read": "read etcd directly",
    "cluster": "delete and create the whole cluster",
    "containers": "kill a container's process through the container runtime",
    "node_power": "power a node off and on (its kubelet and containers stopped, as a lost machine)",
    "freeze": "freeze and thaw the whole cluster (every process stops answering, none exits)",
}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class SnapshotInfo:
    """An etcd snapshot file and what ``snapshot status`` says about it."""

    path: str
    hash: int
    revision: int
    total_keys: int
    size_bytes: int
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TargetInfo:
    name: str
    provider: str
    details: dict[str, Any] = field(default_factory=dict)


class Target:
    """Base class of every provider; cluster-level operations default to 'cannot'."""

    provider: ClassVar[str] = ""
    Settings: ClassVar[type[Settings]] = Settings
    #: cluster-level operations this provider implements
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, config: TargetConfig, root: Path) -> None:
        self.name = name
        self.config = config
        self.root = root
        try:
            self.settings = self.Settings.model_validate(config.settings)
        except ValidationError as exc:  # load_config found it already, located; this is for direct use
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"target {name!r} ({self.provider}): settings.{where}: {message}") from None
        self._kube: KubeClient | None = None

    # -- identity and guardrails ------------------------------------------------------
    @property
    def is_sandbox(self) -> bool:
        """Local and disposable: destructive faults need no confirmation."""
        return False

    def allows(self, family: str) -> bool:
        return family in self.config.allowed_families()

    def why_not(self, capability: str) -> str:
        """Why this target cannot do ``capability``, and what would make it able to."""
        return f"target {self.name!r} ({self.provider}) cannot {CAPABILITIES.get(capability, capability)}"

    @classmethod
    def check_settings(cls, settings: Any, check: SettingsCheck) -> None:
        """Load-time checks of what the (validated) settings name: files, folders, contexts.

        Report through ``check`` (located under ``targets.<name>.settings``); nothing
        is started or contacted here.  None by default.
        """

    def cluster_name(self) -> str:
        """What a person must type to confirm a destructive run."""
        return self.name

    def describe(self) -> dict[str, Any]:
        """Facts for the journal and report; never credentials."""
        return {"name": self.name, "provider": self.provider}

    def drill_lock_path(self) -> Path:
        """The file of the local drill lock (``dirt.engine.lock``): one per target, in the user's
        state folder; the sandbox keeps it with its own state."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{self.provider}-{self.name}")
        return state_home() / "locks" / safe / "drill.lock"

    def secret_values(self) -> list[str]:
        """Every credential this target is configured with, read now and registered for redaction:
        its monitoring endpoints' tokens and passwords, its kubeconfig's user credentials, and
        settings whose key names a secret.  A drill that prints one then shows ``***``.

        ``make_target`` calls it, and the runner again once the target is prepared (a sandbox or
        kind cluster writes its kubeconfig then).  Never raises: what cannot be read is left out.
        """
        values = [v for k, v in self.config.settings.items() if is_secret_key(str(k)) and isinstance(v, str)]
        for endpoint in self._endpoints():
            values += endpoint_secrets(endpoint)
        try:
            path = self.written_kubeconfig()
        except Exception:  # noqa: BLE001 - no kubeconfig yet: no credential to mask yet
            path = None
        if path:
            values += kubeconfig_secrets(path)
        register_secrets(values)
        return values

    def written_kubeconfig(self) -> str | None:
        """The kubeconfig file(s) as they are now, for ``secret_values``; never creates one."""
        return self.kubeconfig_path()

    def _endpoints(self) -> list[Endpoint]:
        found = [self.config.prometheus, self.config.alertmanager]
        try:
            found += [self.prometheus, self.alertmanager]
        except Exception:  # noqa: BLE001 - a provider's endpoint may need it up; the configured ones are above
            pass
        return [e for e in found if e is not None]

    # -- fleets -----------------------------------------------------------------------
    def members(self) -> list[str]:
        """The member clusters of a fleet target (``provider: fleet``), in the fixed order locks are
        taken and fleet-wide steps run in; a single cluster has none."""
        return []

    def member_target(self, name: str) -> Target:
        """The target of one member; a ``TargetError`` naming the members when there is no such one."""
        raise TargetError(f"target {self.name!r} ({self.provider}) is a single cluster: 'member: {name}' needs a "
                          "target with provider: fleet")

    # -- lifecycle --------------------------------------------------------------------
    def prepare(self) -> None:
        """Make sure the target can be used (the sandbox starts itself here)."""

    def close(self) -> None:
        """Release clients; never stops a cluster."""

    # -- Kubernetes API ---------------------------------------------------------------
    def kubeconfig_path(self) -> str | None:
        return None

    def kube_context(self) -> str | None:
        return None

    def kube(self) -> KubeClient:
        if self._kube is None:
            path = self.kubeconfig_path()
            if path is None:
                raise TargetError(f"target {self.name!r} has no kubeconfig")
            from dirt.clients.kube import KubeClient

            self._kube = KubeClient.from_kubeconfig(path, self.kube_context())
        return self._kube

    def reset_kube(self) -> None:
        """Forget the client (after a cluster is recreated its CA changes)."""
        self._kube = None

    def command_env(self) -> dict[str, str]:
        """Environment for commands a drill runs (``exec``, playbook steps, kubectl)."""
        env: dict[str, str] = {}
        path = self.kubeconfig_path()
        if path:
            env["KUBECONFIG"] = path
        return env

    def variables(self) -> dict[str, Any]:
        """Run-time values for ``{{ name }}`` placeholders."""
        return {
            "target": self.name,
            "kubeconfig": self.kubeconfig_path() or "",
            "prometheus_url": self.prometheus.url if self.prometheus else "",
            "alertmanager_url": self.alertmanager.url if self.alertmanager else "",
        }

    # -- monitoring -------------------------------------------------------------------
    @property
    def prometheus(self) -> Endpoint | None:
        return self.config.prometheus

    @property
    def alertmanager(self) -> Endpoint | None:
        return self.config.alertmanager

    def alert_sources(self) -> list[AlertSource]:
        from dirt.clients.monitoring import AlertmanagerSource, PrometheusSource

        sources: list[AlertSource] = []
        if self.prometheus:
            sources.append(PrometheusSource(self.prometheus))
        if self.alertmanager:
            sources.append(AlertmanagerSource(self.alertmanager))
        return sources

    def monitoring(self) -> MonitoringClient:
        from dirt.clients.monitoring import MonitoringClient

        if not self.prometheus:
            raise TargetError(f"target {self.name!r} has no Prometheus configured")
        return MonitoringClient(self.prometheus)

    # -- cluster-level operations -----------------------------------------------------
    def _cannot(self, what: str) -> TargetError:
        return TargetError(f"target {self.name!r} ({self.provider}) cannot {what}")

    def stop_component(self, component: str, *, graceful: bool = False) -> None:
        """Kill a component (a crash); ``graceful`` asks it to shut down instead."""
        raise self._cannot(f"stop {component}")

    def start_component(self, component: str) -> None:
        raise self._cannot(f"start {component}")

    def component_running(self, component: str) -> bool:
        raise self._cannot(f"tell whether {component} runs")

    def etcd_snapshot_save(self, path: Path) -> SnapshotInfo:
        raise self._cannot("save an etcd snapshot")

    def etcd_snapshot_restore(self, path: Path) -> None:
        """Restore etcd from ``path`` by the documented procedure, which leaves every
        control-plane component running on the restored data (recovery steps count on it)."""
        raise self._cannot("restore an etcd snapshot")

    def etcd_wipe(self) -> None:
        """etcd's data lost.  Components that ran keep running (etcd empty, the API server
        restarted on it); components another fault stopped stay stopped."""
        raise self._cannot("wipe etcd's data")

    def etcd_read(self, key: str) -> str | None:
        """The value of one etcd key (as text, undecodable bytes replaced), None if absent —
        straight from etcd, for when the API server cannot answer (capability ``etcd_read``)."""
        raise self._cannot("read etcd directly")

    def delete_cluster(self) -> None:
        raise self._cannot("delete the cluster")

    def create_cluster(self) -> None:
        raise self._cannot("create the cluster")

    def cluster_exists(self) -> bool:
        raise self._cannot("tell whether the cluster exists")

    def freeze_cluster(self) -> list[str]:
        """Every process of the cluster (control plane, nodes, their containers) stopped without exiting: a hung
        cluster, whose connections hang rather than being refused; what was frozen, in words (``freeze``)."""
        raise self._cannot("freeze the cluster")

    def thaw_cluster(self) -> int:
        """Undo ``freeze_cluster`` (safe when nothing is frozen); how many processes were thawed."""
        raise self._cannot("thaw the cluster")

    def cluster_frozen(self) -> bool:
        raise self._cannot("tell whether the cluster is frozen")

    def kill_container(self, pod: dict[str, Any], container: str, *, signal: str = "SIGKILL") -> str:
        """Signal the main process of ``container`` in ``pod`` (a Pod object as the API returned it) through
        the node's container runtime; returns the runtime's container ID (capability ``containers``)."""
        raise self._cannot("kill a container's process")

    def stop_node(self, node: str) -> None:
        """The node's machine lost: its containers killed, its kubelet and runtime stopped (``node_power``)."""
        raise self._cannot(f"power off node {node}")

    def start_node(self, node: str) -> None:
        raise self._cannot(f"power on node {node}")

    def node_running(self, node: str) -> bool:
        raise self._cannot(f"tell whether node {node} is powered on")


def running_container(pod: dict[str, Any], container: str) -> tuple[str, str, str]:
    """The node, the runtime (``containerd``, ``cri-o``) and the runtime's container ID of
    ``container`` in ``pod`` (as the API returned it).

    A ``TargetError`` when the pod has no such container, or it is not running: a killed process
    needs one that runs.
    """
    name = f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
    statuses = {c.get("name"): c for c in pod.get("status", {}).get("containerStatuses") or []}
    status = statuses.get(container)
    if status is None:
        raise TargetError(f"pod {name} has no container {container!r} (it has: {', '.join(statuses) or 'none'})")
    runtime, _, cid = str(status.get("containerID") or "").partition("://")
    if not cid or "running" not in (status.get("state") or {}):
        raise TargetError(f"container {container!r} of pod {name} is not running")
    node = pod.get("spec", {}).get("nodeName")
    if not node:
        raise TargetError(f"pod {name} runs on no node")
    return str(node), runtime, cid


def power_on_and_wait(kube: KubeClient, node: str, power_on: Callable[[], None], timeout: float, *,
                      hint: str) -> float:
    """Power ``node`` on, then wait until its kubelet reports it Ready; the seconds it took.

    The Ready condition read before ``power_on`` does not count: powered on soon after it was
    lost, a node still shows the Ready its kubelet posted before the loss (the controller marks
    it NotReady only after its grace period).  Only a report with another heartbeat is the
    restarted kubelet's.  A ``TargetError`` with ``hint`` after ``timeout``.
    """
    before = _ready_condition(kube, node)
    power_on()
    start = time.monotonic()
    while True:
        ready = _ready_condition(kube, node)
        if ready and ready.get("status") == "True" and ready.get("lastHeartbeatTime") != (before or {}).get(
                "lastHeartbeatTime"):
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TargetError(f"node {node} is not Ready {timeout:.0f}s after it was powered on; {hint}")
        time.sleep(1.0)


def _ready_condition(kube: KubeClient, node: str) -> dict[str, Any] | None:
    try:
        found = kube.find("v1", "Node", node)
    except APIUnavailableError:
        return None  # the API busy or briefly away while the machine boots: ask again
    conditions = (found or {}).get("status", {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def provider_class(provider: str) -> type[Target]:
    """The class of a provider; a ``ConfigError`` naming the known ones if there is none."""
    known = target_providers()
    where = known.get(provider)
    if where is None:
        hint = did_you_mean(provider, known)
        raise ConfigError(f"unknown target provider {provider!r} (known: {', '.join(sorted(known))})"
                          + (f"; {hint}" if hint else ""))
    try:
        cls = load_target_provider(provider)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is a configuration problem, said in one line
        raise ConfigError(f"target provider {provider!r} ({where}) cannot be loaded: {type(exc).__name__}: {exc}") \
            from None
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        raise ConfigError(f"target provider {provider!r} ({where}) is not a dirt Target class")
    return cls


def make_target(name: str, config: TargetConfig, root: Path) -> Target:
    """The target ``name``, its credentials already registered for redaction."""
    target = provider_class(config.provider)(name, config, root)
    target.secret_values()
    return target

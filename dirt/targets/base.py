"""The target protocol: how the engine and the drivers reach and break a cluster.

One class per provider (``sandbox``, ``kind``, ``kubeconfig``, and the test
double in ``dirt.testing``).  API-level faults only need ``kube()``; the
cluster-level operations below are what the Kubernetes API cannot do (stop the
API server, lose etcd, delete the cluster), and each provider implements the
ones it can.  A provider that cannot do one raises ``TargetError`` naming it,
and ``capabilities`` says up front which it can, so ``dirt plan`` and the
guardrails can refuse early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from dirt.clients.monitoring import Endpoint
from dirt.config import TargetConfig
from dirt.core.errors import ConfigError, TargetError
from dirt.core.plugins import target_providers
from dirt.documents.problems import did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    from dirt.clients.kube import KubeClient
    from dirt.clients.monitoring import AlertSource, MonitoringClient

#: The control-plane components a target may be asked to stop and start.
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok-controller")


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
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"target {name!r} ({self.provider}): settings.{where}: {first['msg']}") from None
        self._kube: KubeClient | None = None

    # -- identity and guardrails ------------------------------------------------------
    @property
    def is_sandbox(self) -> bool:
        """Local and disposable: destructive faults need no confirmation."""
        return False

    def allows(self, family: str) -> bool:
        return family in self.config.allowed_families()

    def cluster_name(self) -> str:
        """What a person must type to confirm a destructive run."""
        return self.name

    def describe(self) -> dict[str, Any]:
        """Facts for the journal and report; never credentials."""
        return {"name": self.name, "provider": self.provider}

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


def provider_class(provider: str) -> type[Target]:
    """The class of a provider; a ``ConfigError`` naming the known ones if there is none."""
    import importlib

    known = target_providers()
    where = known.get(provider)
    if where is None:
        hint = did_you_mean(provider, known)
        raise ConfigError(f"unknown target provider {provider!r} (known: {', '.join(sorted(known))})"
                          + (f"; {hint}" if hint else ""))
    module_name, _, attr = where.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is a configuration problem, said in one line
        raise ConfigError(f"target provider {provider!r} ({where}) cannot be loaded: {type(exc).__name__}: {exc}") \
            from None
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        raise ConfigError(f"target provider {provider!r} ({where}) is not a dirt Target class")
    return cls


def make_target(name: str, config: TargetConfig, root: Path) -> Target:
    return provider_class(config.provider)(name, config, root)

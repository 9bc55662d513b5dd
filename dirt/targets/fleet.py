"""The ``fleet`` target: several clusters behind one entry point, drilled as one service.

The story dirt comes from: a team lost whole clusters and users barely noticed, because every
service ran on several clusters behind one entry point.  A fleet drill asks the question that
story asks: lose one cluster; do users notice (availability through the entry), do we get paged
(the fleet's alerts), and does the rebuilt cluster take traffic again?

Two ways to have one:

* ``settings.members`` names other targets of dirt.yaml (any provider: sandbox, kind,
  kubeconfig); ``settings.entry`` says where users come in and where the entry point's metrics
  are; the fleet's own ``prometheus`` and ``alertmanager`` (a global load balancer's alerts) are
  the target's.
* ``settings.sandbox`` has dirt make the fleet on this machine (:mod:`dirt.sandbox.fleet`): N
  sandboxes sharing one Velero bucket, a real HAProxy as the entry point, and a fleet Prometheus
  (federating each member's) and Alertmanager.

Either way each member's alerts are seen too, labelled with the member's name.

A scenario's faults, backups, checks and steps take ``member: NAME``; checks and steps without
it run on every member (``dirt.drivers.members``).  Guardrails judge each step by its member's own
``allow`` list and capabilities, and the drill lock is every member's, taken in one order.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from dirt.clients.monitoring import ActiveAlert, AlertSource, Endpoint, url_problem
from dirt.config import SettingsCheck, TargetConfig, load_config
from dirt.core.durations import Duration, Interval
from dirt.core.errors import ConfigError, TargetError
from dirt.targets.base import Settings, Target, make_target

if TYPE_CHECKING:  # pragma: no cover
    from dirt.sandbox.fleet import Fleet

MEMBER_NAME = r"[a-z0-9][-a-z0-9]{0,20}"


class EntrySettings(Settings):
    url: str = Field(description="Where users come in (the global load balancer's URL).")
    metrics: str | None = Field(None, description="The entry point's Prometheus metrics URL, if it has one.")

    @model_validator(mode="after")
    def _urls(self) -> EntrySettings:
        for key in ("url", "metrics"):
            value = getattr(self, key)
            problem = url_problem(value) if value else None
            if problem:
                raise ValueError(f"entry.{key}: {problem}")
        return self


class AppSettings(Settings):
    """The service the entry point sends users to, as each member serves it."""

    port: int = Field(18181, ge=1024, le=65000, description="The first member's port; member i serves on port + i "
                                                           "(each member its own address, as real clusters have).")
    health: str = Field("/healthz", pattern=r"^/", description="The path the entry point's health check asks.")


class FleetEntrySettings(Settings):
    port: int = Field(18180, ge=1024, le=65535, description="Where users come in: http://127.0.0.1:PORT/.")
    health_check: bool = Field(True, description="Health-check the members (off: a fleet that cannot notice a "
                                                 "lost member, to prove a drill can fail).")
    check_interval: Duration = Field(0.2, gt=0, le=60, description="Time between two checks of each member.")
    fall: int = Field(2, ge=1, le=100, description="Failed checks before a member is taken out of rotation.")
    rise: int = Field(2, ge=1, le=100, description="Passed checks before a member is put back.")
    redispatch: bool = Field(True, description="Retry a request that failed on one member on another.")


class FleetSandboxSettings(Settings):
    name: str = Field("fleet", pattern=r"^[a-z0-9][-a-z0-9]{0,20}$",
                      description="The fleet's name; its members' sandboxes are NAME-MEMBER.")
    members: list[str] = Field(default_factory=lambda: ["east", "west"], min_length=2, max_length=5,
                               description="Member names, in order: each a sandbox with its own control plane, real "
                                           "node and Velero.")
    nodes: int = Field(1, ge=1, le=50, description="KWOK nodes in each member.")
    velero: bool = Field(True, description="A Velero server in each member, all sharing one bucket.")
    rules: list[str] = Field(default_factory=list, description="Each member's extra alert rule files or folders.")
    fleet_rules: list[str] = Field(default_factory=list, description="The fleet Prometheus's extra rules (the "
                                                                     "built-in fleet rules are always loaded).")
    app: AppSettings = Field(default_factory=AppSettings)
    entry: FleetEntrySettings = Field(default_factory=FleetEntrySettings)
    scrape_interval: Interval = Field(1.0, description="Every Prometheus's scrape interval.")
    evaluation_interval: Interval = Field(1.0, description="Every Prometheus's rule evaluation interval.")
    auto_up: bool = Field(True, description="Bring the fleet up before a drill if it is not.")

    @model_validator(mode="after")
    def _names(self) -> FleetSandboxSettings:
        bad = [m for m in self.members if not re.fullmatch(MEMBER_NAME, m)]
        if bad:
            raise ValueError(f"member names are short lowercase words (a-z, 0-9, -): {', '.join(map(repr, bad))}")
        if len(set(self.members)) != len(self.members):
            raise ValueError("member names must differ")
        if self.app.port <= self.entry.port < self.app.port + len(self.members):
            raise ValueError(f"entry.port {self.entry.port} is one of the members' ports "
                             f"({self.app.port}-{self.app.port + len(self.members) - 1})")
        return self


class FleetSettings(Settings):
    members: list[str] | None = Field(None, min_length=2, description="Other targets of dirt.yaml, one per member "
                                                                     "cluster, in the order locks are taken and "
                                                                     "fleet-wide steps run.")
    entry: EntrySettings | None = Field(None, description="Where users come in, and the entry point's metrics "
                                                          "(with members).")
    sandbox: FleetSandboxSettings | None = Field(None, description="A fleet dirt makes on this machine.")

    @model_validator(mode="after")
    def _one_kind(self) -> FleetSettings:
        if (self.members is None) == (self.sandbox is None):
            raise ValueError("give exactly one of 'members' (targets of dirt.yaml) or 'sandbox' (a fleet dirt makes "
                             "on this machine)")
        if self.members is not None and self.entry is None:
            raise ValueError("a fleet of targets needs 'entry: {url: ...}': where its users come in")
        if self.members is not None and len(set(self.members)) != len(self.members):
            raise ValueError("a target is a member of a fleet once")
        return self


class FleetTarget(Target):
    provider = "fleet"
    Settings = FleetSettings
    capabilities = frozenset()  # the fleet itself: every cluster-level operation is a member's

    def __init__(self, name: str, config: TargetConfig, root: Path) -> None:
        super().__init__(name, config, root)
        self._members: dict[str, Target] = {}
        self._fleet: Fleet | None = None

    @classmethod
    def check_settings(cls, settings: FleetSettings, check: SettingsCheck) -> None:
        """The rule files a sandbox fleet names exist."""
        if settings.sandbox is not None:
            for key in ("rules", "fleet_rules"):
                for i, rule in enumerate(getattr(settings.sandbox, key)):
                    check.file_or_folder(("sandbox", key, i), rule)

    # -- the fleet made here ----------------------------------------------------------------
    @property
    def fleet(self) -> Fleet:
        """The fleet dirt makes on this machine (``settings.sandbox``)."""
        s = self.settings.sandbox
        if s is None:
            raise TargetError(f"fleet {self.name!r} is made of other targets, not by dirt on this machine")
        if self._fleet is None:
            from dirt.sandbox.entry import EntrySettings as HAProxySettings
            from dirt.sandbox.fleet import Fleet

            entry = HAProxySettings(health_check=s.entry.health_check, check_path=s.app.health,
                                    check_interval=s.entry.check_interval, fall=s.entry.fall, rise=s.entry.rise,
                                    redispatch=s.entry.redispatch)
            self._fleet = Fleet(s.name, s.members, nodes=s.nodes, velero=s.velero,
                                rules=[self.root / r for r in s.rules],
                                fleet_rules=[self.root / r for r in s.fleet_rules], app_port=s.app.port,
                                app_health=s.app.health, entry_port=s.entry.port, entry=entry,
                                scrape_interval=s.scrape_interval, evaluation_interval=s.evaluation_interval)
        return self._fleet

    # -- members ----------------------------------------------------------------------------
    def members(self) -> list[str]:
        s = self.settings
        return list(s.sandbox.members if s.sandbox is not None else s.members or [])

    def member_target(self, name: str) -> Target:
        if name not in self.members():
            raise TargetError(f"fleet {self.name!r} has no member {name!r} (its members: {', '.join(self.members())})")
        if name not in self._members:
            self._members[name] = self._make_member(name)
        return self._members[name]

    def _make_member(self, name: str) -> Target:
        if self.settings.sandbox is not None:
            from dirt.targets.sandbox import SandboxTarget

            return SandboxTarget.of(name, self.fleet.member(name), self.root,
                                    variables=self.fleet.member_variables(name))
        loaded = load_config(start=self.root)
        member_name, config = loaded.target(name)
        if config.provider == self.provider:
            raise ConfigError(f"fleet {self.name!r}: member {name!r} is a fleet itself; a member is one cluster")
        return make_target(member_name, config, loaded.root)

    # -- identity and guardrails --------------------------------------------------------------
    @property
    def is_sandbox(self) -> bool:
        """Disposable only when every member is: one real cluster among them makes the fleet real."""
        return self.settings.sandbox is not None or all(self.member_target(m).is_sandbox for m in self.members())

    def cluster_name(self) -> str:
        return self.settings.sandbox.name if self.settings.sandbox is not None else self.name

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "provider": self.provider, "entry": self.entry,
                "members": {m: self.member_target(m).describe() for m in self.members()}}

    def drill_lock_path(self) -> Path:
        if self.settings.sandbox is not None:
            return self.fleet.root / "drill.lock"
        return super().drill_lock_path()

    def secret_values(self) -> list[str]:
        values = super().secret_values()
        for member in self.members():
            try:
                values += self.member_target(member).secret_values()
            except Exception:  # noqa: BLE001 - a member that cannot be made yet has no credential to mask yet
                continue
        return values

    # -- lifecycle ------------------------------------------------------------------------------
    def prepare(self) -> None:
        """A sandbox fleet comes up (or loads this project's rules); otherwise every member is made ready,
        in order (a sandbox member comes up, a kind member is created)."""
        s = self.settings.sandbox
        if s is not None:
            fleet = self.fleet
            if not fleet.healthy():
                if not s.auto_up:
                    raise TargetError(f"fleet {fleet.name!r} is not up: run `dirt sandbox up --target {self.name}`")
                fleet.up(log=_say)
            else:
                fleet.sync_rules(log=_say)
                fleet.sync_entry(log=_say)
        else:
            for member in self.members():
                self.member_target(member).prepare()
        for target in self._members.values():
            target.reset_kube()

    def close(self) -> None:
        for target in self._members.values():
            target.close()

    # -- the entry point and the fleet's monitoring ---------------------------------------------
    @property
    def entry(self) -> dict[str, Any]:
        """Where users come in, and the entry point's metrics."""
        if self.settings.sandbox is not None:
            return self.fleet.entry_urls()
        assert self.settings.entry is not None  # the settings' validator
        return {"url": self.settings.entry.url, "metrics": self.settings.entry.metrics}

    def variables(self) -> dict[str, Any]:
        values = super().variables()
        entry = self.entry
        values.update(entry_url=entry["url"], entry_metrics_url=entry.get("metrics") or "",
                      members=",".join(self.members()))
        return values

    @property
    def prometheus(self) -> Endpoint | None:
        if self.config.prometheus is None and self.settings.sandbox is not None:
            return Endpoint(url=self.fleet.prometheus_url, timeout=5.0)
        return self.config.prometheus

    @property
    def alertmanager(self) -> Endpoint | None:
        if self.config.alertmanager is None and self.settings.sandbox is not None:
            return Endpoint(url=self.fleet.alertmanager_url, timeout=5.0)
        return self.config.alertmanager

    def alert_sources(self) -> list[AlertSource]:
        """The fleet's own Prometheus and Alertmanager, then every member's, each member alert labelled
        ``member: NAME``: ``expect.alerts`` and ``silent`` can then say which cluster must (or must not)
        page, e.g. ``{name: KubeAPIDown, labels: {member: east}}`` for a survivor that must stay quiet."""
        sources = super().alert_sources()
        for member in self.members():
            sources += [MemberAlerts(source, member) for source in self.member_target(member).alert_sources()]
        return sources


class MemberAlerts(AlertSource):
    """A member's alert source, its alerts labelled with the member's name."""

    def __init__(self, source: AlertSource, member: str) -> None:
        self.inner = source
        self.member = member
        self.source = source.source

    def active(self) -> list[ActiveAlert]:
        return [replace(alert, labels={**alert.labels, "member": self.member}) for alert in self.inner.active()]


def _say(message: str) -> None:
    print(f"dirt fleet: {message}", file=sys.stderr, flush=True)

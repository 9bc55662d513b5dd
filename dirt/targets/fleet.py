"""The ``fleet`` target: several clusters behind one entry point, drilled as one service.

The story dirt comes from: a team lost whole clusters and users barely noticed, because every
service ran on several clusters behind one entry point.  A fleet drill asks the question that
story asks: lose one cluster; do users notice (availability through the entry), do we get paged
(the fleet's alerts), and does the rebuilt cluster take traffic again?

``settings.members`` names other targets of dirt.yaml (any provider: sandbox, kind, kubeconfig);
``settings.entry`` says where users come in and where the entry point's metrics are; the fleet's
own ``prometheus`` and ``alertmanager`` (a global load balancer's alerts) are the target's, and
each member's alerts are seen too, labelled with the member's name.

A scenario's faults, backups, checks and steps take ``member: NAME``; checks and steps without
it run on every member (``dirt.drivers.members``).  Guardrails judge each step by its member's own
``allow`` list and capabilities, and the drill lock is every member's, taken in one order.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from dirt.clients.monitoring import ActiveAlert, AlertSource, url_problem
from dirt.config import TargetConfig, load_config
from dirt.core.errors import ConfigError, TargetError
from dirt.targets.base import Settings, Target, make_target


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


class FleetSettings(Settings):
    members: list[str] = Field(min_length=2, description="Other targets of dirt.yaml, one per member cluster, in "
                                                        "the order locks are taken and fleet-wide steps run.")
    entry: EntrySettings = Field(description="Where users come in, and the entry point's metrics.")

    @model_validator(mode="after")
    def _each_once(self) -> FleetSettings:
        if len(set(self.members)) != len(self.members):
            raise ValueError("a target is a member of a fleet once")
        return self


class FleetTarget(Target):
    provider = "fleet"
    Settings = FleetSettings
    capabilities = frozenset()  # the fleet itself: every cluster-level operation is a member's

    def __init__(self, name: str, config: TargetConfig, root: Path) -> None:
        super().__init__(name, config, root)
        self._members: dict[str, Target] = {}

    # -- members ----------------------------------------------------------------------------
    def members(self) -> list[str]:
        return list(self.settings.members)

    def member_target(self, name: str) -> Target:
        if name not in self.members():
            raise TargetError(f"fleet {self.name!r} has no member {name!r} (its members: {', '.join(self.members())})")
        if name not in self._members:
            loaded = load_config(start=self.root)
            member_name, config = loaded.target(name)
            if config.provider == self.provider:
                raise ConfigError(f"fleet {self.name!r}: member {name!r} is a fleet itself; a member is one cluster")
            self._members[name] = make_target(member_name, config, loaded.root)
        return self._members[name]

    # -- identity and guardrails --------------------------------------------------------------
    @property
    def is_sandbox(self) -> bool:
        """Disposable only when every member is: one real cluster among them makes the fleet real."""
        return all(self.member_target(m).is_sandbox for m in self.members())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "provider": self.provider, "entry": self.entry,
                "members": {m: self.member_target(m).describe() for m in self.members()}}

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
        """Every member made ready, in order (a sandbox member comes up, a kind member is created)."""
        for member in self.members():
            self.member_target(member).prepare()

    def close(self) -> None:
        for target in self._members.values():
            target.close()

    # -- the entry point and the fleet's monitoring ---------------------------------------------
    @property
    def entry(self) -> dict[str, Any]:
        """Where users come in, and the entry point's metrics."""
        return {"url": self.settings.entry.url, "metrics": self.settings.entry.metrics}

    def variables(self) -> dict[str, Any]:
        values = super().variables()
        values.update(entry_url=self.settings.entry.url, entry_metrics_url=self.settings.entry.metrics or "",
                      members=",".join(self.members()))
        return values

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

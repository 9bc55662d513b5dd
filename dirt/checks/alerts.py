"""Checks on alerts: ``alert.firing`` and ``alert.absent`` (``alert: NAME``, optional
``labels`` and ``source``), for steady-state and verify sections.  The detection
loop that measures MTTD is the engine's (``dirt.engine.detection``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dirt.clients.monitoring import ActiveAlert, AlertSource
from dirt.core.errors import DirtError
from dirt.drivers import Check, CheckResult, Context, Params


class AlertParams(Params):
    # Not ``name``: that key is every step's own label, so the loader never passes it on.
    alert: str = Field(description="Alert name (the rule's `alert:`).")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels that must match exactly.")
    source: Literal["prometheus", "alertmanager"] = Field("prometheus", description="Where to look.")


class _AlertCheck(Check):
    Params = AlertParams

    each_member = False  # on a fleet without member: the fleet's own Prometheus or Alertmanager

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self._source: AlertSource | None = None  # one HTTP session for all the attempts

    def _firing(self) -> list[ActiveAlert]:
        if self._source is None:
            self._source = next((s for s in self.ctx.target.alert_sources() if s.source == self.params.source),
                                None)
            if self._source is None:
                raise DirtError(f"target {self.ctx.target.name!r} has no {self.params.source} configured")
        return [a for a in self._source.active() if a.firing and a.matches(self.params.alert, self.params.labels)]

    def _detail(self, hits: list[ActiveAlert]) -> str:
        return f"{self.params.alert} {'firing' if hits else 'not firing'} in {self.params.source}"


class AlertFiring(_AlertCheck):
    """Passes while the named alert is firing."""

    name = "alert.firing"

    def probe(self) -> CheckResult:
        hits = self._firing()
        return CheckResult(bool(hits), self._detail(hits))


class AlertAbsent(_AlertCheck):
    """Passes while the named alert is not firing."""

    name = "alert.absent"

    def probe(self) -> CheckResult:
        hits = self._firing()
        return CheckResult(not hits, self._detail(hits))


DRIVERS = [AlertFiring, AlertAbsent]

"""A Chaos Toolkit probe as a check (``check: ctk``): the probe's value against its CTK ``tolerance``.

The verdict is Chaos Toolkit's own (``chaoslib.hypothesis.within_tolerance``), so
a probe moved from an experiment's steady-state hypothesis means the same here.
Without a tolerance the check passes when the probe does not fail.
"""

from __future__ import annotations

from pydantic import field_validator

from dirt.drivers import Check, CheckResult
from dirt.drivers.ctk import ActivityRunner, CtkActivity, CtkParams, recorded, shown


class CtkCheckParams(CtkParams):
    @field_validator("activity")
    @classmethod
    def _a_probe(cls, activity: CtkActivity) -> CtkActivity:
        if activity.type != "probe":
            raise ValueError("a ctk check runs a CTK probe (type: probe); an action belongs in "
                             "'fault: ctk' or 'step: ctk'")
        return activity


class CtkCheck(Check):
    """Run a Chaos Toolkit probe; pass when its value is within its tolerance (or it does not fail)."""

    name = "ctk"
    Params = CtkCheckParams

    def plan(self) -> list[str]:
        tolerance = self.params.activity.tolerance
        return [self.params.activity.describe(),
                f"tolerance: {shown(tolerance, 80)}" if self.params.activity.has_tolerance
                else "no tolerance: passes unless the probe fails"]

    def probe(self) -> CheckResult:
        activity = self.params.activity
        runner = ActivityRunner(self.ctx, self.params)
        value = runner.run(activity)
        data = {"output": recorded(value)}
        if not activity.has_tolerance:
            return CheckResult(True, f"probe {activity.name!r} ran: {shown(value)}", data)
        if runner.within_tolerance(activity, value):
            return CheckResult(True, f"probe {activity.name!r} within tolerance: {shown(value)}", data)
        return CheckResult(False, f"probe {activity.name!r} returned {shown(value)}, not within tolerance "
                                  f"{shown(activity.tolerance, 80)}", data)


DRIVERS = [CtkCheck]

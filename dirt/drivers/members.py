"""A check or step without ``member:`` on a fleet target: the same driver on every member.

On a fleet, "the storefront is Ready" means Ready on every member cluster, and "deploy the
storefront" means deploy it to each one from the same manifests.  The engine builds one driver per
member (each with that member's ``Context``) and wraps them here, so a fleet-wide step is still one
step in the journal and the report, with each member's result in its data.  Members are taken in
the fleet's fixed order; a step stops at the first member that fails (the others are not touched
after a failure, as a rollout would stop).
"""

from __future__ import annotations

from typing import Any

from dirt.drivers.base import Check, RecoveryStep
from dirt.drivers.context import probe_once
from dirt.drivers.results import CheckResult, StepOutcome
from dirt.journal.faults import FaultLife


class EachMemberCheck(Check):
    """Passes when the check passes on every member."""

    def __init__(self, drivers: dict[str, Check]) -> None:
        first = next(iter(drivers.values()))
        super().__init__(first.params, first.ctx)
        self.drivers = drivers

    def probe(self) -> CheckResult:
        results = {member: probe_once(driver.probe) for member, driver in self.drivers.items()}
        failing = [f"{member}: {result.detail}" for member, result in results.items() if not result.ok]
        data: dict[str, Any] = {"members": {m: {"ok": r.ok, "detail": r.detail, **({"data": r.data} if r.data else {})}
                                            for m, r in results.items()}}
        if failing:
            return CheckResult(False, f"{len(failing)} of {len(results)} members: " + "; ".join(failing), data)
        details = {r.detail for r in results.values()}
        said = details.pop() if len(details) == 1 else "; ".join(f"{m}: {r.detail}" for m, r in results.items())
        return CheckResult(True, f"every member ({', '.join(results)}): {said}", data)


class EachMemberStep(RecoveryStep):
    """Runs the step on each member in turn."""

    def __init__(self, drivers: dict[str, RecoveryStep]) -> None:
        first = next(iter(drivers.values()))
        super().__init__(first.params, first.ctx)
        self.drivers = drivers

    def plan(self) -> list[str]:
        return [f"on {member}: {line}" for member, driver in self.drivers.items() for line in driver.plan()]

    def run(self) -> StepOutcome:
        outcomes: dict[str, StepOutcome] = {}
        for member, driver in self.drivers.items():
            outcomes[member] = driver.run() or StepOutcome()
        return StepOutcome("; ".join(f"{m}: {o.detail}" if o.detail else m for m, o in outcomes.items()),
                           {"members": {m: dict(o.data) for m, o in outcomes.items()}})

    def resolves(self, fault: FaultLife) -> str | None:
        driver = self.drivers.get(fault.member or "")
        return None if driver is None else driver.resolves(fault)

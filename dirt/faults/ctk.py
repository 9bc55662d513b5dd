"""A Chaos Toolkit action as a fault (``fault: ctk``), e.g. ``chaosk8s.pod.actions.terminate_pods``.

CTK says nothing of an action's effect, so the step says what dirt cannot guess:
its guardrail ``family`` (default: the most destructive, so that off the sandbox
the target must allow it) and, if it can be undone, a ``revert`` action that
rollback and ``fault.revert`` run.  Without one, the action's effect is taken to
be over once it ran: the drill's alerts and verify checks prove the rest.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from dirt.core.errors import StepFailed
from dirt.core.families import FAMILIES
from dirt.documents.problems import did_you_mean
from dirt.drivers import CheckResult, Fault, Params
from dirt.drivers.ctk import ActivityRunner, CtkActivity, CtkParams, recorded, shown


class CtkFaultParams(CtkParams):
    family: str = Field("cluster", description="Guardrail family of what the action breaks (default: cluster, "
                                               "which off the sandbox needs the target's allowance).")
    revert: CtkActivity | None = Field(None, description="A CTK action that undoes it (run by rollback and "
                                                         "fault.revert).")

    @field_validator("family")
    @classmethod
    def _known_family(cls, family: str) -> str:
        if family not in FAMILIES:
            hint = did_you_mean(family, list(FAMILIES)) or f"one of {', '.join(FAMILIES)}"
            raise ValueError(f"unknown fault family {family!r}; {hint}")
        return family

    @field_validator("activity")
    @classmethod
    def _an_action(cls, activity: CtkActivity) -> CtkActivity:
        if activity.type != "action":
            raise ValueError("a ctk fault runs a CTK action (type: action); a probe belongs in a 'check: ctk'")
        return activity


class CtkFault(Fault):
    """Run a Chaos Toolkit action as a fault (its optional 'revert' action undoes it)."""

    name = "ctk"
    Params = CtkFaultParams

    @classmethod
    def family_for(cls, params: Params | None) -> str:
        return params.family if isinstance(params, CtkFaultParams) else cls.family

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.params.revert is not None

    def plan(self) -> list[str]:
        lines = [self.params.activity.describe()]
        revert = self.params.revert
        lines.append(f"undo with: {revert.describe()}" if revert is not None
                     else "no revert: its effect is over once it ran (verify checks prove the recovery)")
        return lines

    def inject(self) -> None:
        activity = self.params.activity
        output = ActivityRunner(self.ctx, self.params).run(activity)
        self.state = {"activity": activity.name, "output": recorded(output)}

    def verify_injected(self) -> CheckResult:
        return CheckResult(True, f"action {self.params.activity.name!r} ran: {shown(self.state.get('output'))}")

    def in_effect(self) -> CheckResult:
        """With a revert: until it runs.  Without: CTK cannot tell, so the action's effect is taken
        as over (a passed drill's verify checks proved it)."""
        if self.params.revert is not None:
            return CheckResult(True, f"until its revert action {self.params.revert.name!r} runs")
        return CheckResult(False, f"action {self.params.activity.name!r} has no revert: taken as over")

    def revert(self) -> str:
        revert = self.params.revert
        if revert is None:
            raise StepFailed(f"ctk fault {self.params.activity.name!r} has no 'revert' activity: it cannot be "
                             "reverted")
        output: Any = ActivityRunner(self.ctx, self.params).run(revert)
        self.state["revert_output"] = recorded(output)
        return f"ran Chaos Toolkit action {revert.name!r}: {shown(output)}"


DRIVERS = [CtkFault]

"""A Chaos Toolkit activity as a recovery, setup or cleanup step (``step: ctk``).

It fails when the activity fails (a python function that raised, an http call
that could not connect, a timeout); the value is recorded in the journal.
"""

from __future__ import annotations

import time

from dirt.drivers import RecoveryStep, StepOutcome
from dirt.drivers.ctk import ActivityRunner, CtkParams, recorded, shown


class CtkStep(RecoveryStep):
    """Run a Chaos Toolkit activity as a step; it fails when the activity fails."""

    name = "ctk"
    Params = CtkParams

    def plan(self) -> list[str]:
        return [self.params.activity.describe()]

    def run(self) -> StepOutcome:
        activity = self.params.activity
        start = time.monotonic()
        value = ActivityRunner(self.ctx, self.params).run(activity)
        return StepOutcome(f"{activity.type} {activity.name!r} ran in {time.monotonic() - start:.1f}s: "
                           f"{shown(value)}", {"output": recorded(value)})


DRIVERS = [CtkStep]

"""``backup.restore``: restore a backup taken (or found) in preflight, by its name.

The backup drivers themselves (``etcd_snapshot``, ``resources``, ``velero``) live
in ``dirt.recovery.etcd``, ``dirt.recovery.resources`` and ``dirt.recovery.velero``;
this step only finds the right one and asks it to restore.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dirt.core.errors import StepFailed
from dirt.drivers import Backup, Params, RecoveryStep, StepOutcome
from dirt.journal.events import BackupRestored
from dirt.journal.faults import FaultLife


class RestoreParams(Params):
    backup: str = Field(description="Name of a backup declared under 'backups:'.")


class BackupRestore(RecoveryStep):
    """Restore a declared backup (etcd snapshot, exported resources, Velero)."""

    name = "backup.restore"
    Params = RestoreParams
    each_member = False  # on a fleet: restored on the member it was taken on


    def plan(self) -> list[str]:
        return [f"restore backup {self.params.backup!r}"]

    def run(self) -> StepOutcome:
        record = self.ctx.backups.get(self.params.backup)
        driver: Backup | None = self.ctx.backup_drivers.get(self.params.backup)
        if record is None or driver is None:
            raise StepFailed(f"backup {self.params.backup!r} was not taken (did preflight fail?)")
        taken_on, here = getattr(driver.ctx, "member", None), getattr(self.ctx, "member", None)
        if here is not None and here != taken_on:
            raise StepFailed(f"backup {self.params.backup!r} was taken on member {taken_on}, and restores there: "
                             f"write 'member: {taken_on}' (or leave 'member:' out) on this step")
        outcome = driver.restore(record)
        self.ctx.emit(BackupRestored(name=record.name, type=record.type, location=record.location,
                                     detail=outcome.detail, data=dict(outcome.data)))
        return outcome

    def resolves(self, fault: FaultLife) -> str | None:
        """The backup's driver knows which faults its restore undoes."""
        driver = self.ctx.backup_drivers.get(self.params.backup)
        if driver is None:
            return None
        return driver.resolves(fault, self.ctx.backups.get(self.params.backup))

    @classmethod
    def check_spec(cls, spec: Any, scenario: Any) -> list[tuple[str, str]]:
        if spec.params.backup not in scenario.backup_names:
            from dirt.documents.problems import did_you_mean

            names = scenario.backup_names
            return [(f"no backup named {spec.params.backup!r} under 'backups:'",
                     did_you_mean(spec.params.backup, names) or
                     (f"declared: {', '.join(names)}" if names else "declare one under 'backups:'"))]
        return []


DRIVERS = [BackupRestore]

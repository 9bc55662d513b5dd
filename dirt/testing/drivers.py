"""Fake drivers (``fake.*``) for the ``FakeTarget``: break, check, repair, back up.

Each behaves like its real counterpart against the fake world, with knobs to
make it fail, hang or flap, so engine behaviour (deadlines, rollback, aborts,
signals) can be tested deterministically.  They only work on the fake target,
and load only with ``DIRT_TESTING=1`` (``dirt.core.plugins``).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from dirt.core.durations import Duration
from dirt.core.errors import StepFailed, TargetError
from dirt.drivers import Backup, BackupRecord, Check, CheckResult, Fault, Params, RecoveryStep, StepOutcome
from dirt.journal.faults import FaultLife


def _fake(ctx: Any) -> Any:
    from dirt.testing.target import FakeTarget

    if not isinstance(ctx.target, FakeTarget):
        raise TargetError(f"fake drivers only work on a fake target, not {ctx.target.provider!r}")
    return ctx.target


class FakeFaultParams(Params):
    cause: str = Field("fake", description="Name of the thing broken (repairs refer to it).")
    fires: list[str] = Field(default_factory=list, description="Alerts the break makes fire.")
    labels: dict[str, str] = Field(default_factory=dict)
    takes: Duration = Field(0.0, description="How long injection takes.")
    fail: bool = Field(False, description="Raise instead of injecting.")
    takes_effect: bool = Field(True, description="False: verify_injected never passes.")
    fail_revert: bool = Field(False, description="Raise instead of reverting.")


class FakeFault(Fault):
    """Break something in the fake target (and make alerts fire)."""

    name = "fake.fault"
    family = "none"
    reversible = True
    Params = FakeFaultParams

    def plan(self) -> list[str]:
        return [f"break fake {self.params.cause!r}"
                + (f", firing {', '.join(self.params.fires)}" if self.params.fires else "")]

    def inject(self) -> None:
        target = _fake(self.ctx)
        if self.params.takes:
            self.ctx.sleep(self.params.takes)
        if self.params.fail:
            raise StepFailed(f"fake fault {self.params.cause!r} configured to fail")
        target.breaks(self.params.cause, self.params.fires, self.params.labels)
        self.state = {"cause": self.params.cause}

    def verify_injected(self) -> CheckResult:
        broken = self.params.takes_effect and self._broken()
        return CheckResult(broken, "broken" if broken else "not broken")

    def in_effect(self) -> CheckResult:
        broken = self._broken()
        return CheckResult(broken, f"{self.params.cause} {'broken' if broken else 'repaired'}")

    def _broken(self) -> bool:
        target = _fake(self.ctx)
        with target.lock:
            return self.params.cause in target.broken

    def revert(self) -> str:
        target = _fake(self.ctx)
        if self.params.fail_revert:
            raise StepFailed(f"fake revert of {self.params.cause!r} configured to fail")
        target.calls.append(f"revert {self.params.cause}")
        target.repairs(self.params.cause)
        return f"repaired {self.params.cause}"


class FakeOutage(FakeFault):
    """A destructive fake fault (family 'cluster'), for guardrail tests."""

    name = "fake.outage"
    family = "cluster"


class FakeCheckParams(Params):
    mode: str = Field("healthy", pattern="^(healthy|pass|fail|flaky)$",
                      description="healthy: passes while nothing is broken; pass/fail: always; flaky: alternates.")
    cause: str | None = Field(None, description="healthy mode: only this cause matters.")
    delay: Duration = Field(0.0, description="Each probe takes this long.")


class FakeCheck(Check):
    """Probe the fake target's health."""

    name = "fake.check"
    Params = FakeCheckParams

    def __init__(self, params: Params, ctx: Any) -> None:
        super().__init__(params, ctx)
        self._calls = 0

    def probe(self) -> CheckResult:
        target = _fake(self.ctx)
        self._calls += 1
        if self.params.delay:
            self.ctx.sleep(self.params.delay)
        mode = self.params.mode
        if mode == "pass":
            return CheckResult(True, "configured to pass")
        if mode == "fail":
            return CheckResult(False, "configured to fail")
        if mode == "flaky":
            return CheckResult(self._calls % 2 == 0, f"flaky probe #{self._calls}")
        with target.lock:
            broken = [c for c in target.broken if self.params.cause in (None, c)]
        ok = not broken and target.exists
        return CheckResult(ok, "healthy" if ok else f"broken: {', '.join(broken) or 'cluster gone'}",
                           {"broken": broken})


class FakeStepParams(Params):
    repairs: str | None = Field("*", description="Cause to repair ('*': everything; null: nothing).")
    claims: bool = Field(True, description="Say which faults it undid (RecoveryStep.resolves).")
    takes: Duration = Field(0.0, description="How long the step takes.")
    fail: bool = False
    message: str = "done"


class FakeStep(RecoveryStep):
    """Repair the fake target (after a delay), or fail."""

    name = "fake.step"
    Params = FakeStepParams

    def run(self) -> StepOutcome:
        target = _fake(self.ctx)
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < self.params.takes:
            self.ctx.waiting(f"fake step ({self.params.message})", elapsed, self.params.takes)
            self.ctx.sleep(min(0.05, self.params.takes - elapsed))
        if self.params.fail:
            raise StepFailed(f"fake step configured to fail: {self.params.message}")
        if self.params.repairs is not None:
            target.repairs(None if self.params.repairs == "*" else self.params.repairs)
        target.calls.append(f"step {self.params.message}")
        return StepOutcome(self.params.message)

    def resolves(self, fault: FaultLife) -> str | None:
        if not self.params.claims or self.params.repairs is None or not fault.driver.startswith("fake."):
            return None
        cause = fault.params.get("cause", "fake")
        return f"repaired {cause}" if self.params.repairs in ("*", cause) else None


class FakeBackupParams(Params):
    age: Duration = Field(0.0, description="Pretend the backup was taken this long ago.")
    fail: bool = False


class FakeBackup(Backup):
    """Snapshot the fake target's object store."""

    name = "fake.backup"
    Params = FakeBackupParams
    requires = frozenset({"etcd_snapshot"})

    def take(self, name: str) -> BackupRecord:
        target = _fake(self.ctx)
        if self.params.fail:
            raise StepFailed("fake backup configured to fail")
        path = self.ctx.run_dir / "backups" / f"{name}.json"
        info = target.etcd_snapshot_save(path)
        return BackupRecord(name, "fake.backup", str(path), time.time() - self.params.age,
                            objects=info.total_keys)

    def restore(self, record: BackupRecord) -> StepOutcome:
        target = _fake(self.ctx)
        from pathlib import Path

        target.etcd_snapshot_restore(Path(record.location))
        return StepOutcome(f"restored {len(target.objects)} objects")

    def resolves(self, fault: FaultLife, record: BackupRecord | None) -> str | None:
        return "the store restored" if fault.driver in ("etcd.wipe", "cluster.delete") else None


DRIVERS = [FakeFault, FakeOutage, FakeCheck, FakeStep, FakeBackup]

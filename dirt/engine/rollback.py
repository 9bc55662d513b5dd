"""The one rollback path: revert what is still in effect, and nothing else.

Used by the runner (on failure, abort or a signal, and for faults a passed drill
left in effect), by ``dirt rollback RUN_DIR`` (from the journal alone, after a
crash), and by the ``fault.revert`` recovery step.  Faults are keyed by their
index in ``inject``; where each stands is asked of the ``FaultLedger``
(``dirt.journal.faults``), never of raw events.

For each fault still in effect, newest first:

1. a fault that cannot be reverted, or that the scenario keeps out of rollback
   (``rollback: false``), is skipped and stays in effect;
2. the fault itself is asked whether it still is (``Fault.in_effect``, once):
   if a recovery already undid it, it is recorded as recovered and left alone —
   so a safety snapshot is never restored over a cluster that came back;
3. otherwise it is reverted; a revert that restores a safety snapshot says how
   old the snapshot is (every write since is lost).

Faults a recovery step undid are never touched, except on explicit request
(``restore_snapshots``: ``dirt rollback --restore-safety-snapshot``), which puts
back the pre-drill snapshot of the destructive faults.  A failed revert is
journaled and named in the result; the rest still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from dirt.drivers import Fault
from dirt.drivers.context import one_line, probe_once
from dirt.journal.events import (
    ErrorRaised,
    Event,
    FaultRecovered,
    FaultReverted,
    RollbackAction,
    RollbackEnded,
    RollbackStarted,
)
from dirt.journal.faults import FaultLedger, FaultLife, FaultState

DriverFor = Callable[[FaultLife], Fault]
Action = Literal["revert", "skip", "recovered", "step"]


@dataclass
class RollbackResult:
    reverted: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # found undone already: left alone
    skipped: list[str] = field(default_factory=list)  # cannot be, or may not be, reverted: still in effect
    failed: list[str] = field(default_factory=list)  # "name: why"

    @property
    def nothing_to_do(self) -> bool:
        return not (self.reverted or self.recovered or self.skipped or self.failed)

    def lines(self) -> list[str]:
        return ([f"reverted {x}" for x in self.reverted] + [f"already recovered: {x}" for x in self.recovered]
                + [f"left in effect: {x}" for x in self.skipped] + [f"FAILED to revert {x}" for x in self.failed])


class Rollback:
    def __init__(self, ledger: FaultLedger, emit: Callable[[Event], Any], driver_for: DriverFor, *,
                 by: str = "rollback", restore_snapshots: bool = False,
                 say: Callable[[str], None] | None = None, by_hand: str = "") -> None:
        self.ledger = ledger
        #: what a person does for a fault no revert can undo (``by_hand``), said where it is left in effect
        self.by_hand = by_hand
        self.emit = emit
        self.driver_for = driver_for
        self.by = by
        self.restore_snapshots = restore_snapshots
        self.say = say or (lambda text: None)

    def candidates(self, *, leftovers_only: bool = False) -> list[FaultLife]:
        """The faults this rollback can act on, in injection order.

        ``leftovers_only`` (after a passed drill): not the ones whose revert would
        restore a safety snapshot — verify passed, so the cluster is not put back
        to before the drill behind the team's back.
        """
        chosen = []
        for life in self.ledger.all():
            if life.in_effect:
                if not (life.reversible and life.rollback) or (leftovers_only and life.snapshot_revert):
                    continue
                chosen.append(life)
            elif (self.restore_snapshots and life.status is FaultState.RECOVERED and life.snapshot_revert
                  and life.state.get("safety_snapshot")):
                chosen.append(life)
        return chosen

    def left_alone(self, *, leftovers_only: bool = False) -> list[FaultLife]:
        """Faults in effect that this rollback will not touch, and why (``FaultLife.resolution``)."""
        chosen = {f.index for f in self.candidates(leftovers_only=leftovers_only)}
        return [f for f in self.ledger.in_effect() if f.index not in chosen]

    def run(self, reason: str, *, verdict: str | None = None, leftovers_only: bool = False) -> RollbackResult:
        """Revert every candidate, newest first, between rollback.start and rollback.end; faults
        that cannot or may not be reverted are journaled as left in effect."""
        faults = self.candidates(leftovers_only=leftovers_only)
        result = RollbackResult()
        self.emit(RollbackStarted(reason=reason[:500], verdict=verdict, by=self.by,
                                  in_effect=[f.index for f in self.ledger.in_effect()]))
        for life in reversed(self.left_alone(leftovers_only=leftovers_only)):
            self._action(life, "skip", self.why(life))
            result.skipped.append(f"{life.name} ({self.why(life)})")
        for life in reversed(faults):
            self.revert(life, result)
        self.emit(RollbackEnded(failed=result.failed))
        return result

    def why(self, life: FaultLife) -> str:
        """Why ``life`` is left in effect, and for one no revert can undo, what to do by hand."""
        if not life.reversible and self.by_hand:
            return f"{why_left(life)}; by hand: {self.by_hand}"
        return why_left(life)

    def revert(self, life: FaultLife, result: RollbackResult) -> None:
        forced = life.status is FaultState.RECOVERED  # only chosen on explicit request
        try:
            driver = self.driver_for(life)
        except Exception as exc:  # noqa: BLE001 - a driver gone missing is a failed revert, not a crash
            if life.status is FaultState.INJECTING and not life.params:
                # a journal from before fault.injecting carried its parameters: only a person can tell
                plan = "; ".join(life.plan) or life.driver
                self._failed(life, f"the run died while injecting it, and this journal does not hold its "
                                   f"parameters: check by hand whether it is in effect and undo it (its plan: "
                                   f"{plan})", result)
            else:
                self._failed(life, f"cannot rebuild the fault: {one_line(exc)}", result)
            return
        if not forced:
            still = probe_once(driver.in_effect)
            if not still.ok:
                detail = f"found no longer in effect before reverting: {still.detail}"
                self.emit(FaultRecovered(index=life.index, name=life.name, step=None, detail=detail))
                self._action(life, "recovered", detail)
                result.recovered.append(life.name)
                return
        warning = snapshot_warning(life)
        if warning:
            self.say(f"{life.name}: {warning}")
        try:
            detail = driver.revert() or "reverted"
        except Exception as exc:  # noqa: BLE001 - keep rolling back the rest
            self._failed(life, one_line(exc), result)
            return
        if warning:
            detail = f"{detail} ({warning})"
        self.emit(FaultReverted(index=life.index, name=life.name, detail=detail, by=self.by))
        self._action(life, "revert", detail)
        result.reverted.append(life.name)

    def revert_by_step(self, life: FaultLife, step: dict[str, Any]) -> str:
        """Revert one fault as a recovery step (``fault.revert``): no probe, recorded as recovered."""
        driver = self.driver_for(life)
        detail = driver.revert() or "reverted"
        self.emit(FaultRecovered(index=life.index, name=life.name, step=step, detail=detail))
        return detail

    def _action(self, life: FaultLife, action: Action, detail: str, status: str = "passed") -> None:
        self.emit(RollbackAction(index=life.index, name=life.name, action=action, status=status, detail=detail))

    def _failed(self, life: FaultLife, why: str, result: RollbackResult) -> None:
        self._action(life, "revert", why, status="failed")
        self.emit(ErrorRaised(phase="rollback", message=f"revert {life.name}: {why}", type="RollbackFailed"))
        result.failed.append(f"{life.name}: {why}")


def why_left(life: FaultLife) -> str:
    if not life.reversible:
        return "not reversible: it stays in effect until something else undoes it"
    if not life.rollback:
        return "rollback: false in the scenario"
    if life.snapshot_revert:
        return ("its revert would restore the safety snapshot over a cluster that passed its checks; "
                "dirt rollback --restore-safety-snapshot does it on request")
    return "left in effect"


def by_hand(steps: list[dict[str, Any]]) -> str:
    """What a person does for a fault that no revert undoes: the drill's own recovery steps, with the
    playbook sections they follow (from run.start's ``steps``)."""
    recover = [s for s in steps if s.get("section") == "recover"]
    if not recover:
        return ""
    names = ", ".join(str(s.get("name")) for s in recover)
    books = [b for s in recover if (b := s.get("playbook"))]
    sections = [f"{b['path']}#{b['anchor']}" for b in books if b.get("anchor")]
    books = list(dict.fromkeys(sections or [str(b["path"]) for b in books]))
    return f"the drill's recovery ({names})" + (f", as {' and '.join(books)} says" if books else "")


def snapshot_warning(life: FaultLife, now: float | None = None) -> str:
    """What restoring a fault's safety snapshot costs, in words ("" if it restores none)."""
    if not (life.snapshot_revert and life.state.get("safety_snapshot")):
        return ""
    taken = life.state.get("safety_snapshot_at")
    if not isinstance(taken, (int, float)):
        return "restores the safety snapshot taken before the fault: every write since is lost"
    age = max(0.0, (now or time.time()) - taken)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(taken))
    return f"restores the safety snapshot of {stamp} ({_age(age)} old): every write since is lost"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

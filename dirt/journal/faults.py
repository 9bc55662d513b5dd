"""The life of a fault, as the journal records it: one model, one path.

Every fault of a run lives this life, and nothing else decides where it stands::

    planned ─► injecting ─► injected ─► verified ─┬─► recovered (by step N, or found so)
                   │            │                 └─► reverted  (by rollback)
                   └────────────┴──── (either, from any state in effect)

*In effect* means injecting, injected or verified: ``inject`` has started to
touch the target (a half-done injection counts: rollback must undo it) and
nothing has undone it since.  ``recovered`` and ``reverted`` are final, except
that an explicit ``dirt rollback --restore-safety-snapshot`` may revert a
recovered fault (putting back the pre-drill snapshot on request).

``FaultLedger`` folds journal events into ``FaultLife`` records with one
transition function that rejects impossible moves (a duplicate event, a revert
of a fault never injected) instead of guessing.  The runner, its rollback,
``dirt rollback``, the ``fault.revert`` step and the report all read the same
ledger; none of them looks at raw fault events on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dirt.journal.events import (
    Event,
    FaultInjected,
    FaultInjecting,
    FaultRecovered,
    FaultReverted,
    FaultVerified,
    PlannedFault,
    RunStarted,
)


class FaultState(StrEnum):
    PLANNED = "planned"
    INJECTING = "injecting"
    INJECTED = "injected"
    VERIFIED = "verified"
    RECOVERED = "recovered"
    REVERTED = "reverted"


IN_EFFECT = frozenset({FaultState.INJECTING, FaultState.INJECTED, FaultState.VERIFIED})

#: Allowed moves; anything else is refused (and recorded as ignored).
TRANSITIONS: dict[FaultState, frozenset[FaultState]] = {
    FaultState.PLANNED: frozenset({FaultState.INJECTING}),
    FaultState.INJECTING: frozenset({FaultState.INJECTED, FaultState.RECOVERED, FaultState.REVERTED}),
    FaultState.INJECTED: frozenset({FaultState.VERIFIED, FaultState.RECOVERED, FaultState.REVERTED}),
    FaultState.VERIFIED: frozenset({FaultState.RECOVERED, FaultState.REVERTED}),
    FaultState.RECOVERED: frozenset({FaultState.REVERTED}),  # only on explicit request
    FaultState.REVERTED: frozenset(),
}


class ImpossibleTransition(ValueError):
    pass


@dataclass
class Transition:
    state: FaultState
    ts: float
    t: float
    detail: str = ""


@dataclass
class FaultLife:
    """One fault of ``inject``: what it is, where it stands, and how it got there."""

    index: int
    name: str
    driver: str
    family: str = "none"
    reversible: bool = False
    rollback: bool = True
    snapshot_revert: bool = False
    plan: list[str] = field(default_factory=list)
    member: str | None = None  # on a fleet target: the member it breaks
    status: FaultState = FaultState.PLANNED
    params: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # what inject recorded for revert
    injected_at: float | None = None  # wall time it took effect
    inject_error: str | None = None
    verified: bool | None = None
    verify_detail: str = ""
    resolved_by: dict[str, Any] | None = None  # the recovery step that undid it
    resolution: str = ""  # how it left the in-effect states, in words
    history: list[Transition] = field(default_factory=list)

    @property
    def in_effect(self) -> bool:
        return self.status in IN_EFFECT

    def move(self, new: FaultState, event: Event, detail: str = "") -> None:
        if new not in TRANSITIONS[self.status]:
            raise ImpossibleTransition(f"fault #{self.index} {self.name}: {self.status} -> {new}")
        self.status = new
        self.history.append(Transition(new, event.ts, event.t, detail))

    def describe(self) -> str:
        """Where it stands, in words, for people (report, CLI)."""
        if self.status is FaultState.RECOVERED:
            step = self.resolved_by
            return (f"recovered by step {step.get('name')!r}" if step else "recovered") + \
                (f" ({self.resolution})" if self.resolution else "")
        if self.status is FaultState.REVERTED:
            return "reverted by rollback" + (f" ({self.resolution})" if self.resolution else "")
        if self.status is FaultState.PLANNED:
            return "never injected"
        return "still in effect"


@dataclass
class FaultLedger:
    """Folds fault events into each fault's life; also a journal listener."""

    faults: dict[int, FaultLife] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)  # impossible moves seen (duplicates...)

    def __call__(self, event: Event) -> None:
        self.apply(event)

    def plan(self, planned: list[PlannedFault]) -> None:
        for p in planned:
            self.faults.setdefault(p.index, FaultLife(
                index=p.index, name=p.name, driver=p.driver, family=p.family, reversible=p.reversible,
                rollback=p.rollback, snapshot_revert=p.snapshot_revert, plan=list(p.plan),
                member=p.member))

    def apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.plan(event.faults)
            return
        index = getattr(event, "index", None)
        if not isinstance(event, (FaultInjecting, FaultInjected, FaultVerified, FaultRecovered, FaultReverted)) \
                or index is None:
            return
        life = self.faults.get(index)
        if life is None:  # a journal without a plan (or a foreign index): learn it here
            life = self.faults[index] = FaultLife(index=index, name=event.name,
                                                  driver=getattr(event, "driver", "") or "")
        try:
            self._apply(life, event)
        except ImpossibleTransition as exc:
            self.ignored.append(f"seq {event.seq}: {exc}")

    def _apply(self, life: FaultLife, event: Event) -> None:
        if isinstance(event, FaultInjecting):
            life.move(FaultState.INJECTING, event)
            if event.params:  # a run killed before fault.injected is reverted with these
                life.params = dict(event.params)
        elif isinstance(event, FaultInjected):
            if life.status is FaultState.PLANNED:  # a journal that never said "injecting"
                life.move(FaultState.INJECTING, event)
            life.move(FaultState.INJECTED, event, event.error or "")
            life.params, life.state = dict(event.params), dict(event.state)
            life.reversible = event.reversible
            life.injected_at = event.t_inject
            life.inject_error = event.error
        elif isinstance(event, FaultVerified):
            life.verified, life.verify_detail = event.ok, event.detail
            if event.ok:
                life.move(FaultState.VERIFIED, event, event.detail)
        elif isinstance(event, FaultRecovered):
            life.move(FaultState.RECOVERED, event, event.detail)
            life.resolved_by, life.resolution = event.step, event.detail
        elif isinstance(event, FaultReverted):
            life.move(FaultState.REVERTED, event, event.detail)
            life.resolution = event.detail

    # -- questions every caller asks ----------------------------------------------------
    def in_effect(self) -> list[FaultLife]:
        """Faults still in effect, in injection order."""
        return [f for _, f in sorted(self.faults.items()) if f.in_effect]

    def get(self, index: int) -> FaultLife | None:
        return self.faults.get(index)

    def all(self) -> list[FaultLife]:
        return [f for _, f in sorted(self.faults.items())]


def fold_faults(events: list[Event]) -> FaultLedger:
    ledger = FaultLedger()
    for event in events:
        ledger.apply(event)
    return ledger

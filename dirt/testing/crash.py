"""A real crash at a chosen point of a drill: SIGKILL of the process right after a journal event is on disk.

Loaded only with ``DIRT_TESTING=1`` (``dirt.drivers.registry.TESTING_MODULES``).  With
``DIRT_TEST_CRASH_AFTER`` set in a ``dirt run``'s environment, the process kills itself with
SIGKILL as soon as the named event has been written (and, for the events rollback needs,
fsynced): no handler runs, no rollback, no ``run.end`` — what a lost machine or an OOM kill
leaves behind.  The crash-matrix harness (``tests/crash``) then runs ``dirt rollback`` from
the journal alone.

The point is ``EVENT[=LABEL][#N]``: the N-th (default first) event of type EVENT whose phase or
name is LABEL (any, when not given), e.g. ``fault.injected#2``, ``phase.start=detect``,
``step.end=restore etcd from the snapshot``.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass

from dirt.journal.events import Event
from dirt.journal.writer import Journal

CRASH_ENV = "DIRT_TEST_CRASH_AFTER"
_POINT = re.compile(r"^(?P<event>[a-z_.]+)(?:=(?P<label>.*?))?(?:#(?P<n>[1-9]\d*))?$")


@dataclass(frozen=True)
class CrashPoint:
    event: str
    label: str | None = None
    occurrence: int = 1

    @classmethod
    def parse(cls, text: str) -> CrashPoint:
        match = _POINT.match(text.strip())
        if not match:
            raise ValueError(f"{CRASH_ENV}={text!r}: write EVENT[=LABEL][#N], e.g. fault.injected#2")
        return cls(match["event"], match["label"], int(match["n"] or 1))

    def __str__(self) -> str:
        return self.event + (f"={self.label}" if self.label is not None else "") + \
            (f"#{self.occurrence}" if self.occurrence != 1 else "")

    def matches(self, event: Event) -> bool:
        if event.event != self.event:
            return False
        return self.label is None or self.label == label_of(event)


def label_of(event: Event) -> str | None:
    """What a crash point's LABEL is compared with: the event's phase, else its name."""
    for key in ("phase", "name"):
        value = getattr(event, key, None)
        if isinstance(value, str) and value:
            return value
    return None


def after_event(point: CrashPoint, action: Callable[[], None], marker: str) -> None:
    """Run ``action`` right after the point's event is written, in every journal this process opens
    (once per process: a second call with the same ``marker`` does nothing)."""
    if any(getattr(h, marker, False) for h in Journal.opened):
        return
    seen = {"count": 0}

    def listener(event: Event) -> None:
        if point.matches(event):
            seen["count"] += 1
            if seen["count"] == point.occurrence:
                action()

    def subscribe(journal: Journal) -> None:
        journal.subscribe(listener)

    setattr(subscribe, marker, True)
    Journal.opened.append(subscribe)


def install() -> None:
    """Arm the crash for every journal this process opens, if ``DIRT_TEST_CRASH_AFTER`` names a point."""
    text = os.environ.get(CRASH_ENV, "").strip()
    if text:
        after_event(CrashPoint.parse(text), lambda: os.kill(os.getpid(), signal.SIGKILL), "_dirt_crash")


install()

DRIVERS: list[type] = []  # a testing module the registry loads: it arms the crash, it adds no driver

"""The dirt host's wall clock stepped mid-drill, as an NTP step or a resumed VM does.

Loaded only with ``DIRT_TESTING=1`` (``dirt.drivers.registry.TESTING_MODULES``).  With
``DIRT_TEST_CLOCK_STEP=EVENT[=LABEL]@SECONDS`` in a ``dirt run``'s environment, ``time.time``
jumps by SECONDS (e.g. ``fault.injected@3600``) right after the named event is journaled,
while ``time.monotonic`` goes on as before: what a step of CLOCK_REALTIME does to a process.

libfaketime (Debian's) is what one would reach for, and was tried: with an offset, Python's
thread waits (``threading.Event.wait``: ``sem_clockwait`` on CLOCK_MONOTONIC) hang, and with
the monotonic clock left alone (``DONT_FAKE_MONOTONIC``) ``time.sleep`` fails with EINVAL, so
no drill can run under it.  Every wall-clock reading dirt makes goes through ``time.time``.
"""

from __future__ import annotations

import os
import time

from dirt.testing.crash import CrashPoint, after_event

CLOCK_ENV = "DIRT_TEST_CLOCK_STEP"


def install() -> None:
    text = os.environ.get(CLOCK_ENV, "").strip()
    if not text:
        return
    spec, _, seconds = text.rpartition("@")
    real, step = time.time, float(seconds)

    def jump() -> None:
        time.time = lambda: real() + step  # type: ignore[assignment]

    after_event(CrashPoint.parse(spec), jump, "_dirt_clock")


install()

DRIVERS: list[type] = []  # a testing module the registry loads: it steps the clock, it adds no driver

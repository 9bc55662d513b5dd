"""Room to record a drill: the free space of the reports folder's disk, watched while a drill runs.

A drill that cannot be recorded cannot be trusted: nobody could later tell what it broke, when,
and whether rollback put it back.  The journal notices a full disk at its next write, but a drill
may write nothing for minutes while it waits for an alert, with the cluster broken all along.  So
``RoomWatch`` looks at the disk every second and calls ``on_full`` once when less than
``MIN_FREE`` is left; the runner then stops the drill and rolls it back while it still can.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

#: Below this much free space a drill stops: a journal with availability probes grows by megabytes.
MIN_FREE = 1 << 20
CHECK_EVERY = 1.0


def free_bytes(folder: Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``folder``'s filesystem (None: cannot tell)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def shown(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size / 1024:.0f} KiB"


class RoomWatch:
    """Calls ``on_full(free_bytes)`` once, from its own thread, when ``folder``'s disk runs low."""

    def __init__(self, folder: Path, on_full: Callable[[int], None], *, min_free: int = MIN_FREE,
                 every: float = CHECK_EVERY) -> None:
        self.folder = folder
        self.on_full = on_full
        self.min_free = min_free
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dirt-room-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while True:
            free = free_bytes(self.folder)
            if free is not None and free < self.min_free:
                self.on_full(free)
                return
            if self._stop.wait(self.every):
                return

"""Writing a journal: one event per line, appended, flushed and (for the events rollback
needs) fsynced as it happens.

Every event passes through ``redact`` before it reaches the disk or a listener
(the live display, the fault ledger), so a token in a command's output never
lands in a file or on a terminal.  ``Journal.resume`` continues a journal
written by an earlier process (``dirt rollback`` after a crash): it cuts off a
torn last line first, so the file stays valid JSON Lines.

A journal that cannot be written (the reports folder's disk is full, or gone) does not
stop the drill by itself: each event still reaches the listeners (the fault ledger that
rollback acts on), the lines not written wait in memory and are written, in order, as
soon as the disk takes them again, and a line cut short is cut off so the file stays
valid.  The first failure calls ``on_write_error``: the runner stops the drill and rolls
it back, since a drill that cannot be recorded cannot be trusted either.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dirt.core.errors import ReportError
from dirt.core.redact import redact
from dirt.journal.events import Event, JournalRepaired
from dirt.journal.reader import JOURNAL_NAME, read_journal

Listener = Callable[[Event], None]

#: Events flushed to the platter, not just the page cache: what rollback must find after a power cut.
_DURABLE = ("run.", "phase.", "fault.", "rollback.")
#: Lines kept in memory while the disk refuses them; beyond this the oldest are dropped (and counted).
BACKLOG_LIMIT = 100_000


class Journal:
    #: Called with every journal this process opens (``dirt.testing.crash`` subscribes to each here).
    opened: list[Callable[[Journal], None]] = []

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._backlog: deque[tuple[bytes, bool]] = deque()  # (line, durable) not yet on disk
        self.dropped = 0  # lines the backlog had to let go
        #: the error of the last write that failed (None once the backlog is written again)
        self.write_error: OSError | None = None
        #: called once, with the error, the first time a write fails
        self.on_write_error: list[Callable[[OSError], None]] = []
        self._lock = threading.Lock()
        self._seq = 0
        self._start = time.monotonic()
        self._wall_start = time.time()
        self._listeners: list[Listener] = []
        for hook in Journal.opened:
            hook(self)

    @classmethod
    def resume(cls, path: Path) -> Journal:
        """Append to an existing journal, continuing its ``seq`` and its clock.

        A last line without its newline (the writer was killed mid-line) is cut
        off and kept beside the journal as ``journal.jsonl.torn``, and the cut is
        journaled, before anything is appended.
        """
        path = path / JOURNAL_NAME if path.is_dir() else path
        dropped = _cut_torn_tail(path)
        contents = read_journal(path)
        journal = cls(path)
        if contents.events:
            first = contents.events[0]
            journal._seq = max(e.seq for e in contents.events)
            journal._wall_start = first.ts - first.t
            journal._start = time.monotonic() - (time.time() - journal._wall_start)
        if dropped:
            journal.emit(JournalRepaired(dropped_bytes=dropped, kept_in=str(path) + ".torn"))
        return journal

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def wall(self, monotonic: float | None = None) -> float:
        """Wall-clock time for a monotonic reading (so timings never jump with NTP)."""
        if monotonic is None:
            monotonic = time.monotonic()
        return self._wall_start + (monotonic - self._start)

    def emit(self, event: Event) -> Event:
        """Stamp, redact, append and flush ``event``; then tell the listeners.  Returns it stamped."""
        with self._lock:
            self._seq += 1
            now = time.monotonic()
            stamped = event.model_copy(update={"seq": self._seq, "ts": round(self.wall(now), 6),
                                               "t": round(now - self._start, 6)})
            record = redact(_finite(stamped.model_dump(mode="json")))
            clean = type(event).model_validate(record)
            line = (json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
            self._backlog.append((line, record["event"].startswith(_DURABLE)))
            failed = self._write_backlog()
        if failed is not None:
            for hook in self.on_write_error:
                with contextlib.suppress(Exception):  # the hook only raises a flag; it must not break emit
                    hook(failed)
        for listener in self._listeners:
            try:
                listener(clean)
            except Exception:  # noqa: BLE001 - a display problem must not break a drill
                pass
        return clean

    @property
    def unwritten(self) -> int:
        """Events this journal holds in memory because the disk refused them."""
        return len(self._backlog)

    def _write_backlog(self) -> OSError | None:
        """Write the waiting lines in order; on a failure, cut a half-written line off again and keep
        the rest waiting.  Returns the error when this is the first failure (hooks are called for it)."""
        while self._backlog:
            line, durable = self._backlog[0]
            end = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                written = 0
                while written < len(line):
                    written += os.write(self._fd, line[written:])
                if durable:
                    os.fsync(self._fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, end)
                first = self.write_error is None
                self.write_error = exc
                if len(self._backlog) > BACKLOG_LIMIT:
                    del self._backlog[1]  # the first is the oldest not written: kept, for order's sake
                    self.dropped += 1
                return exc if first else None
            self._backlog.popleft()
        self.write_error = None
        return None

    def close(self) -> None:
        """Write what waits (once more) and close; what still cannot be written is lost with the process."""
        with self._lock:
            if self._fd < 0:
                return
            self._write_backlog()
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _cut_torn_tail(path: Path) -> int:
    """Truncate a last line that has no newline; keep it in ``<journal>.torn``.  Returns bytes cut."""
    try:
        with path.open("rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return 0
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return 0
            # find the last newline, reading backwards in blocks
            pos, block = size, 65536
            cut = 0
            while pos > 0:
                start = max(0, pos - block)
                fh.seek(start)
                chunk = fh.read(pos - start)
                at = chunk.rfind(b"\n")
                if at >= 0:
                    cut = start + at + 1
                    break
                pos = start
            fh.seek(cut)
            tail = fh.read()
            with open(str(path) + ".torn", "ab") as torn:
                torn.write(tail + b"\n")
            fh.truncate(cut)
            return len(tail)
    except OSError as exc:
        raise ReportError(f"{path}: cannot repair the journal: {exc.strerror or exc}") from None

"""The journal: one JSON event per line, appended and flushed as it happens.

It is the single source of truth of a run.  Reports are rendered from it alone;
after a crash ``dirt rollback RUN_DIR`` reads it to find the faults still in
effect.  Every event passes through ``redact`` first, so a token in a command's
output or a driver's data never reaches the disk.

Each event has ``seq`` (1, 2, ...), ``ts`` (wall clock, unix seconds), ``t``
(seconds since the run started, from the monotonic clock) and ``event`` (a dotted
name such as ``phase.start``); the other fields depend on the event.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dirt.errors import ReportError
from dirt.redact import redact

JOURNAL_NAME = "journal.jsonl"
Listener = Callable[[dict[str, Any]], None]


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._seq = 0
        self._start = time.monotonic()
        self._wall_start = time.time()
        self._listeners: list[Listener] = []

    @classmethod
    def resume(cls, path: Path) -> Journal:
        """Append to an existing journal, continuing its ``seq`` and its clock."""
        events = read_journal(path)
        journal = cls(path)
        if events:
            journal._seq = max(e.get("seq", 0) for e in events)
            journal._wall_start = events[0]["ts"] - events[0].get("t", 0.0)
            journal._start = time.monotonic() - (time.time() - journal._wall_start)
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

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            now = time.monotonic()
            record = {"seq": self._seq, "ts": round(self.wall(now), 6), "t": round(now - self._start, 6),
                      "event": event}
            record.update(redact(fields))
            line = json.dumps(record, default=_jsonable, ensure_ascii=False)
            self._fh.write(line + "\n")
            self._fh.flush()
            if event.startswith(("phase.", "run.", "fault.")):
                os.fsync(self._fh.fileno())  # the events rollback needs survive a machine crash
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - a display problem must not break a drill
                pass
        return record

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Read every complete event; a torn last line (killed writer) is skipped."""
    if path.is_dir():
        path = path / JOURNAL_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read journal: {exc.strerror or exc}") from None
    return list(_events(text, path))


def _events(text: str, path: Path) -> Iterator[dict[str, Any]]:
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            if number >= len(lines) - 1:  # the last line, cut short by a kill
                return
            raise ReportError(f"{path}:{number}: not a journal event (corrupt line)") from None
        if not isinstance(event, dict) or "event" not in event:
            raise ReportError(f"{path}:{number}: not a journal event")
        yield event

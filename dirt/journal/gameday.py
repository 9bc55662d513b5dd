"""The game-day journal: every event of a game day, one small model each, and its reader.

A game day writes ``<reports>/gamedays/<run_id>/journal.jsonl`` with the same
writer as a drill (``dirt.journal.Journal``: stamped, redacted, flushed), but
its own events: the day's start, the approval, a skip, each drill's start and
end (pointing at the drill's own run folder), each notification sent, and the
day's end.  The game-day report (``dirt.report.gameday``) folds these and the
drills' ``report.json`` files, nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from dirt.core import safefile
from dirt.core.errors import JournalError
from dirt.journal.events import JSON, Event

SCHEMA_VERSION = 1
JOURNAL_NAME = "journal.jsonl"
MAX_BYTES = 64 * 1024 * 1024

DrillVerdict = Literal["passed", "failed", "aborted", "skipped", "not-run"]
DayVerdict = Literal["passed", "failed", "aborted", "skipped"]


class GameDayStarted(Event):
    event: Literal["gameday.start"] = "gameday.start"
    schema_version: int = SCHEMA_VERSION
    run_id: str
    name: str
    path: str
    digest: str = ""
    description: str = ""
    owner: str | None = None
    dirt_version: str = ""
    trigger: Literal["manual", "schedule"] = "manual"
    schedule: str | None = None  # the cron expression, with its time zone
    participants: list[JSON] = Field(default_factory=list)
    #: the plan: each drill's id, scenario, target, depends_on, on_failure, weight, blast radius
    drills: list[JSON] = Field(default_factory=list)
    abort_when: list[JSON] = Field(default_factory=list)
    notify: list[str] = Field(default_factory=list)  # where notifications go, secrets hidden


class ApprovalResult(Event):
    event: Literal["approval"] = "approval"
    allowed: bool
    via: Literal["webhook", "approved-by", "none"]
    by: str | None = None
    reason: str = ""
    webhook: str | None = None  # scheme and host only


class DaySkipped(Event):
    event: Literal["skip"] = "skip"
    reason: str
    alerts: list[str] = Field(default_factory=list)


class GameDayWarning(Event):
    event: Literal["warning"] = "warning"
    message: str


class DrillStarted(Event):
    event: Literal["drill.start"] = "drill.start"
    drill: str
    scenario: str
    target: str | None = None


class DrillEnded(Event):
    event: Literal["drill.end"] = "drill.end"
    drill: str
    scenario: str
    verdict: DrillVerdict
    reason: str = ""
    run_id: str | None = None
    run_dir: str | None = None  # relative to the reports folder
    mttd: dict[str, float | None] = Field(default_factory=dict)
    mttr: float | None = None
    failures: list[str] = Field(default_factory=list)


class NotifySent(Event):
    event: Literal["notify"] = "notify"
    notification: Literal["start", "drill", "failure", "finish"]
    sink: str  # the notify's name, its variable, or scheme and host: never the URL
    ok: bool
    detail: str = ""
    drill: str | None = None


class GameDayEnded(Event):
    event: Literal["gameday.end"] = "gameday.end"
    verdict: DayVerdict
    reason: str = ""
    stopped_after: str | None = None
    approved_by: str | None = None


EVENT_TYPES: tuple[type[Event], ...] = (GameDayStarted, ApprovalResult, DaySkipped, GameDayWarning, DrillStarted,
                                        DrillEnded, NotifySent, GameDayEnded)
BY_NAME: dict[str, type[Event]] = {cls.model_fields["event"].default: cls for cls in EVENT_TYPES}


def read_gameday_journal(path: Path) -> tuple[list[Event], list[str]]:
    """Every readable event of a game-day journal (or its folder), and one problem per line that is not."""
    path = path / JOURNAL_NAME if path.is_dir() else path
    if not path.exists():
        raise JournalError(f"{path}: no game-day journal here")
    try:
        raw = safefile.read_bytes(path, limit=MAX_BYTES)
    except safefile.UnreadableFile as exc:
        raise JournalError(f"{path}:{exc.line}:{exc.column}: cannot read journal: {exc.message}") from None
    events: list[Event] = []
    problems: list[str] = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        if not line.strip():
            continue
        problem = _parse(line, events)
        if problem:
            problems.append(f"{path}:{number}:1: {problem}")
    return events, problems


def _parse(line: bytes, events: list[Event]) -> str:
    try:
        record: Any = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "not a JSON line"
    if not isinstance(record, dict) or record.get("event") not in BY_NAME:
        return "not a game-day event"
    cls = BY_NAME[record["event"]]
    try:
        events.append(cls.model_validate({k: v for k, v in record.items() if k in cls.model_fields}))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        return f"bad {record['event']!r} event: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return ""

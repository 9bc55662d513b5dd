"""Reading a journal: every event that can be read, and one line per one that cannot.

A journal may have been cut short by ``kill -9``, copied half-way, edited by
hand, or written by dirt 0.1.  The reader never raises on content: each line is
parsed on its own (JSON without NaN, a known ``event``, fields of the right
type), and whatever is wrong becomes a ``problem`` naming the line, so a report
can still be rendered from the rest.  Events whose ``seq`` was already seen are
duplicates (or out of order) and are skipped, so folding a journal twice over
never acts twice.  Journals of schema version 1 (dirt 0.1) are upgraded to the
current events on the way in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dirt.core import safefile
from dirt.core.errors import JournalError
from dirt.journal.events import BY_NAME, SCHEMA_VERSION, Event, RunStarted

JOURNAL_NAME = "journal.jsonl"
#: A journal is a few hundred kilobytes; refuse what cannot be one rather than fill memory.
MAX_BYTES = 256 * 1024 * 1024
MAX_PROBLEMS = 50


@dataclass
class JournalContents:
    path: Path
    events: list[Event] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "path:line: what is wrong"
    duplicates: int = 0
    torn: bool = False  # the last line was cut short (a killed writer)
    schema_version: int = SCHEMA_VERSION
    skipped_early: int = 0  # duplicates recognised by their seq before parsing

    def first(self, kind: type[Event]) -> Any:
        return next((e for e in self.events if isinstance(e, kind)), None)

    def last(self, kind: type[Event]) -> Any:
        return next((e for e in reversed(self.events) if isinstance(e, kind)), None)


def journal_path(path: Path) -> Path:
    return path / JOURNAL_NAME if path.is_dir() else path


def read_journal(path: Path) -> JournalContents:
    """Read a journal (or the journal of a run folder); raises ``ReportError`` only when the
    file cannot be read at all."""
    path = journal_path(path)
    if not path.exists():
        raise JournalError(f"{path}: no journal here (a run folder holds {JOURNAL_NAME})")
    try:
        raw = safefile.read_bytes(path, limit=MAX_BYTES)
    except safefile.UnreadableFile as exc:
        raise JournalError(f"{path}:{exc.line}:{exc.column}: cannot read journal: {exc.message}") from None
    return parse_journal(raw, path)


def parse_journal(raw: bytes, path: Path) -> JournalContents:
    """Every readable event of ``raw``, one line at a time (a line's dict is dropped once typed)."""
    contents = JournalContents(path)
    lines = raw.split(b"\n")
    torn_at = len(lines) if not raw.endswith(b"\n") else 0
    version = _schema_version(lines)
    contents.schema_version = version
    if version > SCHEMA_VERSION:
        _problem(contents, f"{path}: schema version {version} is newer than this dirt reads ({SCHEMA_VERSION}); "
                           "events are read as far as they fit")
    records = _records(lines, torn_at, contents)
    if version == 1:
        from dirt.journal.upgrade import upgrade_v1

        records = iter(upgrade_v1(list(records)))
    seen = 0
    for number, record in records:
        seq = record.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and seq <= seen:
            contents.duplicates += 1
            continue
        event = _event(record, contents, f"{path}:{number}:1")
        if event is not None:
            seen = max(seen, event.seq)
            contents.events.append(event)
    contents.duplicates += contents.skipped_early
    if contents.duplicates:
        _problem(contents, f"{path}: {contents.duplicates} duplicate or out-of-order event(s) ignored")
    return contents


#: dirt writes ``seq`` first; a line whose seq was already seen is skipped before parsing it.
_SEQ = re.compile(rb'\{"seq": ?(\d{1,18}),')


def _records(lines: list[bytes], torn_at: int, contents: JournalContents) -> Iterator[tuple[int, dict[str, Any]]]:
    seen = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        quick = _SEQ.match(line)
        if quick is not None and contents.schema_version > 1:
            seq = int(quick.group(1))
            if seq <= seen:
                contents.skipped_early += 1
                continue
            seen = seq
        record, problem = _parse_line(line)
        if problem:
            if number == torn_at:
                contents.torn = True  # cut short by a kill: not a problem of the content
            else:
                _problem(contents, f"{contents.path}:{number}:1: {problem}")
            continue
        yield number, record


def _schema_version(lines: list[bytes]) -> int:
    """From the run.start event (the first line, unless the journal is damaged); 1 when it says none."""
    for line in lines[:50]:
        if b'"run.start"' in line:
            record, problem = _parse_line(line)
            if not problem and record.get("event") == "run.start":
                version = record.get("schema_version", 1)
                return version if isinstance(version, int) and not isinstance(version, bool) else SCHEMA_VERSION
    return SCHEMA_VERSION


def _parse_line(line: bytes) -> tuple[dict[str, Any], str]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return {}, "not UTF-8 text"
    try:
        record = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        return {}, "nested too deeply to be a journal event"
    except ValueError as exc:
        return {}, f"not JSON ({str(exc).split(':')[0]})"
    if not isinstance(record, dict):
        return {}, "not a journal event (a JSON object with 'event')"
    if not isinstance(record.get("event"), str):
        return {}, "not a journal event (no 'event' name)"
    return record, ""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _event(record: dict[str, Any], contents: JournalContents, where: str) -> Event | None:
    name = record["event"]
    cls = BY_NAME.get(name)
    if cls is None:
        _problem(contents, f"{where}: unknown event {name[:60]!r}")
        return None
    known = {k: v for k, v in record.items() if k in cls.model_fields}
    try:
        event = cls.model_validate(known)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(event)"
        _problem(contents, f"{where}: bad {name!r} event: {loc}: {first['msg']}")
        return None
    return event


def _problem(contents: JournalContents, text: str) -> None:
    if len(contents.problems) < MAX_PROBLEMS:
        contents.problems.append(text)
    elif len(contents.problems) == MAX_PROBLEMS:
        contents.problems.append("(more problems not listed)")


def run_start(contents: JournalContents) -> RunStarted | None:
    return contents.first(RunStarted)

"""When a scheduled game day runs: cron times in the schedule's zone, jitter, blackouts.

``dirt gameday next`` lists what a scheduled ``dirt gameday run`` will do, so both
read the schedule here (``gameday_scan``), and nothing here depends on the clock: every function
takes the moment it reasons from.

Cron times are read on the wall clock of ``schedule.timezone`` (croniter walks
wall-clock times; zoneinfo turns each into an instant).  Daylight saving time:

- a wall time that does not exist (spring forward: ``30 2 * * *`` in
  Europe/Berlin on 2027-03-28, when 02:00 becomes 03:00) runs once, at the first
  valid instant after it: the moment of the change (03:00 CEST);
- a wall time that exists twice (fall back: 02:30 on 2027-10-31 in Berlin) runs
  once, at its first occurrence (02:30 CEST, not 02:30 CET);
- so several cron times that fall into the skipped hour (``*/15``) give one run.

This is ISC (Vixie) cron's rule for jobs at fixed times; dirt applies it to every cron.

Times come back in the schedule's zone as fixed offsets (``fixed``), so they compare
and subtract exactly.  Jitter is deterministic: the delay is a hash of the seed (dirt
uses the game day's name: ``gameday_scan``) and the cron time, in whole seconds, ``0 <= delay < jitter``; so
``next`` shows the very moment ``run`` will start, and two game days on the same
cron spread out.  A run is listed when its *cron time* is after ``after`` (a run
whose cron time passed is already started, even if its jitter delay has not).

A scheduler starts ``dirt gameday run --trigger schedule`` at its own times, which may be a
superset of the game day's (``dirt.gameday.cron``): ``due`` lets a run through only between a
real cron time and its jittered start plus ``schedule.starting_deadline`` (30 minutes unless
set; a minute early is tolerated for clocks that differ).  Any other start is "not a scheduled
slot" and touches nothing.

Blackouts are checked at the moment the run starts (jitter included):

- ``dates`` and ``freeze``: dates are whole days in the schedule's zone, both ends
  included; date-times are moments, ``from`` included and ``to`` excluded (a
  date-time without an offset is read in the schedule's zone);
- ``weekly``: days of the week and an HH:MM window (``to`` excluded) on the wall
  clock of the schedule's zone.

Every search is bounded: at most ``MAX_COUNT`` runs are asked for, and the search
gives up after ``MAX_SCAN`` cron times or ten years (a cron that never escapes its
blackouts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo

from croniter import croniter

from dirt.core.errors import UsageError
from dirt.gameday.model import Blackout, DateRange, GameDay, Schedule

MAX_COUNT = 1000
MAX_SCAN = 100_000
#: ... or after this long past ``after``: a blackout of ten years is a schedule that never runs.
MAX_SPAN = timedelta(days=3653)
UTC = timezone.utc
#: A scheduled run that starts this much before a cron time still counts for it (the scheduler's
#: clock and the runner's are not the same clock).
EARLY = timedelta(seconds=60)
#: Where interval samples start: any fixed wall time works, fixed keeps the answer the same every day.
_SAMPLE_START = datetime(2001, 1, 1)
_SAMPLE_TIMES = 2000
_SAMPLE_SPAN = timedelta(days=400)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Occurrence:
    """One cron time: when the run starts (``at``, jitter applied) and whether a blackout skips it."""

    at: datetime  # in the schedule's zone, as a fixed offset (see ``fixed``)
    cron_at: datetime
    status: Literal["run", "blackout"]
    reason: str | None = None  # the blackout's name, or a description of it
    kind: Literal["dates", "freeze", "weekly"] | None = None


@dataclass(frozen=True)
class Upcoming:
    """What a search found: the occurrences in order, and whether it gave up before ``count`` runs."""

    occurrences: list[Occurrence] = field(default_factory=list)
    scanned: int = 0
    gave_up: bool = False

    @property
    def runs(self) -> list[Occurrence]:
        return [o for o in self.occurrences if o.status == "run"]


def zone_of(schedule: Schedule) -> tzinfo:
    """The schedule's time zone (the loader has checked the name)."""
    return UTC if schedule.timezone.upper() in ("UTC", "ETC/UTC") else ZoneInfo(schedule.timezone)


def wall_to_instant(wall: datetime, zone: tzinfo) -> datetime:
    """The instant a naive wall-clock time in ``zone`` stands for: the first, if it happens twice;
    the moment of the change, if the clock skips it."""
    first = wall.replace(tzinfo=zone, fold=0)
    if _exists(first, zone):
        return fixed(first)
    # In a gap, fold=1 reads the time with the offset after the change (an instant before it) and
    # fold=0 with the offset before it (an instant after it): the change lies between.
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = first.astimezone(UTC)
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            after = middle
        else:
            before = middle
    return fixed(after.astimezone(zone))


def fixed(moment: datetime) -> datetime:
    """``moment`` with its zone's offset and abbreviation at that instant, as a fixed offset.

    A datetime whose tzinfo is a ZoneInfo never compares equal (``==``) to one in another zone
    when it falls in a repeated hour (PEP 495); a fixed offset compares and subtracts exactly.
    """
    offset = moment.utcoffset()
    assert offset is not None
    return moment.astimezone(timezone(offset, moment.tzname() or None))


def _exists(moment: datetime, zone: tzinfo) -> bool:
    return moment.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == moment.replace(tzinfo=None)


def cron_times(schedule: Schedule, after: datetime) -> Iterator[datetime]:
    """Cron instants strictly after ``after`` (aware), in the schedule's zone, each once (DST rules above)."""
    zone = zone_of(schedule)
    start = after.astimezone(zone).replace(tzinfo=None, fold=0)
    walls = croniter(schedule.cron, start)
    last = after
    while True:
        instant = wall_to_instant(walls.get_next(datetime), zone)
        if instant > last:
            last = instant
            yield instant


def jitter_delay(schedule: Schedule, cron_at: datetime, seed: str = "") -> timedelta:
    """The delay added to ``cron_at``: whole seconds, ``0 <= delay < jitter``, the same every time asked."""
    whole = int(schedule.jitter)
    if whole < 1:
        return timedelta(0)
    key = f"{seed}\n{cron_at.astimezone(UTC).isoformat()}".encode()
    number = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    return timedelta(seconds=number % whole)


def scheduled_start(schedule: Schedule, now: datetime, seed: str = "") -> tuple[datetime, datetime] | None:
    """The latest cron time at or before ``now`` and the moment its run starts (jitter included), or None
    when the cron has no time before ``now`` within ten years.  Whether a run started now belongs to it
    is ``due``'s question."""
    if now.tzinfo is None:
        raise UsageError("the moment a scheduled run starts needs a time zone")
    zone = zone_of(schedule)
    walls = croniter(schedule.cron, now.astimezone(zone).replace(tzinfo=None, fold=0) + timedelta(seconds=1))
    earliest = now - MAX_SPAN
    for _ in range(8):  # a wall time that does not exist moves forward; the one before it may still be ahead
        instant = wall_to_instant(walls.get_prev(datetime), zone)
        if instant < earliest:
            return None
        if instant <= now:
            return fixed(instant), fixed(instant + jitter_delay(schedule, instant, seed))
    return None


@dataclass(frozen=True)
class Slot:
    """A real cron time of the schedule, and the window in which a scheduled run may start for it."""

    cron_at: datetime
    start: datetime  # cron_at + the jitter delay: when the run should start
    deadline: datetime  # start + schedule.starting_deadline: the latest it may start


def slot_of(schedule: Schedule, cron_at: datetime, seed: str = "") -> Slot:
    start = fixed(cron_at + jitter_delay(schedule, cron_at, seed))
    return Slot(cron_at=cron_at, start=start, deadline=fixed(start + timedelta(seconds=schedule.starting_deadline)))


def due(schedule: Schedule, now: datetime, seed: str = "") -> Slot | None:
    """The real slot a run started by a scheduler at ``now`` is for, or None: not a scheduled slot.

    A scheduler may start a run at a time the cron never names: its own cron can be a superset
    of the game day's (``2#1`` exported as every Tuesday, see ``dirt.gameday.cron``), GitHub runs
    both seasons' crons, a systemd timer catches up after the machine was off.  A run is due when
    ``now`` lies between a cron time (less ``EARLY``, for clocks that differ) and that slot's
    jittered start plus ``schedule.starting_deadline``.  The latest cron time at or before ``now``
    is tried first, then the next one.
    """
    if now.tzinfo is None:
        raise UsageError("the moment a scheduled run starts needs a time zone")
    latest = scheduled_start(schedule, now, seed)
    if latest is not None:
        slot = slot_of(schedule, latest[0], seed)
        if now <= slot.deadline:
            return slot
    upcoming = next(cron_times(schedule, now), None)
    if upcoming is not None and upcoming - now <= EARLY:
        return slot_of(schedule, upcoming, seed)
    return None


def in_blackout(schedule: Schedule, moment: datetime) -> Blackout | None:
    """The first blackout of ``schedule`` that covers ``moment`` (aware), or None."""
    if moment.tzinfo is None:
        raise UsageError("a moment checked against blackouts needs a time zone")
    zone = zone_of(schedule)
    for blackout in schedule.blackouts:
        if _covers(blackout, moment, zone):
            return blackout
    return None


def _covers(blackout: Blackout, moment: datetime, zone: tzinfo) -> bool:
    span = blackout.dates or blackout.freeze
    if span is not None:
        start, end = range_span(span, zone)
        return start <= moment < end
    weekly = blackout.weekly
    if weekly is None:
        return False
    local = moment.astimezone(zone)
    if _WEEKDAYS[local.weekday()] not in weekly.days:
        return False
    begin, end_clock = weekly.clock()
    clock = local.time().replace(tzinfo=None)
    return begin <= clock and (end_clock is None or clock < end_clock)


def range_span(span: DateRange, zone: tzinfo) -> tuple[datetime, datetime]:
    """``[start, end)`` of a date range as instants: dates are whole days in ``zone``, both included."""
    return start_of(span.from_, zone), _end(span.to, zone)


def start_of(value: date | datetime, zone: tzinfo) -> datetime:
    """The instant a blackout bound starts: a day's midnight in ``zone``, or the moment itself."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else wall_to_instant(value, zone)
    return wall_to_instant(datetime.combine(value, time(0)), zone)


def _end(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return start_of(value, zone)
    return wall_to_instant(datetime.combine(value + timedelta(days=1), time(0)), zone)


def describe(blackout: Blackout) -> tuple[Literal["dates", "freeze", "weekly"], str]:
    """(kind, words) for a blackout: its name when it has one, else what it covers."""
    span = blackout.dates or blackout.freeze
    kind: Literal["dates", "freeze", "weekly"] = "freeze" if blackout.freeze else "dates" if span else "weekly"
    if blackout.name:
        return kind, blackout.name
    if span is not None:
        word = "freeze" if kind == "freeze" else "blackout"
        return kind, f"{word} {span.from_.isoformat()} to {span.to.isoformat()}"
    assert blackout.weekly is not None
    w = blackout.weekly
    return kind, f"weekly blackout {','.join(w.days)} {w.from_}-{w.to}"


def scan(schedule: Schedule, after: datetime, count: int, *, seed: str = "", max_scan: int = MAX_SCAN) -> Upcoming:
    """The next ``count`` runs after ``after``, with the cron times blackouts skip in between."""
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(f"count must be between 1 and {MAX_COUNT}, got {count}")
    if after.tzinfo is None:
        raise UsageError("'after' needs a time zone")
    zone = zone_of(schedule)
    found: list[Occurrence] = []
    runs = scanned = 0
    for cron_at in cron_times(schedule, after):
        if cron_at - after > MAX_SPAN:
            return Upcoming(found, scanned, True)
        scanned += 1
        at = fixed((cron_at.astimezone(UTC) + jitter_delay(schedule, cron_at, seed)).astimezone(zone))
        blackout = in_blackout(schedule, at)
        if blackout is None:
            found.append(Occurrence(at=at, cron_at=cron_at, status="run"))
            runs += 1
            if runs >= count:
                return Upcoming(found, scanned, False)
        else:
            kind, reason = describe(blackout)
            found.append(Occurrence(at=at, cron_at=cron_at, status="blackout", reason=reason, kind=kind))
        if scanned >= max_scan:
            return Upcoming(found, scanned, True)
    return Upcoming(found, scanned, True)  # pragma: no cover - croniter's iteration does not end


def upcoming(schedule: Schedule, after: datetime, count: int, *, seed: str = "") -> list[Occurrence]:
    """``scan(...).occurrences``: the next ``count`` runs, blacked-out cron times marked in between."""
    return scan(schedule, after, count, seed=seed).occurrences


def gameday_scan(day: GameDay, after: datetime, count: int) -> Upcoming:
    """``scan`` of a game day's schedule with the seed every dirt command uses for it: its name."""
    if day.schedule is None:
        raise UsageError(f"game day {day.name!r} has no schedule")
    return scan(day.schedule, after, count, seed=day.name)


def wall_gaps(cron: str) -> list[float]:
    """Seconds between consecutive wall-clock cron times, over a fixed sample (up to 2000 times or
    400 days, whichever comes first)."""
    walls = croniter(cron, _SAMPLE_START)
    times = [walls.get_next(datetime)]
    while len(times) < _SAMPLE_TIMES and (len(times) < 3 or times[-1] - times[0] < _SAMPLE_SPAN):
        times.append(walls.get_next(datetime))
    return [(b - a).total_seconds() for a, b in zip(times, times[1:])]


def interval_seconds(schedule: Schedule) -> float:
    """How long a game day may go between two runs: the longest gap between consecutive cron times.

    The longest, not the average, so a drill counts as overdue only when a run was really
    missed (``0 10 * * 1,2`` has gaps of 1 and 6 days: 6 days).  Wall-clock gaps: a daily
    cron is 86400 s even across a DST change.  Sampled (see ``wall_gaps``): a cron dense in
    one part of the year only (``* * * 1 *``) is measured by its dense part.
    """
    return max(wall_gaps(schedule.cron))


__all__ = ["MAX_COUNT", "MAX_SCAN", "MAX_SPAN", "EARLY", "Occurrence", "Slot", "slot_of", "due", "scheduled_start",
           "Upcoming", "zone_of", "wall_to_instant", "fixed",
           "cron_times", "jitter_delay", "in_blackout", "range_span", "start_of", "describe", "scan", "gameday_scan",
           "upcoming", "wall_gaps", "interval_seconds"]

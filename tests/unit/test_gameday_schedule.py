"""When a scheduled game day runs: every expected date below is computed by hand from the calendar
and the time-zone rules (EU: last Sunday of March / October at 01:00 UTC; US: second Sunday of March /
first Sunday of November at 02:00 local), not by the code under test."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from dirt.core.errors import UsageError
from dirt.gameday.model import Schedule
from dirt.gameday.schedule import (
    MAX_COUNT,
    in_blackout,
    interval_seconds,
    jitter_delay,
    scan,
    upcoming,
    wall_to_instant,
    zone_of,
)

UTC = timezone.utc


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def schedule(cron: str, tz: str = "UTC", **more: object) -> Schedule:
    return Schedule.model_validate({"cron": cron, "timezone": tz, **more})


def run_times(s: Schedule, after: datetime, count: int, seed: str = "") -> list[datetime]:
    return [o.at.astimezone(UTC) for o in upcoming(s, after, count, seed=seed) if o.status == "run"]


# -- DST ----------------------------------------------------------------------------------


def test_a_time_the_spring_change_skips_runs_once_at_the_change() -> None:
    """Berlin, Sunday 2027-03-28: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 does not exist."""
    berlin = schedule("30 2 * * *", "Europe/Berlin")
    got = upcoming(berlin, utc(2027, 3, 26, 12), 4)
    assert [o.at.astimezone(UTC) for o in got] == [
        utc(2027, 3, 27, 1, 30),  # 02:30 CET (+01:00)
        utc(2027, 3, 28, 1, 0),  # 02:30 does not exist: 03:00 CEST, the moment of the change
        utc(2027, 3, 29, 0, 30),  # 02:30 CEST (+02:00)
        utc(2027, 3, 30, 0, 30),
    ]
    assert [o.at.strftime("%H:%M %Z") for o in got] == ["02:30 CET", "03:00 CEST", "02:30 CEST", "02:30 CEST"]
    assert all(o.status == "run" and o.at == o.cron_at for o in got)


def test_a_time_the_autumn_change_repeats_runs_once_at_its_first_occurrence() -> None:
    """Berlin, Sunday 2027-10-31: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice."""
    berlin = schedule("30 2 * * *", "Europe/Berlin")
    assert run_times(berlin, utc(2027, 10, 30, 12), 3) == [
        utc(2027, 10, 31, 0, 30),  # 02:30 CEST, the first one; not again at 02:30 CET (01:30 UTC)
        utc(2027, 11, 1, 1, 30),  # 02:30 CET (+01:00)
        utc(2027, 11, 2, 1, 30),
    ]
    # Between the two 02:30s (02:45 CEST = 00:45 UTC) the next run is the next day's.
    assert run_times(berlin, utc(2027, 10, 31, 0, 45), 1) == [utc(2027, 11, 1, 1, 30)]


def test_several_cron_times_in_the_skipped_hour_give_one_run() -> None:
    """*/30 on 2027-03-28 in Berlin: 02:00 and 02:30 do not exist; they and 03:00 are one run at 03:00 CEST."""
    berlin = schedule("*/30 * * * *", "Europe/Berlin")
    assert run_times(berlin, utc(2027, 3, 28, 0, 15), 3) == [
        utc(2027, 3, 28, 0, 30),  # 01:30 CET
        utc(2027, 3, 28, 1, 0),  # 03:00 CEST
        utc(2027, 3, 28, 1, 30),  # 03:30 CEST
    ]


def test_weekly_new_york_runs_keep_local_time_across_both_us_changes() -> None:
    """10:00 on Tuesdays: EST (-05:00) until Sunday 2027-03-14, EDT (-04:00) until Sunday 2027-11-07."""
    ny = schedule("0 10 * * 2", "America/New_York")
    assert run_times(ny, utc(2027, 3, 1), 3) == [
        utc(2027, 3, 2, 15),  # Tue 2 March, 10:00 EST
        utc(2027, 3, 9, 15),  # Tue 9 March, 10:00 EST
        utc(2027, 3, 16, 14),  # Tue 16 March, 10:00 EDT
    ]
    assert run_times(ny, utc(2027, 10, 30), 2) == [
        utc(2027, 11, 2, 14),  # Tue 2 November, 10:00 EDT
        utc(2027, 11, 9, 15),  # Tue 9 November, 10:00 EST
    ]


def test_wall_times_become_instants_by_the_same_rules() -> None:
    berlin = zone_of(schedule("0 0 * * *", "Europe/Berlin"))
    assert wall_to_instant(datetime(2027, 3, 28, 2, 30), berlin) == utc(2027, 3, 28, 1, 0)
    assert wall_to_instant(datetime(2027, 10, 31, 2, 30), berlin) == utc(2027, 10, 31, 0, 30)
    assert wall_to_instant(datetime(2027, 6, 1, 12, 0), berlin) == utc(2027, 6, 1, 10, 0)
    # Lord Howe Island moves by 30 minutes: 02:00 (+10:30) becomes 02:30 (+11:00) on Sunday 2027-10-03.
    lord_howe = zone_of(schedule("0 0 * * *", "Australia/Lord_Howe"))
    assert wall_to_instant(datetime(2027, 10, 3, 2, 15), lord_howe) == utc(2027, 10, 2, 15, 30)


def test_a_run_is_listed_by_its_cron_time_after_the_moment_asked() -> None:
    daily = schedule("0 10 * * *")
    assert run_times(daily, utc(2027, 5, 1, 10, 0), 1) == [utc(2027, 5, 2, 10, 0)]  # strictly after
    assert run_times(daily, utc(2027, 5, 1, 9, 59, 59), 1) == [utc(2027, 5, 1, 10, 0)]


# -- blackouts ----------------------------------------------------------------------------


def holidays() -> Schedule:
    """10:00 daily in Berlin; Wednesday 2027-12-22 to Monday 2028-01-03 crosses every kind of blackout."""
    return schedule("0 10 * * *", "Europe/Berlin", blackouts=[
        {"name": "christmas", "dates": {"from": date(2027, 12, 24), "to": date(2027, 12, 26)}},
        {"freeze": {"from": date(2027, 12, 31), "to": date(2028, 1, 1)}},
        {"weekly": {"days": ["sat", "sun"]}},
    ])


def test_blackouts_skip_exactly_the_covered_days() -> None:
    got = upcoming(holidays(), utc(2027, 12, 22), 7)
    table = [(o.at.date().isoformat(), o.status, o.kind, o.reason) for o in got]
    assert table == [
        ("2027-12-22", "run", None, None),  # Wed
        ("2027-12-23", "run", None, None),  # Thu
        ("2027-12-24", "blackout", "dates", "christmas"),  # Fri, first day included
        ("2027-12-25", "blackout", "dates", "christmas"),  # Sat: the first blackout listed wins
        ("2027-12-26", "blackout", "dates", "christmas"),  # Sun, last day included
        ("2027-12-27", "run", None, None),  # Mon
        ("2027-12-28", "run", None, None),
        ("2027-12-29", "run", None, None),
        ("2027-12-30", "run", None, None),  # Thu
        ("2027-12-31", "blackout", "freeze", "freeze 2027-12-31 to 2028-01-01"),  # Fri
        ("2028-01-01", "blackout", "freeze", "freeze 2027-12-31 to 2028-01-01"),  # Sat
        ("2028-01-02", "blackout", "weekly", "weekly blackout sat,sun 00:00-24:00"),  # Sun
        ("2028-01-03", "run", None, None),  # Mon: the seventh run
    ]
    assert all(o.at.strftime("%H:%M %Z") == "10:00 CET" for o in got)


def test_whole_day_blackouts_are_whole_days_in_the_schedules_zone() -> None:
    s = holidays()
    # 26 December ends at midnight Berlin time (23:00 UTC), not at midnight UTC.
    assert in_blackout(s, utc(2027, 12, 26, 22, 59, 59)) is not None
    assert in_blackout(s, utc(2027, 12, 26, 23, 0)) is None  # Mon 27 Dec, 00:00 CET
    assert in_blackout(s, utc(2027, 12, 23, 22, 59, 59)) is None  # Thu 23 Dec, 23:59:59 CET
    assert in_blackout(s, utc(2027, 12, 23, 23, 0)).name == "christmas"  # Fri 24 Dec, 00:00 CET
    with pytest.raises(UsageError):
        in_blackout(s, datetime(2027, 12, 24, 12))  # a moment without a zone


def test_moment_blackouts_include_from_and_exclude_to() -> None:
    """Date-times without an offset are read in the schedule's zone (New York, EST in December)."""
    s = schedule("0 10 * * *", "America/New_York", blackouts=[
        {"dates": {"from": "2027-12-06T10:00", "to": "2027-12-08T10:00"}}])
    got = upcoming(s, utc(2027, 12, 5), 4)
    assert [(o.at.day, o.status) for o in got] == [(5, "run"), (6, "blackout"), (7, "blackout"), (8, "run"),
                                                   (9, "run"), (10, "run")]
    assert in_blackout(s, utc(2027, 12, 6, 14, 59, 59)) is None  # 09:59:59 EST
    assert in_blackout(s, utc(2027, 12, 6, 15, 0)) is not None


def test_weekly_windows_cover_their_hours_on_their_days_only() -> None:
    """Tuesdays 09:00-12:00 Berlin time are off limits: the Tuesday run at 10:00 is skipped, Thursday's is not."""
    s = schedule("0 10 * * 2,4", "Europe/Berlin", blackouts=[
        {"name": "change board", "weekly": {"days": ["tue"], "from": "09:00", "to": "12:00"}}])
    got = upcoming(s, utc(2027, 6, 1), 2)  # Tue 1 June 2027
    assert [(o.at.date().isoformat(), o.status, o.reason) for o in got] == [
        ("2027-06-01", "blackout", "change board"),
        ("2027-06-03", "run", None),
        ("2027-06-08", "blackout", "change board"),
        ("2027-06-10", "run", None),
    ]
    assert in_blackout(s, utc(2027, 6, 1, 6, 59, 59)) is None  # 08:59:59 CEST
    assert in_blackout(s, utc(2027, 6, 1, 9, 59, 59)) is not None  # 11:59:59 CEST
    assert in_blackout(s, utc(2027, 6, 1, 10, 0)) is None  # 12:00 CEST: 'to' excluded


def test_a_cron_that_never_leaves_its_blackouts_gives_up_and_says_so() -> None:
    s = schedule("0 * * * *", blackouts=[{"weekly": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}])
    found = scan(s, utc(2027, 1, 1), 3, max_scan=500)
    assert found.gave_up and found.scanned == 500 and found.runs == []
    assert len(found.occurrences) == 500 and {o.status for o in found.occurrences} == {"blackout"}
    assert not scan(schedule("0 * * * *"), utc(2027, 1, 1), 3).gave_up
    # A weekly cron in a weekly blackout: given up after ten years (522 Tuesdays), not 100000 weeks.
    tuesdays = scan(schedule("0 10 * * 2", blackouts=[{"weekly": {"days": ["tue"]}}]), utc(2027, 1, 1), 1)
    assert tuesdays.gave_up and tuesdays.scanned == 522
    assert tuesdays.occurrences[-1].cron_at == utc(2036, 12, 30, 10)


def test_counts_are_bounded() -> None:
    s = schedule("0 10 * * *")
    for count in (0, MAX_COUNT + 1):
        with pytest.raises(UsageError, match="count must be between 1 and 1000"):
            upcoming(s, utc(2027, 1, 1), count)
    with pytest.raises(UsageError, match="time zone"):
        upcoming(s, datetime(2027, 1, 1), 1)
    assert len(upcoming(s, utc(2027, 1, 1), MAX_COUNT)) == MAX_COUNT


# -- jitter -------------------------------------------------------------------------------


def test_jitter_is_deterministic_bounded_and_spread_by_seed() -> None:
    s = schedule("0 10 * * *", "Europe/Berlin", jitter="30m")
    first = upcoming(s, utc(2027, 1, 1), 40, seed="quarterly")
    again = upcoming(s, utc(2027, 1, 1), 40, seed="quarterly")
    other = upcoming(s, utc(2027, 1, 1), 40, seed="monthly")
    assert [o.at for o in first] == [o.at for o in again]
    delays = [(o.at - o.cron_at).total_seconds() for o in first]
    assert all(0 <= d < 1800 and d == int(d) for d in delays)
    assert len(set(delays)) > 30  # spread, not one fixed delay
    assert [o.at for o in first] != [o.at for o in other]
    assert [o.cron_at for o in first] == [o.cron_at for o in other]
    assert all(o.cron_at.strftime("%H:%M") == "10:00" for o in first)
    assert jitter_delay(s, first[0].cron_at, "quarterly") == first[0].at - first[0].cron_at


def test_no_jitter_runs_at_the_cron_time() -> None:
    got = upcoming(schedule("0 10 * * *"), utc(2027, 1, 1), 3, seed="anything")
    assert all(o.at == o.cron_at for o in got)
    assert jitter_delay(schedule("0 10 * * *", jitter="0.5s"), utc(2027, 1, 1), "x") == timedelta(0)


def test_blackouts_are_checked_at_the_jittered_start() -> None:
    """A blackout from 10:15: a run whose jitter carries it past 10:15 is skipped, one that starts before is not."""
    s = schedule("0 10 * * *", jitter="30m", blackouts=[{"weekly": {"days": list(
        ("mon", "tue", "wed", "thu", "fri", "sat", "sun")), "from": "10:15", "to": "11:00"}}])
    got = upcoming(s, utc(2027, 1, 1), 20, seed="x")
    assert {o.status for o in got} == {"run", "blackout"}
    for o in got:
        late = o.at - o.cron_at >= timedelta(minutes=15)
        assert (o.status == "blackout") == late


# -- intervals ----------------------------------------------------------------------------


@pytest.mark.parametrize(("cron", "tz", "seconds"), [
    ("0 10 * * 2", "UTC", 7 * 86400),
    ("0 10 * * 1,2", "UTC", 6 * 86400),  # the longest gap (Tue to Mon), so "overdue" means a run was missed
    ("*/15 * * * *", "UTC", 900),
    ("30 2 * * *", "Europe/Berlin", 86400),  # wall-clock gaps: a DST change does not shorten a day
    ("0 0 1 * *", "UTC", 31 * 86400),
    ("@daily", "UTC", 86400),
])
def test_interval_is_the_longest_gap_between_cron_times(cron: str, tz: str, seconds: int) -> None:
    assert interval_seconds(schedule(cron, tz)) == seconds

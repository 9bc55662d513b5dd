"""A game day's cron in the schedulers' terms, and the check that lets only its real slots through.

The dates of the quarterly game day's ``2#1`` are worked out by hand from a calendar; every
superset is checked against croniter's own reading of the real cron over two years, so no
real slot is ever lost by an export.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from dirt.gameday.cron import CronError, parse
from dirt.gameday.model import Schedule
from dirt.gameday.schedule import EARLY, cron_times, due

BERLIN = ZoneInfo("Europe/Berlin")
QUARTERLY = Schedule(cron="0 10 * 1,4,7,10 2#1", timezone="Europe/Berlin", jitter=600.0)
#: The first Tuesday of January, April, July and October, read off a calendar.
FIRST_TUESDAYS = ["2027-01-05", "2027-04-06", "2027-07-06", "2027-10-05",
                  "2028-01-04", "2028-04-04", "2028-07-04", "2028-10-03"]


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def test_the_quarterly_cron_names_exactly_the_first_tuesdays_at_ten_in_berlin() -> None:
    after = berlin("2027-01-01T00:00")
    times = []
    for moment in cron_times(QUARTERLY, after):
        if moment.year > 2028:
            break
        times.append(moment)
    assert [t.date().isoformat() for t in times] == FIRST_TUESDAYS
    assert {(t.hour, t.minute) for t in times} == {(10, 0)}
    # 10:00 CET (winter, UTC+1) is 09:00 UTC; 10:00 CEST (summer, UTC+2, until the last Sunday of October) 08:00
    assert [t.astimezone(timezone.utc).hour for t in times[:4]] == [9, 8, 8, 8]


@pytest.mark.parametrize("day", FIRST_TUESDAYS)
def test_a_run_started_on_a_first_tuesday_is_due_within_jitter_and_starting_deadline(day: str) -> None:
    slot = due(QUARTERLY, berlin(f"{day}T10:00"), "quarterly-dirt")
    assert slot is not None and slot.cron_at == berlin(f"{day}T10:00")
    assert timedelta(0) <= slot.start - slot.cron_at < timedelta(minutes=10), "the jitter"
    assert slot.deadline - slot.start == timedelta(minutes=30), "starting_deadline's default"
    assert due(QUARTERLY, slot.deadline, "quarterly-dirt") == slot, "still in time at the deadline"
    assert due(QUARTERLY, slot.deadline + timedelta(seconds=1), "quarterly-dirt") is None, "too late"
    assert due(QUARTERLY, slot.cron_at - EARLY, "quarterly-dirt") == slot, "a scheduler's clock a minute ahead"
    assert due(QUARTERLY, slot.cron_at - EARLY - timedelta(seconds=1), "quarterly-dirt") is None


@pytest.mark.parametrize("moment", [
    "2027-01-12T10:00", "2027-01-19T10:05", "2027-01-26T10:00",  # the other Tuesdays of January
    "2027-04-13T10:00", "2027-07-27T10:00", "2027-10-12T10:01",  # ... of the other quarters' months
    "2027-02-02T10:00",  # a first Tuesday, but not of a quarter's month
    "2027-01-05T12:00", "2027-01-05T09:00",  # the right day, hours off
])
def test_a_run_started_at_any_other_time_is_not_a_scheduled_slot(moment: str) -> None:
    assert due(QUARTERLY, berlin(moment), "quarterly-dirt") is None


SPECIAL = ["0 10 * 1,4,7,10 2#1", "30 6 L * *", "0 18 * * L5", "0 9 15W * *", "0 9 1W * *", "0 9 31W * *",
           "0 0 1,L * *", "0 12 * * 1#2", "0 12 * * 5#5", "*/30 8-9 * 2,3 0#3"]


@pytest.mark.parametrize("cron", SPECIAL)
def test_every_real_slot_is_in_the_plain_superset_the_schedulers_get(cron: str) -> None:
    parsed = parse(cron)
    assert not parsed.exact and parsed.special
    plain = parsed.standard()
    assert croniter.is_valid(plain) and not any(c in plain.upper() for c in "#LW?")
    start = datetime(2027, 1, 1)
    real = croniter(cron, start)
    for _ in range(400):
        moment = real.get_next(datetime)
        if moment.year > 2028:
            break
        assert croniter.match(plain, moment), f"{cron}: {moment} is lost by {plain!r}"


def test_the_superset_of_first_tuesdays_is_every_tuesday_of_those_months_only() -> None:
    plain = parse("0 10 * 1,4,7,10 2#1").standard()
    fires = croniter(plain, datetime(2027, 1, 1))
    days = []
    while (moment := fires.get_next(datetime)).year == 2027:
        days.append(moment.date())
    assert all(d.weekday() == 1 and d.month in (1, 4, 7, 10) for d in days)
    assert len(days) == 16, "2027: four Tuesdays in each of January, April, July and October"


@pytest.mark.parametrize(("cron", "exact"), [
    ("0 10 * * 2", True), ("*/5 * * * *", True), ("0 0 1 * 1", True), ("@weekly", True),
    ("0 10 * * 2#1", False), ("0 10 L * *", False), ("0 10 15W * *", False), ("0 10 * * L1", False),
])
def test_plain_cron_is_exact_and_the_special_parts_are_named(cron: str, exact: bool) -> None:
    assert parse(cron).exact is exact


def test_a_cron_dirt_cannot_read_is_a_clear_error() -> None:
    for bad in ("0 10 * *", "0 10 * * 2 30", "61 * * * *", "@fortnightly"):
        with pytest.raises(CronError, match="five fields"):
            parse(bad)

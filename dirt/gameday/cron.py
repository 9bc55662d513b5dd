"""A game day's cron in the terms of each scheduler that starts it, and whether those terms are exact.

dirt reads five-field cron with croniter, which knows more than the schedulers a game
day is exported to: ``2#1`` (the first Tuesday), ``L5`` (the last Friday), ``L`` (the
last day of the month) and ``15W`` (the weekday nearest the 15th).  Kubernetes' cron
and GitHub's have none of them, and copying such a cron either fails (the API server:
"failed to parse int from 2#1") or, worse, loses the special part and runs on the
wrong days.  So each export asks this module:

- ``Cron.standard()``: a plain cron (numbers, lists and ranges only) that fires at
  *every* time the real cron fires, and maybe more (a *superset*); ``exact`` says
  whether it is more.  ``2#1`` becomes ``2`` (every Tuesday: four or five a month,
  fewer than the seven days 1-7 would be), ``L`` becomes ``28-31``, ``15W`` becomes
  ``13-17``.
- ``Cron.on_calendar(zone)``: systemd ``OnCalendar=`` values.  systemd ANDs a weekday
  with a date and knows the last days of a month (``~``), so ``#`` and ``L`` are
  exact there (``Tue *-*-01..07``, ``Fri *-*~07/1``); only ``W`` is a superset.

Where a scheduler's terms are a superset, the job it starts runs ``dirt gameday run
--trigger schedule``, which lets through only the real slots (``dirt.gameday.schedule.
due``) and says "not a scheduled slot" otherwise.  Seconds (six fields) and ``CRON_TZ``
prefixes are refused by the loader: dirt reads five fields, in ``schedule.timezone``.

Days are the union of *day rules*, each an AND of a weekday set and a day set, as cron
has it: the day-of-month and the day-of-week fields are ORed when both are restricted
(Vixie cron, robfig/cron in Kubernetes, croniter), ANDed when either is ``*``.
"""

from __future__ import annotations

from dataclasses import dataclass

from croniter import croniter

#: croniter's nicknames, as the five fields they stand for (Kubernetes knows the same ones).
NICKNAMES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
             "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
WEEKDAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
MONDAY_TO_FRIDAY = (1, 2, 3, 4, 5)


class CronError(ValueError):
    """A cron expression dirt cannot read (the loader reports these with file and line)."""


@dataclass(frozen=True)
class DayRule:
    """Days a cron fires on: a weekday in ``weekdays`` AND a day in ``days`` (None: any).

    ``last`` counts days back from the month's end instead of ``days``: 1 is the last day,
    7 the last seven (so with one weekday, the last such weekday of the month).
    ``standard``: plain cron can say this rule exactly; ``in_weekdays``: its superset in
    plain cron keeps the weekdays (and drops the days), else it keeps the days.
    ``systemd``: systemd can say it exactly.
    """

    weekdays: tuple[int, ...] | None = None  # 0 = Sunday
    days: tuple[int, ...] | None = None
    last: int = 0
    standard: bool = True
    in_weekdays: bool = False
    systemd: bool = True
    source: str = ""  # the cron token(s) it came from, for messages


@dataclass(frozen=True)
class Cron:
    """A five-field cron read into minutes, hours, months and day rules (their union)."""

    text: str
    minutes: tuple[int, ...] | None
    hours: tuple[int, ...] | None
    months: tuple[int, ...] | None
    rules: tuple[DayRule, ...]  # empty: every day

    @property
    def exact(self) -> bool:
        """Plain cron (Kubernetes, GitHub) says this cron exactly."""
        return all(rule.standard for rule in self.rules)

    @property
    def exact_in_systemd(self) -> bool:
        return all(rule.systemd for rule in self.rules)

    @property
    def special(self) -> list[str]:
        """The parts plain cron cannot say (``2#1``, ``L``, ``15W``), as written."""
        return [rule.source for rule in self.rules if not rule.standard]

    def standard(self) -> str:
        """A plain five-field cron firing at every time this one fires (and more, unless ``exact``)."""
        minutes, hours, days, months, weekdays = self.standard_fields()
        return " ".join((_plain(minutes, 60), _plain(hours, 24), _plain(days, 31, start=1),
                         _plain(months, 12, start=1), _plain(weekdays, 7)))

    def standard_fields(self) -> tuple[tuple[int, ...] | None, ...]:
        """``standard()``'s five fields (minute, hour, day of month, month, day of week; None: '*')."""
        days: set[int] = set()
        weekdays: set[int] = set()
        for rule in self.rules:
            if rule.standard:
                if rule.days is not None:
                    days.update(rule.days)
                elif rule.weekdays is not None:
                    weekdays.update(rule.weekdays)
            elif rule.in_weekdays and rule.weekdays is not None:
                weekdays.update(rule.weekdays)
            elif rule.last:  # the last days of the shortest month, and of every longer one
                days.update(range(29 - rule.last, 32))
            elif rule.days is not None:
                days.update(rule.days)
        # A field that covers everything reads as '*', and '*' turns cron's OR of the two day
        # fields into an AND: then the other field would narrow the days.  Say "every day".
        if len(days) == 31 or len(weekdays) == 7 or (not days and not weekdays):
            days, weekdays = set(), set()
        return (self.minutes, self.hours, tuple(sorted(days)) or None, self.months, tuple(sorted(weekdays)) or None)

    def on_calendar(self, zone: str) -> list[str]:
        """systemd ``OnCalendar=`` values (one per group of day rules), in ``zone``."""
        clock = f"{compact(self.hours, range(24), '..', 2)}:{compact(self.minutes, range(60), '..', 2)}:00 {zone}"
        months = compact(self.months, range(1, 13), "..", 2)
        if not self.rules:
            return [f"*-{months}-* {clock}"]
        values: list[str] = []
        for rule in _merged(self.rules):
            weekday = ",".join(WEEKDAY_NAMES[d] for d in rule.weekdays) + " " if rule.weekdays else ""
            if rule.last:
                date = f"*-{months}~{rule.last:02d}" + ("/1" if rule.last > 1 else "")
            else:
                date = f"*-{months}-{compact(list(rule.days) if rule.days else None, range(1, 32), '..', 2)}"
            value = f"{weekday}{date} {clock}"
            if value not in values:
                values.append(value)
        return values


def parse(text: str) -> Cron:
    """Read a five-field cron (or a nickname) as croniter does; ``CronError`` when it cannot be read."""
    expression = NICKNAMES.get(text.strip().lower(), text.strip())
    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(expression):
        raise CronError(f"cron {text!r}: expected five fields (minute hour day-of-month month day-of-week)")
    reader = croniter(expression)
    expanded = reader.expanded
    nth: dict[int, set[int | str]] = reader.nth_weekday_of_month
    nearest: set[int] = set(getattr(reader, "nearest_weekday", set()) or set())

    dom_rules: list[DayRule] = []
    dom = expanded[2]
    if dom != ["*"]:
        plain = sorted(d for d in dom if isinstance(d, int) and d not in nearest)
        if plain:
            dom_rules.append(DayRule(days=tuple(plain), source=fields[2]))
        if any(str(d).lower() == "l" for d in dom):
            dom_rules.append(DayRule(last=1, standard=False, source="L"))
        for day in sorted(nearest):
            # the weekday nearest ``day`` (croniter: a day past the month's end is its last day,
            # and a Saturday on the 1st or a Sunday on the last day moves the other way): within
            # two days of it, or of the 28th-31st for days past 28
            low, high = max(1, min(day, 28) - 2), min(31, day + 2)
            dom_rules.append(DayRule(weekdays=MONDAY_TO_FRIDAY, days=tuple(range(low, high + 1)), standard=False,
                                     systemd=False, source=f"{day}W"))

    dow_rules: list[DayRule] = []
    dow = expanded[4]
    if dow != ["*"]:
        plain_days = sorted({int(d) % 7 for d in dow if isinstance(d, int) and d not in nth})
        if plain_days:
            dow_rules.append(DayRule(weekdays=tuple(plain_days), source=fields[4]))
        by_week: dict[int | str, set[int]] = {}
        for weekday, which in nth.items():
            for n in which:
                by_week.setdefault(n, set()).add(int(weekday) % 7)
        for n, weekdays in sorted(by_week.items(), key=lambda item: str(item[0])):
            ordered = tuple(sorted(weekdays))
            if str(n).lower() == "l":  # the last such weekday: within the month's last seven days
                dow_rules.append(DayRule(weekdays=ordered, last=7, standard=False, in_weekdays=True,
                                         source=",".join(f"L{d}" for d in ordered)))
            else:  # the n-th such weekday: within days 7n-6 .. 7n
                week = int(n)
                dow_rules.append(DayRule(weekdays=ordered, days=tuple(range(7 * week - 6, 7 * week + 1)),
                                         standard=False, in_weekdays=True,
                                         source=",".join(f"{d}#{week}" for d in ordered)))
    if dom == ["*"]:
        rules = dow_rules
    elif dow == ["*"]:
        rules = dom_rules
    else:
        rules = dom_rules + dow_rules  # cron ORs the two day fields
    return Cron(text=text, minutes=_values(expanded[0]), hours=_values(expanded[1]),
                months=_values(expanded[3]), rules=tuple(rules))


def _values(field: list[int | str]) -> tuple[int, ...] | None:
    return None if field == ["*"] else tuple(sorted({int(v) for v in field}))


def _merged(rules: tuple[DayRule, ...]) -> list[DayRule]:
    """Rules with the same weekdays and plain days joined (systemd lists them in one value)."""
    out: list[DayRule] = []
    for rule in rules:
        plain = rule.weekdays is None and rule.days is not None
        joined = next((i for i, kept in enumerate(out)
                       if plain and kept.weekdays is None and kept.days is not None), None)
        if joined is None:
            out.append(rule)
        else:
            kept = out[joined]
            assert kept.days is not None and rule.days is not None
            out[joined] = DayRule(days=tuple(sorted({*kept.days, *rule.days})), source=f"{kept.source},{rule.source}")
    return out


def _plain(values: list[int] | tuple[int, ...] | None, size: int, *, start: int = 0) -> str:
    return compact(list(values) if values is not None else None, range(start, start + size))


def compact(values: list[int] | tuple[int, ...] | None, full: range, dash: str = "-", width: int = 1) -> str:
    """'*' for every value, else lists with consecutive runs as ranges: [1,2,3,5] -> '1-3,5'."""
    if values is None or set(values) >= set(full):
        return "*"
    ordered = sorted(set(values))
    parts: list[str] = []
    begin = prev = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(f"{begin:0{width}d}" if begin == prev else f"{begin:0{width}d}{dash}{prev:0{width}d}")
        if value is not None:
            begin = prev = value
    return ",".join(parts)


__all__ = ["NICKNAMES", "CronError", "DayRule", "Cron", "parse", "compact"]

"""What the run history says: trends, regressions, resilience scores, overdue drills, unproven backups.

Pure functions of the records the store returns (and of a report dict for
``run_score``), so each number can be checked by hand.

Resilience score (0..100)
-------------------------
*Per run*: the weighted share of the run's expectations that passed::

    run score = 100 × Σ w(kind) · passed / Σ w(kind)

with the weights ``EXPECTATION_WEIGHTS``: detecting the disaster (``alert``),
getting the data back (a restore check: a ``check`` that compares objects with
the backup), recovering within the objective (``mttr``) and the recovery itself
(every ``recover`` and ``verify`` step passed, as one piece) weigh 3 each;
availability probes and the other checks 2; alert resolution, forbidden alerts
staying silent and recovery steps within their own deadline 1 each.  An
expectation that was never evaluated (the run died first) counts as failed.  A
run that left a fault in effect scores 0: the drill itself did damage.  A run
with no expectation at all scores 100 if it passed, else 0.

*Per scenario*: the mean score of its last ``WINDOW`` (5) runs, so one bad run
lowers it at once and five good runs restore it.

*Per game day*: the drills' scores weighted by each drill's ``weight``
(default 1); a skipped drill counts 0.

Compared with the others: Litmus' resilience score is Σ(experiment weight ×
probe success percentage) / Σ weights: every probe counts the same inside an
experiment, and the weight is chosen per experiment — dirt's game-day score is
the same idea one level up (drill weights), and inside a run dirt weights the
kinds of evidence by what a disaster-recovery drill is for (detected, data
back, recovered in time) instead of treating every probe alike.  Krkn's score
starts from 100 and subtracts per failed SLO by its severity (critical counts
more than warning): a deduction model with no notion of what passed; dirt's is
a weighted pass share, so a scenario with many checks is not punished more for
one failure than a scenario with few, and a fault left in effect (Krkn has no
such notion) zeroes the run.

Regressions
-----------
For the latest run of each scenario, every alert's MTTD and the MTTR are
flagged when: the alert never fired or the run never recovered; the value is
beyond its objective; or it is worse than the median of the previous
``WINDOW`` runs by more than ``MARGIN_RATIO`` (1.5×) *and* ``MARGIN_SECONDS``
(5 s) — both, so that 1 s → 2 s (jitter of the scrape interval) is not a
regression and 100 s → 106 s is not either.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from dirt.history.records import BackupTally, DrillRecord, GameDayRecord, HistorySummary, RunRecord

#: Weights of the kinds of expectation in a run's score.
EXPECTATION_WEIGHTS: dict[str, float] = {
    "alert": 3.0, "restore": 3.0, "mttr": 3.0, "recovery": 3.0,
    "availability": 2.0, "check": 2.0,
    "alert_resolution": 1.0, "silent": 1.0, "step": 1.0,
}
#: The sections whose steps are the recovery (their passing is one piece of evidence).
RECOVERY_SECTIONS = ("recover", "verify")
WINDOW = 5
MARGIN_RATIO = 1.5
MARGIN_SECONDS = 5.0


def _kind(expectation: Mapping[str, Any]) -> str:
    kind = str(expectation.get("kind") or "check")
    if kind == "check" and "objects_missing" in (expectation.get("data") or {}):
        return "restore"
    return kind


def run_score(report_or_record: Mapping[str, Any] | RunRecord) -> float:
    """A run's resilience score, 0..100 (formula in the module docstring)."""
    if isinstance(report_or_record, RunRecord):
        return report_or_record.score if report_or_record.score is not None else 0.0
    report = report_or_record
    if report.get("still_in_effect"):
        return 0.0
    total = earned = 0.0
    for expectation in report.get("expectations") or []:
        weight = EXPECTATION_WEIGHTS.get(_kind(expectation), 1.0)
        total += weight
        earned += weight if expectation.get("passed") is True else 0.0
    recovery = [s for s in report.get("steps") or [] if s.get("section") in RECOVERY_SECTIONS]
    if recovery:  # the recovery itself, as written: every recover/verify step passed
        total += EXPECTATION_WEIGHTS["recovery"]
        earned += EXPECTATION_WEIGHTS["recovery"] if all(s.get("status") == "passed" for s in recovery) else 0.0
    if total == 0:
        return 100.0 if report.get("verdict") == "passed" else 0.0
    return round(100.0 * earned / total, 1)


def _latest_first(runs: Iterable[RunRecord]) -> list[RunRecord]:
    return sorted(runs, key=lambda r: (r.started_at or datetime.min.replace(tzinfo=timezone.utc), r.run_id),
                  reverse=True)


def by_scenario(runs: Iterable[RunRecord]) -> dict[str, list[RunRecord]]:
    """Runs grouped by scenario, each group newest first."""
    groups: dict[str, list[RunRecord]] = {}
    for run in _latest_first(runs):
        groups.setdefault(run.scenario, []).append(run)
    return groups


def scenario_scores(runs: Iterable[RunRecord], window: int = WINDOW) -> dict[str, float]:
    """Each scenario's score: the mean of its last ``window`` runs' scores."""
    return {name: round(statistics.fmean(run_score(r) for r in group[:window]), 1)
            for name, group in by_scenario(runs).items()}


def gameday_score(drills: Sequence[DrillRecord | Mapping[str, Any]]) -> float | None:
    """A game day's score: its drills' scores weighted by their weight; a skipped drill counts 0."""
    total = earned = 0.0
    for drill in drills:
        fields = drill if isinstance(drill, Mapping) else vars(drill)
        weight = float(fields.get("weight") if fields.get("weight") is not None else 1.0)
        score = fields.get("score") if fields.get("run_id") is not None else None
        total += weight
        earned += weight * float(score or 0.0)
    return round(earned / total, 1) if total else None


@dataclass(frozen=True)
class TrendPoint:
    at: datetime | None
    run_id: str
    value: float | None


@dataclass(frozen=True)
class Trend:
    """One scenario's MTTR and per-alert MTTD over time, oldest first."""

    scenario: str
    mttr: tuple[TrendPoint, ...]
    mttd: dict[str, tuple[TrendPoint, ...]]


def trends(runs: Iterable[RunRecord]) -> list[Trend]:
    result = []
    for name, group in sorted(by_scenario(runs).items()):
        ordered = list(reversed(group))
        alerts = sorted({a.alert for r in ordered for a in r.alerts})
        result.append(Trend(
            scenario=name,
            mttr=tuple(TrendPoint(r.started_at, r.run_id, r.mttr) for r in ordered),
            mttd={alert: tuple(TrendPoint(r.started_at, r.run_id, a.mttd)
                               for r in ordered if (a := r.alert(alert)) is not None)
                  for alert in alerts},
        ))
    return result


@dataclass(frozen=True)
class Regression:
    scenario: str
    run_id: str
    metric: str  # "mttr" or "mttd:<alert>"
    value: float | None
    objective: float | None
    median: float | None  # of the previous runs
    reason: str


def _judge(scenario: str, run_id: str, metric: str, value: float | None, objective: float | None,
           previous: list[float], *, missing: str | None) -> Regression | None:
    median = statistics.median(previous) if previous else None
    if value is None:
        return Regression(scenario, run_id, metric, None, objective, median, missing) if missing else None
    if objective is not None and value > objective:
        return Regression(scenario, run_id, metric, value, objective, median,
                          f"{value:.1f}s is beyond its objective of {objective:.1f}s")
    if median is not None and value > MARGIN_RATIO * median and value - median > MARGIN_SECONDS:
        return Regression(scenario, run_id, metric, value, objective, median,
                          f"{value:.1f}s is more than {MARGIN_RATIO:g}x and {MARGIN_SECONDS:g}s worse than the "
                          f"median {median:.1f}s of the previous {len(previous)} run(s)")
    return None


def regressions(runs: Iterable[RunRecord], window: int = WINDOW) -> list[Regression]:
    """What got worse in the latest run of each scenario (rules in the module docstring)."""
    found: list[Regression] = []
    for name, group in sorted(by_scenario(runs).items()):
        latest, earlier = group[0], group[1:]
        for alert in latest.alerts:
            previous = [p.mttd for r in earlier if (p := r.alert(alert.alert)) is not None and p.mttd is not None]
            regression = _judge(name, latest.run_id, f"mttd:{alert.alert}", alert.mttd, alert.objective,
                                previous[:window], missing="the alert never fired")
            if regression:
                found.append(regression)
        previous = [r.mttr for r in earlier if r.mttr is not None]
        regression = _judge(name, latest.run_id, "mttr", latest.mttr, latest.mttr_objective, previous[:window],
                            missing=None if latest.passed else "the run never recovered")
        if regression:
            found.append(regression)
    return found


@dataclass(frozen=True)
class Overdue:
    scenario: str
    interval: float  # seconds
    last_passed: datetime | None
    overdue_seconds: float | None  # None: never passed


def last_passed(runs: Iterable[RunRecord]) -> dict[str, datetime]:
    """Each scenario's newest passed run: when it started (the store computes it in SQL)."""
    last: dict[str, datetime] = {}
    for run in runs:
        if run.passed and run.started_at is not None:
            last[run.scenario] = max(last.get(run.scenario, run.started_at), run.started_at)
    return last


def overdue(runs: Iterable[RunRecord], intervals: Mapping[str, float], now: datetime) -> list[Overdue]:
    """Scenarios with an expected interval (from their game days' schedules) not passed within it."""
    return overdue_after(last_passed(runs), intervals, now)


def overdue_after(last: Mapping[str, datetime], intervals: Mapping[str, float], now: datetime) -> list[Overdue]:
    """``overdue`` from each scenario's last pass (``last_passed``, or the store's)."""
    result = []
    for scenario, interval in sorted(intervals.items()):
        when = last.get(scenario)
        if when is None:
            result.append(Overdue(scenario, interval, None, None))
        elif (late := (now - when).total_seconds() - interval) > 0:
            result.append(Overdue(scenario, interval, when, round(late, 3)))
    return result


@dataclass(frozen=True)
class UnprovenBackup:
    scenario: str
    backup: str
    taken: int
    last_taken: datetime | None


def backup_tallies(runs: Iterable[RunRecord]) -> tuple[BackupTally, ...]:
    """Every backup (per scenario, by name) over ``runs``: as the store's aggregates compute it in SQL."""
    seen: dict[tuple[str, str], list[tuple[RunRecord, Any]]] = {}
    for run in _latest_first(runs):
        for backup in run.backups:
            seen.setdefault((run.scenario, backup.name), []).append((run, backup))
    return tuple(BackupTally(
        scenario, name, len(taken), taken[0][0].started_at, taken[0][1].rpo,
        max((r.started_at for r, b in taken if b.proven and r.started_at is not None), default=None))
        for (scenario, name), taken in sorted(seen.items()))


def unproven_backups(runs: Iterable[RunRecord]) -> list[UnprovenBackup]:
    """Backups (per scenario, by name) taken but never restored and verified in any run."""
    return unproven(backup_tallies(runs))


def unproven(tallies: Iterable[BackupTally]) -> list[UnprovenBackup]:
    """``unproven_backups`` from the tallies (``backup_tallies``, or the store's)."""
    return [UnprovenBackup(t.scenario, t.backup, t.taken, t.last_taken)
            for t in sorted(tallies, key=lambda t: (t.scenario, t.backup)) if t.last_proven is None]


def summary_of(runs: Sequence[RunRecord], gamedays: Sequence[GameDayRecord] = (), *, limit: int | None = None,
               per_scenario: int | None = None) -> HistorySummary:
    """The ``HistorySummary`` of records in hand, as ``HistoryStore.summary`` reads it from the store."""
    ordered = list(reversed(_latest_first(runs)))
    recent = {r.run_id for group in by_scenario(ordered).values() for r in group[:per_scenario]}
    days = sorted(gamedays, key=lambda d: (d.started_at or datetime.min.replace(tzinfo=timezone.utc), d.run_id))
    latest: dict[str, GameDayRecord] = {}
    for day in days:
        latest[day.name] = day
    return HistorySummary(
        total=len(ordered), runs=tuple(ordered[-limit:] if limit else ordered),
        recent=tuple(r for r in ordered if r.run_id in recent), last_passed=last_passed(ordered),
        backups=backup_tallies(ordered), gamedays=tuple(days[-limit:] if limit else days),
        latest_gamedays=tuple(sorted(latest.values(), key=lambda d: (d.started_at or datetime.min.replace(
            tzinfo=timezone.utc), d.run_id))), gamedays_total=len(days))


def gameday_scores(gamedays: Iterable[GameDayRecord]) -> dict[str, float | None]:
    """Each game day's latest score (by start time)."""
    latest: dict[str, GameDayRecord] = {}
    for day in gamedays:
        current = latest.get(day.name)
        if current is None or (day.started_at or datetime.min.replace(tzinfo=timezone.utc)) > (
                current.started_at or datetime.min.replace(tzinfo=timezone.utc)):
            latest[day.name] = day
    return {name: (day.score if day.score is not None else gameday_score(day.drills))
            for name, day in sorted(latest.items())}

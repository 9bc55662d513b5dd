"""What the run-history store gives back: frozen records, one per run and per game day.

Plain data, so that ``dirt.history.analysis`` (trends, regressions, scores) is a
pure function of them and can be tested with hand-made records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class AlertRecord:
    alert: str
    mttd: float | None  # None: never fired
    objective: float | None
    passed: bool | None


@dataclass(frozen=True)
class BackupRecord:
    name: str
    type: str | None
    rpo: float | None
    objects: int | None
    created_at: datetime | None
    restored: bool
    proven: bool  # restored, and every restore check of the run passed


@dataclass(frozen=True)
class StepRecord:
    section: str | None
    name: str | None
    driver: str | None
    seconds: float | None
    status: str | None


@dataclass(frozen=True)
class RestoreRecord:
    name: str | None
    passed: bool | None
    objects_expected: int | None
    objects_missing: int | None
    objects_changed: int | None


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    scenario: str
    verdict: str
    started_at: datetime | None
    ended_at: datetime | None = None
    duration: float | None = None
    mttr: float | None = None
    mttr_objective: float | None = None
    score: float | None = None
    scenario_path: str | None = None
    scenario_digest: str | None = None
    target: str | None = None
    provider: str | None = None
    gameday: str | None = None
    gameday_run_id: str | None = None
    schedule: str | None = None
    trigger: str = "manual"
    dirt_version: str | None = None
    alerts: tuple[AlertRecord, ...] = ()
    backups: tuple[BackupRecord, ...] = ()
    steps: tuple[StepRecord, ...] = ()
    restores: tuple[RestoreRecord, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def alert(self, name: str) -> AlertRecord | None:
        return next((a for a in self.alerts if a.alert == name), None)


@dataclass(frozen=True)
class DrillRecord:
    drill_id: str
    scenario: str | None
    run_id: str | None  # None: skipped
    verdict: str | None
    weight: float | None
    score: float | None


@dataclass(frozen=True)
class GameDayRecord:
    run_id: str
    name: str
    verdict: str
    started_at: datetime | None
    ended_at: datetime | None = None
    path: str | None = None
    digest: str | None = None
    score: float | None = None
    trigger: str = "manual"
    schedule: str | None = None
    approved_by: str | None = None
    drills: tuple[DrillRecord, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class BackupTally:
    """One backup (a scenario's, by name) over every recorded run: how often it was taken and proven."""

    scenario: str
    backup: str
    taken: int
    last_taken: datetime | None  # start of the newest run that took it
    last_rpo: float | None  # its age when that run used it
    last_proven: datetime | None  # start of the newest run that restored it and verified every object; None: never


@dataclass(frozen=True)
class HistorySummary:
    """What `dirt history` and its metrics read, bounded however long the history is.

    The analyses that look back a few runs (trends, regressions, scores) get each scenario's newest
    runs; those that need every run (the last pass, how often a backup was taken and whether one
    ever proved it) get the store's aggregates instead of the runs themselves."""

    total: int  # runs matching the filter
    runs: tuple[RunRecord, ...]  # the newest ``limit`` of them, oldest first
    recent: tuple[RunRecord, ...]  # each scenario's newest runs, oldest first
    last_passed: dict[str, datetime]  # scenario -> start of its newest passed run
    backups: tuple[BackupTally, ...]
    gamedays: tuple[GameDayRecord, ...]  # the newest ``limit`` game days, oldest first
    latest_gamedays: tuple[GameDayRecord, ...]  # the newest run of each game day, by name
    gamedays_total: int = 0

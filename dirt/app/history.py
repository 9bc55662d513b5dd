"""The run history as the CLI and the runner use it: which store, recording, the view, metrics.

Which store comes from dirt.yaml (``history:``, the password from the variable
``history_password_env`` names; a relative ``sqlite:///`` path is relative to
dirt.yaml's folder), else SQLite beside the reports.  Recording a finished run
never fails the drill: a store that cannot be written is one warning on stderr.
Overdue drills are judged against the game days' schedules (``gamedays/*.yaml``
beside dirt.yaml): each scenario a scheduled game day runs is expected to pass
once per interval of that schedule.  Metrics are exposed in the OpenMetrics
text format (a textfile for node-exporter's textfile collector) or pushed to a
Prometheus Pushgateway (``PUT <url>/metrics/job/dirt``), built with
prometheus_client.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dirt.config import LoadedConfig
from dirt.core.durations import format_duration
from dirt.core.errors import HistoryError, UsageError
from dirt.history import HistoryStore, HistorySummary, analysis, open_store


@dataclass(frozen=True)
class Recording:
    """Where a run is recorded, and what started it (a game day, its schedule, a person)."""

    url: str | None = None
    password_env: str | None = None
    root: Path | None = None  # dirt.yaml's folder: relative SQLite paths start there
    gameday: str | None = None
    gameday_run_id: str | None = None
    schedule: str | None = None
    trigger: str = "manual"

    def started_by(self, *, gameday: str | None = None, gameday_run_id: str | None = None,
                   schedule: str | None = None, trigger: str = "manual") -> Recording:
        return replace(self, gameday=gameday, gameday_run_id=gameday_run_id, schedule=schedule, trigger=trigger)


def recording(loaded: LoadedConfig) -> Recording:
    """The store dirt.yaml names (or the default), for runs started by hand."""
    return Recording(loaded.config.history, loaded.config.history_password_env, loaded.root)


def open_history(where: Recording | LoadedConfig, reports_dir: Path) -> HistoryStore:
    """Open the store; ``HistoryError`` when it cannot be (its password's variable unset, say)."""
    rec = recording(where) if isinstance(where, LoadedConfig) else where
    password = None
    if rec.password_env:
        password = os.environ.get(rec.password_env)
        if password is None:
            raise HistoryError(f"history: environment variable {rec.password_env} (history_password_env) is not set")
    url = rec.url
    if url and url.startswith("sqlite:///") and rec.root is not None:
        path = url[len("sqlite:///"):]
        if path and not Path(path).is_absolute():
            url = f"sqlite:///{rec.root / path}"
    return open_store(url, reports_dir, password=password)


def record_run(report: Mapping[str, Any], reports_dir: Path, rec: Recording | None,
               warn: Callable[[str], None] | None = None) -> bool:
    """Record a finished run; a failure is a warning (the drill's verdict stands). True when recorded."""
    warn = warn or (lambda message: print(message, file=sys.stderr))
    rec = rec or Recording()
    try:
        with open_history(rec, reports_dir) as store:
            store.record_run(report, gameday=rec.gameday, gameday_run_id=rec.gameday_run_id,
                             schedule=rec.schedule, trigger=rec.trigger)
        return True
    except HistoryError as exc:
        warn(f"dirt: warning: run {report.get('run_id')} not recorded in the history: {exc}")
    except Exception as exc:  # noqa: BLE001 - the history must never fail a drill that ran
        warn(f"dirt: warning: run {report.get('run_id')} not recorded in the history: {type(exc).__name__}: {exc}")
    return False


# -- overdue drills: expected intervals from the game days' schedules ---------------------------------

def scheduled_intervals(root: Path) -> dict[str, float]:
    """Scenario name -> expected seconds between passes, from ``<root>/gamedays/*.yaml``: a drill's own
    ``every``, else its game day's schedule interval (a game day with neither expects nothing).

    A game day that cannot be loaded is skipped here (``dirt gameday validate`` reports it);
    a scenario in several game days keeps the shortest interval."""
    from dirt.gameday import load_gameday
    from dirt.gameday.schedule import interval_seconds

    folder = root / "gamedays"
    if not folder.is_dir():
        return {}
    intervals: dict[str, float] = {}
    for path in sorted(folder.glob("*.y*ml")):
        try:
            day = load_gameday(path)
            schedule = day.document.schedule
            every = float(interval_seconds(schedule)) if schedule is not None else None
        except Exception:  # noqa: BLE001 - a broken game day is validate's business, not history's
            continue
        for entry in day.drills:
            expected = entry.every or every
            name = _scenario_name(day.drill_paths[entry.id]) if expected else None
            if name and expected:
                intervals[name] = min(expected, intervals.get(name, expected))
    return intervals


def overdue_marks(rec: Recording, reports_dir: Path, root: Path) -> dict[str, str]:
    """Scenario -> why it is overdue, for the dashboard (``reports/index.html``); {} when the history
    cannot be read (the dashboard is drawn without the marks, never fails a run)."""
    intervals = scheduled_intervals(root)
    if not intervals:
        return {}
    try:
        with open_history(rec, reports_dir) as store:
            last = store.last_passed()
    except Exception:  # noqa: BLE001 - the marks are an extra; the run and its report stand
        return {}
    marks = {}
    for late in analysis.overdue_after(last, intervals, datetime.now(timezone.utc)):
        expected = format_duration(late.interval)
        marks[late.scenario] = (f"never passed (expected every {expected})" if late.last_passed is None else
                                f"last passed {_iso(late.last_passed)}, expected every {expected}")
    return marks


def _scenario_name(path: Path) -> str | None:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return str(data["metadata"]["name"])
    except Exception:  # noqa: BLE001 - an unreadable drill file has no name to expect
        return None


# -- the view of `dirt history` ---------------------------------------------------------------------

def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def history_view(summary: HistorySummary, intervals: Mapping[str, float], now: datetime) -> dict[str, Any]:
    """Everything `dirt history` shows, as JSON-ready data: the runs and game days ``summary`` holds
    (the newest ones), trends over each scenario's newest runs, and every verdict that needs the whole
    history (overdue drills, unproven backups) from the store's aggregates."""
    recent = list(summary.recent)
    return {
        "runs_total": summary.total,
        "runs": [{"run_id": r.run_id, "scenario": r.scenario, "verdict": r.verdict, "started_at": _iso(r.started_at),
                  "duration": r.duration, "mttr": r.mttr, "score": r.score, "target": r.target,
                  "gameday": r.gameday, "gameday_run_id": r.gameday_run_id, "trigger": r.trigger,
                  "mttd": {a.alert: a.mttd for a in r.alerts},
                  "rpo": {b.name: b.rpo for b in r.backups}} for r in summary.runs],
        "trends": [{"scenario": t.scenario,
                    "mttr": [{"at": _iso(p.at), "run_id": p.run_id, "seconds": p.value} for p in t.mttr],
                    "mttd": {alert: [{"at": _iso(p.at), "run_id": p.run_id, "seconds": p.value} for p in points]
                             for alert, points in t.mttd.items()}} for t in analysis.trends(recent)],
        "regressions": [vars(r) for r in analysis.regressions(recent)],
        "scores": {"scenarios": analysis.scenario_scores(recent),
                   "gamedays": analysis.gameday_scores(summary.latest_gamedays)},
        "overdue": [{"scenario": o.scenario, "interval_seconds": o.interval, "last_passed": _iso(o.last_passed),
                     "overdue_seconds": o.overdue_seconds}
                    for o in analysis.overdue_after(summary.last_passed, intervals, now)],
        "unproven_backups": [{"scenario": u.scenario, "backup": u.backup, "taken": u.taken,
                              "last_taken": _iso(u.last_taken)} for u in analysis.unproven(summary.backups)],
        "gamedays_total": summary.gamedays_total,
        "gamedays": [{"run_id": g.run_id, "name": g.name, "verdict": g.verdict, "started_at": _iso(g.started_at),
                      "score": g.score, "trigger": g.trigger, "approved_by": g.approved_by,
                      "drills": [vars(d) for d in g.drills]} for g in summary.gamedays],
    }


# -- metrics ------------------------------------------------------------------------------------------

#: Every metric `dirt history export` writes, with its labels and help (the Grafana dashboard and alert
#: rules use only these; the docs' reference is generated from this table).
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "dirt_last_run_timestamp_seconds": (("scenario",), "When the scenario's latest drill started (Unix time)."),
    "dirt_last_run_success": (("scenario",), "1 if the scenario's latest drill passed, else 0."),
    "dirt_alert_mttd_seconds": (("scenario", "alert"), "Time to detect: from the fault to the alert firing, in "
                                "the latest drill (absent when it never fired)."),
    "dirt_alert_detected": (("scenario", "alert"), "1 if the alert fired in the scenario's latest drill, else 0."),
    "dirt_mttr_seconds": (("scenario",), "Time to recover in the scenario's latest drill (absent when it never "
                          "recovered)."),
    "dirt_backup_age_seconds": (("scenario", "backup"), "Age of the backup when the scenario's latest drill used "
                                "it (its RPO)."),
    "dirt_backup_last_proven_restore_timestamp_seconds": (("scenario", "backup"), "When a drill last restored "
                                                          "this backup and verified every object (Unix time; 0: "
                                                          "never)."),
    "dirt_scenario_score": (("scenario",), "Resilience score of the scenario (0..100, mean of its last 5 drills)."),
    "dirt_gameday_score": (("gameday",), "Resilience score of the game day's latest run (0..100)."),
    "dirt_drill_overdue": (("scenario",), "1 if the scenario has not passed within its game day's schedule "
                           "interval, else 0."),
}


class _Collector:
    """The history's latest values as metric families (collected once per exposition)."""

    def __init__(self, summary: HistorySummary, intervals: Mapping[str, float], now: datetime) -> None:
        self.summary, self.intervals, self.now = summary, intervals, now

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        def gauge(name: str) -> GaugeMetricFamily:
            labels, text = METRICS[name]
            return GaugeMetricFamily(name, text, labels=list(labels))

        last_ts, success = gauge("dirt_last_run_timestamp_seconds"), gauge("dirt_last_run_success")
        mttd, detected = gauge("dirt_alert_mttd_seconds"), gauge("dirt_alert_detected")
        mttr = gauge("dirt_mttr_seconds")
        age = gauge("dirt_backup_age_seconds")
        proven = gauge("dirt_backup_last_proven_restore_timestamp_seconds")
        groups = analysis.by_scenario(self.summary.recent)
        for name, group in sorted(groups.items()):
            latest = group[0]
            if latest.started_at is not None:
                last_ts.add_metric([name], latest.started_at.timestamp())
            success.add_metric([name], 1.0 if latest.passed else 0.0)
            for alert in latest.alerts:
                detected.add_metric([name, alert.alert], 0.0 if alert.mttd is None else 1.0)
                if alert.mttd is not None:
                    mttd.add_metric([name, alert.alert], alert.mttd)
            if latest.mttr is not None:
                mttr.add_metric([name], latest.mttr)
        for tally in self.summary.backups:  # over every run: a backup not taken lately still has its age
            if tally.last_rpo is not None:
                age.add_metric([tally.scenario, tally.backup], tally.last_rpo)
            proven.add_metric([tally.scenario, tally.backup],
                              tally.last_proven.timestamp() if tally.last_proven is not None else 0.0)
        scenario_score = gauge("dirt_scenario_score")
        for name, value in analysis.scenario_scores(self.summary.recent).items():
            scenario_score.add_metric([name], value)
        gameday_score = gauge("dirt_gameday_score")
        for name, day_score in analysis.gameday_scores(self.summary.latest_gamedays).items():
            if day_score is not None:
                gameday_score.add_metric([name], day_score)
        overdue = gauge("dirt_drill_overdue")
        late = {o.scenario for o in analysis.overdue_after(self.summary.last_passed, self.intervals, self.now)}
        for name in sorted(self.intervals):
            overdue.add_metric([name], 1.0 if name in late else 0.0)
        yield from (last_ts, success, mttd, detected, mttr, age, proven, scenario_score, gameday_score, overdue)


def metrics_registry(summary: HistorySummary, intervals: Mapping[str, float], now: datetime) -> Any:
    """A prometheus_client registry holding the history's metrics."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(summary, intervals, now))  # type: ignore[arg-type]
    return registry


def openmetrics_text(registry: Any) -> str:
    from prometheus_client.openmetrics.exposition import generate_latest

    return generate_latest(registry).decode("utf-8")


def push(registry: Any, url: str, *, timeout: float = 10.0) -> None:
    """PUT the metrics to a Pushgateway as job ``dirt`` (replacing the job's previous ones)."""
    from urllib.parse import urlsplit

    from prometheus_client import push_to_gateway

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--pushgateway {url!r}: give the Pushgateway's http(s)://HOST:PORT URL")
    try:
        push_to_gateway(url, job="dirt", registry=registry, timeout=timeout)
    except OSError as exc:  # refused, unreachable, an HTTP error status (urllib's HTTPError is an OSError)
        reason = getattr(exc, "reason", None) or exc.strerror or exc
        raise HistoryError(f"--pushgateway {parts.scheme}://{parts.hostname}"
                           f"{':' + str(parts.port) if parts.port else ''}: cannot push: {reason}") from None


_AGO = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: an age (``30d``, ``12h``, ``2w``, ``90m``) or an ISO date/time (UTC unless it says)."""
    value = text.strip()
    if len(value) > 1 and value[:-1].isdigit() and value[-1] in _AGO:
        try:
            return now - timedelta(seconds=int(value[:-1]) * _AGO[value[-1]])
        except OverflowError:  # further back than datetime reaches: everything
            return datetime.min.replace(tzinfo=timezone.utc)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r}: write an age such as 30d, 12h or 2w, or an ISO date "
                         "such as 2026-01-31") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

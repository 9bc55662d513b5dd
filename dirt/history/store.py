"""The run-history store: every drill and game day, in SQLite or PostgreSQL.

``open_store(url, reports_dir)`` opens (and migrates) the store: with no URL an
embedded SQLite file beside the reports (``<reports>/history.sqlite``); with
``postgresql://user@host:port/db`` a server many runners share (CI jobs,
CronJobs in several clusters).  A run is recorded from its ``report.json``
dictionary, all of it in one transaction and idempotently per ``run_id`` (a
re-rendered report replaces its earlier record), so a runner killed half-way
never leaves half a run.  Every database failure becomes a ``HistoryError``
whose message names the store without its password.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from dirt.core.errors import HistoryError
from dirt.history import migrations
from dirt.history.analysis import run_score
from dirt.history.records import (
    AlertRecord,
    BackupRecord,
    DrillRecord,
    GameDayRecord,
    RestoreRecord,
    RunRecord,
    StepRecord,
)
from dirt.history.tables import (
    RUN_CHILDREN,
    gameday_drills,
    gamedays,
    run_alerts,
    run_backups,
    run_restores,
    run_steps,
    runs,
)

DEFAULT_FILE = "history.sqlite"
#: URL schemes accepted, and the SQLAlchemy driver each one means.
SCHEMES = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
           "postgresql+psycopg": "postgresql+psycopg"}


def store_url(url: str | None, reports_dir: Path, *, password: str | None = None) -> URL:
    """The SQLAlchemy URL of a store: SQLite in the reports folder by default; psycopg 3 for PostgreSQL."""
    if url is None:
        return URL.create("sqlite", database=str(Path(reports_dir) / DEFAULT_FILE))
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise HistoryError(f"history: {url!r} is not a database URL (sqlite:///PATH or postgresql://...)") from None
    driver = SCHEMES.get(parsed.drivername)
    if driver is None:
        raise HistoryError(f"history: {parsed.drivername!r} is not supported (sqlite or postgresql)")
    parsed = parsed.set(drivername=driver)
    if password is not None:
        parsed = parsed.set(password=password)
    return parsed


def safe_name(url: URL) -> str:
    """The store as messages name it: never its password."""
    return url.render_as_string(hide_password=True)


def open_store(url: str | None, reports_dir: Path, *, password: str | None = None) -> HistoryStore:
    """Open the store (creating or upgrading its schema); ``HistoryError`` when it cannot be used."""
    target = store_url(url, reports_dir, password=password)
    kwargs: dict[str, Any] = {}
    if target.drivername == "sqlite":
        if target.database:
            Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}  # two drills finishing at once wait for each other's write
    else:
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = sa.create_engine(target, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise HistoryError(f"history store {safe_name(target)}: {_reason(exc)}") from None
    store = HistoryStore(engine, safe_name(target))
    try:
        with store._errors("open"):
            migrations.upgrade(engine)
    except HistoryError:
        engine.dispose()
        raise
    return store


def _reason(exc: BaseException) -> str:
    """One line about a database error, without SQL text or parameters (they may hold data)."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]


def _when(value: Any) -> datetime | None:
    """An ISO time from a report (``...Z``) as an aware UTC datetime."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes: they were stored in UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _mttr_objective(report: Mapping[str, Any]) -> float | None:
    return next((_num(x.get("objective_seconds")) for x in report.get("expectations") or []
                 if x.get("kind") == "mttr"), None)


def run_rows(report: Mapping[str, Any], *, gameday_run_id: str | None, gameday: str | None, schedule: str | None,
             trigger: str) -> tuple[dict[str, Any], dict[sa.Table, list[dict[str, Any]]]]:
    """A report.json as rows: the run, and its alerts, backups, steps and restore checks."""
    run_id = report.get("run_id")
    if not run_id:
        raise HistoryError("the report has no run_id: nothing to record")
    scenario = report.get("scenario") or {}
    target = report.get("target") or {}
    timings = report.get("timings") or {}
    row = {
        "run_id": run_id, "scenario": scenario.get("name") or "?", "scenario_path": scenario.get("path"),
        "scenario_digest": scenario.get("digest"), "target": target.get("name"), "provider": target.get("provider"),
        "verdict": report.get("verdict") or "aborted", "started_at": _when(report.get("started_at")),
        "ended_at": _when(report.get("ended_at")), "duration": _num(report.get("duration_seconds")),
        "mttr": _num(timings.get("mttr_seconds")), "mttr_objective": _mttr_objective(report),
        "score": run_score(report), "gameday": gameday, "gameday_run_id": gameday_run_id, "schedule": schedule,
        "trigger": trigger, "dirt_version": report.get("dirt_version"),
    }
    alerts = {}
    for x in report.get("expectations") or []:
        if x.get("kind") == "alert":
            name = x.get("alert") or x.get("name")
            alerts[name] = {"run_id": run_id, "alert": name, "mttd": _num(x.get("measured_seconds")),
                            "objective": _num(x.get("objective_seconds")), "passed": x.get("passed")}
    for name, mttd in (timings.get("mttd_seconds") or {}).items():  # a report without expectations (schema 1)
        alerts.setdefault(name, {"run_id": run_id, "alert": name, "mttd": _num(mttd), "objective": None,
                                 "passed": None})
    checks = report.get("restore_verification") or []
    verified = bool(checks) and all(c.get("passed") is True for c in checks)
    restored = {r.get("name") for r in report.get("restores") or []}
    backups: dict[str, dict[str, Any]] = {}
    for b in report.get("backups") or []:
        backups[b["name"]] = {"run_id": run_id, "name": b["name"], "type": b.get("type"),
                              "rpo": _num(b.get("age_seconds")), "objects": _int(b.get("objects")),
                              "created_at": _when(b.get("created_at")), "restored": b["name"] in restored,
                              "proven": b["name"] in restored and verified}
    steps = [{"run_id": run_id, "position": i, "section": s.get("section"), "name": s.get("name"),
              "driver": s.get("driver"), "seconds": _num(s.get("seconds")), "status": s.get("status")}
             for i, s in enumerate(report.get("steps") or [])]
    restores = [{"run_id": run_id, "position": i, "name": c.get("name"), "passed": c.get("passed"),
                 "objects_expected": _int(c.get("objects_expected")),
                 "objects_missing": _int(c.get("objects_missing")), "objects_changed": _int(c.get("objects_changed"))}
                for i, c in enumerate(checks)]
    return row, {run_alerts: list(alerts.values()), run_backups: list(backups.values()), run_steps: steps,
                 run_restores: restores}


class HistoryStore:
    """Recorded runs and game days; open it with ``open_store`` and ``close()`` it (or use ``with``)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise HistoryError(f"history store {self.name}: cannot {doing}: {_reason(exc)}") from None
        except OSError as exc:  # SQLite: the folder cannot be written
            raise HistoryError(f"history store {self.name}: cannot {doing}: {exc.strerror or exc}") from None

    def schema_version(self) -> int:
        with self._errors("read"), self.engine.connect() as conn:
            return migrations.current_version(conn)

    # -- writing ---------------------------------------------------------------------------------

    def record_run(self, report: Mapping[str, Any], *, gameday_run_id: str | None = None,
                   gameday: str | None = None, schedule: str | None = None, trigger: str = "manual") -> None:
        """Record one run from its report.json; recording the same run again replaces it."""
        row, children = run_rows(report, gameday_run_id=gameday_run_id, gameday=gameday, schedule=schedule,
                                 trigger=trigger)
        with self._errors(f"record run {row['run_id']}"), self.engine.begin() as conn:
            _delete_run(conn, row["run_id"])
            conn.execute(runs.insert().values(**row))
            for table, rows in children.items():
                if rows:
                    conn.execute(table.insert(), rows)

    def record_gameday(self, summary: Mapping[str, Any]) -> None:
        """Record one game day (and its drills) from its summary; again replaces it."""
        run_id = summary.get("run_id")
        if not run_id:
            raise HistoryError("the game-day summary has no run_id: nothing to record")
        row = {"run_id": run_id, "name": summary.get("name") or "?", "path": _str(summary.get("path")),
               "digest": summary.get("digest"), "started_at": _when(summary.get("started_at")),
               "ended_at": _when(summary.get("ended_at")), "verdict": summary.get("verdict") or "aborted",
               "score": _num(summary.get("score")), "trigger": summary.get("trigger") or "manual",
               "schedule": summary.get("schedule"), "approved_by": summary.get("approved_by")}
        drills = [{"gameday_run_id": run_id, "drill_id": str(d.get("id")), "position": i,
                   "scenario": d.get("scenario"), "run_id": d.get("run_id"), "verdict": d.get("verdict"),
                   "weight": _num(d.get("weight")), "score": _num(d.get("score"))}
                  for i, d in enumerate(summary.get("drills") or [])]
        with self._errors(f"record game day {run_id}"), self.engine.begin() as conn:
            conn.execute(gameday_drills.delete().where(gameday_drills.c.gameday_run_id == run_id))
            conn.execute(gamedays.delete().where(gamedays.c.run_id == run_id))
            conn.execute(gamedays.insert().values(**row))
            if drills:
                conn.execute(gameday_drills.insert(), drills)

    # -- reading ---------------------------------------------------------------------------------

    def runs(self, scenario: str | None = None, since: datetime | None = None) -> list[RunRecord]:
        """Recorded runs, oldest first; of one scenario and/or started at or after ``since``."""
        query = sa.select(runs)
        if scenario is not None:
            query = query.where(runs.c.scenario == scenario)
        if since is not None:
            query = query.where(runs.c.started_at >= _utc(since))
        query = query.order_by(runs.c.started_at.asc().nulls_first(), runs.c.run_id)  # same on both backends
        chosen = query.with_only_columns(runs.c.run_id).scalar_subquery()
        with self._errors("read runs"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            details = {table: _grouped(conn, table, table.c.run_id.in_(chosen)) for table in RUN_CHILDREN}
        return [_run_record(row, details) for row in rows]

    def gamedays(self, name: str | None = None, since: datetime | None = None) -> list[GameDayRecord]:
        """Recorded game days, oldest first."""
        query = sa.select(gamedays)
        if name is not None:
            query = query.where(gamedays.c.name == name)
        if since is not None:
            query = query.where(gamedays.c.started_at >= _utc(since))
        query = query.order_by(gamedays.c.started_at.asc().nulls_first(), gamedays.c.run_id)
        chosen = query.with_only_columns(gamedays.c.run_id).scalar_subquery()
        with self._errors("read game days"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            drills = _grouped(conn, gameday_drills, gameday_drills.c.gameday_run_id.in_(chosen),
                              key="gameday_run_id")
        return [GameDayRecord(
            run_id=r["run_id"], name=r["name"], verdict=r["verdict"], started_at=_aware(r["started_at"]),
            ended_at=_aware(r["ended_at"]), path=r["path"], digest=r["digest"], score=r["score"],
            trigger=r["trigger"], schedule=r["schedule"], approved_by=r["approved_by"],
            drills=tuple(DrillRecord(d["drill_id"], d["scenario"], d["run_id"], d["verdict"], d["weight"], d["score"])
                         for d in sorted(drills.get(r["run_id"], []), key=lambda d: d["position"])),
        ) for r in rows]


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _utc(moment: datetime) -> datetime:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    utc = aware.astimezone(timezone.utc)
    return utc


def _delete_run(conn: Connection, run_id: str) -> None:
    for table in RUN_CHILDREN:
        conn.execute(table.delete().where(table.c.run_id == run_id))
    conn.execute(runs.delete().where(runs.c.run_id == run_id))


def _grouped(conn: Connection, table: sa.Table, where: Any, key: str = "run_id") -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for row in conn.execute(sa.select(table).where(where)).mappings():
        grouped.setdefault(row[key], []).append(row)
    return grouped


def _run_record(row: Any, details: dict[sa.Table, dict[str, list[Any]]]) -> RunRecord:
    run_id = row["run_id"]

    def of(table: sa.Table) -> Sequence[Any]:
        rows = details[table].get(run_id, [])
        return sorted(rows, key=lambda r: r["position"]) if "position" in table.c else rows

    return RunRecord(
        run_id=run_id, scenario=row["scenario"], verdict=row["verdict"], started_at=_aware(row["started_at"]),
        ended_at=_aware(row["ended_at"]), duration=row["duration"], mttr=row["mttr"],
        mttr_objective=row["mttr_objective"], score=row["score"], scenario_path=row["scenario_path"],
        scenario_digest=row["scenario_digest"], target=row["target"], provider=row["provider"],
        gameday=row["gameday"], gameday_run_id=row["gameday_run_id"], schedule=row["schedule"],
        trigger=row["trigger"], dirt_version=row["dirt_version"],
        alerts=tuple(AlertRecord(a["alert"], a["mttd"], a["objective"], a["passed"])
                     for a in sorted(of(run_alerts), key=lambda a: a["alert"])),
        backups=tuple(BackupRecord(b["name"], b["type"], b["rpo"], b["objects"], _aware(b["created_at"]),
                                   bool(b["restored"]), bool(b["proven"]))
                      for b in sorted(of(run_backups), key=lambda b: b["name"])),
        steps=tuple(StepRecord(s["section"], s["name"], s["driver"], s["seconds"], s["status"])
                    for s in of(run_steps)),
        restores=tuple(RestoreRecord(r["name"], r["passed"], r["objects_expected"], r["objects_missing"],
                                     r["objects_changed"]) for r in of(run_restores)),
    )

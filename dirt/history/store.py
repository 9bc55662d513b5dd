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
    BackupTally,
    DrillRecord,
    GameDayRecord,
    HistorySummary,
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
        row, drills = gameday_rows(summary)
        run_id = row["run_id"]
        with self._errors(f"record game day {run_id}"), self.engine.begin() as conn:
            conn.execute(gameday_drills.delete().where(gameday_drills.c.gameday_run_id == run_id))
            conn.execute(gamedays.delete().where(gamedays.c.run_id == run_id))
            conn.execute(gamedays.insert().values(**row))
            if drills:
                conn.execute(gameday_drills.insert(), drills)

    # -- reading ---------------------------------------------------------------------------------

    def runs(self, scenario: str | None = None, since: datetime | None = None) -> list[RunRecord]:
        """Recorded runs, oldest first; of one scenario and/or started at or after ``since``."""
        with self._errors("read runs"), self.engine.connect() as conn:
            return _runs(conn, sa.select(runs.c.run_id).where(*_run_filter(scenario, since)))

    def gamedays(self, name: str | None = None, since: datetime | None = None) -> list[GameDayRecord]:
        """Recorded game days, oldest first."""
        with self._errors("read game days"), self.engine.connect() as conn:
            return _gamedays(conn, sa.select(gamedays.c.run_id).where(*_gameday_filter(name, since)))

    def last_passed(self, scenario: str | None = None) -> dict[str, datetime]:
        """Each scenario's newest passed run: when it started."""
        with self._errors("read runs"), self.engine.connect() as conn:
            return _last_passed(conn, _run_filter(scenario, None))

    def summary(self, scenario: str | None = None, since: datetime | None = None, *, limit: int | None = 20,
                per_scenario: int | None = 20) -> HistorySummary:
        """What `dirt history` shows, read in a few queries whose results do not grow with the history:
        the newest ``limit`` runs and game days, each scenario's newest ``per_scenario`` runs, and
        aggregates over every run (None: no bound, every run)."""
        where, game_where = _run_filter(scenario, since), _gameday_filter(None, since)
        with self._errors("read runs"), self.engine.connect() as conn:
            total = _count(conn, runs, where)
            shown = _runs(conn, _newest(runs, where, limit))
            recent = _runs(conn, _newest_of_each(runs, where, runs.c.scenario, per_scenario))
            last_passed = _last_passed(conn, where)
            tallies = _backup_tallies(conn, where)
        with self._errors("read game days"), self.engine.connect() as conn:
            days_total = _count(conn, gamedays, game_where)
            days = _gamedays(conn, _newest(gamedays, game_where, limit))
            latest = _gamedays(conn, _newest_of_each(gamedays, game_where, gamedays.c.name, 1))
        return HistorySummary(total=total, runs=tuple(shown), recent=tuple(recent), last_passed=last_passed,
                              backups=tallies, gamedays=tuple(days), latest_gamedays=tuple(latest),
                              gamedays_total=days_total)


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


def gameday_rows(summary: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A game day's summary as rows: the game day, and its drills."""
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
    return row, drills


def _filter(named: Any, name: str | None, started: Any, since: datetime | None) -> list[Any]:
    """The conditions of ``named == name`` and ``started >= since``, each only when given."""
    return ([named == name] if name is not None else []) + ([started >= _utc(since)] if since is not None else [])


def _run_filter(scenario: str | None, since: datetime | None) -> list[Any]:
    return _filter(runs.c.scenario, scenario, runs.c.started_at, since)


def _gameday_filter(name: str | None, since: datetime | None) -> list[Any]:
    return _filter(gamedays.c.name, name, gamedays.c.started_at, since)


def _newest_first(table: sa.Table) -> tuple[Any, ...]:
    """Newest first, a run never started last (the reverse of the oldest-first order, same on both backends)."""
    return table.c.started_at.desc().nulls_last(), table.c.run_id.desc()


def _count(conn: Connection, table: sa.Table, where: list[Any]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())


def _newest(table: sa.Table, where: list[Any], limit: int | None) -> Any:
    """The ids of the newest ``limit`` rows ``where`` selects (None: all of them)."""
    return sa.select(table.c.run_id).where(*where).order_by(*_newest_first(table)).limit(limit)


def _newest_of_each(table: sa.Table, where: list[Any], partition: Any, keep: int | None) -> Any:
    """The ids of the newest ``keep`` rows of each ``partition`` value (a scenario, a game day's name)."""
    if keep is None:
        return sa.select(table.c.run_id).where(*where)
    rank = sa.func.row_number().over(partition_by=partition, order_by=_newest_first(table)).label("rank")
    ranked = sa.select(table.c.run_id, rank).where(*where).subquery()
    return sa.select(ranked.c.run_id).where(ranked.c.rank <= keep)


#: Up to this many chosen ids are read first and passed as a list: a subquery that ranks every run would
#: run again for each of the five tables a run's record comes from.
LISTED_IDS = 2_000


def _chosen(conn: Connection, chosen: Any) -> Any:
    """What a record's tables are filtered by: the ids ``chosen`` gives, as a list when they are few."""
    inner = chosen.subquery()  # its own LIMIT stays inside
    ids = conn.execute(sa.select(*inner.c).limit(LISTED_IDS + 1)).scalars().all()
    return ids if len(ids) <= LISTED_IDS else chosen.scalar_subquery()


def _runs(conn: Connection, chosen: Any) -> list[RunRecord]:
    """The runs whose ids ``chosen`` (a SELECT of run ids) gives, with their details, oldest first."""
    ids = _chosen(conn, chosen)
    query = (sa.select(runs).where(runs.c.run_id.in_(ids))
             .order_by(runs.c.started_at.asc().nulls_first(), runs.c.run_id))
    rows = conn.execute(query).mappings().all()
    details = {table: _grouped(conn, table, table.c.run_id.in_(ids)) for table in RUN_CHILDREN}
    return [_run_record(row, details) for row in rows]


def _gamedays(conn: Connection, chosen: Any) -> list[GameDayRecord]:
    """The game days whose ids ``chosen`` gives, with their drills, oldest first."""
    ids = _chosen(conn, chosen)
    query = (sa.select(gamedays).where(gamedays.c.run_id.in_(ids))
             .order_by(gamedays.c.started_at.asc().nulls_first(), gamedays.c.run_id))
    rows = conn.execute(query).mappings().all()
    drills = _grouped(conn, gameday_drills, gameday_drills.c.gameday_run_id.in_(ids), key="gameday_run_id")
    return [GameDayRecord(
        run_id=r["run_id"], name=r["name"], verdict=r["verdict"], started_at=_aware(r["started_at"]),
        ended_at=_aware(r["ended_at"]), path=r["path"], digest=r["digest"], score=r["score"],
        trigger=r["trigger"], schedule=r["schedule"], approved_by=r["approved_by"],
        drills=tuple(DrillRecord(d["drill_id"], d["scenario"], d["run_id"], d["verdict"], d["weight"], d["score"])
                     for d in sorted(drills.get(r["run_id"], []), key=lambda d: d["position"])),
    ) for r in rows]


def _last_passed(conn: Connection, where: list[Any]) -> dict[str, datetime]:
    query = (sa.select(runs.c.scenario, sa.func.max(runs.c.started_at))
             .where(runs.c.verdict == "passed", *where).group_by(runs.c.scenario))
    return {name: moment for name, when in conn.execute(query) if (moment := _aware(when)) is not None}


def _backup_tallies(conn: Connection, where: list[Any]) -> tuple[BackupTally, ...]:
    """Every backup (scenario, name) of the runs ``where`` selects: taken how often, when last, with which
    RPO, and when last proven: two grouped queries, whatever the number of runs."""
    joined = run_backups.join(runs, run_backups.c.run_id == runs.c.run_id)
    key = (runs.c.scenario, run_backups.c.name)
    proven_at = sa.case((run_backups.c.proven == sa.true(), runs.c.started_at), else_=None)
    counts = (sa.select(*key, sa.func.count(), sa.func.max(runs.c.started_at),
                        sa.func.max(proven_at).label("last_proven"))
              .select_from(joined).where(*where).group_by(*key))
    rank = sa.func.row_number().over(partition_by=key, order_by=_newest_first(runs)).label("rank")
    ranked = sa.select(*key, run_backups.c.rpo, rank).select_from(joined).where(*where).subquery()
    rpos = {(r.scenario, r.name): r.rpo for r in conn.execute(sa.select(ranked).where(ranked.c.rank == 1))}
    return tuple(BackupTally(scenario, name, taken, _aware(last), rpos.get((scenario, name)),
                             _aware(proven))
                 for scenario, name, taken, last, proven in sorted(conn.execute(counts), key=lambda r: (r[0], r[1])))


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

"""Schema versions of the run-history store, applied in order when a store is opened.

A store shared by many runners (CI jobs, CronJobs in several clusters) meets
runners of several dirt versions, so the schema moves forward only by these
ordered steps, each written as it was on the day it shipped (never edited
afterwards) with alembic's ``Operations`` for the DDL.  The version lives in
``dirt_history_version`` (one row).  On PostgreSQL the upgrade holds a
transaction-level advisory lock so two runners opening a new store at once do
not both create it.  A store newer than this dirt is refused rather than
written in a shape it does not know.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

from dirt.core.errors import HistoryError

VERSION_TABLE = "dirt_history_version"
#: an arbitrary constant: the advisory lock's key on PostgreSQL
_LOCK_KEY = 0x64697274


def _v1(op: Operations) -> None:
    """The first schema: runs and their alerts, backups, steps, restores; game days and their drills."""
    text, name = sa.Text(), sa.String(255)
    when = sa.DateTime(timezone=True)
    op.create_table(
        "runs",
        sa.Column("run_id", name, primary_key=True), sa.Column("scenario", name, nullable=False),
        sa.Column("scenario_path", text), sa.Column("scenario_digest", sa.String(128)),
        sa.Column("target", name), sa.Column("provider", name), sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("started_at", when), sa.Column("ended_at", when), sa.Column("duration", sa.Float),
        sa.Column("mttr", sa.Float), sa.Column("score", sa.Float), sa.Column("gameday", name),
        sa.Column("gameday_run_id", name), sa.Column("schedule", name),
        sa.Column("trigger", sa.String(32), nullable=False), sa.Column("dirt_version", sa.String(64)),
    )
    op.create_index("ix_runs_scenario", "runs", ["scenario"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_gameday_run_id", "runs", ["gameday_run_id"])
    op.create_table(
        "run_alerts",
        sa.Column("run_id", name, primary_key=True), sa.Column("alert", name, primary_key=True),
        sa.Column("mttd", sa.Float), sa.Column("objective", sa.Float), sa.Column("passed", sa.Boolean),
    )
    op.create_table(
        "run_backups",
        sa.Column("run_id", name, primary_key=True), sa.Column("name", name, primary_key=True),
        sa.Column("type", sa.String(64)), sa.Column("rpo", sa.Float), sa.Column("objects", sa.Integer),
        sa.Column("created_at", when), sa.Column("restored", sa.Boolean, nullable=False),
        sa.Column("proven", sa.Boolean, nullable=False),
    )
    op.create_table(
        "run_steps",
        sa.Column("run_id", name, primary_key=True), sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("section", sa.String(64)), sa.Column("name", text), sa.Column("driver", name),
        sa.Column("seconds", sa.Float), sa.Column("status", sa.String(32)),
    )
    op.create_table(
        "run_restores",
        sa.Column("run_id", name, primary_key=True), sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", text), sa.Column("passed", sa.Boolean), sa.Column("objects_expected", sa.Integer),
        sa.Column("objects_missing", sa.Integer), sa.Column("objects_changed", sa.Integer),
    )
    op.create_table(
        "gamedays",
        sa.Column("run_id", name, primary_key=True), sa.Column("name", name, nullable=False),
        sa.Column("path", text), sa.Column("digest", sa.String(128)), sa.Column("started_at", when),
        sa.Column("ended_at", when), sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("score", sa.Float), sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("schedule", name), sa.Column("approved_by", name),
    )
    op.create_index("ix_gamedays_name", "gamedays", ["name"])
    op.create_index("ix_gamedays_started_at", "gamedays", ["started_at"])
    op.create_table(
        "gameday_drills",
        sa.Column("gameday_run_id", name, primary_key=True), sa.Column("drill_id", name, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False), sa.Column("scenario", name), sa.Column("run_id", name),
        sa.Column("verdict", sa.String(32)), sa.Column("weight", sa.Float), sa.Column("score", sa.Float),
    )


def _v2(op: Operations) -> None:
    """The MTTR objective of each run, so that a slow recovery is judged against what the scenario asked."""
    op.add_column("runs", sa.Column("mttr_objective", sa.Float))


#: Every schema version, in order: version N is reached by applying MIGRATIONS[N - 1].
MIGRATIONS: tuple[Callable[[Operations], None], ...] = (_v1, _v2)
LATEST = len(MIGRATIONS)

_version = sa.Table(VERSION_TABLE, sa.MetaData(), sa.Column("version", sa.Integer, nullable=False))


def current_version(conn: Connection) -> int:
    """The schema version of the database (0: an empty database)."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return 0
    return conn.execute(sa.select(sa.func.max(_version.c.version))).scalar() or 0


def upgrade(engine: Engine, *, to: int = LATEST) -> int:
    """Bring the database to version ``to`` (default: the latest); return the version it was at."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        found = current_version(conn)
        if found > LATEST:
            raise HistoryError(f"the history store has schema version {found}, newer than this dirt knows "
                               f"({LATEST}): upgrade dirt to use it")
        if found == 0:
            _version.create(conn)
            conn.execute(_version.insert().values(version=0))
        op = Operations(MigrationContext.configure(conn))
        for number in range(found + 1, to + 1):
            MIGRATIONS[number - 1](op)
            conn.execute(_version.update().values(version=number))
        return found

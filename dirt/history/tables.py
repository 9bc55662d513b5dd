"""The run-history tables as they are now (SQLAlchemy Core): what the store reads and writes.

The migrations in ``dirt.history.migrations`` build these tables step by step; a
unit test proves that a database migrated from nothing has exactly these columns,
so a column added here without a migration (or the reverse) fails the suite.
Times are stored in UTC; durations in seconds (``Float``); a NULL duration means
"never happened" (an alert that never fired, a run that never recovered).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

NAME = 255  # scenario, alert, backup and step names; run ids

runs = Table(
    "runs", metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("scenario", String(NAME), nullable=False, index=True),
    Column("scenario_path", Text),
    Column("scenario_digest", String(128)),
    Column("target", String(NAME)),
    Column("provider", String(NAME)),
    Column("verdict", String(32), nullable=False),
    Column("started_at", DateTime(timezone=True), index=True),
    Column("ended_at", DateTime(timezone=True)),
    Column("duration", Float),
    Column("mttr", Float),
    Column("score", Float),
    Column("gameday", String(NAME)),
    Column("gameday_run_id", String(NAME), index=True),
    Column("schedule", String(NAME)),
    Column("trigger", String(32), nullable=False),
    Column("dirt_version", String(64)),
    Column("mttr_objective", Float),  # since schema version 2
)

run_alerts = Table(
    "run_alerts", metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("alert", String(NAME), primary_key=True),
    Column("mttd", Float),  # NULL: never fired
    Column("objective", Float),
    Column("passed", Boolean),
)

run_backups = Table(
    "run_backups", metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("name", String(NAME), primary_key=True),
    Column("type", String(64)),
    Column("rpo", Float),
    Column("objects", Integer),
    Column("created_at", DateTime(timezone=True)),
    Column("restored", Boolean, nullable=False),
    Column("proven", Boolean, nullable=False),  # restored and every restore check passed
)

run_steps = Table(
    "run_steps", metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("section", String(64)),
    Column("name", Text),
    Column("driver", String(NAME)),
    Column("seconds", Float),
    Column("status", String(32)),
)

run_restores = Table(
    "run_restores", metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", Text),
    Column("passed", Boolean),
    Column("objects_expected", Integer),
    Column("objects_missing", Integer),
    Column("objects_changed", Integer),
)

gamedays = Table(
    "gamedays", metadata,
    Column("run_id", String(NAME), primary_key=True),
    Column("name", String(NAME), nullable=False, index=True),
    Column("path", Text),
    Column("digest", String(128)),
    Column("started_at", DateTime(timezone=True), index=True),
    Column("ended_at", DateTime(timezone=True)),
    Column("verdict", String(32), nullable=False),
    Column("score", Float),
    Column("trigger", String(32), nullable=False),
    Column("schedule", String(NAME)),
    Column("approved_by", String(NAME)),
)

gameday_drills = Table(
    "gameday_drills", metadata,
    Column("gameday_run_id", String(NAME), primary_key=True),
    Column("drill_id", String(NAME), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("scenario", String(NAME)),
    Column("run_id", String(NAME)),  # NULL: skipped
    Column("verdict", String(32)),
    Column("weight", Float),
    Column("score", Float),
)

#: Tables holding one run's details, deleted and written again when a run is recorded twice.
RUN_CHILDREN = (run_alerts, run_backups, run_steps, run_restores)

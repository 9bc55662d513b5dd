"""The run-history store, on SQLite here; tests/integration/test_history_postgresql.py runs these
same tests against a real PostgreSQL by overriding the ``history_url`` fixture."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from dirt.core.errors import HistoryError
from dirt.history import migrations, open_store, store_url
from dirt.history.tables import metadata

DATA = Path(__file__).parent / "data" / "history"


def report(name: str, **changes: object) -> dict:
    """A real report.json (copied from a sandbox run), with some fields changed."""
    data = json.loads((DATA / f"{name}.json").read_text())
    data.update(changes)
    return data


@pytest.fixture
def history_url(tmp_path: Path) -> str | None:
    """The store under test: SQLite in the test's folder (PostgreSQL in the integration module)."""
    return f"sqlite:///{tmp_path / 'history.sqlite'}"


@pytest.fixture
def store(history_url: str | None, tmp_path: Path):
    with open_store(history_url, tmp_path) as opened:
        yield opened


def test_a_run_is_recorded_with_its_alerts_backups_steps_and_restores(store) -> None:
    store.record_run(report("etcd-loss-failed"), gameday="quarterly", gameday_run_id="gd-1", schedule="0 10 * * 2",
                     trigger="schedule")
    [run] = store.runs()
    assert (run.run_id, run.scenario, run.verdict, run.target, run.provider) == (
        "20261126-071153-etcd-loss-cc47", "etcd-loss", "failed", "sandbox", "sandbox")
    assert run.started_at == datetime(2026, 11, 26, 7, 11, 53, 850000, tzinfo=timezone.utc)
    assert (run.mttr, run.mttr_objective, run.duration) == (65.246, 180.0, 77.175)
    assert run.scenario_digest.startswith("9bac286e")
    assert (run.gameday, run.gameday_run_id, run.schedule, run.trigger) == ("quarterly", "gd-1", "0 10 * * 2",
                                                                           "schedule")
    [alert] = run.alerts
    assert (alert.alert, alert.mttd, alert.objective, alert.passed) == ("etcdDataLoss", None, 60.0, False)
    backups = {b.name: b for b in run.backups}
    assert backups["etcd"].restored and backups["etcd"].proven and backups["etcd"].objects == 258
    assert not backups["shop-objects"].restored and not backups["shop-objects"].proven
    assert backups["etcd"].rpo == 0.05
    assert run.steps[0].name == "deploy the shop" and run.steps[0].driver == "redeploy" and len(run.steps) == 12
    [restore] = run.restores
    assert (restore.passed, restore.objects_expected, restore.objects_missing, restore.objects_changed) == (
        True, 12, 0, 0)
    # 17 of 20 weighted points: only the alert (3) failed; checks, restore, steps, the recovery (every recover
    # and verify step), MTTR and resolution passed
    assert run.score == 85.0


def test_recording_a_run_again_replaces_it(store) -> None:
    store.record_run(report("cluster-deletion-passed"))
    store.record_run(report("cluster-deletion-passed", verdict="failed"))
    [run] = store.runs()
    assert run.verdict == "failed"
    assert len(run.alerts) == 2 and len(run.backups) == 1


def test_runs_are_filtered_by_scenario_and_start(store) -> None:
    for name in ("etcd-loss-failed", "cluster-deletion-passed", "etcd-loss-passed"):
        store.record_run(report(name))
    assert [r.scenario for r in store.runs()] == ["cluster-deletion", "etcd-loss", "etcd-loss"]
    assert [r.run_id for r in store.runs("etcd-loss")] == ["20261126-071153-etcd-loss-cc47",
                                                           "20261126-090920-etcd-loss-363d"]
    since = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
    assert [r.run_id for r in store.runs(since=since)] == ["20261126-090920-etcd-loss-363d"]
    assert store.runs("no-such-scenario") == []


def test_a_game_day_is_recorded_with_its_drills_in_order(store) -> None:
    summary = {"run_id": "gd-20261126", "name": "quarterly-dirt", "path": "/x/gamedays/quarterly-dirt.yaml",
               "digest": "abc", "started_at": "2026-11-26T10:00:00Z", "ended_at": "2026-11-26T10:05:00.500Z",
               "verdict": "failed", "score": 60.0, "trigger": "manual", "schedule": None, "approved_by": "ana",
               "drills": [{"id": "etcd", "scenario": "etcd-loss", "run_id": "r1", "verdict": "failed", "weight": 2,
                           "score": 90.0},
                          {"id": "ns", "scenario": "namespace-deletion", "run_id": None, "verdict": "skipped",
                           "weight": 1, "score": None}]}
    store.record_gameday(summary)
    store.record_gameday(summary | {"verdict": "passed"})  # recorded again: replaced
    [day] = store.gamedays()
    assert (day.name, day.verdict, day.score, day.approved_by) == ("quarterly-dirt", "passed", 60.0, "ana")
    assert day.ended_at == datetime(2026, 11, 26, 10, 5, 0, 500000, tzinfo=timezone.utc)
    assert [(d.drill_id, d.run_id, d.weight) for d in day.drills] == [("etcd", "r1", 2.0), ("ns", None, 1.0)]
    assert store.gamedays("other") == []


def _long_history(store) -> None:
    """27 runs of three scenarios, a run with no start time, and game days of two names: each scenario's
    only pass, and the only run that proved a backup, are the oldest of their scenario."""
    sources = [report("etcd-loss-passed"), report("etcd-loss-failed"), report("cluster-deletion-passed")]
    for i in range(27):
        source = sources[0] if i == 0 else sources[1] if i % 3 != 2 else sources[2]
        started = f"2026-11-{1 + i:02d}T06:00:00Z"
        changes = {"run_id": f"run-{i:02d}", "started_at": started}
        if i % 3 == 1:  # a third scenario, never passed
            changes["scenario"] = {**source["scenario"], "name": "namespace-deletion"}
        if source is sources[2] and i > 2:  # cluster-deletion's restore proven only in its first run
            changes["verdict"], changes["restore_verification"] = "failed", [{"name": "x", "passed": False}]
        store.record_run({**source, **changes})
    store.record_run({**sources[1], "run_id": "never-started", "started_at": None})
    for i in range(6):
        store.record_gameday({"run_id": f"gd-{i}", "name": "quarterly" if i % 2 else "weekly",
                              "started_at": f"2026-11-{1 + i:02d}T10:00:00Z", "verdict": "passed", "score": 10.0 * i,
                              "drills": [{"id": "a", "scenario": "etcd-loss", "run_id": f"run-{i:02d}"}]})


@pytest.mark.parametrize("listed", [2_000, 3], ids=["ids-listed", "ids-by-subquery"])
@pytest.mark.parametrize(("limit", "per_scenario"), [(5, 7), (1, 1), (None, None), (100, 3)])
def test_the_summary_read_in_sql_is_what_every_run_says(store, limit: int | None, per_scenario: int | None,
                                                        listed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """``summary`` reads the newest runs and aggregates, never every run: it must say exactly what the
    same analysis of every run says (on SQLite here, on PostgreSQL in the integration module)."""
    from dirt.history import store as store_module
    from dirt.history.analysis import summary_of

    monkeypatch.setattr(store_module, "LISTED_IDS", listed)
    _long_history(store)
    assert store.summary(limit=limit, per_scenario=per_scenario) == summary_of(
        store.runs(), store.gamedays(), limit=limit, per_scenario=per_scenario)
    assert store.summary("etcd-loss", datetime(2026, 11, 10, tzinfo=timezone.utc), limit=2, per_scenario=2) == \
        summary_of(store.runs("etcd-loss", datetime(2026, 11, 10, tzinfo=timezone.utc)),
                   store.gamedays(since=datetime(2026, 11, 10, tzinfo=timezone.utc)), limit=2, per_scenario=2)


def test_the_summary_keeps_what_only_old_runs_say(store) -> None:
    _long_history(store)
    summary = store.summary(limit=3, per_scenario=2)
    assert summary.total == 28 and [r.run_id for r in summary.runs] == ["run-24", "run-25", "run-26"]
    # each scenario's newest two (etcd-loss, namespace-deletion and cluster-deletion take turns)
    assert [r.run_id for r in summary.recent] == ["run-21", "run-22", "run-23", "run-24", "run-25", "run-26"]
    # every scenario's last pass and every backup's proof, however old
    assert summary.last_passed == {"cluster-deletion": datetime(2026, 11, 3, 6, tzinfo=timezone.utc),
                                   "etcd-loss": datetime(2026, 11, 1, 6, tzinfo=timezone.utc)}
    tallies = {(t.scenario, t.backup): t for t in summary.backups}
    proven = tallies["cluster-deletion", "shop-objects"]
    assert (proven.taken, proven.last_proven) == (9, datetime(2026, 11, 3, 6, tzinfo=timezone.utc))
    assert proven.last_taken == datetime(2026, 11, 27, 6, tzinfo=timezone.utc)
    assert [d.run_id for d in summary.gamedays] == ["gd-3", "gd-4", "gd-5"] and summary.gamedays_total == 6
    assert [(d.name, d.run_id) for d in summary.latest_gamedays] == [("weekly", "gd-4"), ("quarterly", "gd-5")]
    assert store.last_passed() == summary.last_passed
    assert store.last_passed("namespace-deletion") == {}


def test_a_version_1_store_is_upgraded_and_keeps_its_runs(history_url: str | None, tmp_path: Path) -> None:
    engine = sa.create_engine(store_url(history_url, tmp_path))
    migrations.upgrade(engine, to=1)
    with engine.begin() as conn:
        assert "mttr_objective" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
        conn.execute(sa.text("INSERT INTO runs (run_id, scenario, verdict, trigger, mttr) "
                             "VALUES ('old-run', 'etcd-loss', 'passed', 'manual', 9.5)"))
    engine.dispose()
    with open_store(history_url, tmp_path) as store:
        assert store.schema_version() == migrations.LATEST == 2
        [old] = store.runs()
        assert (old.run_id, old.mttr, old.mttr_objective) == ("old-run", 9.5, None)
        store.record_run(report("etcd-loss-passed"))
        assert store.runs("etcd-loss")[-1].mttr_objective == 180.0


def test_the_migrated_schema_is_the_schema_the_store_uses(store) -> None:
    inspector = sa.inspect(store.engine)
    for table in metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}, table.name


def test_opening_twice_migrates_once(history_url: str | None, tmp_path: Path) -> None:
    open_store(history_url, tmp_path).close()
    with open_store(history_url, tmp_path) as store:
        assert store.schema_version() == 2


def test_a_store_newer_than_this_dirt_is_refused(history_url: str | None, tmp_path: Path) -> None:
    open_store(history_url, tmp_path).close()
    engine = sa.create_engine(store_url(history_url, tmp_path))
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version = 99"))
    engine.dispose()
    with pytest.raises(HistoryError, match="schema version 99, newer than this dirt knows"):
        open_store(history_url, tmp_path)


def test_a_report_without_a_run_id_is_refused(store) -> None:
    with pytest.raises(HistoryError, match="no run_id"):
        store.record_run({"verdict": "passed"})

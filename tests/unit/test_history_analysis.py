"""Scores, regressions, overdue drills and unproven backups, against numbers computed by hand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dirt.history import AlertRecord, BackupRecord, DrillRecord, GameDayRecord, RunRecord
from dirt.history.analysis import (
    gameday_score,
    gameday_scores,
    overdue,
    regressions,
    run_score,
    scenario_scores,
    trends,
    unproven_backups,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def run(n: int, scenario: str = "etcd-loss", *, mttd: float | None = 3.0, objective: float | None = 60.0,
        mttr: float | None = 10.0, mttr_objective: float | None = 180.0, verdict: str = "passed",
        score: float = 100.0, backups: tuple[BackupRecord, ...] = ()) -> RunRecord:
    """Run number ``n`` of a scenario, ``n`` days after T0."""
    return RunRecord(run_id=f"{scenario}-{n}", scenario=scenario, verdict=verdict, started_at=T0 + timedelta(days=n),
                     mttr=mttr, mttr_objective=mttr_objective, score=score,
                     alerts=(AlertRecord("etcdDataLoss", mttd, objective, mttd is not None),), backups=backups)


def test_a_runs_score_is_its_weighted_share_of_passed_expectations() -> None:
    report = {"verdict": "failed", "expectations": [
        {"kind": "alert", "passed": True},                                  # 3
        {"kind": "mttr", "passed": False},                                  # 0 of 3
        {"kind": "check", "passed": True},                                  # 2
        {"kind": "check", "passed": True, "data": {"objects_missing": 0}},  # restore: 3
        {"kind": "silent", "passed": None},                                 # never evaluated: 0 of 1
    ]}
    assert run_score(report) == round(100 * 8 / 12, 1) == 66.7


def test_a_recovery_step_that_failed_costs_the_run_its_recovery_share() -> None:
    expectations = [{"kind": "alert", "passed": True}, {"kind": "mttr", "passed": True}]  # 6 of 6
    steps = [{"section": "inject", "status": "passed"}, {"section": "recover", "status": "passed"},
             {"section": "verify", "status": "failed"}]
    assert run_score({"verdict": "failed", "expectations": expectations, "steps": steps}) == 66.7  # 6 of 9
    steps[2]["status"] = "passed"
    assert run_score({"verdict": "passed", "expectations": expectations, "steps": steps}) == 100.0
    steps.pop(1), steps.pop(1)  # no recovery steps: nothing to weigh
    assert run_score({"verdict": "passed", "expectations": expectations, "steps": steps}) == 100.0


def test_a_run_that_left_a_fault_in_effect_scores_zero() -> None:
    report = {"verdict": "passed", "still_in_effect": ["crash the server"],
              "expectations": [{"kind": "alert", "passed": True}]}
    assert run_score(report) == 0.0
    assert run_score({"verdict": "passed", "expectations": []}) == 100.0
    assert run_score({"verdict": "aborted", "expectations": []}) == 0.0


def test_a_scenarios_score_is_the_mean_of_its_last_five_runs() -> None:
    runs = [run(0, score=0.0), run(1, score=100.0), run(2, score=100.0), run(3, score=50.0), run(4, score=100.0),
            run(5, score=100.0), run(3, "node-loss", score=40.0)]
    assert scenario_scores(runs) == {"etcd-loss": 90.0, "node-loss": 40.0}  # run 0 is out of the window


def test_a_game_days_score_weights_its_drills_and_counts_a_skipped_one_as_zero() -> None:
    drills = [DrillRecord("etcd", "etcd-loss", "r1", "passed", 2.0, 90.0),
              DrillRecord("ns", "namespace-deletion", None, "skipped", 1.0, None),
              {"id": "cp", "run_id": "r3", "weight": None, "score": 30.0}]  # summaries' dicts too; weight 1
    assert gameday_score(drills) == round((2 * 90 + 0 + 30) / 4, 1) == 52.5
    days = [GameDayRecord("g1", "quarterly", "passed", T0, score=80.0),
            GameDayRecord("g2", "quarterly", "failed", T0 + timedelta(days=90), drills=tuple(drills[:2]))]
    assert gameday_scores(days) == {"quarterly": 60.0}  # the latest, from its drills: (180 + 0) / 3


def test_a_slower_detection_is_a_regression_only_beyond_both_margins() -> None:
    earlier = [run(0, mttd=100.0), run(1, mttd=2.0), run(2, mttd=3.0), run(3, mttd=4.0), run(4, mttd=3.0),
               run(5, mttd=2.0)]  # median of the last five: 3.0 (run 0 is out of the window)
    assert regressions([*earlier, run(6, mttd=7.9)]) == []  # 2.6x, but only 4.9 s worse
    [found] = regressions([*earlier, run(6, mttd=8.5)])  # 2.8x and 5.5 s worse
    assert (found.metric, found.value, found.median) == ("mttd:etcdDataLoss", 8.5, 3.0)
    assert "median 3.0s of the previous 5 run(s)" in found.reason


def test_beyond_the_objective_and_never_fired_are_regressions() -> None:
    [late] = regressions([run(0), run(1, mttd=61.0)])
    assert late.reason == "61.0s is beyond its objective of 60.0s"
    [silent] = regressions([run(0), run(1, mttd=None)])
    assert (silent.metric, silent.reason) == ("mttd:etcdDataLoss", "the alert never fired")
    found = regressions([run(0), run(1, mttr=None, verdict="failed")])
    assert [(r.metric, r.reason) for r in found] == [("mttr", "the run never recovered")]
    assert regressions([run(0, mttr=10.0), run(1, mttr=200.0)])[0].reason == "200.0s is beyond its objective of 180.0s"


def test_a_drill_not_passed_within_its_interval_is_overdue() -> None:
    week = 7 * 86400.0
    runs = [run(0), run(9, verdict="failed"), run(4, "node-loss"), run(1, "cluster-deletion", verdict="failed")]
    now = T0 + timedelta(days=10)
    found = overdue(runs, {"etcd-loss": week, "node-loss": week, "cluster-deletion": week}, now)
    assert [(o.scenario, o.last_passed, o.overdue_seconds) for o in found] == [
        ("cluster-deletion", None, None),           # never passed
        ("etcd-loss", T0, 3 * 86400.0),             # passed 10 days ago; the failed run does not count
    ]                                               # node-loss passed 6 days ago: on time
    [late] = overdue(runs, {"node-loss": 5 * 86400.0}, now)
    assert late.overdue_seconds == 86400.0


def test_backups_never_proven_by_a_restore_are_listed() -> None:
    taken = BackupRecord("shop-objects", "resources", 0.0, 22, None, restored=False, proven=False)
    restored_unverified = BackupRecord("etcd", "etcd_snapshot", 0.1, 258, None, restored=True, proven=False)
    proven = BackupRecord("etcd", "etcd_snapshot", 0.1, 258, None, restored=True, proven=True)
    runs = [run(0, backups=(taken, restored_unverified)), run(1, backups=(taken, proven)),
            run(2, "namespace-deletion", backups=(restored_unverified,))]
    found = unproven_backups(runs)
    assert [(u.scenario, u.backup, u.taken, u.last_taken) for u in found] == [
        ("etcd-loss", "shop-objects", 2, T0 + timedelta(days=1)),
        ("namespace-deletion", "etcd", 1, T0 + timedelta(days=2)),
    ]


def test_trends_run_oldest_first() -> None:
    [trend] = trends([run(2, mttr=8.0, mttd=None), run(0, mttr=12.0), run(1, mttr=10.0, mttd=2.5)])
    assert [p.value for p in trend.mttr] == [12.0, 10.0, 8.0]
    assert [p.value for p in trend.mttd["etcdDataLoss"]] == [3.0, 2.5, None]

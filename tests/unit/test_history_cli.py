"""`dirt run` records every drill; `dirt history` shows it; `dirt history export` writes its metrics."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families

from dirt.app.history import record_run
from tests.conftest import DIRT, basic_scenario


def dirt(project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=project.root, capture_output=True, text=True, timeout=120)


def test_every_run_is_recorded_and_shown(project) -> None:
    project.scenario("drill", basic_scenario())
    assert dirt(project, "run", "drill.yaml", "--display", "none").returncode == 0
    assert (project.reports / "history.sqlite").is_file()
    shown = dirt(project, "history", "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    [run] = view["runs"]
    assert (run["scenario"], run["verdict"], run["trigger"]) == ("fake-drill", "passed", "manual")
    assert run["mttd"]["FakeDown"] is not None and run["score"] == 100.0
    assert view["scores"]["scenarios"] == {"fake-drill": 100.0}
    assert view["unproven_backups"] == [{"scenario": "fake-drill", "backup": "store", "taken": 1,
                                         "last_taken": run["started_at"]}]
    text = dirt(project, "history", "fake-drill")
    assert text.returncode == 0 and "fake-drill" in text.stdout and "backups never proven" in text.stdout
    assert json.loads(dirt(project, "history", "other", "--json").stdout)["runs"] == []


def test_a_history_that_cannot_be_written_is_a_warning_not_a_failed_drill(project) -> None:
    (project.root / "blocker").write_text("a file where the store's folder should be")
    with (project.root / "dirt.yaml").open("a") as f:
        f.write("history: sqlite:///blocker/history.sqlite\n")
    project.scenario("drill", basic_scenario())
    ran = dirt(project, "run", "drill.yaml", "--display", "none")
    assert ran.returncode == 0, ran.stderr
    assert "warning: run " in ran.stderr and "not recorded in the history" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_record_run_warns_instead_of_raising(tmp_path: Path) -> None:
    said: list[str] = []
    assert record_run({"verdict": "passed"}, tmp_path, None, said.append) is False
    assert said and "no run_id" in said[0]


def test_a_bad_history_url_in_dirt_yaml_is_located(project) -> None:
    with (project.root / "dirt.yaml").open("a") as f:
        f.write("history: mysql://dirt@db/dirt\n")
    shown = dirt(project, "history")
    assert shown.returncode == 2
    assert "dirt.yaml:9:10: history: 'mysql://dirt@db/dirt' is not a history database URL" in shown.stderr


def test_since_takes_an_age_or_a_date_and_refuses_anything_else(project) -> None:
    project.scenario("drill", basic_scenario())
    dirt(project, "run", "drill.yaml", "--display", "none")
    assert len(json.loads(dirt(project, "history", "--since", "1d", "--json").stdout)["runs"]) == 1
    assert json.loads(dirt(project, "history", "--since", "2999-01-01", "--json").stdout)["runs"] == []
    ages_ago = dirt(project, "history", "--since", "99999999999999d", "--json")  # before datetime's year 1: all
    assert ages_ago.returncode == 0 and len(json.loads(ages_ago.stdout)["runs"]) == 1, ages_ago.stderr
    bad = dirt(project, "history", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since 'last tuesday': write an age such as 30d" in bad.stderr


def test_export_writes_openmetrics_for_the_textfile_collector(project) -> None:
    project.scenario("drill", basic_scenario())
    dirt(project, "run", "drill.yaml", "--display", "none")
    out = project.root / "dirt.prom"
    exported = dirt(project, "history", "export", "--format", "openmetrics", "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    text = out.read_text()
    assert text.endswith("# EOF\n")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples[("dirt_last_run_success", (("scenario", "fake-drill"),))] == 1.0
    assert samples[("dirt_alert_detected", (("alert", "FakeDown"), ("scenario", "fake-drill")))] == 1.0
    assert ("dirt_alert_mttd_seconds", (("alert", "FakeDown"), ("scenario", "fake-drill"))) in samples
    assert samples[("dirt_scenario_score", (("scenario", "fake-drill"),))] == 100.0
    assert samples[("dirt_backup_last_proven_restore_timestamp_seconds",
                    (("backup", "store"), ("scenario", "fake-drill")))] == 0.0  # never restored
    assert samples[("dirt_last_run_timestamp_seconds", (("scenario", "fake-drill"),))] > 1.7e9


def test_a_pushgateway_that_is_not_there_is_one_line_and_exit_1(project) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    pushed = dirt(project, "history", "export", "--pushgateway", f"http://127.0.0.1:{port}")
    assert pushed.returncode == 1
    assert pushed.stderr.strip().splitlines() == [
        f"dirt: error: --pushgateway http://127.0.0.1:{port}: cannot push: [Errno 111] Connection refused"]
    bad = dirt(project, "history", "export", "--pushgateway", "gateway:9091")
    assert bad.returncode == 2 and "give the Pushgateway's http(s)://HOST:PORT URL" in bad.stderr


def test_the_dashboard_marks_a_drill_overdue_that_its_game_day_expects_more_often(project) -> None:
    project.scenario("drill", basic_scenario())
    (project.root / "gamedays").mkdir()
    (project.root / "gamedays" / "weekly.yaml").write_text(
        "apiVersion: dirt/v1\nkind: GameDay\nmetadata: {name: weekly}\n"
        "participants: [{name: Ann, role: facilitator}]\n"
        "drills:\n  - scenario: ../drill.yaml\n    every: 1d\n")
    assert dirt(project, "run", "drill.yaml", "--display", "none").returncode == 0
    index = (project.reports / "index.html").read_text()
    assert 'class="overdue-mark" title=' not in index, "it just passed"

    # the same pass, recorded as if it had been ten days ago: now more than a day has gone by
    [folder] = [p for p in project.reports.iterdir() if (p / "report.json").is_file()]
    report = json.loads((folder / "report.json").read_text())
    report["started_at"] = "2020-01-01T00:00:00.000Z"
    report["ended_at"] = "2020-01-01T00:01:00.000Z"
    subprocess.run(["rm", "-rf", str(project.reports / "history.sqlite")], check=True)
    assert record_run(report, project.reports, None)
    project.scenario("other", basic_scenario(head="""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata:
          name: other-drill
          playbook: playbooks/fake.md
        vars:
          who: world
        """))
    assert dirt(project, "run", "other.yaml", "--display", "none").returncode == 0
    index = (project.reports / "index.html").read_text()
    assert '<tr class="scenario overdue" data-scenario="fake-drill">' in index and "expected every 24h00m" in index


def test_a_long_history_shows_its_newest_runs_and_still_counts_every_one(project) -> None:
    """30 runs: the view lists the newest ``--limit`` and says how many it left out; the backup's only
    proof and the scenario's only pass are the oldest runs, and the view still knows them."""
    from dirt.history import open_store
    from tests.unit.test_history import report

    with open_store(None, project.reports) as store:
        for i in range(30):
            source = report("cluster-deletion-passed")
            changes: dict = {"run_id": f"run-{i:02d}", "started_at": f"2026-11-{1 + i:02d}T06:00:00Z"}
            if i:  # only the first passed, and only it proved its backup
                changes |= {"verdict": "failed", "restore_verification": [{"name": "x", "passed": False}]}
            store.record_run({**source, **changes})
    text = dirt(project, "history", "--limit", "3")
    assert text.returncode == 0, text.stderr
    listed = [line.split()[-1] for line in text.stdout.splitlines() if re.fullmatch(r".* run-\d\d", line)]
    assert listed == ["run-27", "run-28", "run-29"]
    assert "(the newest 3 of 30 runs; --limit N for more, --limit 0 for all)" in text.stdout
    assert "backups never proven by a restore: none" in text.stdout
    view = json.loads(dirt(project, "history", "--json", "--limit", "3").stdout)
    assert view["runs_total"] == 30 and [r["run_id"] for r in view["runs"]] == ["run-27", "run-28", "run-29"]
    # the trend keeps the six runs the score and regressions compare, however few are listed
    [trend] = view["trends"]
    assert [p["run_id"] for p in trend["mttr"]] == [f"run-{i}" for i in range(24, 30)]
    everything = json.loads(dirt(project, "history", "--json", "--limit", "0").stdout)
    assert view["scores"] == everything["scores"] and view["unproven_backups"] == everything["unproven_backups"] == []
    assert len(everything["runs"]) == 30 and len(everything["trends"][0]["mttr"]) == 30
    assert len(json.loads(dirt(project, "history", "--json").stdout)["runs"]) == 20  # the default
    absurd = dirt(project, "history", "--limit", "99999999999999999999")
    assert absurd.returncode == 2 and "Traceback" not in absurd.stderr
    assert "Invalid value for '--limit'" in absurd.stderr and "0<=x<=1000000000" in absurd.stderr

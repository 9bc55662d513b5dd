"""Each fault lives one recorded life, and rollback acts only on what is still in effect.

Drills run against the fake target (in process, and as real `dirt` child processes
for `dirt rollback`); the same behaviour against the real sandbox is in
tests/integration/test_compound_faults.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from dirt.app.run import run_one
from dirt.engine.runner import RunOptions
from dirt.journal import JOURNAL_NAME, fold_faults, read_journal
from dirt.journal.events import BY_NAME, EVENT_TYPES, FaultInjected
from dirt.scenario import load_scenario
from dirt.testing import FakeTarget
from tests.conftest import DIRT, FILE_FAULT, basic_scenario, journal_lines

TWO_FAULTS = """\
    inject:
      - fault: fake.fault
        cause: a
        fires: [FakeDown]
      - fault: fake.fault
        cause: b
    """

KUBE_SYSTEM = {"/registry/namespaces/kube-system": "k8s\x00kube-system 123e4567-e89b-12d3-a456-426614174000"}


def run(project, text: str, **settings):
    scenario = load_scenario(project.scenario("drill", text))
    name, config = project.loaded().target("fake")
    if settings:
        config = config.model_copy(update={"settings": {**config.settings, **settings}})
    target = FakeTarget(name, config, project.root)
    result = run_one(scenario, target, RunOptions(report_dir=project.reports, handle_signals=False))
    return result, target


def dirt(project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=project.root, capture_output=True, text=True, timeout=60)


def lives(result) -> list[tuple[str, str]]:
    return [(f["name"], f["life"]) for f in result.report["faults"]]


def test_a_recovery_step_that_undoes_a_fault_is_recorded_as_its_recovery(project) -> None:
    result, _ = run(project, basic_scenario())
    assert result.passed, result.failures
    fault = result.report["faults"][0]
    assert fault["status"] == "recovered" and not fault["in_effect"]
    assert fault["resolved_by"]["name"] == "fake.step" and fault["resolved_by"]["section"] == "recover"
    assert [h["status"] for h in fault["history"]] == ["injecting", "injected", "verified", "recovered"]
    assert result.report["still_in_effect"] == [] and not result.report["rollback"]["ran"]


def test_two_unlabelled_faults_of_one_driver_each_live_their_own_life(project) -> None:
    result, target = run(project, basic_scenario(inject=TWO_FAULTS, recover="""\
        recover:
          - step: fault.revert
        """))
    assert result.passed, result.failures
    assert [f["status"] for f in result.report["faults"]] == ["recovered", "recovered"]
    assert [f["index"] for f in result.report["faults"]] == [0, 1]
    assert target.calls.count("revert a") == 1 and target.calls.count("revert b") == 1


def test_rollback_reverts_only_the_faults_still_in_effect(project) -> None:
    result, target = run(project, basic_scenario(inject=TWO_FAULTS, recover="""\
        recover:
          - step: fake.step
            repairs: a
        """, verify="verify:\n  - check: fake.check\n    mode: fail\n    within: 0.2s\n"))
    assert result.verdict == "failed"
    assert "revert a" not in target.calls and target.calls.count("revert b") == 1
    assert lives(result) == [("fake.fault", "recovered by step 'fake.step' (repaired a)"),
                             ("fake.fault", "reverted by rollback (repaired b)")]


def test_a_fault_found_undone_at_rollback_is_recorded_not_reverted(project) -> None:
    result, target = run(project, basic_scenario(recover="""\
        recover:
          - step: fake.step
            claims: false
        """, verify="verify:\n  - check: fake.check\n    mode: fail\n    within: 0.2s\n"))
    assert result.verdict == "failed"
    assert not any(c.startswith("revert") for c in target.calls)
    fault = result.report["faults"][0]
    assert fault["status"] == "recovered" and fault["resolved_by"] is None
    assert "found no longer in effect before reverting" in fault["resolution"]


def test_a_passed_drill_reverts_what_no_step_undid_and_says_so(project) -> None:
    result, target = run(project, basic_scenario(recover="""\
        recover:
          - step: fake.step
            repairs: null
        """, verify="verify:\n  - check: fake.check\n    mode: pass\n", expect=""))
    assert result.passed, result.failures
    assert target.calls.count("revert fake") == 1
    assert result.report["rollback"]["runs"][0]["reason"] == "faults still in effect after the drill passed"
    assert result.report["faults"][0]["status"] == "reverted"


def test_dirt_rollback_of_a_passed_run_changes_nothing(project) -> None:
    project.scenario("drill", basic_scenario())
    ran = dirt(project, "run", "drill.yaml", "--display", "none")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_dir = next(project.reports.glob("*/journal.jsonl")).parent
    before = (run_dir / JOURNAL_NAME).read_bytes()
    for _ in range(2):
        rolled = dirt(project, "rollback", str(run_dir), "--yes")
        assert rolled.returncode == 0 and rolled.stdout.startswith("nothing to roll back"), rolled.stderr
    assert (run_dir / JOURNAL_NAME).read_bytes() == before


def killed_run(project, inject: str = "") -> Path:
    """A run whose process was SIGKILLed in recovery: its fault still in effect, no run.end."""
    slow = "recover:\n  - step: fake.step\n    name: slow\n    takes: 60s\n"
    path = project.scenario("drill", basic_scenario(inject=inject or FILE_FAULT, expect="", recover=slow))
    proc = subprocess.Popen([*DIRT, "run", str(path), "--display", "none"], cwd=project.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for journal in project.reports.glob("*/journal.jsonl"):
            if any(e["event"] == "step.start" and e["name"] == "slow" for e in journal_lines(journal)):
                proc.kill()
                proc.wait(10)
                return journal.parent
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the run never reached its recovery")


def test_rollback_cuts_a_torn_last_line_off_before_appending(project) -> None:
    run_dir = killed_run(project)
    journal = run_dir / JOURNAL_NAME
    with journal.open("a") as fh:
        fh.write('{"seq": 999, "ts": 1.0, "t": 0.0, "event": "fault.rev')  # killed mid-line
    rolled = dirt(project, "rollback", str(run_dir), "--yes")
    assert rolled.returncode == 0, rolled.stderr
    assert "reverted break-file" in rolled.stdout and not (project.root / "broken.flag").exists()
    lines = journal.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # valid JSON Lines again
    assert json.loads(lines[-1])["event"] == "run.end"
    assert any(json.loads(line)["event"] == "journal.repaired" for line in lines)
    assert '"event": "fault.rev' in (run_dir / "journal.jsonl.torn").read_text()
    assert dirt(project, "report", str(run_dir)).returncode == 0


def test_rollback_ignores_duplicate_events_and_reverts_once(project) -> None:
    run_dir = killed_run(project)
    journal = run_dir / JOURNAL_NAME
    injected = next(line for line in journal.read_text().splitlines() if '"fault.injected"' in line)
    with journal.open("a") as fh:
        fh.write((injected + "\n") * 5000)
    started = time.monotonic()
    rolled = dirt(project, "rollback", str(run_dir), "--yes")
    assert rolled.returncode == 0, rolled.stderr
    assert rolled.stdout.count("reverted break-file") == 1
    assert time.monotonic() - started < 30
    contents = read_journal(run_dir)
    assert contents.duplicates == 5000
    assert sum(1 for e in contents.events if e.event == "fault.reverted") == 1


def test_rollback_exits_1_and_names_every_revert_that_failed(project) -> None:
    run_dir = killed_run(project, inject="""\
        inject:
          - fault: exec
            name: stubborn
            command: "touch broken.flag"
            verify: "test -f broken.flag"
            revert: "echo cannot undo this >&2; exit 4"
        """)
    rolled = dirt(project, "rollback", str(run_dir), "--yes")
    assert rolled.returncode == 1
    assert "FAILED to revert stubborn" in rolled.stdout
    assert rolled.stderr.startswith("dirt: error: 1 revert(s) failed, still in effect: stubborn: "
                                    "revert command exited with 4: cannot undo this")
    assert "Traceback" not in rolled.stderr


def test_a_safety_snapshot_is_never_restored_over_a_recovered_cluster_unless_asked(project) -> None:
    project.scenario("drill", basic_scenario(inject="inject:\n  - fault: etcd.wipe\n    name: lose etcd\n",
                                             backups="backups:\n  - backup: fake.backup\n    name: store\n",
                                             recover="recover:\n  - step: backup.restore\n    backup: store\n",
                                             expect=""))
    (project.root / "dirt.yaml").write_text((project.root / "dirt.yaml").read_text().replace(
        "settings: {alert_delay: 0.2, resolve_delay: 0.2}",
        "settings: {alert_delay: 0.2, resolve_delay: 0.2, objects: " + json.dumps(KUBE_SYSTEM) + "}"))
    ran = dirt(project, "run", "drill.yaml", "--display", "none")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    run_dir = next(project.reports.glob("*/journal.jsonl")).parent
    report = json.loads((run_dir / "report.json").read_text())
    assert report["faults"][0]["life"] == "recovered by step 'backup.restore' (the store restored)"
    assert dirt(project, "rollback", str(run_dir), "--yes").stdout.startswith("nothing to roll back")
    forced = dirt(project, "rollback", str(run_dir), "--yes", "--restore-safety-snapshot")
    assert forced.returncode == 0, forced.stderr
    assert "reverted lose etcd" in forced.stdout
    assert "restores the safety snapshot of" in forced.stderr and "every write since is lost" in forced.stderr
    assert json.loads((run_dir / "report.json").read_text())["faults"][0]["status"] == "reverted"


def test_plan_shows_each_fault_life_in_advance(project) -> None:
    three = TWO_FAULTS.rstrip(" ") + "      - fault: fake.fault\n        cause: c\n        rollback: false\n"
    project.scenario("p", basic_scenario(inject=three, recover="recover:\n  - step: fake.step\n    repairs: a\n"))
    proc = dirt(project, "plan", "p.yaml")
    assert proc.returncode == 0, proc.stderr
    lives_text = proc.stdout.split("fault lives (planned):")[1]
    assert "recovered by step 'fake.step' (repaired a)" in lives_text
    assert "not undone by any recovery step: rollback reverts it" in lives_text
    assert "rollback cannot revert it: it stays in effect" in lives_text


def test_the_journal_schema_is_one_typed_model_per_event() -> None:
    assert len(BY_NAME) == len(EVENT_TYPES)
    with pytest.raises(ValidationError):
        FaultInjected(index=0, name="x", driver="d", reversable=True)  # type: ignore[call-arg]  # misspelt


def test_a_journal_with_bad_lines_still_folds_and_lists_them(tmp_path) -> None:
    journal = tmp_path / JOURNAL_NAME
    good = {"seq": 1, "ts": 1.0, "t": 0.0, "event": "run.start", "run_id": "r", "schema_version": 2,
            "faults": [{"index": 0, "name": "f", "driver": "fake.fault", "reversible": True}]}
    lines = [json.dumps(good), "[]", '{"event": "no.such.event"}', '{"seq": 2, "ts": NaN, "t": 0, "event": "mttr"}',
             json.dumps({"seq": 3, "ts": 1.1, "t": 0.1, "event": "fault.injected", "index": 0, "name": "f",
                         "driver": "fake.fault", "reversible": True}),
             '{"seq": 4, "ts": "soon", "t": 0, "event": "mttr"}', "[" * 100000]
    journal.write_text("\n".join(lines) + "\n")
    contents = read_journal(journal)
    assert [e.event for e in contents.events] == ["run.start", "fault.injected"]
    assert len(contents.problems) == 5 and all(p.startswith(f"{journal}:") for p in contents.problems)
    assert [f.status for f in fold_faults(contents.events).all()] == ["injected"]


def crashed_run(project, point: str) -> Path:
    """The run folder of the file-fault drill, SIGKILLed by dirt.testing.crash right after ``point``."""
    from dirt.testing.crash import CRASH_ENV

    path = project.scenario("drill", basic_scenario(inject=FILE_FAULT, expect=""))
    env = {**os.environ, "DIRT_TESTING": "1", CRASH_ENV: point}
    proc = subprocess.run([*DIRT, "run", str(path), "--display", "none"], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return next(project.reports.glob("*/journal.jsonl")).parent


def test_the_crash_hook_sigkills_the_run_right_after_the_named_event_and_rollback_puts_it_back(project) -> None:
    run_dir = crashed_run(project, "fault.injected=break-file")
    events = journal_lines(run_dir / JOURNAL_NAME)
    assert events[-1]["event"] == "fault.injected", "killed at once: nothing written after the point"
    assert (project.root / "broken.flag").exists()
    rolled = dirt(project, "rollback", str(run_dir), "--yes")
    assert rolled.returncode == 0 and "reverted break-file" in rolled.stdout, rolled.stderr
    assert not (project.root / "broken.flag").exists()


def test_a_crash_point_names_an_event_its_phase_or_name_and_its_occurrence() -> None:
    from dirt.journal.events import PhaseStarted
    from dirt.testing.crash import CrashPoint

    point = CrashPoint.parse("phase.start=detect#2")
    assert (point.event, point.label, point.occurrence, str(point)) == ("phase.start", "detect", 2,
                                                                       "phase.start=detect#2")
    assert point.matches(PhaseStarted(phase="detect")) and not point.matches(PhaseStarted(phase="verify"))
    assert CrashPoint.parse("fault.injected").matches(FaultInjected(index=0, name="x", driver="d"))
    with pytest.raises(ValueError, match="EVENT\\[=LABEL\\]\\[#N\\]"):
        CrashPoint.parse("fault injected!")


def test_a_run_killed_while_injecting_is_rolled_back_with_the_params_fault_injecting_carries(project) -> None:
    run_dir = crashed_run(project, "fault.injecting=break-file")
    journal = run_dir / JOURNAL_NAME
    injecting = journal_lines(journal)[-1]
    assert injecting["event"] == "fault.injecting" and injecting["params"]["revert"] == "rm -f broken.flag"
    old = journal.read_text()  # as a journal of an older dirt would have it: no params on fault.injecting
    journal.write_text(old.replace(json.dumps(injecting), json.dumps({k: v for k, v in injecting.items()
                                                                       if k != "params"})))
    unknown = dirt(project, "rollback", str(run_dir), "--yes")
    assert unknown.returncode != 0
    assert "the run died while injecting it, and this journal does not hold its parameters: check by hand" \
           in unknown.stderr + unknown.stdout
    journal.write_text(old)
    rolled = dirt(project, "rollback", str(run_dir), "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "already recovered: break-file" in rolled.stdout, "never injected: found not in effect, left alone"


def test_the_crash_matrix_predicts_the_points_a_real_run_reaches_from_its_scenario() -> None:
    """Sampled drills get no reference run: their points come from the scenario.  These are the points a
    real run of api-down-then-etcd-lost journaled (its CI points, as the matrix printed them), less the
    recoveries, which depend on what claims them."""
    from tests.crash.matrix import predicted_points

    real = ["phase.start=preflight", "phase.end=preflight", "phase.start=inject",
            "fault.injecting=kill kube-apiserver", "fault.injected=kill kube-apiserver",
            "fault.verified=kill kube-apiserver", "fault.injecting=lose etcd's data directory",
            "fault.injected=lose etcd's data directory", "fault.verified=lose etcd's data directory",
            "phase.end=inject", "phase.start=detect", "phase.end=detect", "phase.start=recover",
            "phase.end=recover", "phase.start=verify", "phase.end=verify", "phase.start=cleanup",
            "phase.end=cleanup"]
    assert predicted_points("api-down-then-etcd-lost") == ["run.start", *real]


def test_rollback_of_a_fault_no_revert_undoes_says_what_to_do_by_hand(project) -> None:
    no_revert = FILE_FAULT.replace('        revert: "rm -f broken.flag"\n', "")
    path = project.scenario("drill", basic_scenario(inject=no_revert, expect=""))
    from dirt.testing.crash import CRASH_ENV

    env = {**os.environ, "DIRT_TESTING": "1", CRASH_ENV: "fault.injected=break-file"}
    proc = subprocess.run([*DIRT, "run", str(path), "--display", "none"], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    run_dir = next(project.reports.glob("*/journal.jsonl")).parent
    rolled = dirt(project, "rollback", str(run_dir), "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert ("left in effect: break-file (not reversible: it stays in effect until something else undoes it; "
            "by hand: the drill's recovery (playbook.run, fake.step), as playbooks/fake.md#repair-the-thing says)"
            ) in rolled.stdout
    assert (project.root / "broken.flag").exists()


def test_rollback_runs_a_revert_in_the_scenario_folder_as_the_run_did(project) -> None:
    """A revert's relative paths mean what they meant in the run, wherever ``dirt rollback`` is typed."""
    from dirt.testing.crash import CRASH_ENV

    folder = project.root / "drills"
    folder.mkdir()
    path = folder / "drill.yaml"
    path.write_text(textwrap.dedent(basic_scenario(inject=FILE_FAULT, expect="")).replace(
        "playbooks/fake.md", "../playbooks/fake.md"))
    env = {**os.environ, "DIRT_TESTING": "1", CRASH_ENV: "fault.injected=break-file"}
    proc = subprocess.run([*DIRT, "run", str(path), "--display", "none"], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (folder / "broken.flag").exists(), "the run's commands run in the scenario's folder"
    run_dir = next(project.reports.glob("*/journal.jsonl")).parent
    rolled = dirt(project, "rollback", str(run_dir), "--yes")
    assert rolled.returncode == 0 and "reverted break-file" in rolled.stdout, rolled.stdout + rolled.stderr
    assert not (folder / "broken.flag").exists()

"""The command line: exit codes, one clean line per user error, plan touches nothing."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import DIRT, basic_scenario


def dirt(project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=project.root, capture_output=True, text=True, timeout=120)


def test_validate_passes_good_files_and_names_bad_ones(project) -> None:
    project.scenario("good", basic_scenario())
    ok = dirt(project, "validate", "good.yaml")
    assert ok.returncode == 0 and "1 valid, 0 invalid, 0 not scenarios" in ok.stdout
    project.scenario("bad", basic_scenario(inject="inject:\n  - fault: fake.fault\n    fires: 3\n"))
    bad = dirt(project, "validate", ".")
    assert bad.returncode == 2
    assert "bad.yaml:17:12: inject.0.fires: expected a list" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_validate_on_a_folder_without_scenarios_is_a_usage_error(project) -> None:
    (project.root / "empty").mkdir()
    proc = dirt(project, "validate", "empty")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "dirt: error: empty: no scenario files (YAML with 'apiVersion: dirt/v1', 'kind: Scenario')"


def test_plan_shows_steps_and_blast_radius_and_touches_nothing(project) -> None:
    project.scenario("p", basic_scenario(inject="""\
        inject:
          - fault: exec
            command: "touch should-not-exist"
            revert: "rm should-not-exist"
        """, expect=""))
    proc = dirt(project, "plan", "p.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "run: touch should-not-exist" in proc.stdout
    assert "undo with: rm should-not-exist" in proc.stdout
    assert "playbook: playbooks/fake.md#repair-the-thing (Repair the thing)" in proc.stdout
    assert not (project.root / "should-not-exist").exists()
    assert not project.reports.exists()


def test_plan_shows_which_faults_a_target_refuses(project) -> None:
    project.scenario("p", basic_scenario(inject="inject:\n  - fault: fake.outage\n"))
    proc = dirt(project, "plan", "p.yaml", "--target", "guarded")
    assert "REFUSED: target 'guarded' does not allow 'cluster' faults" in proc.stdout


def test_run_exit_codes_follow_the_verdict(project) -> None:
    project.scenario("pass", basic_scenario())
    assert dirt(project, "run", "pass.yaml", "--display", "none").returncode == 0
    project.scenario("fail", basic_scenario(verify="verify:\n  - check: fake.check\n    mode: fail\n    within: 0.2s\n"))
    failed = dirt(project, "run", "fail.yaml", "--display", "none")
    assert failed.returncode == 1
    assert "check fake.check: not passing after 0.2s" in failed.stdout


def test_run_refuses_a_guarded_target_with_exit_2(project) -> None:
    project.scenario("g", basic_scenario(inject="inject:\n  - fault: fake.outage\n"))
    proc = dirt(project, "run", "g.yaml", "--target", "guarded")
    assert proc.returncode == 2
    assert "does not allow 'cluster' faults" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unknown_target_on_the_command_line_is_one_clean_line(project) -> None:
    project.scenario("t", basic_scenario())
    proc = dirt(project, "run", "t.yaml", "--target", "fak")
    assert proc.returncode == 2
    assert proc.stderr.startswith("dirt: error: unknown target 'fak'") and "did you mean 'fake'" in proc.stderr


def test_a_malformed_dirt_yaml_is_reported_with_its_line(project) -> None:
    (project.root / "dirt.yaml").write_text("targets:\n  x:\n    provider: kubernets\n")
    project.scenario("t", basic_scenario())
    proc = dirt(project, "validate", "t.yaml")
    assert proc.returncode == 2
    assert "dirt.yaml:3:15: targets.x.provider: must be 'sandbox', 'kind', 'kubeconfig', 'fleet' or 'fake'" in proc.stderr


def test_schema_is_valid_json(project) -> None:
    proc = dirt(project, "schema")
    schema = json.loads(proc.stdout)
    assert schema["properties"]["apiVersion"]["const"] == "dirt/v1"

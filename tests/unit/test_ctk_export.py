"""`dirt export --format chaostoolkit` and `dirt import`, against the fake target and real chaoslib.

Exported drills run in-process through chaoslib's own `run_experiment` (the engine of
`chaos run`); imported experiments are validated by `dirt validate` as a user would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dirt.cli import exit_code
from tests.conftest import DIRT, REPO, Project, basic_scenario

pytest.importorskip("chaoslib")


@pytest.fixture(autouse=True)
def fresh_drills():
    from dirt.ctk import runtime

    runtime.reset()
    yield
    runtime.reset()


def export(project: Project, path: Path, *extra: str) -> dict:
    out = project.root / "x.json"
    assert exit_code(["--config", str(project.root / "dirt.yaml"), "export", str(path), "-o", str(out), *extra]) == 0
    return json.loads(out.read_text())


def play(experiment: dict) -> dict:
    """What `chaos run` does with it, with explicit (empty) settings so no user control sneaks in."""
    from chaoslib.experiment import ensure_experiment_is_valid, run_experiment

    ensure_experiment_is_valid(experiment)
    return run_experiment(experiment, settings={"runtime": {"rollbacks": {"strategy": "always"}}})


def by_name(runs: list[dict]) -> dict[str, dict]:
    return {r["activity"]["name"]: r for r in runs}


# -- export ----------------------------------------------------------------------------------


def test_export_maps_the_drill_onto_hypothesis_method_and_rollbacks(project: Project) -> None:
    experiment = export(project, project.scenario("drill", basic_scenario(backups="")))
    config = experiment["configuration"]
    assert config["dirt_config"] == str((project.root / "dirt.yaml").resolve())
    assert config["dirt_target"] == "fake" and config["who"] == "world"
    assert config["dirt_scenario"] == str((project.root / "drill.yaml").resolve())
    probes = experiment["steady-state-hypothesis"]["probes"]
    assert [(p["provider"]["func"], p["provider"]["arguments"].get("after_fault")) for p in probes] == [
        ("run_check", False), ("run_check", True), ("alerts_resolve", None), ("expectations", None)]
    assert all(p["tolerance"] is True for p in probes)
    method = [(a["type"], a["provider"]["func"]) for a in experiment["method"]]
    assert method == [("action", "run_fault"), ("probe", "alert_fires"), ("action", "run_step"),
                      ("action", "run_step")]
    assert experiment["rollbacks"][0]["provider"]["arguments"] == {"key": "inject-0"}
    assert experiment["runtime"] == {"rollbacks": {"strategy": "always"}}
    assert probes[-1]["provider"]["arguments"] == {"mttr": 30.0, "silent": ["OtherAlert"]}


def test_scenario_variables_become_ctk_configuration_placeholders(project: Project) -> None:
    path = project.scenario("drill", basic_scenario(backups="", inject="""\
        inject:
          - fault: fake.fault
            name: break-it
            cause: "{{ who }}-thing"
            fires: [FakeDown]
        """))
    experiment = export(project, path, "--var", "who=moon")
    fault = experiment["method"][0]["provider"]["arguments"]
    assert fault["params"]["cause"] == "${who}-thing"
    assert experiment["configuration"]["who"] == "moon"


def test_an_exported_drill_completes_under_chaoslib_without_deviating(project: Project) -> None:
    journal = play(export(project, project.scenario("drill", basic_scenario(backups=""))))
    assert journal["status"] == "completed" and journal["deviated"] is False, journal
    runs = by_name(journal["run"])
    assert runs["break-it"]["output"]["state"] is not None
    assert runs["alert FakeDown fires"]["output"] is True
    assert by_name(journal["rollbacks"])["revert break-it"]["output"].endswith("nothing to revert")


def test_an_exported_drill_whose_recovery_repairs_nothing_deviates_and_rolls_back(project: Project) -> None:
    path = project.scenario("drill", basic_scenario(backups="", recover="""\
        recover:
          - step: fake.step
            repairs: null
        """, verify="""\
        verify:
          - check: fake.check
            within: 1s
        """, timing="""        timing:
          poll_interval: 100ms
          steady_state_within: 1s
        """))
    journal = play(export(project, path))
    assert journal["deviated"] is True
    after = journal["steady_states"]["after"]["probes"]
    assert after[0]["activity"]["name"] == "fake.check" and after[0]["output"] is False
    assert by_name(journal["rollbacks"])["revert break-it"]["status"] == "succeeded"
    assert "nothing to revert" not in by_name(journal["rollbacks"])["revert break-it"]["output"]


def test_a_fault_the_target_does_not_allow_is_refused_and_the_run_deviates(project: Project) -> None:
    path = project.scenario("drill", basic_scenario(backups="", inject="""\
        inject:
          - fault: fake.outage
            name: break-it
            fires: [FakeDown]
        """))
    journal = play(export(project, path, "-t", "guarded"))
    refused = by_name(journal["run"])["break-it"]
    assert refused["status"] == "failed"
    assert "does not allow 'cluster' faults" in refused["exception"][-1]
    assert journal["deviated"] is True


def test_export_of_a_bad_scenario_is_a_located_usage_error(project: Project, capsys) -> None:
    path = project.scenario("drill", basic_scenario(backups="", inject="inject:\n  - fault: fake.falt\n"))
    assert exit_code(["export", str(path)]) == 2
    assert "drill.yaml:" in capsys.readouterr().err


def test_an_output_file_that_cannot_be_written_is_a_usage_error(project: Project, capsys) -> None:
    path = project.scenario("drill", basic_scenario(backups=""))
    assert exit_code(["export", str(path), "-o", str(project.root / "missing" / "x.json")]) == 2
    assert "missing/x.json: cannot write" in capsys.readouterr().err


def test_without_chaos_toolkit_export_and_import_say_how_to_install_it(project: Project, monkeypatch,
                                                                        capsys) -> None:
    monkeypatch.setitem(sys.modules, "chaoslib", None)  # import chaoslib -> ImportError
    path = project.scenario("drill", basic_scenario(backups=""))
    assert exit_code(["export", str(path)]) == 2
    assert "pip install 'dirt[ctk]'" in capsys.readouterr().err
    (project.root / "e.json").write_text("{}")
    assert exit_code(["import", str(project.root / "e.json")]) == 2
    assert "pip install 'dirt[ctk]'" in capsys.readouterr().err


# -- import ----------------------------------------------------------------------------------

HTTP_AND_PYTHON = {
    "version": "1.0.0",
    "title": "Shop survives a pod kill",
    "description": "Kill a frontend pod; the site keeps answering.",
    "tags": ["shop", "k8s"],
    "configuration": {
        "ns": "shop",
        "base_url": "http://127.0.0.1:9",
        "token_name": {"type": "env", "key": "SHOP_TOKEN_NAME", "default": "x"},
    },
    "secrets": {"k8s": {"token": {"type": "env", "key": "K8S_TOKEN"}}},
    "steady-state-hypothesis": {
        "title": "site answers",
        "probes": [{"type": "probe", "name": "site-answers", "tolerance": 200,
                    "provider": {"type": "http", "url": "${base_url}/", "timeout": 3}}],
    },
    "method": [
        {"type": "action", "name": "kill-frontend-pod",
         "provider": {"type": "python", "module": "chaosk8s.pod.actions", "func": "terminate_pods",
                      "secrets": ["k8s"],
                      "arguments": {"label_selector": "app=frontend", "ns": "${ns}", "qty": 1}},
         "pauses": {"after": 2}},
        {"type": "probe", "name": "pods-back", "tolerance": True,
         "provider": {"type": "python", "module": "chaosk8s.pod.probes", "func": "pods_in_phase",
                      "arguments": {"label_selector": "app=frontend", "phase": "Running", "ns": "${ns}"}}},
        {"type": "action", "name": "announce", "background": True,
         "provider": {"type": "process", "path": "echo", "arguments": "${token_name}"}},
    ],
    "rollbacks": [
        {"type": "action", "name": "rollout-frontend",
         "provider": {"type": "python", "module": "chaosk8s.deployment.actions", "func": "rollout_deployment",
                      "arguments": {"name": "frontend", "ns": "${ns}"}}},
    ],
    "controls": [{"name": "tracing", "provider": {"type": "python", "module": "chaostracing.control"}}],
}

PROCESS_ONLY = """\
version: 1.0.0
title: A flag file comes and goes
description: Process providers only; runs anywhere.
configuration:
  flag: broken.flag
steady-state-hypothesis:
  title: no flag
  probes:
    - type: probe
      name: no-flag
      tolerance: 1
      provider: {type: process, path: test, arguments: ["-f", "${flag}"], timeout: 5}
method:
  - type: action
    name: raise-the-flag
    provider: {type: process, path: touch, arguments: ["${flag}"], timeout: 5}
    pauses: {after: 0.1}
  - type: probe
    name: flag-raised
    tolerance: 0
    provider: {type: process, path: test, arguments: ["-f", "${flag}"], timeout: 5}
  - type: action
    name: lower-the-flag
    provider: {type: process, path: rm, arguments: ["-f", "${flag}"], timeout: 5}
rollbacks:
  - type: action
    name: lower-the-flag-anyway
    provider: {type: process, path: rm, arguments: ["-f", "${flag}"], timeout: 5}
"""


def dirt_cmd(project: Project, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([*DIRT, *args], capture_output=True, text=True, cwd=project.root, timeout=120,
                          env={**os.environ, **(env or {})})


def test_an_experiment_with_configuration_secrets_pauses_and_rollbacks_imports_into_a_valid_drill(
        project: Project) -> None:
    (project.root / "e.json").write_text(json.dumps(HTTP_AND_PYTHON))
    done = dirt_cmd(project, "import", "e.json", "-o", "imported.yaml", env={"K8S_TOKEN": "t0ken"})
    assert done.returncode == 0, done.stderr
    assert "not mapped: experiment controls" in done.stderr
    assert "ran in the background" in done.stderr
    text = (project.root / "imported.yaml").read_text()
    assert "#   - experiment controls: not imported" in text
    scenario = yaml.safe_load(text)
    assert scenario["metadata"]["name"] == "shop-survives-a-pod-kill"
    assert scenario["vars"] == {"ns": "shop", "base_url": "http://127.0.0.1:9"}
    assert scenario["steady_state"][0]["activity"]["provider"]["url"] == "{{ base_url }}/"
    fault = scenario["inject"][0]
    assert fault["family"] == "pods" and fault["activity"]["pauses"] == {"after": 2}
    assert fault["activity"]["provider"]["arguments"]["ns"] == "{{ ns }}"
    assert fault["secrets"] == HTTP_AND_PYTHON["secrets"]
    assert fault["revert"]["name"] == "rollout-frontend"
    assert [c["name"] for c in scenario["verify"]] == ["site-answers", "pods-back"]
    step = scenario["recover"][0]
    assert step["configuration"] == {"token_name": HTTP_AND_PYTHON["configuration"]["token_name"]}
    assert step["activity"]["provider"]["arguments"] == "${token_name}"  # CTK's own configuration
    valid = dirt_cmd(project, "validate", "imported.yaml", env={"K8S_TOKEN": "t0ken"})
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_an_imported_process_experiment_runs_as_a_drill_and_passes(project: Project) -> None:
    (project.root / "e.yaml").write_text(PROCESS_ONLY)
    done = dirt_cmd(project, "import", "e.yaml", "-o", "flag.yaml")
    assert done.returncode == 0, done.stderr
    scenario = yaml.safe_load((project.root / "flag.yaml").read_text())
    assert [s["name"] for s in scenario["inject"]] == ["raise-the-flag"]
    assert scenario["inject"][0]["family"] == "command"
    assert [s["name"] for s in scenario["recover"]] == ["lower-the-flag"]
    assert [s["name"] for s in scenario["verify"]] == ["no-flag", "flag-raised"]
    # the method probe 'flag-raised' holds only while the fault is in effect: as a verify check it
    # fails after recovery, and dirt says so (CTK would only have recorded it)
    scenario["timing"] = {"verify_within": "2s"}
    (project.root / "flag.yaml").write_text(yaml.safe_dump(scenario))
    run = dirt_cmd(project, "run", "flag.yaml", "--display", "none")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "flag-raised" in run.stdout
    # without that probe the drill passes, and the flag is gone
    scenario["verify"] = scenario["verify"][:1]
    (project.root / "flag.yaml").write_text(yaml.safe_dump(scenario))
    run = dirt_cmd(project, "run", "flag.yaml", "--display", "none")
    assert run.returncode == 0, run.stdout + run.stderr
    assert not (project.root / "broken.flag").exists()


def test_an_experiment_without_an_action_is_refused(project: Project, capsys) -> None:
    (project.root / "e.json").write_text(json.dumps({"title": "t", "method": [
        {"type": "probe", "name": "p", "provider": {"type": "http", "url": "http://127.0.0.1:9/"}}]}))
    assert exit_code(["import", str(project.root / "e.json")]) == 2
    assert "nothing to inject" in capsys.readouterr().err


def test_a_repository_drill_exported_and_imported_back_is_the_same_drill(tmp_path: Path) -> None:
    for folder in ("scenarios", "playbooks"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    config = yaml.safe_load((REPO / "dirt.yaml").read_text())
    config.pop("rules", None)
    (tmp_path / "dirt.yaml").write_text(yaml.safe_dump(config))
    original = tmp_path / "scenarios" / "control-plane-down.yaml"
    assert exit_code(["--config", str(tmp_path / "dirt.yaml"), "export", str(original),
                      "-o", str(tmp_path / "x.yaml")]) == 0
    back = tmp_path / "scenarios" / "back" / "control-plane-down.yaml"
    back.parent.mkdir()
    assert exit_code(["--config", str(tmp_path / "dirt.yaml"), "import", str(tmp_path / "x.yaml"),
                      "-o", str(back)]) == 0
    from dirt.scenario import LoadOptions, load_scenario

    a, b = load_scenario(original, LoadOptions()), load_scenario(back, LoadOptions())
    assert b.name == a.name and b.vars == a.vars and b.expect == a.expect
    for section in ("setup", "steady_state", "inject", "recover", "verify", "cleanup"):
        left, right = getattr(a, section), getattr(b, section)
        assert [(s.driver, s.name, s.params, s.playbook.anchor if s.playbook else None) for s in left] == \
            [(s.driver, s.name, s.params, s.playbook.anchor if s.playbook else None) for s in right], section

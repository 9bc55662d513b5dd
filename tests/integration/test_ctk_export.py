"""Drills exported as Chaos Toolkit experiments run under the real `chaos run` against the sandbox.

A passing drill gives a run that is completed and not deviated (exit 0) with the API server
stopped and started; the same drill with its recovery taken out deviates (exit 1), and the
experiment's rollbacks put the API server back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CHAOS = VENV_BIN / "chaos"
DIRT = [sys.executable, "-m", "dirt"]
CHAOS_TIMEOUT = 600  # a bound for a hung run, not a timing assertion

pytest.importorskip("chaoslib")


def export(scenario: Path, out: Path, config: Path) -> None:
    done = subprocess.run([*DIRT, "--config", str(config), "export", str(scenario), "--format", "chaostoolkit",
                           "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def chaos(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`chaos` with settings that cannot exist, so a user's ~/.chaostoolkit/settings.yaml adds no controls."""
    return subprocess.run([str(CHAOS), "--no-log-file", "--settings", str(cwd / "no-settings.yaml"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=CHAOS_TIMEOUT, env=dict(os.environ))


def run_experiment(experiment: Path, cwd: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    validated = chaos("validate", str(experiment), cwd=cwd)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    journal = cwd / "journal.json"
    done = chaos("run", "--no-verify-tls", "--journal-path", str(journal), str(experiment), cwd=cwd)
    return done, json.loads(journal.read_text())


def outputs(journal: dict) -> dict[str, object]:
    return {r["activity"]["name"]: r.get("output") for r in journal["run"] + journal["rollbacks"]}


def api_up(target) -> bool:
    from dirt.drivers import Context
    from dirt.drivers.registry import default_registry

    cls = default_registry().get("check", "kube.api_available")
    return cls(cls.Params(), Context(target=target, run_dir=Path("."))).probe().ok


@pytest.fixture
def sandbox_project(dirt_sandbox, tmp_path: Path) -> Path:
    """A temp project whose dirt.yaml names the same sandbox as the repository's, and no shop left over.

    An experiment run by ``chaos run`` has no dirt preflight to wait out what an earlier test left:
    ReplicaSets orphaned while the API server was down make the redeployed Deployments collide
    (collisionCount 1: a second set of frontend Pods, unschedulable under the anti-affinity), and
    the steady-state probe never holds.  Each test starts without the shop namespace.
    """
    kube = dirt_sandbox.kube()
    if kube.find("v1", "Namespace", "shop") is not None:
        kube.delete("v1", "Namespace", "shop")
    deadline = time.monotonic() + 120
    while kube.find("v1", "Namespace", "shop") is not None:
        assert time.monotonic() < deadline, "the shop namespace left by an earlier test is still terminating"
        time.sleep(0.5)
    config = yaml.safe_load((REPO / "dirt.yaml").read_text())
    config.pop("rules", None)
    # the sandbox target only: the others name files relative to the repository (a kind config)
    config["targets"] = {"sandbox": config["targets"]["sandbox"]}
    config["default_target"] = "sandbox"
    settings = config["targets"]["sandbox"]["settings"]
    settings["rules"] = [str(REPO / r) for r in settings.get("rules", [])]
    (tmp_path / "dirt.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def test_control_plane_down_exported_runs_under_chaos_completed_and_not_deviated(sandbox_project: Path) -> None:
    experiment = sandbox_project / "x.json"
    export(REPO / "scenarios" / "control-plane-down.yaml", experiment, REPO / "dirt.yaml")
    done, journal = run_experiment(experiment, sandbox_project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert journal["status"] == "completed" and journal["deviated"] is False
    seen = outputs(journal)
    assert seen["kill kube-apiserver"]["state"] == {"stopped": ["kube-apiserver"]}
    assert seen["restart kube-apiserver"]["detail"].startswith("started kube-apiserver")
    assert seen["alert KubeAPIDown fires"] is True
    assert all(p["tolerance_met"] for p in journal["steady_states"]["after"]["probes"])


def test_the_same_drill_without_its_recovery_deviates_and_rollback_restarts_the_api(
        sandbox_project: Path, dirt_sandbox) -> None:
    drill = yaml.safe_load((REPO / "scenarios" / "control-plane-down.yaml").read_text())
    drill["metadata"]["name"] = "control-plane-down-unrecovered"
    del drill["metadata"]["playbook"]
    # Without the live storefront: after the API's outage the real node's kubelet takes about a
    # minute to notice its pod's deletion (its watches back off), and the cleanup waits for that.
    drill["setup"] = [step for step in drill["setup"] if "/live/" not in step["path"]]
    drill["steady_state"] = [step for step in drill["steady_state"] if step["check"] != "http"]
    drill["cleanup"][0]["namespaces"] = ["{{ namespace }}"]
    for section in ("setup", "steady_state", "inject", "verify", "cleanup"):
        for step in drill[section]:
            step.pop("playbook", None)
            step["within"] = "10s" if section in ("steady_state", "verify") else step.get("within", "60s")
    for step in drill["setup"]:  # the copy lives outside the repository: its manifests by absolute path
        step["path"] = str(REPO / "scenarios" / step["path"])
    drill["recover"] = []
    drill["expect"] = {"alerts": [{"name": "KubeAPIDown", "fires_within": "30s"}]}
    drill["timing"] = {"steady_state_within": "10s"}
    scenario = sandbox_project / "unrecovered.yaml"
    scenario.write_text(yaml.safe_dump(drill, sort_keys=False))
    experiment = sandbox_project / "x.yaml"
    export(scenario, experiment, sandbox_project / "dirt.yaml")

    done, journal = run_experiment(experiment, sandbox_project)
    assert done.returncode == 1, done.stdout[-3000:]
    assert journal["deviated"] is True
    after = {p["activity"]["name"]: p["output"] for p in journal["steady_states"]["after"]["probes"]}
    assert after["kube.api_available"] is False
    assert outputs(journal)["revert kill kube-apiserver"] == "started kube-apiserver"
    assert api_up(dirt_sandbox)


def test_a_drill_of_chaosk8s_faults_exported_runs_its_activities_against_the_target(sandbox_project: Path) -> None:
    experiment = sandbox_project / "ctk.json"
    export(REPO / "scenarios" / "ctk-frontend-deleted.yaml", experiment, REPO / "dirt.yaml")
    done, journal = run_experiment(experiment, sandbox_project)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert journal["status"] == "completed" and journal["deviated"] is False
    seen = outputs(journal)
    assert seen["alert ShopWorkloadsMissing fires"] is True
    assert "delete the frontend deployment" in seen and seen["delete the frontend deployment"]["state"]

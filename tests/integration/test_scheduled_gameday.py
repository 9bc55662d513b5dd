"""A game day scheduled by Kubernetes itself: exported as a CronJob, fired by the CronJob controller,
run on the sandbox's real node from dirt's own runner image.

The game day is not the repository's: ``dirt init`` writes a user's starter project into a
temporary folder, and its example game day gets a cron that fires every minute (so the
controller starts it within a minute and ``--trigger schedule`` finds a real slot).  It is
exported with ``dirt gameday export --cronjob --image dirt.local/dirt:<version>`` for the
sandbox: the job runs on the real node (node selector, toleration), in the host's network so
the API server, Prometheus and Alertmanager on 127.0.0.1 are reachable, acts through a
kubeconfig Secret, and writes reports and run history to a folder on the node (hostPath).
The verdicts are read from that folder as its user would read them: ``dirt history``.
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

from dirt import __version__
from dirt.sandbox.cluster import Sandbox
from dirt.sandbox.runner_image import build_runner_image

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

DIRT = [sys.executable, "-m", "dirt"]
NAMESPACE = "dirt-gameday"
SECRET = "sandbox-kubeconfig"
IMAGE = f"dirt.local/dirt:{__version__}"
RUNNER_UID = 65532


def kubectl(target, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    binary = target.sandbox.binaries().kubectl
    done = subprocess.run([str(binary), "--kubeconfig", target.kubeconfig_path(), *args], input=stdin, text=True,
                          capture_output=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="module")
def runner_image(dirt_sandbox, dirt_dist) -> str:
    """dirt's runner image, built (or reused from the cache) from this session's wheel and imported
    into the real node's containerd."""
    assert dirt_sandbox.settings.real_nodes == 1, "dirt.yaml's sandbox must have a real node (real_nodes: 1)"
    image = build_runner_image(wheel=dirt_dist["wheel"], log=lambda m: print(m, file=sys.stderr))
    assert IMAGE in image.references
    dirt_sandbox.sandbox.wait_real_node_ready(60)
    dirt_sandbox.sandbox.import_image(image.archive)
    assert IMAGE in dirt_sandbox.sandbox.images()
    return IMAGE


@pytest.fixture
def starter(dirt_sandbox, tmp_path: Path):
    """A user's project from `dirt init`, its game day firing every minute, its alert rule loaded into the
    suite's sandbox (as `dirt run` from that project would load it); the suite's rules come back after."""
    project = tmp_path / "their-drills"
    made = subprocess.run([*DIRT, "init", str(project)], capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    day = project / "gamedays" / "example.yaml"
    document = yaml.safe_load(day.read_text())
    document["schedule"] = {"cron": "* * * * *", "timezone": "UTC"}  # every moment is within a slot
    day.write_text(yaml.safe_dump(document, sort_keys=False))
    suite = dirt_sandbox.sandbox
    theirs = Sandbox(suite.name, rules=[*suite.extra_rules, project / "apps/hello/alerts.yaml"],
                     home=suite.root.parent)
    assert theirs.sync_rules(), "the starter's alert was not loaded yet"
    yield project
    suite.sync_rules()


def test_a_cronjob_exported_from_a_users_game_day_runs_it_on_the_real_node(dirt_sandbox, runner_image, starter,
                                                                         tmp_path: Path) -> None:
    box = dirt_sandbox.sandbox
    reports = tmp_path / "node-reports"  # hostPath: the real node is this machine
    reports.mkdir()
    os.chown(reports, RUNNER_UID, RUNNER_UID)
    # the certificates inline: the pod has none of the sandbox's files
    flat = kubectl(dirt_sandbox, "config", "view", "--raw", "--flatten").stdout
    exported = subprocess.run(
        [*DIRT, "--config", str(starter / "dirt.yaml"), "gameday", "export", str(starter / "gamedays/example.yaml"),
         "--cronjob", "--image", runner_image, "--namespace", NAMESPACE, "--kubeconfig-secret", SECRET,
         "--host-network", "--node-selector", "dirt.dev/node=real",
         "--toleration", "dirt.dev/real-node=true:NoSchedule", "--reports-host-path", str(reports),
         "--prometheus", box.prometheus_url, "--alertmanager", box.alertmanager_url,
         "-o", str(tmp_path / "cronjob.yaml")], capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    kubectl(dirt_sandbox, "create", "namespace", NAMESPACE)
    try:
        kubectl(dirt_sandbox, "-n", NAMESPACE, "create", "secret", "generic", SECRET,
                "--from-file=kubeconfig=/dev/stdin", stdin=flat)
        kubectl(dirt_sandbox, "apply", "-f", str(tmp_path / "cronjob.yaml"))  # the API server accepts every object
        job = wait_for_scheduled_job(dirt_sandbox, "dirt-gameday-example")
        # one run is enough: the controller fires no other while this one runs (Forbid), nor after this
        kubectl(dirt_sandbox, "-n", NAMESPACE, "patch", "cronjob", "dirt-gameday-example", "--type=merge",
                "-p", '{"spec":{"suspend":true}}')
        outcome = wait_for_job(dirt_sandbox, job, timeout=600)
        pod = json.loads(kubectl(dirt_sandbox, "-n", NAMESPACE, "get", "pods", "-l", f"job-name={job}",
                                 "-o", "json").stdout)["items"][0]
        logs = kubectl(dirt_sandbox, "-n", NAMESPACE, "logs", pod["metadata"]["name"], check=False)
        if outcome != "Complete":
            events = kubectl(dirt_sandbox, "-n", NAMESPACE, "get", "events", check=False).stdout
            raise AssertionError(f"job {job}: {outcome}\npod status: {json.dumps(pod.get('status'))[:3000]}\n"
                                 f"events:\n{events[-3000:]}\nlogs:\n{(logs.stdout + logs.stderr)[-6000:]}")
        assert pod["spec"]["nodeName"] == box.real_node_names[0], "on the real node"
        assert pod["spec"]["hostNetwork"] is True
    finally:
        kubectl(dirt_sandbox, "delete", "namespace", NAMESPACE, "--wait=false", check=False)

    history = subprocess.run([*DIRT, "--config", str(starter / "dirt.yaml"), "history", "--report-dir",
                              str(reports), "--json"], capture_output=True, text=True, timeout=120)
    assert history.returncode == 0, history.stderr
    view = json.loads(history.stdout)
    days = view["gamedays"]
    assert [(d["name"], d["verdict"], d["trigger"]) for d in days] == [("example", "passed", "schedule")], days
    runs = view["runs"]
    assert [(r["scenario"], r["verdict"], r["trigger"]) for r in runs] == [("first-drill", "passed", "schedule")]
    report = json.loads(next(reports.glob("*-first-drill-*/report.json")).read_text())
    assert report["verdict"] == "passed" and report["timings"]["mttd_seconds"]["HelloWorkloadsMissing"] > 0


def wait_for_scheduled_job(target, cronjob: str, timeout: float = 150) -> str:
    """The Job the CronJob controller creates (its cron fires every minute)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = json.loads(kubectl(target, "-n", NAMESPACE, "get", "jobs", "-o", "json").stdout)["items"]
        owned = [j["metadata"]["name"] for j in jobs
                 if any(o.get("name") == cronjob for o in j["metadata"].get("ownerReferences", []))]
        if owned:
            return owned[0]
        time.sleep(2)
    events = kubectl(target, "-n", NAMESPACE, "get", "events", check=False).stdout
    raise AssertionError(f"the CronJob controller created no Job in {timeout:.0f}s:\n{events}")


def wait_for_job(target, job: str, timeout: float) -> str:
    """Complete or Failed (the job's own verdict), or a timeout with what the pod said."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(kubectl(target, "-n", NAMESPACE, "get", "job", job, "-o", "json").stdout)["status"]
        for condition in status.get("conditions", []):
            if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
                return condition["type"]
        time.sleep(3)
    return "still running"

"""The sandbox's Pushgateway: Debian's real ``prometheus-pushgateway``, scraped by the sandbox's real Prometheus.

What a batch job pushes over HTTP must become a series in Prometheus with the job and instance the
pusher gave it (``honor_labels``), which is what a platform team's dashboards and alerts on dirt's
run metrics (``dirt history export --pushgateway``) rely on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import Project, basic_scenario

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

DIRT = [sys.executable, "-m", "dirt"]
REPO = Path(__file__).resolve().parents[2]
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture(scope="module")
def pushing(dirt_sandbox):
    """The suite's sandbox target, which runs a Pushgateway (dirt.yaml gives it ``pushgateway: true``)."""
    assert dirt_sandbox.settings.pushgateway, "dirt.yaml's sandbox must run a Pushgateway (pushgateway: true)"
    assert dirt_sandbox.pushgateway_url
    return dirt_sandbox


def dirt(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DIRT_CONFIG"}
    return subprocess.run([*DIRT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def query_until(prometheus: str, promql: str, *, timeout: float = 60.0) -> list[dict]:
    """Prometheus' answer to ``promql`` once it has a series (it appears after the next scrape)."""
    deadline = time.monotonic() + timeout
    result: list[dict] = []
    while time.monotonic() < deadline:
        answer = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5)
        assert answer.status_code == 200, answer.text
        result = answer.json()["data"]["result"]
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"Prometheus has no series for {promql} after {timeout:.0f}s")


def push(url: str, job: str, instance: str, body: str) -> None:
    answer = requests.put(f"{url}/metrics/job/{job}/instance/{instance}", data=body.encode(),
                          headers={"Content-Type": EXPOSITION}, timeout=5)
    assert answer.status_code in (200, 202), answer.text


def test_status_lists_the_pushgateway_healthy_with_its_url(pushing) -> None:
    proc = dirt("sandbox", "status", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads(proc.stdout)
    assert status["pushgateway_url"] == pushing.pushgateway_url
    assert status["pushgateway_url"].startswith("http://127.0.0.1:")
    component = {c["name"]: c for c in status["components"]}["pushgateway"]
    assert component["healthy"] and component["pid"]
    assert pushing.variables()["pushgateway_url"] == pushing.pushgateway_url
    assert requests.get(f"{pushing.pushgateway_url}/-/healthy", timeout=5).status_code == 200


def test_the_pushgateway_log_says_where_it_listens(pushing) -> None:
    proc = dirt("sandbox", "logs", "pushgateway", "--lines", "200")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert pushing.pushgateway_url.removeprefix("http://") in proc.stdout


def test_a_pushed_metric_is_queryable_in_prometheus_with_the_pushers_labels(pushing) -> None:
    instance = f"laptop-{uuid.uuid4().hex[:8]}"
    push(pushing.pushgateway_url, "dirt-pushgateway-test", instance,
         "# TYPE dirt_pushgateway_test_value gauge\n"
         'dirt_pushgateway_test_value{drill="restore"} 42\n')

    promql = f'dirt_pushgateway_test_value{{job="dirt-pushgateway-test",instance="{instance}"}}'
    [series] = query_until(pushing.prometheus.url, promql)
    labels = series["metric"]
    assert labels["job"] == "dirt-pushgateway-test" and labels["instance"] == instance  # honor_labels
    assert labels["drill"] == "restore"
    assert "exported_job" not in labels and "exported_instance" not in labels
    assert series["value"][1] == "42"


def test_the_pushgateway_is_stopped_by_down(tmp_path) -> None:
    """A one-node sandbox of its own, with a Pushgateway: up, push, then down stops it and removes what it kept."""
    from dirt.sandbox import process
    from dirt.sandbox.cluster import Sandbox

    box = Sandbox("pushdown", nodes=1, kube_state_metrics=False, pushgateway=True, home=tmp_path / "home")
    try:
        status = box.up(log=lambda m: None)
        component = {c["name"]: c for c in status["components"]}["pushgateway"]
        assert component["healthy"] and component["pid"]
        push(box.pushgateway_url, "dirt-down-test", "x", "dirt_down_test_value 1\n")
        pid = component["pid"]
        assert process.alive(pid)
    finally:
        box.down(log=lambda m: None)
    assert not process.alive(pid)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{status['pushgateway_url']}/-/healthy", timeout=5)
    assert not box.root.exists()


def test_history_export_pushes_run_metrics_that_prometheus_can_query(pushing, tmp_path) -> None:
    """A history holding one run (a fake drill run here), exported to the sandbox's Pushgateway."""
    project = Project(tmp_path / "project")
    project.scenario("fake-drill", basic_scenario())
    ran = dirt("run", "fake-drill.yaml", cwd=project.root)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [report_file] = project.reports.glob("*/report.json")
    from dirt.history import open_store

    # recorded by `dirt run` already; recording again is a no-op (idempotent per run_id)
    open_store(None, project.reports).record_run(json.loads(report_file.read_text()))

    exported = dirt("history", "export", "--format", "openmetrics", "--pushgateway", pushing.pushgateway_url,
                    cwd=project.root)
    assert exported.returncode == 0, exported.stdout + exported.stderr

    [series] = query_until(pushing.prometheus.url, 'dirt_last_run_success{scenario="fake-drill"}')
    assert series["metric"]["job"] == "dirt"  # the exporter's job, kept by honor_labels
    assert series["value"][1] == "1"

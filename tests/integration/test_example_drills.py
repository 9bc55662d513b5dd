"""What the example drills must report, beyond passing (they also run as `pytest scenarios/`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]


def test_control_plane_down_reports_mttd_for_kube_api_down_from_prometheus_and_alertmanager(dirt, tmp_path) -> None:
    result = dirt.run(REPO / "scenarios" / "control-plane-down.yaml", report_dir=tmp_path)
    assert result.passed, result.failures
    report = result.report
    alert = next(x for x in report["expectations"] if x["kind"] == "alert" and x["name"] == "KubeAPIDown")
    prometheus, alertmanager = alert["sources"]["prometheus"], alert["sources"]["alertmanager"]
    assert prometheus["fired"] and alertmanager["fired"]
    # Prometheus: activeAt + for; Alertmanager: startsAt — the same moment, by the servers' clocks
    assert prometheus["server_time"] == pytest.approx(prometheus["active_at"] + prometheus["for_seconds"])
    assert alertmanager["server_time"] == pytest.approx(prometheus["server_time"], abs=1.0)
    assert 0 < prometheus["mttd_seconds"] <= 30 and prometheus["observed_seconds"] >= prometheus["mttd_seconds"]
    assert report["timings"]["mttd_seconds"]["KubeAPIDown"] == prometheus["mttd_seconds"]
    assert 0 < report["timings"]["mttr_seconds"] < 120
    restart = next(s for s in report["steps"] if s["driver"] == "control_plane.start")
    assert restart["playbook_url"].endswith("playbooks/control-plane-down.md#restart-the-api-server")
    # the report tells a fault the recovery fixed from one still breaking the cluster
    fault = report["faults"][0]
    assert fault["status"] == "recovered" and fault["in_effect"] is False
    assert fault["life"] == "recovered by step 'restart kube-apiserver' (started kube-apiserver)"
    assert fault["resolved_offset"] >= restart["start_offset"]
    assert "recovered by step &#x27;restart kube-apiserver&#x27;" in (result.run_dir / "report.html").read_text()
    assert "**recovered by step 'restart kube-apiserver'" in (result.run_dir / "report.md").read_text()


def test_the_sandbox_rules_and_the_shop_alerts_pass_promtool() -> None:
    rules = [*sorted((REPO / "dirt" / "sandbox" / "rules").glob("*.yaml")), REPO / "scenarios/apps/shop/alerts.yaml"]
    proc = subprocess.run(["promtool", "check", "rules", *map(str, rules)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(rules)

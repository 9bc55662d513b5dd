"""The alerting rules and the Grafana dashboard shipped for dirt's metrics (monitoring/)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from dirt.app.history import METRICS

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make deps` installs the Debian package prometheus"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, cwd=MONITORING)


def test_the_alert_rules_fire_when_a_drill_fails_is_overdue_or_a_backup_is_unproven() -> None:
    checked = promtool("check", "rules", "dirt-alerts.yaml")
    assert checked.returncode == 0 and "3 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "dirt-alerts.test.yaml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_rule_tests_can_fail(tmp_path: Path) -> None:
    shutil.copy(MONITORING / "dirt-alerts.yaml", tmp_path)
    text = (MONITORING / "dirt-alerts.test.yaml").read_text().replace("values: '1x9 0x10'", "values: '1x20'")
    (tmp_path / "broken.test.yaml").write_text(text)
    tool = shutil.which("promtool")
    assert tool
    proc = subprocess.run([tool, "test", "rules", "broken.test.yaml"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bdirt_[a-z_]+\b", expr))


def test_the_rules_and_the_dashboard_use_only_metrics_dirt_exports() -> None:
    dashboard = json.loads((MONITORING / "grafana-dirt.json").read_text())
    assert dashboard["uid"] and dashboard["panels"] and dashboard["schemaVersion"] >= 30
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    rules = (MONITORING / "dirt-alerts.yaml").read_text()
    exprs += re.findall(r"expr: (.+)", rules)
    named = set().union(*(_metric_names(e) for e in exprs))
    assert named and named <= set(METRICS), named - set(METRICS)
    for expr in exprs:
        assert _metric_names(expr), f"an expression names no dirt metric: {expr}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))

"""The fleet's alert rules (dirt/sandbox/fleet_rules): valid, tested with promtool, and testable to failure."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from dirt.sandbox.monitoring import render_rules

FLEET_RULES = Path(__file__).resolve().parents[2] / "dirt" / "sandbox" / "fleet_rules"
ALERTS = {"FleetMemberDown", "FleetCapacityLow", "FleetEntryErrors", "FleetMemberUnreachable", "FleetEntryDown"}


def promtool(*args: str, cwd: Path = FLEET_RULES) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make deps` installs the Debian package prometheus"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False)


def rules() -> list[dict]:
    data = yaml.safe_load((FLEET_RULES / "fleet.yaml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_the_fleet_alerts_fire_when_a_member_or_the_entry_point_is_lost_and_not_before() -> None:
    checked = promtool("check", "rules", "fleet.yaml")
    assert checked.returncode == 0 and "5 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "fleet.test.yaml")
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_fleet_rule_tests_can_fail(tmp_path: Path) -> None:
    shutil.copy(FLEET_RULES / "fleet.yaml", tmp_path)
    text = (FLEET_RULES / "fleet.test.yaml").read_text()
    broken = text.replace("values: '1x4 0x5 1x10'", "values: '1x20'")  # b2 never leaves rotation
    assert broken != text
    (tmp_path / "broken.test.yaml").write_text(broken)
    proc = promtool("test", "rules", "broken.test.yaml", cwd=tmp_path)
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr
    assert "FleetMemberDown" in proc.stdout + proc.stderr


def test_every_fleet_alert_says_how_bad_and_what_happened_and_fires_within_seconds() -> None:
    alerts = {rule["alert"]: rule for rule in rules()}
    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        seconds = re.fullmatch(r"(\d+)s", rule["for"])
        assert seconds and 1 <= int(seconds.group(1)) <= 5, (name, rule["for"])
        # only the fleet Prometheus' two jobs: the entry point's exporter and the members' federation
        assert set(re.findall(r'job="([^"]+)"', rule["expr"])) <= {"entry", "federate"}, name
    assert 'job="federate"' in alerts["FleetMemberUnreachable"]["expr"]
    assert 'job="entry"' in alerts["FleetEntryDown"]["expr"]


def test_the_sandbox_can_render_the_fleet_rules_with_its_own_alert_delay(tmp_path: Path) -> None:
    rendered = render_rules([FLEET_RULES / "fleet.yaml"], alert_for=3.0)
    [(name, text)] = rendered.items()
    data = yaml.safe_load(text)
    assert {r["for"] for g in data["groups"] for r in g["rules"]} == {"3s"}
    (tmp_path / name).write_text(text)
    checked = promtool("check", "rules", name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr

"""``dirt coverage``: do the alerts our drills expect exist, and which rules are never drilled?

Black-box: the CLI runs in a throw-away project folder, on the repository's
sandbox rules (checked by the real ``promtool``) or on rule files written here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, Project

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SANDBOX_RULES = REPO / "dirt" / "sandbox" / "rules"


def sandbox_alerts() -> dict[str, int]:
    """Alert name -> line of its ``alert:`` in the sandbox rules."""
    lines: dict[str, int] = {}
    for path in sorted(SANDBOX_RULES.glob("*.yaml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip().startswith("- alert:"):
                lines[line.split(":", 1)[1].strip()] = number
    return lines


def drill(alerts: list[str], *, silent: list[str] = ()) -> str:
    expect = {"alerts": [{"name": a, "fires_within": "30s"} for a in alerts]}
    if silent:
        expect["silent"] = list(silent)
    return textwrap.dedent("""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata:
          name: drill
        inject:
          - fault: exec
            command: "true"
        """) + yaml.safe_dump({"expect": expect}, sort_keys=False)


@pytest.fixture
def coverage_project(project: Project) -> Project:
    """A project whose dirt.yaml points ``rules:`` at the sandbox rules, with a scenarios folder."""
    (project.root / "dirt.yaml").write_text(textwrap.dedent(f"""\
        default_target: fake
        rules: [{SANDBOX_RULES}]
        targets:
          fake: {{provider: fake}}
        """))
    (project.root / "scenarios").mkdir()
    return project


def row(alert: str, rule: str, table: str) -> bool:
    """Whether the printed table has a row starting with this alert and its rule."""
    return re.search(rf"│ {re.escape(alert)} +│ {re.escape(rule)} +│", table) is not None


def dirt(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200")
    env.pop("DIRT_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "dirt", *args], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=60)


def test_coverage_of_the_sandbox_rules_passes_and_lists_the_rules_no_drill_exercises(coverage_project) -> None:
    scenarios = coverage_project.root / "scenarios"
    (scenarios / "api-down.yaml").write_text(drill(["KubeAPIDown"]))
    (scenarios / "etcd-lost.yaml").write_text(drill(["etcdMembersDown", "KubeAPIDown"], silent=["Watchdog"]))
    rules = sandbox_alerts()

    done = dirt(coverage_project, "coverage", "scenarios")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "promtool check rules: 1 file(s) OK" in out
    expected, _, unexercised = out.partition("Rules no scenario exercises")
    assert row("KubeAPIDown", f"kubernetes.yaml:{rules['KubeAPIDown']}", expected)
    assert row("etcdMembersDown", f"kubernetes.yaml:{rules['etcdMembersDown']}", expected)
    assert "scenarios/etcd-lost.yaml" in expected
    for alert in set(rules) - {"KubeAPIDown", "etcdMembersDown"}:
        assert row(alert, f"kubernetes.yaml:{rules[alert]}", unexercised), alert
    assert "KubeAPIDown" not in unexercised and "etcdMembersDown" not in unexercised
    assert f"2 of {len(rules)} alerting rules exercised by a drill" in out
    assert done.stderr == ""


def test_every_alert_the_repository_drills_expect_has_a_rule() -> None:
    env = dict(os.environ, COLUMNS="200")
    env.pop("DIRT_CONFIG", None)
    done = subprocess.run([sys.executable, "-m", "dirt", "coverage", "scenarios"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "MISSING" not in done.stdout and "KubeAPIDown" in done.stdout


def test_an_expected_alert_that_no_rule_defines_exits_2_naming_it(coverage_project) -> None:
    (coverage_project.root / "scenarios" / "typo.yaml").write_text(drill(["KubeAPIDwn"]))
    done = dirt(coverage_project, "coverage", "scenarios")
    assert done.returncode == 2
    assert "KubeAPIDwn" in done.stdout and "MISSING" in done.stdout
    assert ("error: alert 'KubeAPIDwn' is expected by scenarios/typo.yaml but no rule defines it; "
            "did you mean 'KubeAPIDown'?") in done.stderr
    assert "Traceback" not in done.stderr


def test_a_silent_alert_no_rule_defines_is_a_warning_not_an_error(coverage_project) -> None:
    (coverage_project.root / "scenarios" / "d.yaml").write_text(drill(["KubeAPIDown"], silent=["NoSuchAlert"]))
    done = dirt(coverage_project, "coverage", "scenarios")
    assert done.returncode == 0, done.stderr
    assert "warning: alert 'NoSuchAlert'" in done.stderr and "can never fire" in done.stderr


def test_a_broken_rule_file_fails_promtool_and_exits_2(coverage_project, tmp_path: Path) -> None:
    (coverage_project.root / "scenarios" / "d.yaml").write_text(drill(["DemoDown"]))
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text("groups:\n  - name: ok\n    rules:\n      - alert: DemoDown\n"
                                    "        expr: up == 0\n")
    (rules / "broken.yaml").write_text("groups:\n  - name: bad\n    rules:\n      - alert: DemoBroken\n"
                                       "        expr: sum(up by (job)\n")
    done = dirt(coverage_project, "coverage", "scenarios", "--rules", str(rules))
    assert done.returncode == 2
    assert "promtool check rules failed" in done.stderr
    assert "broken.yaml" in done.stderr  # promtool's own message names the file
    assert "Traceback" not in done.stderr

    (rules / "broken.yaml").unlink()
    done = dirt(coverage_project, "coverage", "scenarios", "--rules", str(rules))
    assert done.returncode == 0, done.stderr  # --rules replaced the sandbox rules of dirt.yaml
    assert "1 of 1 alerting rules exercised" in done.stdout


def test_a_rule_folder_without_rule_files_is_a_usage_error(coverage_project, tmp_path: Path) -> None:
    (coverage_project.root / "scenarios" / "d.yaml").write_text(drill(["KubeAPIDown"]))
    empty = tmp_path / "no-rules"
    empty.mkdir()
    done = dirt(coverage_project, "coverage", "scenarios", "--rules", str(empty))
    assert done.returncode == 2
    assert done.stderr.strip() == f"dirt: error: no rule files (*.yml, *.yaml) in {empty}"


def test_validate_warns_about_an_expected_alert_with_no_rule(coverage_project) -> None:
    (coverage_project.root / "scenarios" / "typo.yaml").write_text(drill(["KubeAPIDwn"]))
    done = dirt(coverage_project, "validate", "scenarios")
    assert done.returncode == 0, done.stderr
    assert "no alerting rule defines 'KubeAPIDwn'" in done.stderr
    assert "did you mean 'KubeAPIDown'?" in done.stderr

"""What dirt says, tried as a new user would (issue 23, item 5): each answer here was once
wrong in a small way — a plan that left out an expectation, a self-healing fault said to
"stay in effect", a secret URL nobody checked, an import that aliased two checks."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from dirt.core.durations import format_limit
from tests.conftest import DIRT, REPO


def dirt(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=root, capture_output=True, text=True, timeout=120, env=env)


def plan(scenario: str) -> str:
    proc = dirt(REPO, "plan", "--target", "sandbox", f"scenarios/{scenario}.yaml")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- dirt plan ---------------------------------------------------------------------------------


def test_plan_shows_the_availability_probes_with_what_fails_a_sample_and_the_objective() -> None:
    expect = plan("control-plane-down").split("\nexpect:\n")[1]
    line = next(ln for ln in expect.splitlines() if ln.startswith("  - availability "))
    assert line.startswith("  - availability storefront: GET http://127.0.0.1:18080/ every 0.2s"), line
    assert "a sample fails on no answer within 1s or a status other than 2xx or 3xx or an answer slower than " \
           "0.5s" in line
    assert line.endswith("objective: at least 99% of samples succeed")


def test_plan_says_a_self_healing_fault_heals_and_that_dirt_checks_it() -> None:
    lives = plan("storefront-crash").split("fault lives (planned):")[1]
    assert "stays in effect" not in lives
    assert "heals by itself: the kubelet restarts the container (its restartPolicy); after verify dirt checks " \
           "that it is no longer in effect" in lives


def test_plan_names_where_each_backup_goes_and_writes_durations_one_way() -> None:
    text = plan("etcd-loss")
    assert "into reports/<run id>/backups/shop-objects/<UTC time>/" in text
    assert "save an etcd snapshot to reports/<run id>/backups/etcd.etcd.db and verify it" in text
    # durations as a scenario writes them: never the measured style (30.0s, 1m00s) in a plan
    assert not re.search(r"\d\.\ds|\dm00s", text), re.findall(r".*(?:\d\.\ds|\dm00s).*", text)
    assert "within 2m" in text and "fires within 1m" in text


def test_format_limit_writes_durations_as_a_scenario_does() -> None:
    assert [format_limit(s) for s in (0.5, 30, 60, 90, 3600, 5400, 3690, None)] == \
        ["0.5s", "30s", "1m", "1m30s", "1h", "1h30m", "1h1m30s", "-"]


# -- dirt gameday validate -----------------------------------------------------------------------

DAY = """\
apiVersion: dirt/v1
kind: GameDay
metadata: {{name: env-day}}
participants:
  - {{name: Ada, role: facilitator}}
  - {{name: Grace, role: approver}}
drills:
  - scenario: {scenario}
notify:
  - name: chat
    url_env: DIRT_TEST_HOOK
  - name: quiet
    url: http://127.0.0.1:9/hook
    "on": []
approval:
  webhook_env: DIRT_TEST_APPROVAL
"""


def validate_day(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess[str]:
    day = tmp_path / "day.yaml"
    day.write_text(text.format(scenario=REPO / "scenarios" / "control-plane-down.yaml"))
    environ = {k: v for k, v in __import__("os").environ.items() if not k.startswith("DIRT_TEST_")}
    return dirt(REPO, "gameday", "validate", str(day), env={**environ, **env})


def test_gameday_validate_checks_the_urls_the_variables_hold_without_printing_them(tmp_path: Path) -> None:
    bad = validate_day(tmp_path, DAY, DIRT_TEST_HOOK="ftp://relay.example.org/T0KEN", DIRT_TEST_APPROVAL="not a url")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    day = str(tmp_path / "day.yaml")
    assert f"{day}:11:14: notify.0.url_env: the value of $DIRT_TEST_HOOK must start with http:// or https:// " \
           "(fix the variable $DIRT_TEST_HOOK: it must hold an http(s) URL)" in bad.stderr
    assert f"{day}:16:16: approval.webhook_env: a URL cannot contain spaces" in bad.stderr
    assert "T0KEN" not in bad.stderr + bad.stdout
    assert "0 valid, 1 invalid" in bad.stderr


def test_gameday_validate_warns_of_an_unset_variable_and_a_notify_that_sends_nothing(tmp_path: Path) -> None:
    ok = validate_day(tmp_path, DAY, DIRT_TEST_HOOK="https://hooks.example.org/x")
    assert ok.returncode == 0, ok.stderr
    assert "warning: approval.webhook_env: $DIRT_TEST_APPROVAL is not set" in ok.stderr
    assert ":14:11: warning: notify.1.on is empty: this notify never sends anything" in ok.stderr
    assert "1 valid, 0 invalid" in ok.stdout


def test_an_unquoted_on_is_explained_as_yaml_reading_it_as_true(tmp_path: Path) -> None:
    proc = validate_day(tmp_path, DAY.replace('"on": []', "on: [finish]"), DIRT_TEST_HOOK="https://h.example.org/x")
    assert proc.returncode == 2
    assert ":14:5: unknown field 'True': YAML 1.1 reads an unquoted 'on' as true (quote it: \"on\":)" in proc.stderr


# -- dirt import ---------------------------------------------------------------------------------

EXPERIMENT = """\
title: Shop survives a restart
description: two probes run twice
steady-state-hypothesis:
  title: the shop answers
  probes:
    - type: probe
      name: shop-answers
      tolerance: 0
      provider: {type: process, path: "true", timeout: 5}
method:
  - type: action
    name: restart-the-shop
    provider: {type: process, path: "true", timeout: 5}
  - ref: shop-answers
  - type: probe
    name: pods-back
    tolerance: 0
    provider: {type: process, path: "true", timeout: 5}
  - type: probe
    name: pods-back
    tolerance: 0
    provider: {type: process, path: "true", arguments: "again", timeout: 5}
"""


def test_import_writes_plain_yaml_with_unique_names_and_no_repeated_ref(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "e.yaml").write_text(EXPERIMENT)
    done = dirt(REPO, "import", str(tmp_path / "e.yaml"), "-o", str(tmp_path / "s.yaml"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "s.yaml").read_text()
    assert not re.search(r"[&*]id\d+", text), "no YAML anchors or aliases"
    assert "ref 'shop-answers' repeats a hypothesis probe, which verify checks after the fault anyway" in text
    scenario = yaml.safe_load(text)
    assert [c["name"] for c in scenario["verify"]] == ["shop-answers", "pods-back", "pods-back (2)"]
    scenario["steady_state"][0]["activity"]["provider"]["timeout"] = 1  # editing one check edits only it
    assert scenario["verify"][0]["activity"]["provider"]["timeout"] == 5
    valid = dirt(REPO, "validate", str(tmp_path / "s.yaml"))
    assert valid.returncode == 0, valid.stdout + valid.stderr


# -- expect: alerts named by a variable ----------------------------------------------------------

TEMPLATED = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: templated-alert}}
vars:
  alert: KubeAPIDown
  severity: critical
inject:
  - fault: control_plane.stop
    components: [kube-apiserver]
recover:
  - step: control_plane.start
    components: [kube-apiserver]
expect:
  alerts:
    - name: "{{{{ {name} }}}}"
      labels: {{severity: "{{{{ severity }}}}"}}
      fires_within: 30s
  silent: ["{{{{ alert }}}}Twice"]
"""


def test_expected_alert_names_and_labels_take_the_scenarios_variables(tmp_path: Path) -> None:
    from dirt.scenario import LoadOptions, load_scenario

    path = tmp_path / "s.yaml"
    path.write_text(TEMPLATED.format(name="alert"))
    scenario = load_scenario(path, LoadOptions(alert_rules={"KubeAPIDown"}))
    assert (scenario.expect.alerts[0].name, scenario.expect.alerts[0].labels) == ("KubeAPIDown",
                                                                                   {"severity": "critical"})
    assert scenario.expect.silent == ["KubeAPIDownTwice"]
    assert not scenario.warnings, "the rule check sees the real name, not '{{ alert }}'"
    overridden = load_scenario(path, LoadOptions(variables={"alert": "etcdNoLeader"}))
    assert overridden.expect.alerts[0].name == "etcdNoLeader"
    for name, said in (("alret", "unknown variable '{{ alret }}' (did you mean 'alert'?)"),
                       ("run_id", "'{{ run_id }}' has no value when the scenario is loaded")):
        path.write_text(TEMPLATED.format(name=name))
        proc = dirt(REPO, "validate", str(path))
        assert proc.returncode == 2 and f"s.yaml:15:13: {said}" in proc.stderr, proc.stderr

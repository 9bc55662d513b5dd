"""The scenario loader: every malformed file is reported with file:line:col and a hint."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dirt.core.errors import ScenarioError
from dirt.scenario import LoadOptions, load_scenario, looks_like_scenario
from dirt.scenario.schema import scenario_schema
from tests.conftest import DIRT, basic_scenario

CORPUS = Path(__file__).parent / "corpus" / "bad"
CASES = sorted(CORPUS.glob("*.yaml"))


def expectations(path: Path) -> list[tuple[int, int, str]]:
    out = []
    text = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    for line, col, text in re.findall(r"^# expect: (\d+):(\d+): (.*)$", text, re.M):
        out.append((int(line), int(col), text))
    return out


def test_the_corpus_covers_at_least_twenty_error_classes() -> None:
    assert len(CASES) >= 20
    assert all(expectations(p) for p in CASES), "every corpus file states what it expects"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_malformed_file_reports_line_column_and_message(path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, LoadOptions(known_targets=["prd"]))
    lines = info.value.show().splitlines()
    for line, col, text in expectations(path):
        prefix = f"{path}:{line}:{col}: "
        matching = [ln for ln in lines if ln.startswith(prefix)]
        assert matching, f"no problem at {line}:{col} in:\n" + "\n".join(lines)
        assert any(text in ln for ln in matching), f"{text!r} not in {matching}"


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(CORPUS / "26-several-problems.yaml")
    assert len(info.value.problems) == 3


def test_validate_cli_exits_2_without_traceback_on_every_corpus_file() -> None:
    proc = subprocess.run([*DIRT, "validate", *map(str, CASES)], capture_output=True, text=True,
                          cwd=CORPUS.parent)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    for path in CASES:
        assert f"{path}:" in proc.stderr, path.name
    assert f"0 valid, {len(CASES)} invalid, 0 not scenarios" in proc.stderr


def test_a_valid_scenario_loads_into_typed_steps(project) -> None:
    path = project.scenario("ok", basic_scenario())
    scenario = load_scenario(path)
    assert scenario.name == "fake-drill"
    assert [s.driver for s in scenario.inject] == ["fake.fault"]
    fault = scenario.inject[0]
    assert fault.params.fires == ["FakeDown"]
    assert fault.playbook is not None and fault.playbook.anchor == "recognise-it"
    assert fault.playbook.title == "Recognise it"
    assert scenario.expect.alerts[0].fires_within == 5.0
    assert scenario.recover[1].within == 10.0
    assert scenario.timing.poll_interval == pytest.approx(0.1)
    assert scenario.line == 4  # metadata.name, where pytest points


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5), (3, 3)])
def test_durations_are_written_the_way_people_write_them(text, seconds) -> None:
    from dirt.core.durations import parse_duration

    assert parse_duration(text) == seconds


def test_variables_are_substituted_and_keep_their_type(project) -> None:
    path = project.scenario("vars", basic_scenario(extra="", inject="""\
        inject:
          - fault: fake.fault
            cause: "{{ who }}-outage"
            takes: "{{ pause }}"
        """, head="""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata:
          name: vars
          playbook: playbooks/fake.md
        vars:
          who: world
          pause: 1
        """))
    scenario = load_scenario(path, LoadOptions(variables={"who": "cli"}))
    assert scenario.inject[0].params.cause == "cli-outage"  # --var wins over vars:
    assert scenario.inject[0].params.takes == 1.0


def test_runtime_variables_are_accepted_and_left_for_the_run(project) -> None:
    path = project.scenario("rt", basic_scenario(recover="""\
        recover:
          - step: exec
            command: "echo {{ kubeconfig }}"
        """))
    scenario = load_scenario(path)
    assert scenario.recover[0].params.command == "echo {{ kubeconfig }}"


def test_only_scenario_yaml_is_recognised(tmp_path) -> None:
    other = tmp_path / "deployment.yaml"
    other.write_text("apiVersion: apps/v1\nkind: Deployment\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text("apiVersion: dirt/v1\nkind: Scenario\n")
    assert looks_like_scenario(scenario)
    assert not looks_like_scenario(other)


def test_yaml_tags_cannot_construct_python_objects(tmp_path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("apiVersion: dirt/v1\nkind: Scenario\nmetadata: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert ":3:" in info.value.show()


def test_json_schema_lists_every_driver_with_its_parameters() -> None:
    schema = scenario_schema()
    faults = schema["properties"]["inject"]["items"]["oneOf"]
    names = {b["properties"]["fault"]["const"] for b in faults}
    assert {"exec", "fake.fault"} <= names
    exec_fault = next(b for b in faults if b["properties"]["fault"]["const"] == "exec")
    assert "command" in exec_fault["required"]
    assert exec_fault["additionalProperties"] is False


def test_expected_alert_without_rule_is_a_warning_not_an_error(project) -> None:
    path = project.scenario("warn", basic_scenario())
    scenario = load_scenario(path, LoadOptions(alert_rules={"KubeAPIDown"}))
    assert [w.message for w in scenario.warnings] == ["no alerting rule defines 'FakeDown'"]


def test_a_driver_with_a_name_parameter_takes_name_and_the_step_is_labelled(project) -> None:
    path = project.scenario("named", basic_scenario(verify="""\
        verify:
          - check: deployment.available
            namespace: shop
            name: frontend
          - check: deployment.available
            label: the cart is up
            namespace: shop
            deployment: cart
          - check: fake.check
            name: plain label
        """))
    frontend, cart, fake = load_scenario(path).verify
    assert (frontend.params.name, frontend.name) == ("frontend", "deployment.available frontend")
    assert (cart.params.name, cart.name) == ("cart", "the cart is up")
    assert fake.name == "plain label"

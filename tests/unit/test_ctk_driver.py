"""The ``ctk`` fault, check and step: Chaos Toolkit's validation at load time (located), its
tolerances, the step's own guardrail family, redacted output, deadline and cancellation."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from dirt.config import TargetConfig
from dirt.core.errors import DrillAborted, ScenarioError, StepFailed
from dirt.drivers import Context
from dirt.drivers.registry import default_registry
from dirt.engine.guardrails import destructive, refusals
from dirt.scenario import load_scenario
from dirt.testing import FakeTarget
from tests.conftest import DIRT, basic_scenario, journal_lines
from tests.unit.test_engine import run


def slow(seconds: float) -> str:
    """A python activity that takes its time (used through this module's import path)."""
    time.sleep(seconds)
    return "done"


def fails() -> None:
    raise RuntimeError("the frontend is gone")


def driver(kind: str, tmp_path, **params):
    cls = default_registry().get(kind, "ctk")
    ctx = Context(target=FakeTarget(), run_dir=tmp_path, scenario_dir=tmp_path)
    return cls(cls.Params.model_validate(params), ctx)


def process(arguments: str, *, kind: str = "probe", **extra) -> dict:
    return {"type": kind, "name": "shell", "provider": {"type": "process", "path": "sh", "arguments": arguments},
            **extra}


def python(func: str, kind: str = "probe", **arguments) -> dict:
    return {"type": kind, "name": func, "provider": {"type": "python", "module": __name__, "func": func,
                                                     "arguments": arguments}}


# -- validation -----------------------------------------------------------------------------


def test_chaos_toolkit_rules_are_located_problems_at_validate_time(project) -> None:
    path = project.scenario("bad", basic_scenario(inject="""\
        inject:
          - fault: ctk
            name: kill a pod
            family: pod
            activity:
              type: action
              name: terminate
              provider:
                type: python
                module: chaosk8s.pod.actions
                func: terminate_pods
                arguments: {label_selector: "app=frontend", qtyy: 1}
          - fault: ctk
            activity:
              type: probe
              name: look
              provider: {type: http, url: "http://127.0.0.1:9/"}
        """, verify="""\
        verify:
          - check: ctk
            activity:
              type: probe
              name: answers
              provider: {type: process, path: no-such-program-here}
          - check: ctk
            activity:
              type: probe
              name: regex
              provider: {type: http, url: "http://127.0.0.1:9/"}
              tolerance: {type: regex}
        """))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    problems = {(p.line, p.message) for p in caught.value.problems}
    assert (18, "inject.0.family: unknown fault family 'pod'; did you mean 'pods'?") in problems
    assert (23, "inject.0.activity.provider: argument 'qtyy' is not part of the function signature in activity "
                "'terminate_pods'") in problems
    assert (29, "inject.1.activity: a ctk fault runs a CTK action (type: action); a probe belongs in a "
                "'check: ctk'") in problems
    assert (50, "verify.0.activity.provider: path 'no-such-program-here' cannot be found, in activity "
                "'answers'") in problems
    assert (56, "verify.1.activity.tolerance: hypothesis regex probe tolerance must have a `pattern` key") in problems


def test_a_malformed_provider_is_a_sentence_not_a_crash(tmp_path) -> None:
    from pydantic import ValidationError

    cls = default_registry().get("step", "ctk")
    for provider, said in [({"type": "python", "module": 3.5, "func": "f"}, "'module' must be a string"),
                           ({"type": "python", "module": "os.path", "func": "exists", "arguments": ["x"]},
                            "'arguments' must be a mapping"),
                           ({"type": "http", "url": "http://127.0.0.1:9/", "headers": True}, "'headers' must be")]:
        with pytest.raises(ValidationError, match=said):
            cls.Params.model_validate({"activity": {"type": "action", "name": "a", "provider": provider}})


def test_a_process_path_known_only_at_run_time_is_not_checked_at_validate_time(project) -> None:
    probe = project.root / "probe.sh"
    probe.write_text("#!/bin/sh\necho probed\n")
    probe.chmod(0o755)
    text = basic_scenario(verify="""\
        verify:
          - check: ctk
            activity:
              type: probe
              name: script
              provider: {type: process, path: "{{ scenario_dir }}/probe.sh"}
          - check: ctk
            activity:
              type: probe
              name: relative
              provider: {type: process, path: "./probe.sh"}
              tolerance: {type: regex, target: stdout, pattern: probed}
        """)
    scenario = load_scenario(project.scenario("ok", text))
    assert [s.driver for s in scenario.verify] == ["ctk", "ctk"]
    result, _, journal = run(project, text)
    assert result.passed, result.failures
    outputs = [e["data"]["output"] for e in journal if e["event"] == "step.end" and e["driver"] == "ctk"]
    assert outputs == [{"status": 0, "stdout": "probed\n", "stderr": ""}] * 2


def test_without_chaos_toolkit_validate_says_how_to_install_it_and_exits_2(project) -> None:
    project.scenario("uses-ctk", basic_scenario(verify="""\
        verify:
          - check: ctk
            activity: {type: probe, name: p, provider: {type: process, path: sh}}
        """))
    project.scenario("plain", basic_scenario())
    hide = ("import sys; sys.modules['chaoslib'] = None; sys.argv = ['dirt', 'validate', '{}']; "
            "from dirt.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", hide.format("uses-ctk.yaml")], cwd=project.root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "uses-ctk.yaml:35:48: verify.0.activity.provider: " in proc.stderr
    assert "the ctk driver needs Chaos Toolkit: pip install 'dirt[ctk]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    plain = subprocess.run([sys.executable, "-c", hide.format("plain.yaml")], cwd=project.root,
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr
    listed = subprocess.run([*DIRT, "drivers"], cwd=project.root, capture_output=True, text=True, timeout=120)
    assert "check  ctk" in listed.stdout and "warning" not in listed.stderr


# -- checks: CTK's tolerance -----------------------------------------------------------------


def test_a_probe_passes_when_its_value_is_within_its_tolerance(tmp_path) -> None:
    exits_3 = process("-c 'echo hello; exit 3'")
    assert driver("check", tmp_path, activity={**exits_3, "tolerance": 3}).probe().ok
    missed = driver("check", tmp_path, activity={**exits_3, "tolerance": 0}).probe()
    assert not missed.ok and "not within tolerance 0" in missed.detail
    regex = {"type": "regex", "target": "stdout", "pattern": "^hel+o"}
    assert driver("check", tmp_path, activity={**exits_3, "tolerance": regex}).probe().ok
    assert driver("check", tmp_path, activity={**python("slow", seconds=0), "tolerance": "done"}).probe().ok
    assert not driver("check", tmp_path, activity={**python("slow", seconds=0), "tolerance": "other"}).probe().ok


def test_without_a_tolerance_a_probe_passes_unless_it_fails(tmp_path) -> None:
    assert driver("check", tmp_path, activity=python("slow", seconds=0)).probe().ok
    with pytest.raises(StepFailed, match="Chaos Toolkit probe 'fails' failed: RuntimeError: the frontend is gone"):
        driver("check", tmp_path, activity=python("fails")).probe()


# -- the fault's family and revert -------------------------------------------------------------


def test_a_ctk_fault_brings_its_own_family_to_guardrails_plan_and_journal(project) -> None:
    text = basic_scenario(inject="""\
        inject:
          - fault: ctk
            name: delete some pods
            family: pods
            activity: {type: action, name: noop, provider: {type: process, path: "true"}}
          - fault: ctk
            name: anything goes
            activity: {type: action, name: noop, provider: {type: process, path: "true"}}
        """, expect="")
    scenario = load_scenario(project.scenario("families", text))
    registry = default_registry()
    target = FakeTarget("careful", TargetConfig(provider="fake", allow=["pods"]), project.root)
    refused = refusals(scenario, target, registry)
    assert [(r.spec.name, r.reason.split(";")[0]) for r in refused] == [
        ("anything goes", "target 'careful' does not allow 'cluster' faults")]
    assert destructive(scenario, registry) == ["ctk (pods)", "ctk (cluster)"]
    result, _, journal = run(project, text)
    assert result.passed, result.failures
    planned = [e for e in journal if e["event"] == "run.start"][0]["faults"]
    assert [(f["name"], f["family"]) for f in planned] == [("delete some pods", "pods"), ("anything goes", "cluster")]
    plan = subprocess.run([*DIRT, "plan", "families.yaml"], cwd=project.root, capture_output=True, text=True,
                          timeout=120)
    assert "family: pods" in plan.stdout and "family: cluster" in plan.stdout, plan.stdout + plan.stderr


def test_a_ctk_fault_is_reverted_by_its_revert_action_and_says_so_without_one(project, tmp_path) -> None:
    text = basic_scenario(inject="""\
        inject:
          - fault: ctk
            name: flag
            family: command
            activity: {type: action, name: make-flag, provider: {type: process, path: touch, arguments: [ctk.flag]}}
            revert: {type: action, name: drop-flag, provider: {type: process, path: rm, arguments: [-f, ctk.flag]}}
        """, expect="", verify="verify:\n  - check: fake.check\n    mode: fail\n    within: 0.2s\n")
    result, _, journal = run(project, text)
    assert not result.passed
    reverted = [e for e in journal if e["event"] == "fault.reverted"]
    assert reverted and "ran Chaos Toolkit action 'drop-flag'" in reverted[0]["detail"]
    assert not (project.root / "ctk.flag").exists()
    bare = driver("fault", tmp_path, activity=process("-c true", kind="action"))
    assert not bare.reversible and not bare.in_effect().ok
    with pytest.raises(StepFailed, match="has no 'revert' activity: it cannot be reverted"):
        bare.revert()


# -- output, secrets, deadline, cancellation -----------------------------------------------------


def test_activity_output_is_journaled_with_secrets_masked(project, monkeypatch) -> None:
    monkeypatch.setenv("CTK_TEST_TOKEN", "s3cr3t-ctk-token-value")
    result, _, journal = run(project, basic_scenario(recover="""\
        recover:
          - step: ctk
            name: say hello
            secrets: {shop: {shop_token: {type: env, key: CTK_TEST_TOKEN}}}
            activity:
              type: action
              name: echo
              provider: {type: process, path: sh, arguments: "-c 'echo hello from ctk ${shop_token}'"}
          - step: fake.step
        """))
    assert result.passed, result.failures
    ended = [e for e in journal if e["event"] == "step.end" and e["name"] == "say hello"][0]
    assert ended["data"]["output"]["stdout"].strip() == "hello from ctk ***"
    for name in ("journal.jsonl", "report.json", "report.md", "report.html"):
        assert "s3cr3t-ctk-token-value" not in (result.run_dir / name).read_text(), name


def test_a_process_activity_is_killed_at_the_step_deadline(tmp_path) -> None:
    step = driver("step", tmp_path, activity=process("-c 'sleep 30'", kind="action"))
    step.ctx.deadline = time.monotonic() + 0.5
    with pytest.raises(StepFailed, match="timed out after"):
        step.run()


def test_a_process_activity_stops_when_the_drill_is_aborted(tmp_path) -> None:
    step = driver("step", tmp_path, activity=process("-c 'sleep 30'", kind="action"))
    threading.Timer(0.3, step.ctx.cancel.cancel, args=("operator pressed Ctrl-C",)).start()
    with pytest.raises(DrillAborted, match="operator pressed Ctrl-C"):
        step.run()


def test_dirt_stops_waiting_for_a_python_activity_at_the_deadline_or_an_abort(tmp_path) -> None:
    step = driver("step", tmp_path, activity=python("slow", kind="action", seconds=30))
    step.ctx.deadline = time.monotonic() + 0.5
    with pytest.raises(StepFailed, match="did not finish within"):
        step.run()
    aborted = driver("step", tmp_path, activity=python("slow", kind="action", seconds=30))
    threading.Timer(0.3, aborted.ctx.cancel.cancel, args=("abort condition",)).start()
    with pytest.raises(DrillAborted, match="abort condition"):
        aborted.run()


def test_the_journal_keeps_a_python_activity_value(project) -> None:
    result, _, journal = run(project, basic_scenario(verify=f"""\
        verify:
          - check: ctk
            name: slow probe
            activity:
              type: probe
              name: slow
              provider: {{type: python, module: {__name__}, func: slow, arguments: {{seconds: 0}}}}
              tolerance: done
        """))
    assert result.passed, result.failures
    ended = [e for e in journal_lines(result.run_dir) if e["event"] == "step.end" and e["name"] == "slow probe"][0]
    assert ended["data"] == {"output": "done"} and "within tolerance" in ended["detail"]


def test_an_http_timeout_pair_is_honoured_as_connect_and_read_and_a_bad_one_refused(tmp_path) -> None:
    import socket

    from pydantic import ValidationError

    silent = socket.socket()  # accepts the connection, never answers: only the read timeout ends the wait
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    try:
        step = driver("step", tmp_path, activity={"type": "action", "name": "slow-api",
                                                  "provider": {"type": "http", "url": url, "timeout": [2, 0.5]}})
        started = time.monotonic()
        with pytest.raises(StepFailed, match="took too long"):
            step.run()
        assert time.monotonic() - started < 10, "the pair's 0.5s read timeout, not the 60s default"
    finally:
        silent.close()
    from dirt.drivers.ctk import _http_timeout

    assert _http_timeout({"type": "http", "timeout": [2, 0.5]}) == 2.5  # connect + read bounds the whole call
    cls = default_registry().get("step", "ctk")
    for bad in ([1, 2, 3], ["1", 2], [0, 1]):
        with pytest.raises(ValidationError, match=r"a \[connect, read\] pair of seconds"):
            cls.Params.model_validate({"activity": {"type": "action", "name": "a",
                                                    "provider": {"type": "http", "url": url, "timeout": bad}}})

"""The engine against the fake target: phases, deadlines, alerts, rollback, guardrails."""

from __future__ import annotations

import json
import time

import pytest

from dirt.app.run import run_one
from dirt.core.errors import DrillAborted, GuardrailError
from dirt.engine.runner import RunOptions
from dirt.scenario import load_scenario
from dirt.testing import FakeTarget
from dirt.testing.target import FakeAlert
from tests.conftest import basic_scenario, journal_lines


def run(project, text: str, *, target_name: str = "fake", before=None, **options):
    scenario = load_scenario(project.scenario("drill", text))
    loaded = project.loaded()
    name, config = loaded.target(target_name)
    target = FakeTarget(name, config, project.root)
    if before is not None:
        before(target)
    result = run_one(scenario, target, RunOptions(report_dir=project.reports, handle_signals=False, **options))
    return result, target, journal_lines(result.run_dir)


def events(journal, kind):
    return [e for e in journal if e["event"] == kind]


def test_a_drill_runs_its_phases_in_order_and_passes(project) -> None:
    result, target, journal = run(project, basic_scenario())
    assert result.verdict == "passed", result.failures
    phases = [e["phase"] for e in events(journal, "phase.start")]
    assert phases == ["preflight", "inject", "detect", "recover", "verify"]
    assert journal[0]["event"] == "run.start" and journal[-1]["event"] == "run.end"
    assert [e["seq"] for e in journal] == list(range(1, len(journal) + 1))
    assert (project.root / "repaired.txt").read_text() == "repairing world\n"  # the playbook step ran


def test_mttd_comes_from_the_server_fire_time(project) -> None:
    result, target, journal = run(project, basic_scenario())
    alert = next(e for e in events(journal, "expectation") if e["kind"] == "alert")
    injected = events(journal, "fault.injected")[0]["t_inject"]
    fired = next(a for a in target.alerts if a.name == "FakeDown").fired_at
    assert alert["measured_seconds"] == pytest.approx(fired - injected, abs=0.01)
    assert alert["sources"]["alertmanager"]["fired"] is True


def test_an_alert_that_never_fires_fails_the_drill_with_one_clear_line(project) -> None:
    result, _, _ = run(project, basic_scenario(inject="""\
        inject:
          - fault: fake.fault
            fires: []
        """, expect="""\
        expect:
          alerts:
            - name: FakeDown
              fires_within: 1s
        """))
    assert result.verdict == "failed"
    assert result.failures == ["alert FakeDown: FakeDown did not fire within 1s"]


def test_a_forbidden_alert_that_fires_fails_the_drill(project) -> None:
    result, _, journal = run(project, basic_scenario(inject="""\
        inject:
          - fault: fake.fault
            fires: [FakeDown, OtherAlert]
        """))
    assert result.verdict == "failed"
    assert any("forbidden alert OtherAlert fired" in f for f in result.failures)
    firing = [e for e in events(journal, "alert.firing") if e["name"] == "OtherAlert"]
    assert firing and firing[0]["forbidden"] is True


def test_unexpected_alerts_are_reported_as_noise(project) -> None:
    result, _, journal = run(project, basic_scenario(inject="""\
        inject:
          - fault: fake.fault
            fires: [FakeDown, Chatty]
        """))
    assert result.verdict == "passed"
    noise = events(journal, "alerts.noise")[0]["alerts"]
    assert {a["name"] for a in noise} == {"Chatty"}


def test_a_failing_recovery_step_still_rolls_back_and_writes_the_report(project) -> None:
    result, target, journal = run(project, basic_scenario(recover="""\
        recover:
          - step: fake.step
            fail: true
            message: restore exploded
        """))
    assert result.verdict == "failed"
    assert "fake step configured to fail: restore exploded" in result.failures[0]
    assert events(journal, "rollback.start")
    assert "revert fake" in target.calls
    assert not target.broken
    for name in ("report.json", "report.md", "report.html", "junit.xml"):
        assert (result.run_dir / name).is_file()
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["verdict"] == "failed" and report["rollback"]["ran"] is True


def test_steady_state_failure_injects_nothing(project) -> None:
    result, target, journal = run(project, basic_scenario(steady_state="""\
        steady_state:
          - check: fake.check
            mode: fail
            within: 0.3s
        """))
    assert result.verdict == "failed"
    assert not events(journal, "fault.injected")
    assert [e["phase"] for e in events(journal, "phase.start")] == ["preflight"]


def test_a_recovery_step_over_its_deadline_is_measured_against_the_objective(project) -> None:
    result, _, journal = run(project, basic_scenario(recover="""\
        recover:
          - step: fake.step
            takes: 0.5s
            within: 0.2s
        """))
    assert result.verdict == "failed"
    step = next(e for e in events(journal, "expectation") if e["kind"] == "step")
    assert step["objective_seconds"] == 0.2 and step["measured_seconds"] >= 0.5
    assert "objective 0.2s" in step["detail"]


def test_mttr_objective_too_short_fails_with_measured_and_objective(project) -> None:
    result, _, journal = run(project, basic_scenario(expect="""\
        expect:
          mttr: 0.1s
        """, recover="""\
        recover:
          - step: fake.step
            takes: 0.3s
        """))
    assert result.verdict == "failed"
    mttr = next(e for e in events(journal, "expectation") if e["kind"] == "mttr")
    assert mttr["objective_seconds"] == 0.1 and mttr["measured_seconds"] > 0.3


def test_a_verify_check_that_never_passes_fails_after_its_deadline(project) -> None:
    result, _, _ = run(project, basic_scenario(verify="""\
        verify:
          - check: fake.check
            mode: fail
            within: 0.3s
        """))
    assert result.verdict == "failed"
    assert "check fake.check: not passing after 0.3s: configured to fail" in result.failures


def test_a_fault_that_does_not_take_effect_fails_inject_and_rolls_back(project) -> None:
    result, target, journal = run(project, basic_scenario(inject="""\
        inject:
          - fault: fake.fault
            takes_effect: false
            within: 0.3s
        """))
    assert result.verdict == "failed"
    assert "is not in effect" in result.failures[0]
    assert events(journal, "fault.reverted")


def test_an_alert_abort_condition_aborts_and_rolls_back(project) -> None:
    result, target, journal = run(project, basic_scenario(inject="""\
        inject:
          - fault: fake.fault
            fires: [FakeDown, CustomerImpact]
        """, recover="""\
        recover:
          - step: fake.step
            takes: 5s
        """, extra="""\
        abort_when:
          - alert: CustomerImpact
        """))
    assert result.verdict == "aborted"
    assert result.exit_code == 3
    breach = events(journal, "abort.breach")[0]
    assert breach["condition"] == "alert CustomerImpact"
    assert events(journal, "rollback.start")
    assert not target.broken


def test_guardrails_refuse_a_fault_family_the_target_does_not_allow(project) -> None:
    with pytest.raises(GuardrailError, match="does not allow 'cluster' faults"):
        run(project, basic_scenario(inject="""\
            inject:
              - fault: fake.outage
            """), target_name="guarded")


def test_destructive_faults_off_sandbox_need_confirmation(project) -> None:
    from dirt.config import TargetConfig
    from dirt.drivers.registry import default_registry
    from dirt.engine.guardrails import check_guardrails

    scenario = load_scenario(project.scenario("d", basic_scenario(inject="inject:\n  - fault: fake.outage\n")))

    class RealCluster(FakeTarget):
        @property
        def is_sandbox(self) -> bool:
            return False

    target = RealCluster("prod", TargetConfig(provider="fake", allow=["cluster"]), project.root)
    registry = default_registry()
    with pytest.raises(DrillAborted, match="needs --yes or typing the cluster name 'prod'"):
        check_guardrails(scenario, target, registry, assume_yes=False, confirm=lambda t, f: False)
    asked = []
    check_guardrails(scenario, target, registry, assume_yes=False, confirm=lambda t, f: asked.append(f) or True)
    assert asked == [["fake.outage (cluster)"]]
    check_guardrails(scenario, target, registry, assume_yes=True, confirm=None)


def test_secrets_never_reach_the_journal_or_report(project) -> None:
    result, _, _ = run(project, basic_scenario(recover="""\
        recover:
          - step: exec
            command: "echo 'Authorization: Bearer abcdefghijklmnop1234' ; echo password=hunter22"
          - step: fake.step
        """))
    for name in ("journal.jsonl", "report.json", "report.md", "report.html", "junit.xml"):
        text = (result.run_dir / name).read_text()
        assert "abcdefghijklmnop1234" not in text and "hunter22" not in text, name
    assert "Bearer ***" in (result.run_dir / "journal.jsonl").read_text()


def test_cleanup_always_runs_even_after_failure(project) -> None:
    result, target, journal = run(project, basic_scenario(recover="""\
        recover:
          - step: fake.step
            fail: true
        """, extra="""\
        cleanup:
          - step: fake.step
            message: cleaned
            repairs: null
        """))
    assert result.verdict == "failed"
    assert "step cleaned" in target.calls
    assert [e["phase"] for e in events(journal, "phase.start")][-2:] == ["rollback", "cleanup"]


def test_a_cleanup_step_that_fails_fails_the_drill_and_the_rest_still_run(project) -> None:
    result, target, journal = run(project, basic_scenario(extra="""\
        cleanup:
          - step: fake.step
            fail: true
            message: left the shop behind
          - step: fake.step
            message: cleaned the rest
            repairs: null
        """))
    assert result.verdict == "failed", "the next drill would not start from a clean cluster"
    assert any(f.startswith("cleanup fake.step: ") for f in result.failures), result.failures
    assert "step cleaned the rest" in target.calls
    ended = [e for e in events(journal, "phase.end") if e["phase"] == "cleanup"]
    assert ended[0]["status"] == "failed"
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["verdict"] == "failed"


def test_backups_are_recorded_with_their_age(project) -> None:
    result, _, journal = run(project, basic_scenario(backups="""\
        backups:
          - backup: fake.backup
            name: nightly
            age: 3600
        """))
    taken = events(journal, "backup.taken")[0]
    assert taken["name"] == "nightly" and taken["age_seconds"] == pytest.approx(3600, abs=5)


def test_fault_revert_undoes_a_fault_once_even_when_rollback_follows(project) -> None:
    result, target, journal = run(project, basic_scenario(recover="""\
        recover:
          - step: fault.revert
            faults: [break-it]
        """, verify="""\
        verify:
          - check: fake.check
            mode: fail
            within: 0.2s
        """))
    assert result.verdict == "failed"
    assert target.calls.count("revert fake") == 1
    recovered = events(journal, "fault.recovered")
    assert [(e["index"], e["step"]["driver"]) for e in recovered] == [(0, "fault.revert")]
    assert not events(journal, "fault.reverted")  # rollback left the recovered fault alone
    fault = result.report["faults"][0]
    assert fault["status"] == "recovered" and fault["life"] == "recovered by step 'fault.revert' (repaired fake)"


def test_fault_revert_must_name_an_injected_fault(project) -> None:
    from dirt.core.errors import ScenarioError

    with pytest.raises(ScenarioError, match="no injected fault named 'nope'"):
        load_scenario(project.scenario("r", basic_scenario(recover="""\
            recover:
              - step: fault.revert
                faults: [nope]
            """)))


def test_an_expected_alert_still_firing_from_before_is_waited_out(project) -> None:
    def left_over(target):  # the previous drill's alert, resolving in a moment
        target.alerts.append(FakeAlert("FakeDown", {}, time.time() - 60, "earlier", resolved_at=time.time() + 0.8))

    result, _, journal = run(project, basic_scenario(), before=left_over)
    assert result.passed, result.failures
    wait = next(e for e in events(journal, "step.end") if e["driver"] == "alerts.silent")
    assert wait["status"] == "passed" and wait["seconds"] >= 0.5


def test_an_expected_alert_that_never_clears_stops_the_drill_before_any_fault(project) -> None:
    result, target, journal = run(project, basic_scenario(timing="timing:\n  poll_interval: 100ms\n"
                                                                 "  steady_state_within: 1s\n"),
                                  before=lambda target: target.alerts.append(  # an incident, elsewhere
                                      FakeAlert("FakeDown", {}, time.time() - 60, "incident")))
    assert result.verdict == "failed"
    assert result.failures[0].startswith("expected alerts did not clear within 1s before the fault "
                                         "(already firing: FakeDown in alertmanager, FakeDown in prometheus)")
    assert not events(journal, "fault.injecting") and target.calls == ["snapshot save store.json"]  # backup only

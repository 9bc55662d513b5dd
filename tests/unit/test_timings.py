"""Where a drill's time goes: each phase split into dirt's waits (by what it waited for) and work."""

from __future__ import annotations

import pytest

from dirt.drivers.context import Context, MemberContext, WaitClock
from dirt.report.render import timings_text, waits_text
from dirt.testing import FakeTarget
from tests.conftest import basic_scenario
from tests.unit.test_engine import events, run


def test_a_contexts_sleeps_count_against_what_it_last_said_it_waits_for(tmp_path, project) -> None:
    loaded = project.loaded()
    name, config = loaded.target("fake")
    ctx = Context(target=FakeTarget(name, config, project.root), run_dir=tmp_path)
    before = ctx.wait_clock.snapshot()
    ctx.waiting("namespaces terminating", 0.0, 10.0)
    ctx.sleep(0.05)
    ctx.sleep(0.05)
    ctx.waiting("pods ready", 0.0, 10.0)
    ctx.sleep(0.02)
    waits = ctx.wait_clock.since(before)
    assert set(waits) == {"namespaces terminating", "pods ready"}
    assert waits["namespaces terminating"] == pytest.approx(0.1, abs=0.03)
    assert waits["pods ready"] == pytest.approx(0.02, abs=0.02)
    # a fleet member's view of the run counts into the run's clock
    later = ctx.wait_clock.snapshot()
    member = MemberContext(ctx, "east", ctx.target)
    member.waiting("east ready", 0.0, 1.0)
    member.sleep(0.01)
    assert ctx.wait_clock.since(later) == {"east ready": pytest.approx(0.01, abs=0.02)}


def test_since_leaves_out_waits_below_a_millisecond() -> None:
    clock = WaitClock()
    before = clock.snapshot()
    clock.label = "x"
    clock.add(0.0004)
    clock.label = "y"
    clock.add(0.25)
    assert clock.since(before) == {"y": 0.25}


def test_a_drill_journals_its_waits_per_step_and_phase_and_the_report_splits_each_phase(project) -> None:
    result, _, journal = run(project, basic_scenario(recover="""\
        recover:
          - step: wait
            name: settle
            duration: 0.6s
            reason: let the controllers act
          - step: fake.step
            takes: 0.2s
        """))
    assert result.verdict == "passed", result.failures
    settle = next(e for e in events(journal, "step.end") if e["name"] == "settle")
    assert settle["waits"]["let the controllers act"] == pytest.approx(0.6, abs=0.15)
    recover = next(e for e in events(journal, "phase.end") if e["phase"] == "recover")
    assert recover["waits"]["let the controllers act"] == settle["waits"]["let the controllers act"]
    detect = next(e for e in events(journal, "phase.end") if e["phase"] == "detect")
    assert any(label.startswith("waiting for FakeDown") for label in detect["waits"]), detect["waits"]

    phase = next(p for p in result.report["phases"] if p["name"] == "recover")
    assert phase["waited_seconds"] == pytest.approx(sum(phase["waits"].values()), abs=0.002)
    assert phase["working_seconds"] == pytest.approx(phase["seconds"] - phase["waited_seconds"], abs=0.002)
    # fake.step sleeps its 0.2 s through the context, saying what for
    fake = next(e for e in events(journal, "step.end") if e["driver"] == "fake.step" and e["section"] == "recover")
    assert fake["waits"] == {"fake step (done)": pytest.approx(0.2, abs=0.1)}
    text = timings_text(result.report)
    assert "recover" in text and "let the controllers act" in text
    assert "steps that waited longest:" in text and "recover: settle" in text


def test_a_journal_without_waits_still_renders(project) -> None:
    from dirt.journal import read_journal
    from dirt.report.model import build_report
    from tests.unit.test_report import RECORDED

    report = build_report(read_journal(RECORDED).events)
    assert all(p["waits"] == {} and p["waited_seconds"] == 0 for p in report["phases"])
    assert "timings: fake-drill" in timings_text(report)


def test_waits_text_ranks_the_longest_first_and_says_how_many_more() -> None:
    waits = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 0.5}
    assert waits_text(waits) == "b 5.0s; c 2.0s; a 1.0s; 1 more"
    assert waits_text({}) == ""


def test_sandbox_up_timings_name_each_component_and_process_in_order() -> None:
    from dirt.cli.sandbox import up_timings_text

    text = up_timings_text({"prepared": 0.3, "components": {"control-plane": {"at": 0.3, "seconds": 4.1},
                                                            "monitoring": {"at": 4.4, "seconds": 0.2}},
                            "healthy": {"prometheus": 5.0, "etcd": 1.1, "kube-apiserver": 3.9},
                            "healthy_at": 5.0, "settled_at": 6.2}, 6.3)
    lines = text.splitlines()
    assert lines[0] == "timings: up in 6.3s (binaries and settings ready at +0.3s)"
    assert any(line.split() == ["control-plane", "+0.3s", "4.1s"] for line in lines)
    processes = [line.split()[0] for line in lines if line.strip().endswith("s") and line.split()[0] in
                 ("etcd", "kube-apiserver", "prometheus")]
    assert processes == ["etcd", "kube-apiserver", "prometheus"]  # in the order they answered
    assert lines[-1].endswith("monitoring settled (targets up, rules evaluated) at +6.2s")

"""The fleet target against fake members: ``member:`` routing, fleet-wide checks and steps, member alerts,
per-member guardrails and the drill lock of every member.  The fleet made of real sandboxes behind HAProxy
is proven in tests/integration."""

from __future__ import annotations

import textwrap

import pytest

from dirt.app.run import run_one
from dirt.config import load_config
from dirt.core.errors import ConfigError, DrillLocked, GuardrailError
from dirt.drivers import Context
from dirt.engine.lock import FleetLock, Holder, drill_lock
from dirt.engine.runner import RunOptions
from dirt.scenario import load_scenario
from dirt.targets.base import make_target
from dirt.targets.fleet import FleetTarget
from tests.conftest import journal_lines

FLEET_CONFIG = """\
default_target: shop
targets:
  east:
    provider: fake
    settings: {alert_delay: 0.1, resolve_delay: 0.1}
  west:
    provider: fake
    settings: {alert_delay: 0.1, resolve_delay: 0.1}
  careful:
    provider: fake
    allow: []
  shop:
    provider: fleet
    settings:
      members: [east, west]
      entry: {url: "http://127.0.0.1:18180/", metrics: "http://127.0.0.1:18404/metrics"}
  guarded-shop:
    provider: fleet
    settings:
      members: [east, careful]
      entry: {url: "http://127.0.0.1:18180/"}
"""

DRILL = """\
apiVersion: dirt/v1
kind: Scenario
metadata:
  name: lose-west
  description: West breaks; east must not notice.
steady_state:
  - check: fake.check
inject:
  - fault: fake.fault
    name: break west
    member: west
    cause: west-down
    fires: [FakeDown]
expect:
  alerts:
    - name: FakeDown
      labels: {member: west}
      fires_within: 5s
      resolves_within: 5s
  silent:
    - name: FakeDown
      labels: {member: east}
recover:
  - step: fake.step
    member: west
    repairs: west-down
verify:
  - check: fake.check
    within: 10s
timing:
  poll_interval: 100ms
"""


@pytest.fixture
def fleet_project(project):
    (project.root / "dirt.yaml").write_text(FLEET_CONFIG)
    return project


def fleet(project, name: str = "shop") -> FleetTarget:
    loaded = load_config(project.root / "dirt.yaml")
    target_name, config = loaded.target(name)
    target = make_target(target_name, config, loaded.root)
    assert isinstance(target, FleetTarget)
    return target


def run(project, text: str, target: FleetTarget | None = None):
    scenario = load_scenario(project.scenario("drill", textwrap.dedent(text)))
    target = target or fleet(project)
    result = run_one(scenario, target, RunOptions(report_dir=project.reports, handle_signals=False))
    return result, target, journal_lines(result.run_dir)


def test_a_fault_on_one_member_breaks_only_that_member_and_its_alerts_say_which(fleet_project) -> None:
    result, target, journal = run(fleet_project, DRILL)
    assert result.verdict == "passed", result.failures
    east, west = target.member_target("east"), target.member_target("west")
    assert "stop" not in " ".join(east.calls) and not east.alerts  # east was never touched
    assert [a.name for a in west.alerts] == ["FakeDown"]
    planned = next(e for e in journal if e["event"] == "run.start")["faults"]
    assert planned[0]["member"] == "west"
    alert = next(e for e in journal if e["event"] == "expectation" and e["kind"] == "alert")
    assert alert["passed"] is True


def test_checks_without_member_run_on_every_member_and_name_the_one_that_fails(fleet_project) -> None:
    target = fleet(fleet_project)
    target.member_target("east").breaks("east-sick", [])
    result, _, journal = run(fleet_project, DRILL.replace("steady_state:\n  - check: fake.check\n",
                                                          "steady_state:\n  - check: fake.check\n    within: 1s\n"),
                             target)
    assert result.verdict == "failed"
    ended = next(e for e in journal if e["event"] == "step.end" and e["section"] == "steady_state")
    assert ended["detail"].startswith("1 of 2 members: east:")
    assert set(ended["data"]["members"]) == {"east", "west"}
    assert ended["data"]["members"]["west"]["ok"] is True
    assert not any(e["event"] == "fault.injected" for e in journal)  # nothing injected


def test_a_member_context_sees_its_own_target_and_variables(fleet_project) -> None:
    target = fleet(fleet_project)
    ctx = Context(target=target, run_dir=fleet_project.reports)
    ctx.vars = {"who": "world", **target.variables()}
    west = ctx.for_member("west")
    assert west.target is target.member_target("west")
    assert west.vars["member"] == "west" and west.vars["who"] == "world"
    assert west.vars["entry_url"] == "http://127.0.0.1:18180/" and west.vars["target"] == "west"
    ctx.deadline = 123.0  # set by the engine as a step starts: the member's view follows
    assert west.deadline == 123.0
    assert ctx.for_member(None) is ctx


@pytest.mark.parametrize(("change", "said"), [
    ("    member: west\n    cause: west-down", "    cause: west-down"),  # a fault without member
    ("    member: west\n    cause", "    member: north\n    cause"),
], ids=["fault-without-member", "unknown-member"])
def test_faults_must_name_a_member_of_the_fleet(fleet_project, change, said) -> None:
    text = DRILL.replace(change, said, 1)
    with pytest.raises(GuardrailError) as caught:
        run(fleet_project, text)
    message = str(caught.value)
    assert "drill.yaml:" in message
    assert ("needs 'member:'" in message) if "north" not in said else ("no such member" in message
                                                                       and "east, west" in message)


def test_member_on_a_single_cluster_is_refused(fleet_project) -> None:
    scenario = load_scenario(fleet_project.scenario("drill", DRILL))
    loaded = load_config(fleet_project.root / "dirt.yaml")
    name, config = loaded.target("east")
    with pytest.raises(GuardrailError, match="is a single cluster, not a fleet"):
        run_one(scenario, make_target(name, config, loaded.root),
                RunOptions(report_dir=fleet_project.reports, handle_signals=False))


def test_each_member_is_held_to_its_own_allow_list(fleet_project) -> None:
    text = DRILL.replace("fault: fake.fault\n    name: break west\n    member: west",
                         "fault: fake.outage\n    name: break careful\n    member: careful")
    with pytest.raises(GuardrailError, match="target 'careful' does not allow 'cluster' faults"):
        run(fleet_project, text, fleet(fleet_project, "guarded-shop"))


def test_the_drill_lock_is_every_members_and_a_drill_on_one_member_keeps_the_fleet_out(fleet_project) -> None:
    target = fleet(fleet_project)
    holder = Holder.here("run-1", "lose-west", target.name, fleet_project.reports / "run-1")
    lock = drill_lock(target, holder, ["none"])
    assert isinstance(lock, FleetLock)
    paths = [str(one.local.path) for one in lock.locks]
    assert paths == sorted(paths) and len(paths) == 3  # the fleet's own and each member's, in one order
    west = target.member_target("west")
    alone = Holder.here("run-2", "west-only", "west", fleet_project.reports / "run-2")
    with drill_lock(west, alone, ["cluster"]):
        with pytest.raises(DrillLocked), lock:
            pass
        assert not lock._held  # all or none: what it took before the refusal is released
    with lock:
        assert len(lock._held) == 3


def test_dirt_yaml_says_when_a_member_is_not_a_target_or_is_a_fleet(fleet_project) -> None:
    (fleet_project.root / "dirt.yaml").write_text(FLEET_CONFIG + (
        "  broken:\n"
        "    provider: fleet\n"
        "    settings:\n"
        "      members: [east, wset, shop]\n"
        '      entry: {url: "http://127.0.0.1:18180/"}\n'))
    with pytest.raises(ConfigError) as caught:
        load_config(fleet_project.root / "dirt.yaml")
    message = str(caught.value)
    assert "no target 'wset' to be its member" in message and "did you mean 'west'" in message
    assert "member 'shop' is a fleet" in message
    assert "dirt.yaml:25:" in message  # the line of the members list


def test_plan_shows_each_steps_member_and_touches_nothing(fleet_project) -> None:
    from dirt.app.plan import render_plan
    from dirt.scenario import LoadOptions

    loaded = load_config(fleet_project.root / "dirt.yaml")
    text = render_plan(fleet_project.scenario("drill", DRILL), loaded, LoadOptions(), None)
    assert "  - break west [fake.fault] on member west" in text
    assert "  - fake.check on every member (east, west)" in text
    assert "  - fake.step on member west" in text
    assert not (fleet_project.reports).exists()  # nothing written, nothing run


ROLLING = DRILL.replace("    member: west\n    cause: west-down", '    member: "{{ drilled_member }}"\n    cause: lost') \
    .replace("      labels: {member: west}\n", "") \
    .replace("    - name: FakeDown\n      labels: {member: east}\n", "    - OtherAlert\n") \
    .replace("  - step: fake.step\n    member: west\n    repairs: west-down",
             '  - step: fake.step\n    member: "{{ drilled_member }}"\n    repairs: lost')


def test_a_rolling_game_day_drills_each_member_in_turn_guarded_by_the_others(fleet_project) -> None:
    from dirt.app.gameday import run_gameday
    from dirt.gameday.model import GameDay, GameDayDocument

    fleet_project.scenario("roll", ROLLING)
    document = GameDayDocument.model_validate({
        "apiVersion": "dirt/v1", "kind": "GameDay", "metadata": {"name": "rolling"}, "target": "shop",
        "drills": [{"scenario": "roll.yaml", "name": "lose-one", "for_each_member": True, "weight": 2}]})
    day = GameDay(path=fleet_project.root / "day.yaml", document=document,
                  drill_paths={"lose-one": (fleet_project.root / "roll.yaml").resolve()})
    target = fleet(fleet_project)
    scenarios = []

    def make(scenario, name):
        scenarios.append(scenario)
        return target

    result = run_gameday(day, load_config(fleet_project.root / "dirt.yaml"), report_dir=fleet_project.reports,
                         handle_signals=False, make_target=make)
    assert result.verdict == "passed", [(d.id, d.reason) for d in result.drills]
    assert [(d.id, d.weight) for d in result.drills] == [("lose-one-east", 1.0), ("lose-one-west", 1.0)]
    east, west = target.member_target("east"), target.member_target("west")
    assert [a.name for a in east.alerts] == [a.name for a in west.alerts] == ["FakeDown"]  # each broken once
    runs = [d.result for d in result.drills]
    faults = [next(e for e in journal_lines(r.run_dir) if e["event"] == "run.start")["faults"][0] for r in runs]
    assert [f["member"] for f in faults] == ["east", "west"]
    start = next(e for e in journal_lines(runs[0].run_dir) if e["event"] == "run.start")
    guards = [c for c in start["abort_when"] if c.get("labels", {}).get("member") == "west"]
    assert {c["alert"] for c in guards} == {"FleetMemberDown", "KubeAPIDown"}  # the other member's health aborts


def test_a_rolling_drill_on_a_single_cluster_is_refused_before_anything_runs(fleet_project) -> None:
    from dirt.app.gameday import run_gameday
    from dirt.core.errors import ScenarioError
    from dirt.gameday.model import GameDay, GameDayDocument

    fleet_project.scenario("roll", ROLLING)
    document = GameDayDocument.model_validate({
        "apiVersion": "dirt/v1", "kind": "GameDay", "metadata": {"name": "rolling"}, "target": "east",
        "drills": [{"scenario": "roll.yaml", "for_each_member": True}]})
    day = GameDay(path=fleet_project.root / "day.yaml", document=document,
                  drill_paths={"roll": (fleet_project.root / "roll.yaml").resolve()})
    with pytest.raises(ScenarioError, match="for_each_member needs a fleet target; 'east' is a single cluster"):
        run_gameday(day, load_config(fleet_project.root / "dirt.yaml"), report_dir=fleet_project.reports,
                    handle_signals=False)
    assert not fleet_project.reports.exists()

"""Targets say what they can do beyond the Kubernetes API; drivers say what they need.

A drill whose target lacks a capability one of its steps needs is refused by
``dirt plan`` (REFUSED, exit 2) and by ``dirt run`` before anything is touched:
the configured commands below would leave a file behind if they ever ran.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from dirt.core.errors import GuardrailError
from dirt.drivers.registry import default_registry
from dirt.engine.runner import RunOptions, run_scenario
from dirt.scenario import load_scenario
from dirt.targets.base import CAPABILITIES
from dirt.testing.target import FakeTarget
from tests.conftest import DIRT, REPO, basic_scenario

KUBECONFIG = """\
apiVersion: v1
current-context: prod-eu
contexts:
  - name: prod-eu
    context: {cluster: prod, user: ops}
clusters:
  - name: prod
    cluster: {server: "https://prod.example:6443"}
users:
  - name: ops
    user: {token: not-a-token}
"""

#: Stopping a component is configured (and would leave stopped.flag), starting it is not.
HALF_CONFIGURED = """\
default_target: prod
targets:
  prod:
    provider: kubeconfig
    allow: all
    confirm: false
    settings:
      kubeconfig: kubeconfig
      commands:
        stop_component: "touch stopped.flag"
"""

CONTROL_PLANE_DRILL = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: control-plane-down}
inject:
  - fault: control_plane.stop
    components: [kube-apiserver]
recover:
  - step: control_plane.start
    components: [kube-apiserver]
"""


def dirt(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=root, capture_output=True, text=True, timeout=120)


@pytest.fixture
def prod(tmp_path: Path) -> Path:
    """A project whose kubeconfig target can stop a component but not start one again."""
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    (tmp_path / "dirt.yaml").write_text(HALF_CONFIGURED)
    (tmp_path / "drill.yaml").write_text(CONTROL_PLANE_DRILL)
    return tmp_path


MISSING_COMPONENTS = ("target 'prod' (kubeconfig) has no command to stop and start control-plane components; "
                      "set settings.commands.start_component and settings.commands.component_running in dirt.yaml")


def test_every_driver_requires_only_capabilities_a_target_can_have() -> None:
    for kind, name, cls in default_registry().all():
        assert cls.requires <= set(CAPABILITIES), f"{kind} {name} requires {set(cls.requires) - set(CAPABILITIES)}"


def test_plan_marks_each_step_a_kubeconfig_target_cannot_do_as_refused_and_exits_2(prod: Path) -> None:
    proc = dirt(prod, "plan", "drill.yaml")

    assert proc.returncode == 2
    assert proc.stdout.count(f"REFUSED: {MISSING_COMPONENTS}") == 2  # the fault and the recovery step
    assert proc.stderr == "dirt: error: the target refuses 2 step(s) of this drill (marked REFUSED above)\n"
    assert not (prod / "stopped.flag").exists()


def test_run_refuses_before_anything_is_injected(prod: Path) -> None:
    proc = dirt(prod, "run", "drill.yaml", "--yes", "--display", "none")

    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        f"dirt: error: drill.yaml:5: control_plane.stop: {MISSING_COMPONENTS}",
        f"drill.yaml:8: control_plane.start: {MISSING_COMPONENTS}",
    ]
    assert not (prod / "stopped.flag").exists()  # the configured stop command never ran
    assert not (prod / "reports").exists()  # refused like a guardrail: before a run exists, nothing to roll back


def test_a_fully_configured_kubeconfig_target_plans_the_drill(prod: Path) -> None:
    (prod / "dirt.yaml").write_text(HALF_CONFIGURED + textwrap.indent(
        'start_component: "true"\ncomponent_running: "false"\n', " " * 8))

    proc = dirt(prod, "plan", "drill.yaml")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "REFUSED" not in proc.stdout


def test_a_safety_snapshot_needs_etcd_snapshots_and_can_be_turned_off(project) -> None:
    target = FakeTarget(config=None)
    target.capabilities = frozenset({"etcd_wipe"})  # type: ignore[misc]
    registry = default_registry()
    wipe = registry.get("fault", "etcd.wipe")
    assert wipe is not None

    assert wipe.requirements(wipe.Params()) - target.capabilities == {"etcd_snapshot"}
    assert wipe.requirements(wipe.Params(safety_snapshot=False)) - target.capabilities == set()


def test_the_engine_refuses_a_drill_the_target_cannot_do_before_preparing_it(project) -> None:
    from dirt.config import TargetConfig

    scenario = load_scenario(project.scenario("d", basic_scenario(inject="""\
        inject:
          - fault: control_plane.stop
            components: [kube-scheduler]
        """, expect="", recover="", verify="")))
    target = FakeTarget("limited", TargetConfig(provider="fake", settings={"capabilities": ["etcd_snapshot"]}))

    with pytest.raises(GuardrailError) as caught:
        run_scenario(scenario, target, RunOptions(report_dir=project.reports, display=None, handle_signals=False))

    assert str(caught.value) == ("d.yaml:16: control_plane.stop: target 'limited' (fake) cannot stop and start "
                                 "control-plane components")
    assert (target.prepared, target.calls) == (0, [])
    assert not project.reports.exists()


def test_the_sandbox_plans_every_example_drill() -> None:
    every = sorted(str(p.relative_to(REPO)) for p in (REPO / "scenarios").glob("*.yaml"))
    fleet = [s for s in every if Path(s).name.startswith("fleet-")]
    scenarios = [s for s in every if s not in fleet]
    assert scenarios and fleet

    proc = dirt(REPO, "plan", "--target", "sandbox", *scenarios)

    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "REFUSED" not in proc.stdout
    for needs in ("control_plane.stop", "etcd.wipe", "cluster.delete", "etcd_snapshot"):
        assert f"[{needs}]" in proc.stdout or f"- {needs}\n" in proc.stdout, needs
    # the fleet drills on the fleet (each step on its member), and refused on a single cluster
    proc = dirt(REPO, "plan", "--target", "fleet", *fleet)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    assert "[cluster.delete] on member west" in proc.stdout and "[cluster.freeze] on member west" in proc.stdout
    refused = dirt(REPO, "plan", "--target", "sandbox", fleet[0])
    assert refused.returncode == 2 and "is a single cluster, not a fleet" in refused.stdout

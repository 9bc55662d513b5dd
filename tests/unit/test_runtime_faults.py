"""Faults beneath the API (``container.kill``, ``node.poweroff``): what a scenario may ask for, and
what the sandbox refuses before it touches a container.

A mistake in a scenario or in dirt.yaml is reported where it was written (file:line:col, exit 2);
a container the sandbox cannot kill is a ``TargetError`` saying why, and nothing runs.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dirt.config import TargetConfig, load_config
from dirt.core.errors import ConfigError, ScenarioError, TargetError
from dirt.sandbox import realnode
from dirt.sandbox.cluster import Sandbox
from dirt.scenario import load_scenario
from tests.conftest import DIRT


def problems(tmp_path: Path, inject: str) -> list[str]:
    """The problems loading a scenario with this ``inject`` section gives, as ``line:col: message (hint)``."""
    path = tmp_path / "drill.yaml"
    path.write_text("apiVersion: dirt/v1\nkind: Scenario\nmetadata: {name: runtime}\n" + textwrap.dedent(inject))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert all(p.path == str(path) for p in caught.value.problems)
    return [str(p).removeprefix(f"{path}:") for p in caught.value.problems]


def test_container_kill_with_a_pod_and_a_selector_is_refused_where_it_is_written(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        inject:
          - fault: container.kill
            namespace: shop
            pod: web-0
            selector: app=web
        """) == ["5:5: inject.0: give a 'pod' or a 'selector' (exactly one)"]


def test_container_kill_with_neither_pod_nor_selector_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        inject:
          - fault: container.kill
            namespace: shop
        """) == ["5:5: inject.0: give a 'pod' or a 'selector' (exactly one)"]


def test_container_kill_with_a_signal_that_is_not_one_is_refused_at_the_signal(tmp_path: Path) -> None:
    [problem] = problems(tmp_path, """\
        inject:
          - fault: container.kill
            namespace: shop
            selector: {app: web}
            signal: kill
        """)
    assert problem == "8:13: inject.0.signal: a string ('kill') has the wrong form (it must match ^SIG[A-Z0-9]+$)"


def test_node_poweroff_without_a_node_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
        inject:
          - fault: node.poweroff
        """) == ["5:5: missing required field 'node' in inject.0 (add 'node:')"]


def test_runtime_faults_written_right_load(tmp_path: Path) -> None:
    """The control for the refusals above: the same faults, written right, load with their parameters."""
    path = tmp_path / "drill.yaml"
    path.write_text(textwrap.dedent("""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata: {name: runtime}
        inject:
          - fault: container.kill
            namespace: shop
            selector: app=web
            signal: SIGTERM
          - fault: node.poweroff
            node: real-0
        """))
    kill, poweroff = load_scenario(path).inject
    assert (kill.driver, kill.params.pod, kill.params.signal, kill.params.count) == (
        "container.kill", None, "SIGTERM", 1)
    assert (poweroff.driver, poweroff.params.node) == ("node.poweroff", "real-0")


# -- the sandbox refuses what it cannot kill ----------------------------------------------------------
def pod(node: str | None, *statuses: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "web-0"}, "spec": {"nodeName": node} if node else {},
            "status": {"containerStatuses": list(statuses)}}


RUNNING = {"name": "web", "containerID": "containerd://abc123", "state": {"running": {"startedAt": "now"}}}


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Sandbox, list[tuple[Any, ...]]]:
    """A sandbox with a real node, nothing running; every ``ctr tasks kill`` it would run is recorded instead."""
    killed: list[tuple[Any, ...]] = []
    monkeypatch.setattr(realnode, "kill_task", lambda root, cid, *, sig="SIGKILL": killed.append((root, cid, sig)))
    return Sandbox("x", real_nodes=1, home=tmp_path), killed


@pytest.mark.parametrize("node, where", [("kwok-node-0", "runs on kwok-node-0"), (None, "runs on no node")])
def test_a_pod_on_a_kwok_node_is_refused_saying_how_to_reach_the_real_one(box, node, where) -> None:
    sandbox, killed = box
    with pytest.raises(TargetError) as caught:
        sandbox.kill_container(pod(node, RUNNING), "web")
    message = str(caught.value)
    assert message.startswith(f"pod shop/web-0 {where}, not on the sandbox's real node")
    assert "nodeSelector dirt.dev/node: real" in message and "toleration for dirt.dev/real-node" in message
    assert killed == []


def test_a_container_the_pod_lacks_is_refused_naming_those_it_has(box) -> None:
    sandbox, killed = box
    with pytest.raises(TargetError) as caught:
        sandbox.kill_container(pod("real-0", RUNNING, {**RUNNING, "name": "sidecar"}), "db")
    assert str(caught.value) == "pod shop/web-0 has no container 'db' (it has: web, sidecar)"
    assert killed == []


@pytest.mark.parametrize("status", [
    {"name": "web", "containerID": "containerd://abc123", "state": {"terminated": {"exitCode": 137}}},
    {"name": "web", "state": {"waiting": {"reason": "ContainerCreating"}}},
    {"name": "web", "containerID": "", "state": {"running": {}}},
], ids=["terminated", "waiting", "no-container-id"])
def test_a_container_that_is_not_running_is_refused(box, status: dict[str, Any]) -> None:
    sandbox, killed = box
    with pytest.raises(TargetError) as caught:
        sandbox.kill_container(pod("real-0", status), "web")
    assert str(caught.value) == "container 'web' of pod shop/web-0 is not running"
    assert killed == []


def test_a_running_container_on_the_real_node_is_signalled_by_its_containerd_id(box, tmp_path: Path) -> None:
    """The control for the refusals above: the recorder does see a kill when there is one."""
    sandbox, killed = box
    assert sandbox.kill_container(pod("real-0", RUNNING), "web", sig="SIGTERM") == "abc123"
    assert killed == [(tmp_path / "x", "abc123", "SIGTERM")]


def test_refusals_leave_the_sandbox_folder_untouched(box, tmp_path: Path) -> None:
    sandbox, _ = box
    with pytest.raises(TargetError):
        sandbox.kill_container(pod("kwok-node-0", RUNNING), "web")
    assert list(tmp_path.iterdir()) == []


def test_a_sandbox_with_two_real_nodes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="real_nodes must be 0 or 1"):
        Sandbox("x", real_nodes=2, home=tmp_path)
    assert Sandbox("x", real_nodes=1, home=tmp_path).real_node_names == ["real-0"]
    assert Sandbox("x", home=tmp_path).real_node_names == []


def test_real_nodes_2_in_dirt_yaml_is_a_located_problem(tmp_path: Path) -> None:
    (tmp_path / "dirt.yaml").write_text("targets:\n  sandbox:\n    provider: sandbox\n    settings: {real_nodes: 2}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "dirt.yaml")
    assert caught.value.exit_code == 2
    assert str(caught.value).replace(f"{tmp_path}/", "").splitlines() == [
        "dirt.yaml:4:28: targets.sandbox.settings.real_nodes: input should be less than or equal to 1"]


def test_power_is_refused_for_a_node_that_is_not_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dirt.targets.sandbox import SandboxTarget

    monkeypatch.setenv("DIRT_SANDBOX_HOME", str(tmp_path / "sbx"))
    target = SandboxTarget("sandbox", TargetConfig(provider="sandbox", settings={"name": "p", "real_nodes": 1}),
                           tmp_path)
    for act in (target.stop_node, target.start_node, target.node_running):
        with pytest.raises(TargetError, match=r"node kwok-node-0 is not one of sandbox 'p''s real nodes \(real-0\)"):
            act("kwok-node-0")
    assert not (tmp_path / "sbx").exists()


def _import_missing_archive(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIRT_SANDBOX_HOME": str(tmp_path / "sbx")}
    env.pop("DIRT_CONFIG", None)
    return subprocess.run([*DIRT, "sandbox", "image", "import", "/nonexistent.tar", "--name", "nosuch"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_image_import_of_a_missing_archive_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    done = _import_missing_archive(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "'/nonexistent.tar' does not exist" in done.stderr, done.stderr
    assert not (tmp_path / "sbx").exists(), "no sandbox was made or touched"

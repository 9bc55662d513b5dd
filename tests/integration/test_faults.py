"""Each fault against the real sandbox: inject, verify it is in effect, revert."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from dirt.core.errors import StepFailed
from dirt.drivers import Context
from dirt.drivers.registry import default_registry

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]


def kubectl(target, *args: str) -> str:
    proc = subprocess.run([str(target.sandbox.binaries().kubectl), "--kubeconfig", target.kubeconfig_path(), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def fault(target, tmp_path, driver: str, **params):
    cls = default_registry().get("fault", driver)
    ctx = Context(target=target, run_dir=tmp_path)
    return cls(cls.Params.model_validate(params), ctx)


def wait_until(predicate, timeout: float = 60, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def poll_in_effect(f, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        result = f.verify_injected()
        if result.ok or time.monotonic() > deadline:
            assert result.ok, result.detail
            return result.detail
        time.sleep(0.3)


@pytest.fixture
def app(dirt_sandbox):
    """A namespace with a 4-replica Deployment 'web' (and a PDB allowing one disruption)."""
    ns = f"f-{uuid.uuid4().hex[:6]}"
    kubectl(dirt_sandbox, "create", "namespace", ns)
    kubectl(dirt_sandbox, "-n", ns, "create", "deployment", "web", "--image=nginx", "--replicas=4")
    kubectl(dirt_sandbox, "-n", ns, "create", "poddisruptionbudget", "web", "--selector=app=web",
            "--max-unavailable=1")
    kubectl(dirt_sandbox, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")
    yield ns
    kubectl(dirt_sandbox, "delete", "namespace", ns, "--wait=false")


def test_pods_delete_removes_a_share_and_the_controller_recreates_them(dirt_sandbox, app, tmp_path) -> None:
    f = fault(dirt_sandbox, tmp_path, "pods.delete", namespace=app, selector={"app": "web"}, percent=50, seed=1)
    f.inject()
    assert len(f.state["deleted"]) == 2 and f.state["matching"] == 4
    poll_in_effect(f)
    kube = dirt_sandbox.kube()
    wait_until(lambda: kube.get("apps/v1", "Deployment", "web", app)["status"].get("availableReplicas") == 4)
    names = {p["metadata"]["name"] for p in kube.list("v1", "Pod", app)}
    assert not names & {d["name"] for d in f.state["deleted"]}


def test_deployment_scale_and_revert(dirt_sandbox, app, tmp_path) -> None:
    f = fault(dirt_sandbox, tmp_path, "deployment.scale", namespace=app, deployment="web", replicas=1)
    f.inject()
    assert f.state == {"previous_replicas": 4}
    poll_in_effect(f)
    f.revert()
    assert dirt_sandbox.kube().get("apps/v1", "Deployment", "web", app)["spec"]["replicas"] == 4


def test_node_cordon_and_uncordon(dirt_sandbox, tmp_path) -> None:
    f = fault(dirt_sandbox, tmp_path, "node.cordon", selector={"type": "kwok"}, count=1, seed=3)
    f.inject()
    node = f.state["nodes"][0]
    poll_in_effect(f)
    f.revert()
    assert not dirt_sandbox.kube().get("v1", "Node", node)["spec"].get("unschedulable")


def test_node_drain_evicts_pods_and_honours_the_disruption_budget(dirt_sandbox, app, tmp_path) -> None:
    kube = dirt_sandbox.kube()
    nodes = sorted({p["spec"]["nodeName"] for p in kube.list("v1", "Pod", app)})
    busiest = max(nodes, key=lambda n: sum(p["spec"]["nodeName"] == n for p in kube.list("v1", "Pod", app)))
    f = fault(dirt_sandbox, tmp_path, "node.drain", node=busiest, timeout=30)
    try:
        f.inject()
        poll_in_effect(f)
        assert any(e.startswith(f"{app}/web-") for e in f.state["evicted"])
        wait_until(lambda: kube.get("apps/v1", "Deployment", "web", app)["status"].get("availableReplicas") == 4)
        assert all(p["spec"]["nodeName"] != busiest for p in kube.list("v1", "Pod", app))
    finally:
        f.revert()
    assert not kube.get("v1", "Node", busiest)["spec"].get("unschedulable")


def test_a_drain_a_budget_blocks_fails_naming_the_blocked_pods(dirt_sandbox, app, tmp_path) -> None:
    kubectl(dirt_sandbox, "-n", app, "patch", "pdb", "web", "--type=merge",
            "-p", '{"spec":{"maxUnavailable":0}}')
    kube = dirt_sandbox.kube()
    node = kube.list("v1", "Pod", app)[0]["spec"]["nodeName"]
    f = fault(dirt_sandbox, tmp_path, "node.drain", node=node, timeout=3)
    try:
        with pytest.raises(StepFailed, match="blocked by PodDisruptionBudgets"):
            f.inject()
        assert f.state["blocked"] and f.state["blocked"][0].startswith(f"{app}/web-")
    finally:
        f.revert()


def test_network_deny_is_an_api_level_policy_and_reverts(dirt_sandbox, app, tmp_path) -> None:
    f = fault(dirt_sandbox, tmp_path, "network.deny", namespace=app)
    assert any("do not enforce" in line for line in f.plan())
    f.inject()
    assert "API-level" in poll_in_effect(f)
    policy = dirt_sandbox.kube().get("networking.k8s.io/v1", "NetworkPolicy", "dirt-deny-all", app)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    f.revert()
    assert dirt_sandbox.kube().find("networking.k8s.io/v1", "NetworkPolicy", "dirt-deny-all", app) is None


def test_etcd_stop_takes_the_api_down_and_revert_brings_it_back(dirt_sandbox, tmp_path) -> None:
    f = fault(dirt_sandbox, tmp_path, "etcd.stop")
    f.inject()
    try:
        poll_in_effect(f)
        # the API server's etcd check may answer from its last probe for a moment after etcd is gone
        wait_until(lambda: not dirt_sandbox.kube().readyz(), 15)
    finally:
        f.revert()
    wait_until(lambda: dirt_sandbox.kube().readyz(), 60)


def test_control_plane_stop_of_scheduler_and_controller_manager(dirt_sandbox, tmp_path) -> None:
    f = fault(dirt_sandbox, tmp_path, "control_plane.stop",
              components=["kube-scheduler", "kube-controller-manager"])
    f.inject()
    try:
        poll_in_effect(f)
        assert dirt_sandbox.kube().readyz(), "the API server is not affected"
    finally:
        f.revert()
    assert dirt_sandbox.component_running("kube-scheduler")
    assert dirt_sandbox.component_running("kube-controller-manager")

"""The sandbox is a real cluster: nodes Ready, workloads Available, monitoring up, alerts,
etcd snapshot and restore — all against the real binaries, no mocks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from dirt.sandbox.cluster import LEASE_HOLDERS, LEASE_RENEW_DEADLINE

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

DIRT = [sys.executable, "-m", "dirt"]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not true after {timeout}s (last: {last!r})")


def kubectl(target, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([str(target.sandbox.binaries().kubectl), "--kubeconfig", target.kubeconfig_path(), *args],
                          input=stdin, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def alerts(url: str) -> list[dict]:
    return requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]


def test_nodes_are_ready(dirt_sandbox) -> None:
    nodes = dirt_sandbox.kube().list("v1", "Node")
    kwok = [n for n in nodes if n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"]
    real = [n for n in nodes if n["metadata"]["labels"].get("dirt.dev/node") == "real"]
    assert len(kwok) == dirt_sandbox.settings.nodes == 3
    assert len(real) == dirt_sandbox.settings.real_nodes == 1
    assert len(nodes) == 4
    for node in nodes:
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", node["metadata"]["name"]


def test_a_deployment_of_three_becomes_available_on_kwok_nodes(dirt_sandbox) -> None:
    kube = dirt_sandbox.kube()
    kubectl(dirt_sandbox, "create", "namespace", "sandbox-web")
    try:
        kubectl(dirt_sandbox, "-n", "sandbox-web", "create", "deployment", "web", "--image=nginx:1.27",
                "--replicas=3")

        def available():
            d = kube.get("apps/v1", "Deployment", "web", "sandbox-web")
            return d.get("status", {}).get("availableReplicas") == 3

        wait_for(available, 60, "3 replicas available")
        pods = kube.list("v1", "Pod", "sandbox-web")
        assert len(pods) == 3
        node_names = {n["metadata"]["name"] for n in kube.list("v1", "Node")}
        for pod in pods:
            assert pod["status"]["phase"] == "Running"
            assert pod["spec"]["nodeName"] in node_names
    finally:
        kubectl(dirt_sandbox, "delete", "namespace", "sandbox-web", "--wait=false")


def test_a_pod_the_node_controller_marked_not_ready_is_ready_again_as_its_kubelet_would_make_it(dirt_sandbox) -> None:
    """After an API outage the node lifecycle controller sets Ready=False on the pods of nodes whose
    lease it saw lapse.  A kubelet sets Ready back on its next status sync; KWOK's own stages only
    ready Pending pods, so before the ``pod-ready-again`` stage the shop's pods stayed NotReady for good
    (ReplicaSets at 0 ready, Deployments unavailable) and every later drill failed."""
    kube = dirt_sandbox.kube()
    kubectl(dirt_sandbox, "create", "namespace", "sandbox-ready")
    try:
        kubectl(dirt_sandbox, "-n", "sandbox-ready", "create", "deployment", "web", "--image=nginx:1.27",
                "--replicas=2")

        def available() -> bool:
            d = kube.get("apps/v1", "Deployment", "web", "sandbox-ready")
            return d.get("status", {}).get("availableReplicas") == 2

        wait_for(available, 60, "2 replicas available")
        pod = kube.list("v1", "Pod", "sandbox-ready")[0]["metadata"]["name"]
        marked = json.loads(kubectl(
            dirt_sandbox, "-n", "sandbox-ready", "patch", "pod", pod, "--subresource=status", "--type=strategic",
            "-o", "json", "-p", json.dumps({"status": {"conditions": [
                {"type": "Ready", "status": "False", "reason": "NodeNotReady"}]}})))
        assert _condition(marked, "Ready") == "False"

        def ready_again() -> bool:
            return _condition(kube.get("v1", "Pod", pod, "sandbox-ready"), "Ready") == "True"

        wait_for(ready_again, 15, f"pod {pod} Ready again", interval=0.2)
        wait_for(available, 30, "the Deployment available again")
    finally:
        kubectl(dirt_sandbox, "delete", "namespace", "sandbox-ready", "--wait=false")


def _condition(pod: dict, kind: str) -> str | None:
    return next((c["status"] for c in pod["status"].get("conditions", []) if c["type"] == kind), None)


def test_prometheus_reports_every_target_up(dirt_sandbox) -> None:
    url = dirt_sandbox.prometheus.url

    def all_up():
        targets = requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        return {t["labels"]["job"]: t["health"] for t in targets}

    health = wait_for(lambda: (h := all_up()) and all(v == "up" for v in h.values()) and h, 30, "all targets up")
    assert set(health) >= {"apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok-controller",
                           "kube-state-metrics", "prometheus", "alertmanager"}


def test_stopping_the_api_server_fires_kube_api_down_in_prometheus_and_alertmanager(dirt_sandbox) -> None:
    prom, am = dirt_sandbox.prometheus.url, dirt_sandbox.alertmanager.url
    dirt_sandbox.stop_component("kube-apiserver")
    try:
        firing = wait_for(lambda: [a for a in alerts(prom) if a["labels"]["alertname"] == "KubeAPIDown"
                                   and a["state"] == "firing"], 30, "KubeAPIDown firing in Prometheus")
        assert firing[0]["labels"]["severity"] == "critical"
        routed = wait_for(lambda: [a for a in requests.get(f"{am}/api/v2/alerts", timeout=5).json()
                                   if a["labels"]["alertname"] == "KubeAPIDown"], 30, "KubeAPIDown in Alertmanager")
        assert routed[0]["status"]["state"] == "active"
    finally:
        dirt_sandbox.start_component("kube-apiserver")
    wait_for(lambda: not [a for a in alerts(prom) if a["labels"]["alertname"] == "KubeAPIDown"], 30,
             "KubeAPIDown resolved")
    assert dirt_sandbox.kube().readyz()


def test_the_controller_manager_and_scheduler_restart_when_the_api_was_away_past_their_lease(dirt_sandbox) -> None:
    """A real control plane runs them with leader election: one that cannot renew its lease for
    10 s exits and its kubelet starts it again.  The sandbox does that restart itself.  Without it
    their informers back off for 30-60 s after a long outage, and a new namespace got no
    ServiceAccount (so no pods) for minutes."""
    sandbox = dirt_sandbox.sandbox

    def pids() -> dict[str, int]:
        return {c["name"]: c["pid"] for c in sandbox.status()["components"] if c["name"] in LEASE_HOLDERS}

    before = pids()
    assert all(before.values()), before
    dirt_sandbox.stop_component("kube-apiserver")
    dirt_sandbox.start_component("kube-apiserver")
    assert pids() == before, "an outage shorter than the renew deadline restarts nothing"

    dirt_sandbox.stop_component("etcd")  # the API server answers, but can renew no lease
    time.sleep(LEASE_RENEW_DEADLINE + 1)
    dirt_sandbox.start_component("etcd")
    after = pids()
    assert all(after.values()) and all(after[name] != before[name] for name in LEASE_HOLDERS), (before, after)
    log = (sandbox.cluster_dir / "logs" / "kube-controller-manager.log").read_text()
    assert "past the 10s lease renew deadline: restarted" in log

    kube = dirt_sandbox.kube()
    kubectl(dirt_sandbox, "create", "namespace", "after-outage")
    try:
        kubectl(dirt_sandbox, "-n", "after-outage", "create", "deployment", "web", "--image=nginx:1.27",
                "--replicas=2")
        wait_for(lambda: kube.get("apps/v1", "Deployment", "web", "after-outage").get("status", {})
                 .get("availableReplicas") == 2, 60, "2 replicas available in a namespace made after the outage")
    finally:
        kubectl(dirt_sandbox, "delete", "namespace", "after-outage", "--wait=false")


def test_etcd_snapshot_restores_a_deleted_namespace_and_its_objects(dirt_sandbox, tmp_path) -> None:
    kube = dirt_sandbox.kube()
    kubectl(dirt_sandbox, "create", "namespace", "snap-test")
    kubectl(dirt_sandbox, "-n", "snap-test", "create", "configmap", "settings", "--from-literal=mode=blue")
    kubectl(dirt_sandbox, "-n", "snap-test", "create", "secret", "generic", "creds", "--from-literal=k=v")
    kubectl(dirt_sandbox, "-n", "snap-test", "create", "deployment", "api", "--image=nginx", "--replicas=2")
    snapshot = dirt_sandbox.etcd_snapshot_save(tmp_path / "snap.db")
    assert snapshot.revision > 0 and snapshot.total_keys > 0 and snapshot.hash != 0

    kubectl(dirt_sandbox, "delete", "namespace", "snap-test", "--wait=true", "--timeout=60s")
    assert kube.find("v1", "Namespace", "snap-test") is None

    dirt_sandbox.etcd_snapshot_restore(tmp_path / "snap.db")
    kube = dirt_sandbox.kube()
    assert kube.get("v1", "Namespace", "snap-test")["status"]["phase"] == "Active"
    assert kube.get("v1", "ConfigMap", "settings", "snap-test")["data"] == {"mode": "blue"}
    assert kube.get("v1", "Secret", "creds", "snap-test")["data"]["k"]
    wait_for(lambda: kube.get("apps/v1", "Deployment", "api", "snap-test").get("status", {})
             .get("availableReplicas") == 2, 60, "the restored deployment available")
    kubectl(dirt_sandbox, "delete", "namespace", "snap-test", "--wait=false")


def test_a_manifest_from_outside_the_repo_becomes_available(dirt_sandbox, tmp_path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata: {name: outside}
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: echo, namespace: outside, labels: {app: echo}}
        spec:
          replicas: 2
          selector: {matchLabels: {app: echo}}
          template:
            metadata: {labels: {app: echo}}
            spec:
              containers:
                - name: echo
                  image: hashicorp/http-echo:1.0
                  args: ["-text=hello"]
                  ports: [{containerPort: 5678}]
                  readinessProbe: {httpGet: {path: /, port: 5678}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: echo, namespace: outside}
        spec: {selector: {app: echo}, ports: [{port: 80, targetPort: 5678}]}
        """))
    kubectl(dirt_sandbox, "apply", "-f", str(manifest))
    out = kubectl(dirt_sandbox, "-n", "outside", "wait", "deployment/echo", "--for=condition=Available",
                  "--timeout=60s")
    assert "condition met" in out
    kubectl(dirt_sandbox, "delete", "namespace", "outside", "--wait=false")


def test_sandbox_status_json_names_everything_a_drill_needs(dirt_sandbox) -> None:
    proc = subprocess.run([*DIRT, "sandbox", "status", "--json", "--name", dirt_sandbox.sandbox.name],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert Path(status["kubeconfig"]).is_file()
    assert status["prometheus_url"].startswith("http://127.0.0.1:")
    assert status["alertmanager_url"].startswith("http://127.0.0.1:")
    names = {c["name"]: c for c in status["components"]}
    assert set(names) >= {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                          "kwok-controller", "prometheus", "alertmanager"}
    assert all(c["healthy"] and c["pid"] for c in names.values())


def test_up_is_idempotent_and_down_stops_every_process(tmp_path, monkeypatch) -> None:
    """A second, one-node sandbox of its own: up twice (same PIDs), then down."""
    from dirt.sandbox import process
    from dirt.sandbox.cluster import Sandbox

    box = Sandbox("lifecycle", nodes=1, kube_state_metrics=False, home=tmp_path / "home")
    try:
        first = box.up(log=lambda m: None)
        pids = {c["name"]: c["pid"] for c in first["components"]}
        assert all(pids.values()) and len(box.ready_nodes()) == 1
        again = box.up(log=lambda m: None)
        assert {c["name"]: c["pid"] for c in again["components"]} == pids
    finally:
        box.down(log=lambda m: None)
    assert not any(process.alive(pid) for pid in pids.values())
    assert not box.root.exists()


def test_a_statefulset_with_volume_claims_becomes_ready(dirt_sandbox, tmp_path) -> None:
    """The sandbox provisions hostPath volumes for PVCs, so stateful manifests work too."""
    manifest = tmp_path / "db.yaml"
    manifest.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Namespace
        metadata: {name: stateful}
        ---
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: db, namespace: stateful}
        spec:
          serviceName: db
          replicas: 2
          selector: {matchLabels: {app: db}}
          template:
            metadata: {labels: {app: db}}
            spec:
              containers:
                - name: pg
                  image: postgres:17
                  volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
          volumeClaimTemplates:
            - metadata: {name: data}
              spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}
        """))
    kubectl(dirt_sandbox, "apply", "-f", str(manifest))
    try:
        kubectl(dirt_sandbox, "-n", "stateful", "rollout", "status", "statefulset/db", "--timeout=60s")
        claims = dirt_sandbox.kube().list("v1", "PersistentVolumeClaim", "stateful")
        assert sorted(c["metadata"]["name"] for c in claims) == ["data-db-0", "data-db-1"]
        assert all(c["status"]["phase"] == "Bound" and c["spec"]["storageClassName"] == "standard" for c in claims)
    finally:
        kubectl(dirt_sandbox, "delete", "namespace", "stateful", "--wait=false")


def test_controllers_responsive_passes_and_names_the_controller_that_does_not_act(dirt_sandbox, tmp_path) -> None:
    from dirt.drivers import Context
    from dirt.drivers.registry import default_registry

    cls = default_registry().get("check", "controllers.responsive")

    def probe(**params):
        ctx = Context(target=dirt_sandbox, run_dir=tmp_path, scenario_dir=tmp_path)
        return cls(cls.Params.model_validate(params), ctx).probe()

    def canaries() -> list[str]:
        kube = dirt_sandbox.kube()
        return [o["metadata"]["name"] for kind in ("Deployment", "ReplicaSet")
                for o in kube.list("apps/v1", kind, "default", label_selector="dirt.dev/canary=true")]

    healthy = probe()
    assert healthy.ok, healthy.detail
    assert list(healthy.data["seconds"]) == ["replicaset", "pod", "scheduled", "collected"]
    for component, stalled, said in (("kube-controller-manager", "replicaset",
                                      "not yet: the Deployment controller made its ReplicaSet"),
                                     ("kube-scheduler", "scheduled", "not yet: the scheduler bound the Pod to a node")):
        dirt_sandbox.stop_component(component)
        try:
            result = probe(timeout="3s")
        finally:
            dirt_sandbox.start_component(component)
        assert not result.ok and result.data["stalled"] == stalled, result.detail
        assert said in result.detail
    wait_for(lambda: not canaries(), 30, "every canary deleted, also those of the failed checks")
    assert probe(schedule=False).ok

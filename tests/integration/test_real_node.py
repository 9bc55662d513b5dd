"""The sandbox's real node: a kubelet with containerd and runc, running real containers.

Nothing is faked here: the pods run busybox processes in containers on this machine, their
probes are sent by the kubelet, ``container.kill`` signals the process through containerd, and
the availability probe asks the app's real HTTP server on 127.0.0.1 (hostNetwork: no pod
network on a private range is involved).  The drills are written by the tests, not taken from
the repository.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
import requests
import yaml

from tests.integration.drill_files import cli, report, write

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

DIRT = [sys.executable, "-m", "dirt"]
NAMESPACE = "crashlab"
PORT = 18181


@pytest.fixture(scope="module")
def node(dirt_sandbox):
    """The suite's sandbox target, with its real node Ready (dirt.yaml gives it ``real_nodes: 1``)."""
    assert dirt_sandbox.settings.real_nodes == 1, "dirt.yaml's sandbox must have a real node (real_nodes: 1)"
    dirt_sandbox.sandbox.wait_real_node_ready(60)
    return dirt_sandbox


def app_manifest(namespace: str = NAMESPACE, port: int = PORT) -> str:
    """A web server that takes 2 s to start, on the real node, with real probes."""
    return f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: {namespace}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo, namespace: {namespace}}}
spec:
  replicas: 1
  strategy: {{type: Recreate}}
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      hostNetwork: true
      nodeSelector: {{dirt.dev/node: real}}
      tolerations: [{{key: dirt.dev/real-node, operator: Exists, effect: NoSchedule}}]
      terminationGracePeriodSeconds: 1
      automountServiceAccountToken: false
      containers:
        - name: web
          image: dirt.local/busybox:latest
          imagePullPolicy: Never
          command: ["/bin/sh", "-c", "mkdir -p /www && echo echo-ok > /www/index.html && sleep 2 && exec httpd -f -p 127.0.0.1:{port} -h /www"]
          readinessProbe: {{httpGet: {{host: 127.0.0.1, port: {port}, path: /}}, periodSeconds: 1, failureThreshold: 1}}
          livenessProbe: {{httpGet: {{host: 127.0.0.1, port: {port}, path: /}}, initialDelaySeconds: 5, periodSeconds: 2, failureThreshold: 3}}
"""


DRILL = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: {name}}}
vars:
  url: http://127.0.0.1:{port}/
setup:
  - step: redeploy
    path: app.yaml
steady_state:
  - check: http
    url: "{{{{ url }}}}"
    body_contains: echo-ok
inject:
{inject}
expect:
{expect}
recover:
{recover}
verify:
  - check: pods.ready
    namespace: {namespace}
    selector: {{app: echo}}
    minimum: 1
    within: 60s
  - check: http
    url: "{{{{ url }}}}"
    body_contains: echo-ok
    within: 60s
"""


def restarts(target) -> int:
    pods = target.kube().list("v1", "Pod", NAMESPACE, label_selector="app=echo")
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return int(pods[0]["status"]["containerStatuses"][0]["restartCount"])


@pytest.fixture
def crashlab(node, tmp_path):
    (tmp_path / "app.yaml").write_text(app_manifest())
    yield tmp_path
    cli(node, "kubectl", "delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=90s")


def test_status_lists_the_kubelet_and_containerd_healthy_and_ctr_reaches_the_node(node) -> None:
    proc = subprocess.run([*DIRT, "sandbox", "status", "--json", "--name", node.sandbox.name],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    components = {c["name"]: c for c in status["components"]}
    for name in ("containerd", "kubelet"):
        assert components[name]["healthy"] and components[name]["pid"], components[name]
    assert status["real_nodes"]["nodes"] == ["real-0"]
    assert status["versions"]["kubelet"] == status["versions"]["kubernetes"]
    real = node.kube().get("v1", "Node", "real-0")
    assert real["metadata"]["labels"]["dirt.dev/node"] == "real"
    assert {"key": "dirt.dev/real-node", "value": "true", "effect": "NoSchedule"} in real["spec"]["taints"]
    assert "kwok.x-k8s.io/node" not in real["metadata"].get("annotations", {})  # KWOK does not fake it
    assert real["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    images = cli(node, "ctr", "images", "list", "--quiet").stdout.split()
    assert "dirt.local/pause:3.10" in images and "dirt.local/busybox:latest" in images
    logs = subprocess.run([*DIRT, "sandbox", "logs", "kubelet", "--name", node.sandbox.name, "-n", "400"],
                          capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0 and "real-0" in logs.stdout


def test_a_users_own_image_archive_is_imported_and_runs_as_a_pod(node, tmp_path) -> None:
    from dirt.sandbox import images, realnode

    tag = uuid.uuid4().hex[:8]
    reference = f"example.local/hello:{tag}"
    archive = tmp_path / "hello.tar"
    images.write_archive(images.ImageSpec(
        reference=reference, files={"bin/busybox": images.busybox_binary()},
        symlinks={"bin/sh": "busybox", "bin/echo": "busybox"}, folders=("tmp",),
        cmd=("/bin/sh", "-c", f"echo hello from image {tag}")), archive)
    imported = subprocess.run([*DIRT, "sandbox", "image", "import", str(archive), "--name", node.sandbox.name],
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0, imported.stderr
    assert reference in imported.stdout
    listed = subprocess.run([*DIRT, "sandbox", "image", "list", "--name", node.sandbox.name],
                            capture_output=True, text=True, timeout=60)
    assert reference in listed.stdout.split()
    name = f"hello-{tag}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"restartPolicy": "Never", "hostNetwork": True, "nodeSelector": {"dirt.dev/node": "real"},
                    "tolerations": [{"key": "dirt.dev/real-node", "operator": "Exists", "effect": "NoSchedule"}],
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "hello", "image": reference, "imagePullPolicy": "Never"}]}}
    cli(node, "kubectl", "apply", "-f", "-", stdin=yaml.safe_dump(pod))
    try:
        deadline = time.monotonic() + 60
        phase = None
        while time.monotonic() < deadline:
            live = node.kube().get("v1", "Pod", name, "default")
            phase = live["status"].get("phase")
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(0.5)
        assert phase == "Succeeded", live["status"]
        assert live["spec"]["nodeName"] == "real-0"
        uid = live["metadata"]["uid"]
        log = realnode.folder(node.sandbox.root) / "pod-logs" / f"default_{name}_{uid}" / "hello" / "0.log"
        assert f"hello from image {tag}" in log.read_text()
    finally:
        cli(node, "kubectl", "delete", "pod", name, "-n", "default", "--ignore-not-found", "--wait=false")


def test_a_killed_process_is_restarted_by_the_kubelet_its_readiness_fails_and_both_alert(
        dirt, node, crashlab) -> None:
    inject = f"""\
  - fault: container.kill
    name: crash the server
    namespace: {NAMESPACE}
    selector: {{app: echo}}
    container: web
"""
    expect = f"""\
  alerts:
    - name: KubeContainerRestarted
      labels: {{namespace: {NAMESPACE}, container: web}}
      fires_within: 30s
    - name: KubePodReadinessFailing
      labels: {{namespace: {NAMESPACE}}}
      fires_within: 30s
      resolves_within: 60s
  availability:
    - name: echo
      http: "{{{{ url }}}}"
      interval: 100ms
      max_outage: 30s
"""
    recover = f"""\
  - step: rollout.wait
    namespace: {NAMESPACE}
    within: 60s
"""
    drill = DRILL.format(name="crash-drill", port=PORT, inject=inject, expect=expect, recover=recover,
                         namespace=NAMESPACE)
    result = dirt.run(write(crashlab, "crash", drill), report_dir=crashlab / "reports")
    assert result.verdict == "passed", result.failures
    data = report(result)
    assert restarts(node) == 1  # the kubelet restarted the same pod's container once
    alerts = {e["name"]: e for e in data["expectations"] if e["kind"] == "alert"}
    assert alerts["KubeContainerRestarted"]["passed"] and alerts["KubePodReadinessFailing"]["passed"]
    (echo,) = data["availability"]
    # The server was gone from the kill until it listened again (it starts in 2 s): users saw it.
    assert echo["ratio"] < 1.0
    assert echo["longest_outage"]["seconds"] >= 1.0, echo["longest_outage"]
    assert echo["samples"] > 20
    events = [json.loads(line) for line in (result.run_dir / "journal.jsonl").read_text().splitlines()]
    injected = [e for e in events if e["event"] == "step.end" and e.get("driver") == "container.kill"]
    assert injected and "on real-0" in injected[0]["detail"], injected


def test_an_etcd_restore_restarts_the_kubelet_as_the_procedure_says_and_its_pods_go_on_serving(
        node, crashlab) -> None:
    """The documented etcd recovery ends by restarting every kubelet, so none acts on what it cached of
    the lost etcd, nor waits out the backoff its watches built up while the control plane was away (up
    to a minute: a pod bound to the node meanwhile waited that long)."""
    cli(node, "kubectl", "apply", "-f", str(crashlab / "app.yaml"))
    cli(node, "kubectl", "-n", NAMESPACE, "rollout", "status", "deployment/echo", "--timeout=90s")

    def kubelet_pid() -> int:
        return next(c["pid"] for c in node.sandbox.status()["components"] if c["name"] == "kubelet")

    before = kubelet_pid()
    node.etcd_snapshot_save(crashlab / "snap.db")
    node.etcd_snapshot_restore(crashlab / "snap.db")
    assert kubelet_pid() not in (before, None), "the restore restarted the kubelet"
    assert restarts(node) == 0, "a kubelet restart leaves its containers running"
    assert requests.get(f"http://127.0.0.1:{PORT}/", timeout=5).text.strip() == "echo-ok"
    # the restarted kubelet acts on the restored cluster: a pod replaced now runs on the real node again
    kube = node.kube()
    (old,) = [p["metadata"]["name"] for p in kube.list("v1", "Pod", NAMESPACE, label_selector="app=echo")]
    cli(node, "kubectl", "-n", NAMESPACE, "delete", "pod", old, "--wait=false")

    def replaced() -> bool:
        pods = kube.list("v1", "Pod", NAMESPACE, label_selector="app=echo")
        return any(p["metadata"]["name"] != old and p.get("spec", {}).get("nodeName") == "real-0"
                   and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
                   for p in pods)

    deadline = time.monotonic() + 90
    while not replaced():
        assert time.monotonic() < deadline, "the replacement pod never became Ready on the real node"
        time.sleep(0.5)


def test_the_app_keeps_serving_while_the_api_server_is_down(dirt, node, crashlab) -> None:
    inject = """\
  - fault: control_plane.stop
    name: kill kube-apiserver
    components: [kube-apiserver]
"""
    expect = """\
  alerts:
    - name: KubeAPIDown
      fires_within: 30s
      resolves_within: 60s
  availability:
    - name: echo
      http: "{{ url }}"
      min_success: 99%
      max_latency: 500ms
"""
    recover = """\
  - step: wait
    duration: 5s
    reason: users keep being served while the API is away
  - step: control_plane.start
    components: [kube-apiserver]
    within: 60s
"""
    drill = DRILL.format(name="api-down-serving", port=PORT, inject=inject, expect=expect, recover=recover,
                         namespace=NAMESPACE)
    result = dirt.run(write(crashlab, "api-down", drill), report_dir=crashlab / "reports")
    assert result.verdict == "passed", result.failures
    (echo,) = report(result)["availability"]
    assert echo["verdict"] == "passed" and echo["ratio"] >= 0.99, echo
    assert echo["samples"] >= 30  # 200 ms samples over the whole outage and recovery
    assert not echo["cut_short"]
    assert requests.get(f"http://127.0.0.1:{PORT}/", timeout=5).text.strip() == "echo-ok"


def test_down_leaves_no_process_mount_or_cgroup_behind(tmp_path) -> None:
    """A one-node sandbox of its own with a real node running a pod: after down, nothing of it remains."""
    from dirt.sandbox import process, realnode
    from dirt.sandbox.cluster import Sandbox

    name = f"rn{uuid.uuid4().hex[:6]}"
    box = Sandbox(name, nodes=1, kube_state_metrics=False, real_nodes=1, home=tmp_path / "home")
    pids: dict[str, int] = {}
    try:
        status = box.up(log=lambda m: None)
        pids = {c["name"]: c["pid"] for c in status["components"]}
        assert pids["kubelet"] and pids["containerd"]
        manifest = tmp_path / "app.yaml"
        manifest.write_text(app_manifest("downlab", PORT + 1))
        box.kubectl("apply", "-f", str(manifest))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not realnode.shim_pids(box.root):
            time.sleep(0.5)
        shims = realnode.shim_pids(box.root)
        assert shims, "the pod's containers never started"
        assert realnode.mounts_under(realnode.folder(box.root)), "a running pod mounts its rootfs"
        assert realnode.cgroup_pids(box.node_id), "the pod's processes are in the sandbox's cgroup"
    finally:
        box.down(log=lambda m: None)
    assert not any(process.alive(pid) for pid in pids.values() if pid)
    assert not any(process.alive(pid) for pid in shims)
    assert realnode.shim_pids(box.root) == []
    assert realnode.mounts_under(tmp_path) == []
    assert not realnode.folder(box.root).exists()  # its node folder (in the temp folder: the test's is deep)
    assert not any((h / realnode.cgroup_root(box.node_id).lstrip("/")).exists() for h in realnode._hierarchies())
    assert not box.root.exists()

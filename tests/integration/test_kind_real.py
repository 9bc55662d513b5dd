"""The kind target against a real kind cluster, made on this machine from dirt's offline node image.

``dirt kind up`` (the repository's ``kind`` target: a control-plane node and a worker) builds or loads
the node image and starts a Docker daemon when none answers; every capability the kind target declares
is then exercised for real: components stopped and started, a worker powered off and on, a container
killed, etcd read, a snapshot saved, checked and restored, etcd wiped and restored, and the whole cluster
deleted and created again.  ``dirt kind down`` at the end deletes the cluster and stops the daemon
dirt started.  The fake-CLI tests (tests/unit/test_target_kind.py) keep only what a real cluster cannot
show: the CLIs' error paths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dirt.config import load_config
from dirt.core.errors import TargetError
from dirt.sandbox import images
from dirt.targets import kind as kind_module
from dirt.targets.base import make_target
from tests.conftest import REPO

pytestmark = [pytest.mark.integration]

DIRT = [sys.executable, "-m", "dirt"]
WORKER = "dirt-kind-worker"
CONTROL_PLANE = "dirt-kind-control-plane"


def dirt(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.fixture(scope="module")
def kind() -> kind_module.KindTarget:
    up = dirt("kind", "up", "--target", "kind")
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-4000:]
    loaded = load_config(str(REPO / "dirt.yaml"))
    name, config = loaded.target("kind")
    target = make_target(name, config, loaded.root)
    assert isinstance(target, kind_module.KindTarget)
    target.prepare()
    yield target
    down = dirt("kind", "down", "--target", "kind")
    assert down.returncode == 0, down.stderr[-3000:]
    clusters = subprocess.run([kind_module.kind_cli(), "get", "clusters"], capture_output=True, text=True)
    assert "dirt-kind" not in clusters.stdout.split()


def kubectl(target: kind_module.KindTarget, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["kubectl", "--kubeconfig", target.kubeconfig_path(), *args], capture_output=True,
                          text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr[-2000:]
    return done


def wait_for(what: str, done, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"waited {timeout:g}s for {what}"
        time.sleep(1)


def test_the_cluster_is_real_and_kept_out_of_the_private_ranges(kind) -> None:
    assert kind.cluster_exists()
    assert sorted(kind.cluster_nodes()) == [CONTROL_PLANE, WORKER]
    nodes = json.loads(kubectl(kind, "get", "nodes", "-o", "json").stdout)["items"]
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
               for n in nodes)
    addresses = [a["address"] for n in nodes for a in n["status"]["addresses"] if a["type"] == "InternalIP"]
    assert all(a.startswith("198.18.") for a in addresses), addresses
    assert next(n for n in nodes if n["metadata"]["name"] == WORKER)["metadata"]["labels"]["dirt.dev/node"] == "real"
    # a pod on the worker reaches the API through its Service (CNI, kube-proxy and CoreDNS work)
    wait_for("CoreDNS", lambda: kubectl(kind, "-n", "kube-system", "rollout", "status", "deployment/coredns",
                                        "--timeout=5s", check=False).returncode == 0)
    for component in kind_module.KIND_COMPONENTS:
        assert kind.component_running(component), component


def test_components_stop_and_start(kind) -> None:
    kind.stop_component("kube-scheduler")
    assert not kind.component_running("kube-scheduler")
    kind.start_component("kube-scheduler")
    assert kind.component_running("kube-scheduler")
    kind.stop_component("kube-apiserver")
    assert kubectl(kind, "get", "--raw", "/readyz", check=False).returncode != 0
    kind.start_component("kube-apiserver")
    wait_for("the API", lambda: kubectl(kind, "get", "--raw", "/readyz", check=False).stdout.strip() == "ok")


def _load_busybox(kind, tmp_path: Path) -> None:
    archives = images.build_builtin(tmp_path / "images")
    loaded = subprocess.run([kind_module.kind_cli(), "load", "image-archive", str(archives[images.BUSYBOX.replace(
        ":latest", ":" + images.busybox_version(images.busybox_binary()))]), "--name", "dirt-kind"],
        capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]


def test_a_killed_container_is_restarted_by_its_kubelet(kind, tmp_path) -> None:
    _load_busybox(kind, tmp_path)
    kubectl(kind, "run", "sleeper", "--image", images.BUSYBOX, "--image-pull-policy", "Never",
            "--overrides", json.dumps({"spec": {"nodeSelector": {"dirt.dev/node": "real"}}}), "--", "sleep", "3600")
    kubectl(kind, "wait", "pod/sleeper", "--for=condition=Ready", "--timeout=120s")
    pod = json.loads(kubectl(kind, "get", "pod", "sleeper", "-o", "json").stdout)
    cid = kind.kill_container(pod, "sleeper")
    assert cid in pod["status"]["containerStatuses"][0]["containerID"]

    def restarted() -> bool:
        status = json.loads(kubectl(kind, "get", "pod", "sleeper", "-o", "json").stdout)["status"]
        return status["containerStatuses"][0]["restartCount"] >= 1
    wait_for("the kubelet to restart the container", restarted)
    kubectl(kind, "delete", "pod", "sleeper", "--wait=false")


def test_a_worker_is_powered_off_and_on(kind) -> None:
    kind.stop_node(WORKER)
    assert not kind.node_running(WORKER)

    def not_ready() -> bool:
        node = json.loads(kubectl(kind, "get", "node", WORKER, "-o", "json").stdout)
        return any(c["type"] == "Ready" and c["status"] != "True" for c in node["status"]["conditions"])
    wait_for("the worker to be NotReady", not_ready, timeout=120)
    kind.start_node(WORKER)  # waits until the Node is Ready again
    assert kind.node_running(WORKER)
    with pytest.raises(TargetError, match="control-plane node"):
        kind.stop_node(CONTROL_PLANE)


def test_snapshot_paths_outside_the_nodes_tmpfs(kind, tmp_path, monkeypatch) -> None:
    """kind mounts a tmpfs on /tmp in every node: docker cp cannot see a snapshot saved there."""
    monkeypatch.setattr(kind_module, "NODE_SNAPSHOT", "/tmp/dirt-snapshot.db")  # the path dirt once used
    with pytest.raises(TargetError, match="Could not find the file /tmp/dirt-snapshot.db"):
        kind.etcd_snapshot_save(tmp_path / "old.db")
    monkeypatch.undo()
    info = kind.etcd_snapshot_save(tmp_path / "new.db")
    assert info.total_keys > 100 and info.size_bytes > 0


def test_etcd_is_read_saved_restored_and_wiped_and_restored(kind, tmp_path) -> None:
    assert kind.etcd_read("/registry/namespaces/kube-system") is not None
    kubectl(kind, "create", "configmap", "before-snapshot", "--from-literal=kept=yes")
    snapshot = tmp_path / "etcd.db"
    saved = kind.etcd_snapshot_save(snapshot)
    assert kind.etcd_snapshot_status(snapshot).hash == saved.hash
    kubectl(kind, "delete", "configmap", "before-snapshot")
    kubectl(kind, "create", "configmap", "after-snapshot", "--from-literal=lost=yes")
    kind.etcd_snapshot_restore(snapshot)
    assert kubectl(kind, "get", "configmap", "before-snapshot", check=False).returncode == 0
    assert "NotFound" in kubectl(kind, "get", "configmap", "after-snapshot", check=False).stderr
    # etcd loses its data: the cluster's state is gone until the snapshot is restored
    kind.etcd_wipe()
    wait_for("etcd to run again, empty", lambda: kind.etcd_read("/registry/configmaps/default/before-snapshot")
             is None and kind.component_running("etcd"), timeout=120)
    kind.etcd_snapshot_restore(snapshot)
    assert kubectl(kind, "get", "configmap", "before-snapshot", check=False).returncode == 0


def test_the_cluster_is_deleted_and_created_again(kind) -> None:
    before = kubectl(kind, "get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout
    kind.delete_cluster()
    assert not kind.cluster_exists()
    assert subprocess.run(["docker", "inspect", CONTROL_PLANE], capture_output=True).returncode != 0
    kind.create_cluster()
    kind.prepare()
    assert kind.cluster_exists() and sorted(kind.cluster_nodes()) == [CONTROL_PLANE, WORKER]
    after = kubectl(kind, "get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout
    assert after and after != before  # a new cluster, not the old one resumed

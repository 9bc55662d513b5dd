"""The kind target's error paths and the command lines a real cluster cannot show, against fake CLIs.

What the kind target does to a real cluster (components, node power, container kill, etcd snapshots,
wipe and restore, cluster delete and create) is proven on real kind clusters made offline by
tests/integration/test_kind_real.py.  Here, recorded fakes of ``kind`` and ``docker`` (small Python
scripts the ``fakes`` fixture writes first on PATH, logging their argv as JSON lines and emulating just
enough of a cluster: its nodes, a control-plane container whose files live in a state folder,
``crictl ps`` answering from whether a manifest is in place, ``etcdutl`` describing snapshot files)
cover what a real cluster cannot be made to do on demand: CLIs that fail, hang or are missing, corrupt
snapshots, refused nodes and components, settings errors, kindest/node's missing etcd tools, and the
component mode a real drill does not use here.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dirt.config import TargetConfig
from dirt.core.errors import ConfigError, TargetError
from dirt.targets.base import make_target
from dirt.targets.kind import KindTarget

CP = "drill-control-plane"
WORKER = "drill-worker"
ETCDCTL_TLS = [
    "--endpoints=https://127.0.0.1:2379",
    "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
    "--cert=/etc/kubernetes/pki/etcd/server.crt",
    "--key=/etc/kubernetes/pki/etcd/server.key",
]

FAKE_KIND = r'''
import json, os, sys
from pathlib import Path

state = Path(os.environ["DIRT_FAKE_STATE"])
args = sys.argv[1:]
with open(os.environ["DIRT_FAKE_LOG"], "a") as log:
    log.write(json.dumps(["kind", *args]) + "\n")
fail = os.environ.get("DIRT_FAKE_FAIL", "")
if fail and fail in " ".join(["kind", *args]):
    sys.stderr.write("Creating cluster ...\nERROR: failed to create cluster: node image not found\n")
    sys.exit(1)
clusters = state / "clusters"
names = clusters.read_text().split() if clusters.exists() else []

def flag(name):
    return args[args.index(name) + 1] if name in args else None

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: kind-{0}
  cluster: {{server: "https://127.0.0.1:6443"}}
contexts:
- name: kind-{0}
  context: {{cluster: kind-{0}, user: kind-{0}}}
current-context: kind-{0}
users:
- name: kind-{0}
  user: {{token: fake}}
"""

def seed_node(name):
    fs = state / "fs"
    manifests = fs / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        (manifests / f"{c}.yaml").write_text(f"kind: Pod\nmetadata: {{name: {c}}}\n")
    (manifests / "etcd.yaml").write_text(
        "kind: Pod\nspec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n"
        f"    - --name={name}-control-plane\n    - --data-dir=/var/lib/etcd\n"
        "    - --initial-advertise-peer-urls=https://172.18.0.2:2380\n")
    (fs / "var/lib/etcd/member/snap").mkdir(parents=True, exist_ok=True)
    (fs / "var/lib/etcd/member/snap/db").write_text("original")

if args[:2] == ["get", "clusters"]:
    if names:
        print("\n".join(names))
    else:
        sys.stderr.write("No kind clusters found.\n")
elif args[:2] == ["get", "nodes"]:
    name = flag("--name")
    if name in names:
        print(f"{name}-control-plane\n{name}-worker")
    else:
        sys.stderr.write(f'No kind nodes found for cluster "{name}".\n')
elif args[:2] == ["get", "kubeconfig"]:
    name = flag("--name")
    if name not in names:
        sys.stderr.write(f"ERROR: could not locate any control plane nodes for cluster named '{name}'\n")
        sys.exit(1)
    sys.stdout.write(KUBECONFIG.format(name))
elif args[:2] == ["create", "cluster"]:
    name = flag("--name")
    if name in names:
        sys.stderr.write("ERROR: failed to create cluster: node(s) already exist for a cluster "
                         f'with the name "{name}"\n')
        sys.exit(1)
    clusters.write_text("\n".join([*names, name]))
    seed_node(name)
    if flag("--kubeconfig"):
        Path(flag("--kubeconfig")).write_text(KUBECONFIG.format(name))
elif args[:2] == ["delete", "cluster"]:
    clusters.write_text("\n".join(n for n in names if n != flag("--name")))
else:
    sys.stderr.write(f"ERROR: unknown command {args}\n")
    sys.exit(1)
'''

FAKE_DOCKER = r'''
import json, os, shutil, sys
from pathlib import Path

state = Path(os.environ["DIRT_FAKE_STATE"])
fs = state / "fs"
args = sys.argv[1:]
with open(os.environ["DIRT_FAKE_LOG"], "a") as log:
    log.write(json.dumps(["docker", *args]) + "\n")
fail = os.environ.get("DIRT_FAKE_FAIL", "")
if fail and fail in " ".join(["docker", *args]):
    sys.stderr.write("some progress output\nError: snapshot must be read from a file: permission denied\n")
    sys.exit(1)
clusters = (state / "clusters").read_text().split() if (state / "clusters").exists() else []
containers = {f"{c}-{role}" for c in clusters for role in ("control-plane", "worker")}
stopped_file = state / "stopped"
stopped = set(stopped_file.read_text().split()) if stopped_file.exists() else set()

def die(message, code=1):
    sys.stderr.write(message + "\n")
    sys.exit(code)

def node_path(p):
    return fs / p.lstrip("/")

def container(name):
    if name not in containers:
        die(f"Error response from daemon: No such container: {name}")
    return name

verb, rest = args[0], args[1:]
if verb == "exec":
    env = {}
    while rest[0] == "-e":
        key, _, value = rest[1].partition("=")
        env[key] = value
        rest = rest[2:]
    name = container(rest[0])
    if name in stopped:
        die(f"Error response from daemon: container {name} is not running")
    cmd = rest[1:]
    manifests = node_path("/etc/kubernetes/manifests")
    if cmd[:5] == ["ctr", "--namespace", "k8s.io", "tasks", "kill"]:
        pass  # containerd signals the task and prints nothing
    elif cmd[0] == "ls":
        print("\n".join(sorted(p.name for p in node_path(cmd[1]).iterdir())))
    elif cmd[0] == "mv":
        if not node_path(cmd[1]).exists():
            die(f"mv: cannot stat '{cmd[1]}': No such file or directory")
        node_path(cmd[2]).parent.mkdir(parents=True, exist_ok=True)
        node_path(cmd[1]).rename(node_path(cmd[2]))
        if os.environ.get("DIRT_FAKE_SLOW_KUBELET") and cmd[1].startswith("/etc/kubernetes/manifests/"):
            # kubelet has not noticed yet: the container keeps running until killed
            (state / "lingering").mkdir(exist_ok=True)
            (state / "lingering" / Path(cmd[1]).stem).touch()
    elif cmd[0] == "cat":
        sys.stdout.write(node_path(cmd[1]).read_text())
    elif cmd[:2] == ["rm", "-rf"]:
        shutil.rmtree(node_path(cmd[2]), ignore_errors=True)
    elif cmd[:2] == ["crictl", "ps"]:
        component = cmd[cmd.index("--name") + 1]
        if (manifests / f"{component}.yaml").exists() or (state / "lingering" / component).exists():
            print(f"{component}-0123456789ab")
    elif cmd[:2] == ["crictl", "stop"]:
        for container_id in cmd[4:]:
            (state / "lingering" / container_id.rsplit("-", 1)[0]).unlink(missing_ok=True)
    elif cmd[0] == "etcdctl":
        if env.get("ETCDCTL_API") != "3":
            die("etcdctl: ETCDCTL_API must be 3")
        target = node_path(cmd[-1])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("etcd snapshot")
    elif cmd[:3] == ["etcdutl", "snapshot", "status"]:
        if not node_path(cmd[3]).exists():
            die(f"Error: stat {cmd[3]}: no such file or directory")
        print(json.dumps({"hash": 123, "revision": 45, "totalKey": 67, "totalSize": 8910}))
    elif cmd[:3] == ["etcdutl", "snapshot", "restore"]:
        data = node_path(cmd[cmd.index("--data-dir") + 1])
        (data / "member/snap").mkdir(parents=True)
        (data / "member/snap/db").write_text("restored")
    elif cmd[0] == "kubectl":
        if not (manifests / "kube-apiserver.yaml").exists():
            die("The connection to the server localhost:6443 was refused")
        print("ok")
    else:
        die(f"OCI runtime exec failed: exec: \"{cmd[0]}\": executable file not found in $PATH", 126)
elif verb == "cp":
    src, dst = rest
    if ":" in src:
        container(src.split(":")[0])
        shutil.copyfile(node_path(src.split(":", 1)[1]), dst)
    else:
        container(dst.split(":")[0])
        node_path(dst.split(":", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, node_path(dst.split(":", 1)[1]))
elif verb in ("stop", "kill"):
    stopped_file.write_text("\n".join(stopped | {container(rest[0])}))
elif verb == "start":
    stopped_file.write_text("\n".join(stopped - {container(rest[0])}))
elif verb == "inspect":
    print("false" if container(rest[-1]) in stopped else "true")
else:
    die(f"docker: unknown command {verb}")
'''


class Fakes:
    """The fake CLIs' world: the call log, the node's files, a project folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.bin = tmp_path / "bin"
        self.state = tmp_path / "state"
        self.log = tmp_path / "calls.jsonl"
        self.root = tmp_path / "project"
        for folder in (self.bin, self.state, self.root):
            folder.mkdir()
        for name, body in (("kind", FAKE_KIND), ("docker", FAKE_DOCKER)):
            script = self.bin / name
            script.write_text(f"#!{sys.executable}\n{textwrap.dedent(body)}")
            script.chmod(0o755)

    @property
    def fs(self) -> Path:
        """The control-plane container's file system."""
        return self.state / "fs"

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def forget_calls(self) -> None:
        self.log.unlink(missing_ok=True)

    def target(self, **settings: Any) -> KindTarget:
        config = TargetConfig(provider="kind", settings={"cluster": "drill", **settings})
        target = make_target("kind-ci", config, self.root)
        assert isinstance(target, KindTarget)
        return target

    def existing_cluster(self, **settings: Any) -> KindTarget:
        """A target whose cluster exists, with the calls that made it forgotten."""
        target = self.target(**settings)
        target.create_cluster()
        self.forget_calls()
        return target


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    world = Fakes(tmp_path)
    monkeypatch.setenv("PATH", f"{world.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DIRT_FAKE_STATE", str(world.state))
    monkeypatch.setenv("DIRT_FAKE_LOG", str(world.log))
    monkeypatch.delenv("DIRT_FAKE_FAIL", raising=False)
    return world


def node(*command: str) -> list[str]:
    return ["docker", "exec", CP, *command]


# -- the whole cluster --------------------------------------------------------------


def test_create_cluster_passes_config_image_kubeconfig_and_wait(fakes: Fakes) -> None:
    (fakes.root / "kind.yaml").write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    target = fakes.target(config="kind.yaml", image="kindest/node:v1.36.0", timeout="2m")

    target.create_cluster()

    kubeconfig = fakes.root / ".dirt" / "kind-drill.kubeconfig"
    assert fakes.calls() == [[
        "kind", "create", "cluster", "--name", "drill", "--config", str(fakes.root / "kind.yaml"),
        "--image", "kindest/node:v1.36.0", "--kubeconfig", str(kubeconfig), "--wait", "120s",
    ]]
    assert target.kubeconfig_path() == str(kubeconfig)
    assert "kind-drill" in kubeconfig.read_text()


def test_create_cluster_refuses_a_missing_config_file_before_running_kind(fakes: Fakes) -> None:
    target = fakes.target(config="nowhere.yaml")

    with pytest.raises(TargetError, match=r"config file .*nowhere\.yaml not found"):
        target.create_cluster()
    assert fakes.calls() == []


def test_delete_cluster_edits_only_the_targets_kubeconfig(fakes: Fakes) -> None:
    target = fakes.existing_cluster()
    assert target.cluster_exists()

    target.delete_cluster()

    assert fakes.calls()[1] == [
        "kind", "delete", "cluster", "--name", "drill",
        "--kubeconfig", str(fakes.root / ".dirt" / "kind-drill.kubeconfig"),
    ]
    assert not target.cluster_exists()
    assert not (fakes.root / ".dirt" / "kind-drill.kubeconfig").exists()


def test_drill_commands_get_a_kubeconfig_path_even_while_the_cluster_is_gone(fakes: Fakes) -> None:
    target = fakes.existing_cluster()
    target.delete_cluster()

    env = target.command_env()
    assert env["KUBECONFIG"] == str(fakes.root / ".dirt" / "kind-drill.kubeconfig")
    # first on PATH: an etcdctl that runs inside the control-plane node (etcd listens only there)
    wrapper = Path(env["PATH"].split(os.pathsep)[0]) / "etcdctl"
    assert "exec docker exec -i -e ETCDCTL_API=3 drill-control-plane etcdctl --endpoints=https://127.0.0.1:2379" \
        in wrapper.read_text() and os.access(wrapper, os.X_OK)


def test_prepare_refuses_a_cluster_that_does_not_exist(fakes: Fakes) -> None:
    target = fakes.target()

    with pytest.raises(TargetError, match=r"kind cluster 'drill' does not exist: create it with `kind create"):
        target.prepare()


def test_prepare_writes_a_fresh_private_kubeconfig(fakes: Fakes) -> None:
    target = fakes.existing_cluster(kubeconfig="kube/drill.conf")

    target.prepare()

    path = fakes.root / "kube" / "drill.conf"
    assert fakes.calls() == [["kind", "get", "clusters"], ["kind", "get", "kubeconfig", "--name", "drill"]]
    assert "current-context: kind-drill" in path.read_text()
    assert path.stat().st_mode & 0o077 == 0  # it holds credentials
    assert target.kube_context() == "kind-drill"


def test_kubeconfig_path_asks_kind_for_the_file_only_when_it_is_missing(fakes: Fakes) -> None:
    target = fakes.existing_cluster()
    (fakes.root / ".dirt" / "kind-drill.kubeconfig").unlink()

    first, second = target.kubeconfig_path(), target.kubeconfig_path()

    assert first == second == str(fakes.root / ".dirt" / "kind-drill.kubeconfig")
    assert fakes.calls() == [["kind", "get", "kubeconfig", "--name", "drill"]]


def test_identity_and_description(fakes: Fakes) -> None:
    target = fakes.target(image="kindest/node:v1.36.0")

    assert target.cluster_name() == "drill"
    assert target.is_sandbox is False
    assert target.capabilities == {"components", "etcd_snapshot", "etcd_wipe", "etcd_read", "cluster", "containers",
                                   "node_power"}
    assert target.describe() == {"name": "kind-ci", "provider": "kind", "cluster": "drill", "control_plane": CP,
                                 "image": "kindest/node:v1.36.0", "component_mode": "manifest"}


def test_unknown_settings_are_a_config_error(fakes: Fakes) -> None:
    with pytest.raises(ConfigError, match=r"target 'kind-ci' \(kind\): settings\.clustr: Extra inputs"):
        fakes.target(clustr="typo")


# -- control-plane components -------------------------------------------------------


def test_starting_a_running_component_changes_nothing(fakes: Fakes) -> None:
    target = fakes.existing_cluster()

    target.start_component("kube-scheduler")

    assert not any("mv" in call for call in fakes.calls())


def test_a_component_kind_does_not_run_is_refused(fakes: Fakes) -> None:
    target = fakes.existing_cluster()

    with pytest.raises(TargetError, match=r"no component 'kwok-controller' on a kind node"):
        target.stop_component("kwok-controller")


def test_container_mode_kills_and_restarts_the_whole_control_plane_node(fakes: Fakes) -> None:
    target = fakes.existing_cluster(component_mode="container")

    target.stop_component("kube-scheduler")
    assert target.component_running("kube-scheduler") is False
    target.start_component("kube-scheduler")

    assert fakes.calls() == [
        ["docker", "kill", CP],
        ["docker", "inspect", "-f", "{{.State.Running}}", CP],
        ["docker", "inspect", "-f", "{{.State.Running}}", CP],
        ["docker", "start", CP],
        node("crictl", "ps", "--name", "kube-scheduler", "-q"),
    ]


def test_container_mode_stops_gracefully_with_docker_stop(fakes: Fakes) -> None:
    target = fakes.existing_cluster(component_mode="container")

    target.stop_component("etcd", graceful=True)

    assert fakes.calls() == [["docker", "stop", CP]]


# -- etcd ---------------------------------------------------------------------------


def test_etcd_tools_are_copied_into_the_node_once(fakes: Fakes) -> None:
    tools = fakes.root / "tools"
    tools.mkdir()
    for tool in ("etcdctl", "etcdutl"):
        (tools / tool).write_text("#!/bin/true\n")
    target = fakes.existing_cluster(etcd_tools="tools")

    target.etcd_snapshot_save(fakes.root / "one.db")
    target.etcd_snapshot_save(fakes.root / "two.db")

    copies = [c for c in fakes.calls() if c[:2] == ["docker", "cp"] and c[2].startswith(str(tools))]
    assert copies == [
        ["docker", "cp", str(tools / "etcdctl"), f"{CP}:/usr/local/bin/etcdctl"],
        ["docker", "cp", str(tools / "etcdutl"), f"{CP}:/usr/local/bin/etcdutl"],
    ]
    assert fakes.calls()[:2] == copies


def test_restore_also_starts_a_component_a_fault_had_stopped(fakes: Fakes) -> None:
    target = fakes.existing_cluster()
    target.stop_component("etcd")
    snapshot = fakes.root / "etcd.db"
    snapshot.write_text("etcd snapshot")

    target.etcd_snapshot_restore(snapshot)

    assert all(target.component_running(c) for c in ("etcd", "kube-apiserver", "kube-scheduler"))
    assert any(" cat /etc/kubernetes/etcd.yaml.dirt-stopped" in " ".join(c) for c in fakes.calls())


def test_a_corrupt_snapshot_fails_restore_before_anything_stops(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    target = fakes.existing_cluster()
    snapshot = fakes.root / "etcd.db"
    snapshot.write_text("garbage")
    monkeypatch.setenv("DIRT_FAKE_FAIL", "snapshot status")

    with pytest.raises(TargetError) as caught:
        target.etcd_snapshot_restore(snapshot)

    assert str(caught.value) == ("kind: etcdutl snapshot status failed (exit 1): "
                                 "Error: snapshot must be read from a file: permission denied")
    assert not any("mv" in call for call in fakes.calls())


def test_etcd_wipe_of_an_etcd_another_fault_stopped_leaves_it_stopped(fakes: Fakes) -> None:
    """(A running etcd's wipe, and the drills built on it, run on a real kind cluster:
    tests/integration/test_kind_real.py.)"""
    target = fakes.existing_cluster()
    target.stop_component("etcd", graceful=True)
    before = len(fakes.calls())

    target.etcd_wipe()

    assert fakes.calls()[before:] == [
        node("ls", "/etc/kubernetes/manifests"),
        node("crictl", "ps", "--name", "etcd", "-q"),
        node("rm", "-rf", "/var/lib/etcd/member"),
    ]
    assert not (fakes.fs / "var/lib/etcd/member").exists()
    assert not (fakes.fs / "etc/kubernetes/manifests/etcd.yaml").exists()  # still stopped


# -- nodes and their containers -------------------------------------------------------


class _Nodes:
    """A pure stand-in for the API, as a node powered on soon after its loss looks: it still shows
    the Ready its kubelet posted before (the controller has not marked it NotReady yet), and only
    a later look, once the (fake) container runs again, has a new heartbeat.  A start_node that
    took the stale Ready, or waited before ``docker start``, fails."""

    def __init__(self, fakes: Fakes) -> None:
        self.fakes = fakes
        self.looks = 0
        self.beat = 0

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.looks += 1
        stopped = self.fakes.state / "stopped"
        running = not (stopped.exists() and name in stopped.read_text().split())
        if running and self.looks >= 3:
            self.beat += 1  # the restarted kubelet posts its status
        ready = {"type": "Ready", "status": "True", "lastHeartbeatTime": f"2026-11-26T20:00:{self.beat:02d}Z"}
        return {"metadata": {"name": name}, "status": {"conditions": [ready]}}


def test_node_power_and_container_kill_faults_pass_the_capability_check_on_kind(fakes: Fakes) -> None:
    from dirt.faults.runtime import ContainerKill, ContainerKillParams, NodePowerOff, NodePowerParams

    target = fakes.target()

    assert ContainerKill.requirements(ContainerKillParams(namespace="shop", pod="web-0")) <= target.capabilities
    assert NodePowerOff.requirements(NodePowerParams(node=WORKER)) <= target.capabilities


def test_a_worker_that_never_becomes_ready_says_where_to_look(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    target = fakes.existing_cluster(timeout="1s")

    class NeverReady(_Nodes):
        def find(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}

    monkeypatch.setattr(target, "kube", lambda: NeverReady(fakes))
    with pytest.raises(TargetError, match=r"^node drill-worker is not Ready 1s after it was powered on; see "
                                          r"`docker logs drill-worker` and `docker exec drill-worker journalctl "
                                          r"-u kubelet` \(target 'kind-ci'\)$"):
        target.start_node(WORKER)


@pytest.mark.parametrize("operation", ["stop_node", "start_node"])
@pytest.mark.parametrize(("name", "says"), [
    (CP, r"^kind: drill-control-plane is a control-plane node of cluster 'drill': losing it is a whole-cluster "
         r"outage, not a lost worker; use control_plane\.stop \(component_mode: container\) or cluster\.delete "
         r"instead$"),
    ("drill-worker2", r"^kind: 'drill-worker2' is not a node of cluster 'drill' \(target 'kind-ci'\); its nodes: "
                      r"drill-control-plane, drill-worker$"),
])
def test_powering_a_control_plane_or_unknown_node_is_refused_and_touches_nothing(fakes: Fakes, operation: str,
                                                                                 name: str, says: str) -> None:
    target = fakes.existing_cluster(timeout="5s")  # were it not refused, power-on would give up soon

    with pytest.raises(TargetError, match=says):
        getattr(target, operation)(name)

    assert fakes.calls() == [["kind", "get", "nodes", "--name", "drill"]]
    assert not (fakes.state / "stopped").exists()


def test_node_running_refuses_a_node_the_cluster_does_not_have(fakes: Fakes) -> None:
    target = fakes.existing_cluster()

    with pytest.raises(TargetError, match=r"'ghost-worker' is not a node of cluster 'drill'"):
        target.node_running("ghost-worker")
    assert not any(call[0] == "docker" for call in fakes.calls())


def pod(*, node: str = WORKER, container_id: str = "containerd://4f1e9a", state: str = "running") -> dict[str, Any]:
    return {"metadata": {"namespace": "shop", "name": "web-0"}, "spec": {"nodeName": node},
            "status": {"containerStatuses": [{"name": "web", "containerID": container_id, "state": {state: {}}}]}}


@pytest.mark.parametrize(("the_pod", "container", "says"), [
    (pod(node="laptop"), "web", r"^kind: 'laptop' \(where pod shop/web-0 runs\) is not a node of cluster 'drill' "
                                r"\(target 'kind-ci'\); its nodes: drill-control-plane, drill-worker$"),
    (pod(), "sidecar", r"^pod shop/web-0 has no container 'sidecar' \(it has: web\)$"),
    (pod(state="waiting"), "web", r"^container 'web' of pod shop/web-0 is not running$"),
    (pod(container_id=""), "web", r"^container 'web' of pod shop/web-0 is not running$"),
    (pod(container_id="cri-o://77ab"), "web", r"^kind: container 'web' of pod shop/web-0 runs under 'cri-o', "
                                              r"not containerd"),
])
def test_kill_container_refuses_what_it_cannot_signal_and_runs_no_docker_command(
        fakes: Fakes, the_pod: dict[str, Any], container: str, says: str) -> None:
    target = fakes.existing_cluster()

    with pytest.raises(TargetError, match=says):
        target.kill_container(the_pod, container)

    assert not any(call[0] == "docker" for call in fakes.calls())


# -- failures -----------------------------------------------------------------------


def test_a_failing_kind_becomes_one_clean_line_naming_the_operation(fakes: Fakes,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIRT_FAKE_FAIL", "create cluster")
    target = fakes.target()

    with pytest.raises(TargetError) as caught:
        target.create_cluster()

    assert str(caught.value) == ("kind: create cluster failed (exit 1): "
                                 "ERROR: failed to create cluster: node image not found")
    assert caught.value.exit_code == 1


def test_docker_errors_name_the_step_that_failed(fakes: Fakes) -> None:
    target = fakes.target(cluster="ghost")  # no such cluster: no such container

    with pytest.raises(TargetError, match=r"^kind: list static pod manifests failed \(exit 1\): "
                                          r"Error response from daemon: No such container: ghost-control-plane$"):
        target.stop_component("kube-apiserver")


def test_a_missing_cli_is_named(fakes: Fakes) -> None:
    target = fakes.target(kind_binary="kind-not-installed")

    with pytest.raises(TargetError, match=r"^kind: get clusters failed: 'kind-not-installed' not found on PATH$"):
        target.cluster_exists()


def test_a_hanging_cli_times_out(fakes: Fakes) -> None:
    slow = fakes.bin / "slow-kind"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    target = fakes.target(kind_binary=str(slow), timeout="200ms")

    with pytest.raises(TargetError, match=r"^kind: get clusters timed out after 0\.2s$"):
        target.cluster_exists()

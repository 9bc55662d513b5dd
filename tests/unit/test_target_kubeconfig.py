"""The kubeconfig target: any real cluster by context, cluster-level operations by configured command.

The commands configured here are tiny shell scripts that write what they were
given (their filled-in arguments, ``$KUBECONFIG``) to files, so the tests prove
that templates are filled, shell-quoted and run with this target's kubeconfig.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from dirt.config import TargetConfig
from dirt.core.errors import ConfigError, TargetError
from dirt.targets.base import make_target
from dirt.targets.kubeconfig import KubeconfigTarget

TOKEN = "eyJhbGciOiJSUzI1NiJ9.very-secret-token"

KUBECONFIG = f"""\
apiVersion: v1
kind: Config
current-context: staging-eu
clusters:
  - name: staging
    cluster:
      server: https://staging.example.com:6443
      certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
  - name: prod
    cluster:
      server: https://prod.example.com:6443
contexts:
  - name: staging-eu
    context: {{cluster: staging, user: ops}}
  - name: prod-eu
    context: {{cluster: prod, user: ops}}
users:
  - name: ops
    user:
      token: {TOKEN}
      client-key-data: c2VjcmV0LWtleQ==
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return tmp_path


def target(root: Path, name: str = "staging", **settings: Any) -> KubeconfigTarget:
    config = TargetConfig(provider="kubeconfig", settings={"kubeconfig": "kubeconfig", **settings})
    made = make_target(name, config, root)
    assert isinstance(made, KubeconfigTarget)
    return made


def test_configured_commands_are_filled_quoted_and_run_with_the_targets_kubeconfig(root: Path) -> None:
    staging = target(root, commands={
        "stop_component": 'printf "%s|%s" {component} "$KUBECONFIG" > stopped.txt',
        "start_component": 'printf "%s" {component} > started.txt',
    })

    staging.stop_component("kube-apiserver")
    staging.start_component("etcd")

    assert (root / "stopped.txt").read_text() == f"kube-apiserver|{root / 'kubeconfig'}"
    assert (root / "started.txt").read_text() == "etcd"


def test_paths_are_shell_quoted_so_spaces_survive(root: Path) -> None:
    staging = target(root, commands={"etcd_snapshot_restore": "printf '%s' {path} > restored-from.txt"})

    staging.etcd_snapshot_restore(root / "my backups" / "etcd.db")

    assert (root / "restored-from.txt").read_text() == str(root / "my backups" / "etcd.db")


def test_component_running_and_cluster_exists_answer_with_the_exit_status(root: Path) -> None:
    staging = target(root, commands={
        "component_running": 'test {component} = kube-scheduler',
        "cluster_exists": "exit 3",
    })

    assert staging.component_running("kube-scheduler") is True
    assert staging.component_running("etcd") is False
    assert staging.cluster_exists() is False


def test_snapshot_save_describes_the_file_the_command_wrote(root: Path) -> None:
    staging = target(root, commands={"etcd_snapshot_save": "printf 'twelve bytes' > {path}"})
    path = root / "backups" / "etcd.db"

    info = staging.etcd_snapshot_save(path)

    assert (info.path, info.size_bytes, info.created_at) == (str(path), 12, path.stat().st_mtime)


def test_snapshot_save_reads_hash_revision_and_keys_from_etcdutl_on_path(root: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = root / "bin"
    bin_dir.mkdir()
    etcdutl = bin_dir / "etcdutl"
    etcdutl.write_text(f"#!{sys.executable}\nimport json, sys\n"
                       "assert sys.argv[1:3] == ['snapshot', 'status'] and sys.argv[4:] == ['-w', 'json']\n"
                       "print(json.dumps({'hash': 123, 'revision': 45, 'totalKey': 67, 'totalSize': 8910}))\n")
    etcdutl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    staging = target(root, commands={"etcd_snapshot_save": "printf 'snapshot' > {path}"})

    info = staging.etcd_snapshot_save(root / "etcd.db")

    assert (info.hash, info.revision, info.total_keys, info.size_bytes) == (123, 45, 67, 8)


def test_snapshot_save_without_a_working_etcdutl_reports_zeros(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "etcdutl").write_text("#!/bin/sh\necho 'Error: invalid database' >&2\nexit 1\n")
    (bin_dir / "etcdutl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    staging = target(root, commands={"etcd_snapshot_save": "printf 'snapshot' > {path}"})

    info = staging.etcd_snapshot_save(root / "etcd.db")

    assert (info.hash, info.revision, info.total_keys, info.size_bytes) == (0, 0, 0, 8)


def test_an_unconfigured_operation_says_which_setting_to_add(root: Path) -> None:
    staging = target(root)

    with pytest.raises(TargetError) as caught:
        staging.delete_cluster()

    assert str(caught.value) == (
        "target 'staging' (kubeconfig) cannot delete_cluster: configure commands.delete_cluster in dirt.yaml"
    )


def test_a_failing_command_is_one_line_naming_the_operation(root: Path) -> None:
    staging = target(root, commands={
        "etcd_wipe": "echo working; echo 'ssh: connect to host cp-1: refused' >&2; exit 255",
    })

    with pytest.raises(TargetError) as caught:
        staging.etcd_wipe()

    assert str(caught.value) == (
        "target 'staging' (kubeconfig): etcd_wipe failed (exit 255): ssh: connect to host cp-1: refused"
    )


def test_a_hanging_command_times_out(root: Path) -> None:
    staging = target(root, timeout="300ms", commands={"create_cluster": "exec sleep 5"})

    with pytest.raises(TargetError, match=r"^target 'staging' \(kubeconfig\): create_cluster timed out after 0\.3s$"):
        staging.create_cluster()


@pytest.mark.parametrize(("operation", "template", "message"), [
    ("stop_component", "ssh {host} stop {component}",
     "unknown placeholder {host}; this command may use {component}"),
    ("etcd_snapshot_save", "save {component}",
     "unknown placeholder {component}; this command may use {path}"),
    ("delete_cluster", "echo ${HOME}",
     "unknown placeholder {HOME}; this command may use no placeholders"),
    ("create_cluster", "echo {", "Single '{' encountered in format string"),
])
def test_unknown_placeholders_are_a_config_error_at_load_time(root: Path, operation: str, template: str,
                                                              message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        target(root, commands={operation: template})

    assert str(caught.value).startswith(f"target 'staging' (kubeconfig): settings.commands.{operation}: {message}")


def test_literal_braces_are_written_doubled(root: Path) -> None:
    staging = target(root, commands={"etcd_wipe": "X=wiped; echo ${{X}} > wipe.txt"})

    staging.etcd_wipe()

    assert (root / "wipe.txt").read_text() == "wiped\n"


def test_an_unknown_operation_is_a_config_error(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"settings\.commands\.reboot_node: Extra inputs are not permitted"):
        target(root, commands={"reboot_node": "reboot"})


def test_capabilities_follow_the_configured_commands(root: Path) -> None:
    bare = target(root)
    components = target(root, commands={"stop_component": "x", "start_component": "x", "component_running": "x"})
    half = target(root, commands={"stop_component": "x", "etcd_snapshot_save": "x", "etcd_snapshot_restore": "x",
                                  "etcd_wipe": "x"})

    assert bare.capabilities == frozenset()
    assert components.capabilities == {"components"}
    assert half.capabilities == {"etcd_snapshot", "etcd_wipe"}
    assert KubeconfigTarget.capabilities == frozenset()  # the class promises nothing


def test_cluster_name_is_the_configured_context(root: Path) -> None:
    assert target(root, context="prod-eu").cluster_name() == "prod-eu"


def test_cluster_name_defaults_to_the_kubeconfigs_current_context(root: Path) -> None:
    assert target(root).cluster_name() == "staging-eu"


def test_kubeconfig_defaults_to_the_environment_with_home_expanded(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(root))
    monkeypatch.setenv("KUBECONFIG", f"~/kubeconfig{os.pathsep}~/missing")
    config = TargetConfig(provider="kubeconfig")
    from_env = make_target("staging", config, root / "elsewhere")

    assert from_env.kubeconfig_path() == f"{root / 'kubeconfig'}{os.pathsep}{root / 'missing'}"
    assert from_env.cluster_name() == "staging-eu"

    monkeypatch.delenv("KUBECONFIG")
    assert make_target("staging", config, root).kubeconfig_path() == str(root / ".kube" / "config")


def test_describe_names_context_and_server_but_never_credentials(root: Path) -> None:
    described = target(root, context="prod-eu").describe()

    assert described == {"name": "staging", "provider": "kubeconfig", "context": "prod-eu",
                         "server": "https://prod.example.com:6443"}
    text = repr(target(root).describe())
    assert TOKEN not in text and "c2VjcmV0LWtleQ" not in text and "LS0tLS1" not in text


def test_it_is_never_a_sandbox_and_passes_its_context_to_the_client(root: Path) -> None:
    prod = target(root, context="prod-eu")

    assert prod.is_sandbox is False
    assert prod.kube_context() == "prod-eu"
    assert prod.command_env() == {"KUBECONFIG": str(root / "kubeconfig")}


def test_prepare_refuses_a_context_the_kubeconfig_lacks(root: Path) -> None:
    with pytest.raises(TargetError, match=r"context 'dev' is not in .*kubeconfig"):
        target(root, context="dev").prepare()
    target(root, context="prod-eu").prepare()


def pod(node: str = "worker-1", *, running: bool = True, container_id: str = "containerd://4f2a9c") -> dict:
    state = {"running": {"startedAt": "2026-11-26T20:00:00Z"}} if running else {"waiting": {"reason": "CrashLoop"}}
    return {"metadata": {"name": "web-7d4b", "namespace": "shop"}, "spec": {"nodeName": node},
            "status": {"containerStatuses": [{"name": "web", "containerID": container_id, "state": state}]}}


def test_kill_container_fills_node_pod_container_id_and_signal(root: Path) -> None:
    staging = target(root, commands={
        "kill_container": "printf '%s|' {node} {namespace} {pod} {container} {container_id} {signal} > killed.txt",
    })

    assert "containers" in staging.capabilities
    assert staging.kill_container(pod(container_id="cri-o://77ab"), "web", signal="SIGTERM") == "77ab"
    assert (root / "killed.txt").read_text() == "worker-1|shop|web-7d4b|web|77ab|SIGTERM|"


@pytest.mark.parametrize(("the_pod", "container", "message"), [
    (pod(), "sidecar", r"pod shop/web-7d4b has no container 'sidecar' \(it has: web\)"),
    (pod(running=False), "web", r"container 'web' of pod shop/web-7d4b is not running"),
    (pod(container_id=""), "web", r"container 'web' of pod shop/web-7d4b is not running"),
    (pod(node=""), "web", r"pod shop/web-7d4b runs on no node"),
])
def test_kill_container_refuses_what_has_no_process_and_runs_nothing(root: Path, the_pod: dict, container: str,
                                                                     message: str) -> None:
    staging = target(root, commands={"kill_container": "touch killed.txt"})

    with pytest.raises(TargetError, match=message):
        staging.kill_container(the_pod, container)
    assert not (root / "killed.txt").exists()


class _Nodes:
    """A pure stand-in for the API, as a node powered on soon after its loss looks: the first two
    looks show the stale Ready its kubelet posted before the loss, the third a new heartbeat."""

    def __init__(self) -> None:
        self.looks = 0

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict:
        self.looks += 1
        beat = "2026-11-26T20:00:00Z" if self.looks < 3 else f"2026-11-26T20:01:{self.looks:02d}Z"
        ready = {"type": "Ready", "status": "True", "lastHeartbeatTime": beat}
        return {"metadata": {"name": name}, "status": {"conditions": [ready]}}


def test_node_power_runs_the_commands_and_power_on_waits_until_the_node_is_ready(root: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    staging = target(root, commands={
        "stop_node": "printf '%s' {node} > off.txt",
        "start_node": "rm off.txt; printf '%s' {node} > on.txt",
        "node_running": "test ! -e off.txt",
    })
    nodes = _Nodes()
    monkeypatch.setattr(staging, "kube", lambda: nodes)

    assert "node_power" in staging.capabilities
    staging.stop_node("worker 2")
    assert (root / "off.txt").read_text() == "worker 2" and staging.node_running("worker 2") is False
    staging.start_node("worker 2")
    assert (root / "on.txt").read_text() == "worker 2" and staging.node_running("worker 2") is True
    assert nodes.looks == 3, "start_node took no stale Ready: only the restarted kubelet's report"


def test_a_node_that_never_becomes_ready_after_power_on_is_a_clear_error(root: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    staging = target(root, timeout="1s", commands={"start_node": "true"})

    class NeverReady(_Nodes):
        def find(self, *args: Any, **kwargs: Any) -> dict:
            return {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}

    monkeypatch.setattr(staging, "kube", NeverReady)
    with pytest.raises(TargetError, match=r"node worker-1 is not Ready 1s after it was powered on; the start_node "
                                          r"command of target 'staging' ran"):
        staging.start_node("worker-1")


def test_node_power_is_a_capability_only_with_all_three_commands(root: Path) -> None:
    two = target(root, commands={"stop_node": "x", "start_node": "x"})

    assert "node_power" not in two.capabilities
    assert "settings.commands.node_running" in two.why_not("node_power")

"""dirt's offline kind node image and the Docker daemon it runs on: the parts that need no daemon.

The image itself, the daemon and real clusters are exercised in tests/integration/test_kind_real.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from dirt.sandbox import kind_image, oci
from dirt.sandbox.docker import RUNC_WRAPPER, DockerEngine, lacks_cap_sys_resource
from dirt.targets.kind import kind_cli

PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def _status(tmp_path: Path, capbnd: str) -> Path:
    path = tmp_path / "status"
    path.write_text(f"Name:\tpython\nCapInh:\t0000000000000000\nCapBnd:\t{capbnd}\nCapAmb:\t0000000000000000\n")
    return path


def test_a_bounding_set_without_cap_sys_resource_is_detected(tmp_path: Path) -> None:
    assert lacks_cap_sys_resource(_status(tmp_path, "000001fffeffffff"))  # the VM this was found on
    assert not lacks_cap_sys_resource(_status(tmp_path, "000001ffffffffff"))  # every capability


def test_the_cluster_config_keeps_pods_and_services_out_of_the_private_ranges() -> None:
    config = kind_image.cluster_config(workers=2, worker_labels={"dirt.dev/node": "real"}, cgroup_v1=False,
                                       lacks_sys_resource=False, log=lambda m: None)
    net = config["networking"]
    for subnet in (net["podSubnet"], net["serviceSubnet"]):
        assert not any(ipaddress.ip_network(subnet).overlaps(p) for p in PRIVATE), subnet
    assert net["disableDefaultCNI"] is True  # the image's static CNI stands in for kindnetd
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker", "worker"]
    assert all(n["labels"] == {"dirt.dev/node": "real"} for n in config["nodes"][1:])
    # the CNI script derives each node's range from the same subnet
    assert "198.19.${me}.0/24" in kind_image.CNI_SCRIPT
    assert ipaddress.ip_network("198.19.60.0/24").subnet_of(ipaddress.ip_network(kind_image.POD_SUBNET))


def test_the_machine_workarounds_are_added_only_where_needed_and_said() -> None:
    said: list[str] = []
    plain = kind_image.cluster_config(cgroup_v1=False, lacks_sys_resource=False, log=said.append)
    assert "containerdConfigPatches" not in plain
    assert not any("failCgroupV1" in p for p in plain["kubeadmConfigPatches"])
    assert said == []
    odd = kind_image.cluster_config(cgroup_v1=True, lacks_sys_resource=True, log=said.append)
    assert any("failCgroupV1: false" in p for p in odd["kubeadmConfigPatches"])
    assert "restrict_oom_score_adj = true" in odd["containerdConfigPatches"][0]
    assert len(said) == 2 and "cgroup v1" in said[0] and "CAP_SYS_RESOURCE" in said[1]


def test_the_image_tag_changes_with_what_shapes_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    before = kind_image.image_tag()
    assert before.startswith(f"dirt.local/kind-node:{kind_image.KV}-")
    assert kind_image.image_tag() == before  # stable
    monkeypatch.setattr(kind_image, "RECIPE", kind_image.RECIPE + 1)
    assert kind_image.image_tag() != before
    monkeypatch.undo()
    monkeypatch.setattr(kind_image, "NODE_PACKAGES", (*kind_image.NODE_PACKAGES, "strace"))
    assert kind_image.image_tag() != before
    assert kind_image.image_archive().name.endswith(f"-{kind_image.image_key()}.tar")


def test_an_archive_written_for_docker_also_has_docker_saves_manifest(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "hello").write_text("#!/bin/sh\necho hi\n")
    layer = oci.layer_from_tree(tree, tmp_path / "cache", key="t")
    archive = tmp_path / "image.tar"
    oci.write_image(archive, [layer], config={"architecture": "amd64", "os": "linux", "config": {}},
                    references=["dirt.local/x:1"], docker=True)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        (entry,) = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
    assert {"index.json", "oci-layout", entry["Config"], *entry["Layers"]} <= names
    assert entry["RepoTags"] == ["dirt.local/x:1"]
    assert entry["Layers"] == [f"blobs/sha256/{layer.digest.split(':')[1]}"]
    assert config["rootfs"]["diff_ids"] == [layer.diff_id]
    plain = tmp_path / "plain.tar"
    oci.write_image(plain, [layer], config={"architecture": "amd64", "os": "linux", "config": {}},
                    references=["dirt.local/x:1"])
    with tarfile.open(plain) as tar:
        assert "manifest.json" not in tar.getnames()


def test_kinds_storage_manifest_is_cut_from_its_source_with_the_image_names(tmp_path: Path) -> None:
    source = tmp_path / "pkg/build/nodeimage/const_storage.go"
    source.parent.mkdir(parents=True)
    source.write_text('package nodeimage\n\nconst defaultStorageManifest = `# comment\nimage: '
                      '` + storageProvisionerImage + `\nhelper: ` + storageHelperImage + `\n`\n')
    text = kind_image.storage_manifest(tmp_path)
    assert text == (f"# comment\nimage: {kind_image.LOCAL_PATH_IMAGE}\nhelper: "
                    f"{kind_image.LOCAL_PATH_HELPER_IMAGE}\n")


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq (scripts/install-system-deps.sh) is missing")
def test_the_runc_wrapper_removes_only_cap_sys_resource_then_runs_runc(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    fake_runc = tmp_path / "runc"
    fake_runc.write_text(f'#!/bin/sh\necho "$@" > {seen}\n')
    fake_runc.chmod(0o755)
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(RUNC_WRAPPER.replace("RUNC", str(fake_runc)))
    wrapper.chmod(0o755)
    caps = ["CAP_CHOWN", "CAP_SYS_RESOURCE", "CAP_SYS_ADMIN"]
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"process": {"capabilities": {"bounding": caps,
                                                                                  "effective": caps}}}))
    subprocess.run([str(wrapper), "--root", "/x", "create", "--bundle", str(bundle), "c1"], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["capabilities"] == {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
                                               "effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}
    assert seen.read_text().split() == ["--root", "/x", "create", "--bundle", str(bundle), "c1"]
    process_spec = tmp_path / "process.json"  # docker exec --privileged: a process spec of its own
    process_spec.write_text(json.dumps({"capabilities": {"bounding": caps}}))
    subprocess.run([str(wrapper), "exec", "--process", str(process_spec), "c1"], check=True)
    assert json.loads(process_spec.read_text()) == {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}}


def test_stop_leaves_a_daemon_dirt_did_not_start_alone(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        engine = DockerEngine(tmp_path, log=lambda m: None)
        (tmp_path / "dockerd.pid").write_text(str(other.pid))  # a recorded PID now used by something else
        assert engine.started_by_dirt() is None
        assert engine.stop() is False
        time.sleep(0.1)
        assert other.poll() is None, "a process dirt did not start was signalled"
        assert not (tmp_path / "dockerd.pid").exists()
    finally:
        os.kill(other.pid, signal.SIGKILL)
        other.wait()


def test_plain_kind_falls_back_to_the_kind_dirt_built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIRT_BIN_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert kind_cli("kind") == "kind"  # nothing built: the error names 'kind' on PATH
    folder = tmp_path / f"kind-{kind_image.KIND.version}"
    folder.mkdir()
    (folder / "kind").write_text("")
    (folder / ".complete").write_text("{}")
    assert kind_cli("kind") == str(folder / "kind")
    assert kind_cli("/opt/kind") == "/opt/kind"  # a path given is used as given


def test_a_users_kind_config_keeps_its_nodes_and_gets_what_dirts_image_needs() -> None:
    base = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
            "nodes": [{"role": "control-plane"}, {"role": "worker", "extraPortMappings": [
                {"containerPort": 18080, "hostPort": 18090, "listenAddress": "127.0.0.1"}]}],
            "kubeadmConfigPatches": ["kind: InitConfiguration\n"]}
    config = kind_image.cluster_config(base=base, workers=5, cgroup_v1=True, lacks_sys_resource=False,
                                       log=lambda m: None)
    assert config["nodes"] == base["nodes"]  # the user's nodes, not `workers`
    assert config["kubeadmConfigPatches"][0] == "kind: InitConfiguration\n"  # theirs first, then dirt's
    assert any("failCgroupV1" in p for p in config["kubeadmConfigPatches"][1:])
    assert config["networking"]["podSubnet"] == kind_image.POD_SUBNET
    assert "networking" not in base  # the user's dict is not changed


def test_a_users_kind_config_with_other_subnets_is_refused_naming_the_key() -> None:
    from dirt.core.errors import BinaryError

    with pytest.raises(BinaryError, match=r"networking.podSubnet is '10.244.0.0/16'.*remove it"):
        kind_image.cluster_config(base={"networking": {"podSubnet": "10.244.0.0/16"}}, cgroup_v1=False,
                                  lacks_sys_resource=False, log=lambda m: None)


def test_the_monitoring_beside_a_kind_cluster_scrapes_it_as_kube_prometheus_names_it(tmp_path: Path) -> None:
    from dirt.sandbox.kind_monitoring import ClusterEndpoints, KindMonitoring

    extra = tmp_path / "shop.yaml"
    extra.write_text("groups:\n- name: shop\n  rules:\n  - alert: ShopDown\n    expr: up == 0\n")
    monitoring = KindMonitoring("ci", home=tmp_path, rules=[extra],
                                endpoints=lambda: ClusterEndpoints(tmp_path / "kubeconfig", "198.18.1.2"))
    credentials = {"server": "127.0.0.1:41279", "ca": "ca.crt", "cert": "c.crt", "key": "c.key"}
    config = monitoring.config(credentials, "198.18.1.2", [])
    jobs = {j["job_name"]: j["static_configs"][0]["targets"][0] for j in config["scrape_configs"]}
    assert jobs["apiserver"] == "127.0.0.1:41279"
    assert jobs["etcd"] == "198.18.1.2:2381"
    assert jobs["kube-controller-manager"] == "198.18.1.2:10257"
    assert jobs["kube-scheduler"] == "198.18.1.2:10259"
    assert jobs["kube-state-metrics"].startswith("127.0.0.1:")
    assert all(t.startswith(("127.0.0.1:", "198.18.")) for t in jobs.values())
    rules = "\n".join(monitoring.rendered_rules().values())
    assert "KubeAPIDown" in rules and "ShopDown" in rules
    assert "KwokControllerDown" not in rules and "kwok" not in rules  # a kind cluster has real kubelets


def test_a_kubeconfig_becomes_the_files_prometheus_reads(tmp_path: Path) -> None:
    import base64

    import yaml

    from dirt.sandbox.kind_monitoring import ClusterEndpoints, KindMonitoring

    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "clusters": [{"name": "kind-ci", "cluster": {"server": "https://127.0.0.1:41279",
                                                      "certificate-authority-data": b64("CA")}}],
        "users": [{"name": "kind-ci", "user": {"client-certificate-data": b64("CERT"),
                                                "client-key-data": b64("KEY")}}]}))
    monitoring = KindMonitoring("ci", home=tmp_path, endpoints=lambda: ClusterEndpoints(kubeconfig, "198.18.1.2"))
    found = monitoring._credentials(kubeconfig)
    assert found["server"] == "127.0.0.1:41279"
    assert [Path(found[k]).read_text() for k in ("ca", "cert", "key")] == ["CA", "CERT", "KEY"]
    assert oct(Path(found["key"]).stat().st_mode & 0o777) == "0o600"

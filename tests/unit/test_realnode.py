"""The real node's pieces that need no running node: containerd's and the kubelet's configuration,
the node's credentials (made with the machine's openssl), the order mounts are taken down in.
"""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dirt.core.errors import TargetError
from dirt.sandbox import images, realnode

CRI = "io.containerd.grpc.v1.cri"


def _config(root: Path, metrics_port: int = 19091) -> str:
    return realnode.containerd_config(root, metrics_port=metrics_port, runc=Path("/usr/sbin/runc"),
                                      cni_bin=Path("/usr/lib/cni"))


def test_containerd_config_is_toml_that_keeps_everything_in_the_sandbox_and_on_127_0_0_1(temp_folder: Path) -> None:
    root = temp_folder / "sandboxes" / "dirt"
    config = tomllib.loads(_config(root, metrics_port=19091))
    base = root / "realnode" / "containerd"
    assert config["grpc"]["address"] == str(base / "containerd.sock") == str(realnode.socket_path(root))
    assert config["ttrpc"]["address"] == str(base / "containerd.sock.ttrpc")
    assert (config["root"], config["state"]) == (str(base / "root"), str(base / "state"))
    assert config["metrics"]["address"] == "127.0.0.1:19091"
    assert config["debug"]["address"] == ""
    cri = config["plugins"][CRI]
    assert cri["stream_server_address"] == "127.0.0.1"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == images.PAUSE
    assert cri["containerd"]["runtimes"]["runc"]["options"] == {"BinaryName": "/usr/sbin/runc",
                                                                  "SystemdCgroup": False}
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": str(base / "cni")}


def test_containerd_config_stays_valid_toml_whatever_the_sandbox_folder_is_called(temp_folder: Path) -> None:
    root = temp_folder / 'odd "name" \\ here'
    config = tomllib.loads(_config(root))
    assert config["grpc"]["address"] == str(realnode.socket_path(root))
    assert config["root"] == str(realnode.folder(root) / "containerd" / "root")


@pytest.fixture
def temp_folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short temp folder (pytest's own is too deep for some sockets), made the one a moved node folder goes to."""
    import tempfile

    temp = Path(tempfile.mkdtemp(prefix="dirt-rn-"))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    yield temp
    shutil.rmtree(temp)


#: the kubelet's deepest socket below the node's folder (its pod-resources socket has a 10-digit name)
_DEEPEST = "/kubelet/root/pod-resources/4294967295"


def _root_whose_deepest_socket_is(length: int) -> Path:
    return Path("/" + "r" * (length - len("/realnode") - len(_DEEPEST) - 1))


def test_the_node_folder_stays_in_the_sandbox_folder_while_its_deepest_socket_fits(temp_folder: Path) -> None:
    """A Unix socket path holds at most 107 bytes; the kubelet makes sockets deep below its root folder."""
    longest = _root_whose_deepest_socket_is(realnode._UNIX_PATH_MAX - 4)
    assert realnode.folder(longest) == longest / "realnode"
    assert len(str(realnode.folder(longest)) + _DEEPEST) <= realnode._UNIX_PATH_MAX
    one_more = Path(f"{longest}r")
    assert not realnode.folder(one_more).is_relative_to(one_more)


def test_a_sandbox_folder_too_deep_for_the_sockets_moves_the_node_folder_to_a_short_one(temp_folder: Path) -> None:
    root = temp_folder / ("d" * 120)
    node = realnode.folder(root)
    assert node.parent == temp_folder and node.name.startswith("dirt-node-")
    assert realnode.folder(root) == node, "the same sandbox always finds its node folder at the same place"
    assert realnode.folder(temp_folder / ("e" * 120)) != node, "two sandboxes never share one"
    config = tomllib.loads(_config(root))
    assert config["grpc"]["address"] == str(node / "containerd" / "containerd.sock")
    for section in ("grpc", "ttrpc"):
        assert len(config[section]["address"].encode()) <= realnode._UNIX_PATH_MAX, section
    assert config["root"] == str(node / "containerd" / "root"), "containerd's state moves with its socket"
    kubelet = realnode.kubelet_config(root, port=1, healthz_port=2, ca=root, sandbox="x")
    assert kubelet["containerRuntimeEndpoint"] == f"unix://{realnode.socket_path(root)}"


def test_a_temp_folder_too_deep_for_the_sockets_too_is_refused_naming_tmpdir(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("t" * 100)))
    with pytest.raises(TargetError) as caught:
        _config(tmp_path / ("d" * 120))
    assert "too deep for the real node's sockets" in str(caught.value)
    assert "TMPDIR" in str(caught.value)
    assert not (tmp_path / ("t" * 100)).exists(), "nothing was made for a refused configuration"


def test_kubelet_config_binds_127_0_0_1_and_fits_this_machine(tmp_path: Path) -> None:
    ca = tmp_path / "pki" / "ca.crt"
    config = realnode.kubelet_config(tmp_path, port=10250, healthz_port=10248, ca=ca, sandbox="shop")
    assert (config["address"], config["healthzBindAddress"]) == ("127.0.0.1", "127.0.0.1")
    assert (config["port"], config["healthzPort"], config["readOnlyPort"]) == (10250, 10248, 0)
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == "/dirt-shop"
    assert config["containerRuntimeEndpoint"] == f"unix://{realnode.socket_path(tmp_path)}"
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authentication"]["x509"] == {"clientCAFile": str(ca)}
    assert config["registerWithTaints"] == [{"key": "dirt.dev/real-node", "value": "true", "effect": "NoSchedule"}]
    assert config["nodeStatusUpdateFrequency"] == "2s"


def test_each_sandbox_gets_its_own_pod_cgroup(tmp_path: Path) -> None:
    def cgroup(sandbox: str) -> str:
        return realnode.kubelet_config(tmp_path, port=1, healthz_port=2, ca=tmp_path, sandbox=sandbox)["cgroupRoot"]

    assert cgroup("dirt") == "/dirt-dirt"
    assert cgroup("ci-2") == "/dirt-ci-2"
    assert cgroup("dirt") != cgroup("ci-2")
    assert realnode.cgroup_root("a/b c") == "/dirt-a_b_c", "a name never reaches outside its own cgroup"


def test_the_node_is_labelled_named_and_on_127_0_0_1(tmp_path: Path) -> None:
    argvs = realnode.commands(root=tmp_path, kubelet=Path("/k/kubelet"), containerd=Path("/usr/bin/containerd"),
                              node=realnode.node_name(0))
    assert argvs["containerd"] == ["/usr/bin/containerd", "--config",
                                   str(realnode.folder(tmp_path) / "containerd" / "config.toml")]
    kubelet = argvs["kubelet"]
    assert kubelet[0] == "/k/kubelet"
    assert "--hostname-override=real-0" in kubelet
    assert "--node-ip=127.0.0.1" in kubelet
    assert "--node-labels=dirt.dev/node=real" in kubelet
    assert list(argvs) == list(realnode.COMPONENTS)


def _openssl(*args: str, cwd: Path) -> str:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    """A throwaway CA made by openssl, laid out as the sandbox's PKI folder (ca.crt, ca.key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pki = tmp_path / "pki"
    pki.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=dirt-test-ca", "-days", "1", cwd=pki)
    return pki


def test_node_credentials_are_system_node_certificates_signed_by_the_sandbox_ca(ca: Path, tmp_path: Path) -> None:
    cert, key = realnode.node_credentials(ca, "real-0", tmp_path / "credentials")
    assert (cert, key) == (tmp_path / "credentials" / "real-0.crt", tmp_path / "credentials" / "real-0.key")
    subject = _openssl("x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "RFC2253", cwd=tmp_path)
    assert subject == "subject=CN=system:node:real-0,O=system:nodes"
    assert _openssl("verify", "-CAfile", str(ca / "ca.crt"), str(cert), cwd=tmp_path) == f"{cert}: OK"
    assert key.stat().st_mode & 0o777 == 0o600


def test_node_credentials_do_not_verify_against_another_ca(ca: Path, tmp_path: Path) -> None:
    """The control for the test above: ``openssl verify`` does tell CAs apart."""
    cert, _ = realnode.node_credentials(ca, "real-0", tmp_path / "credentials")
    other = tmp_path / "other"
    other.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=dirt-test-ca", "-days", "1", cwd=other)
    done = subprocess.run(["openssl", "verify", "-CAfile", str(other / "ca.crt"), str(cert)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode != 0


def test_node_credentials_without_a_ca_key_are_a_target_error(tmp_path: Path, ca: Path) -> None:
    (ca / "ca.key").unlink()
    with pytest.raises(TargetError, match="the real node's certificate: openssl failed"):
        realnode.node_credentials(ca, "real-0", tmp_path / "credentials")


def test_no_mounts_under_a_fresh_folder(tmp_path: Path) -> None:
    assert realnode.mounts_under(tmp_path) == []


MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
40 27 254:0 /x {root}/realnode/kubelet/root rw shared:1 - ext4 /dev/vda rw
41 40 0:50 / {root}/realnode/kubelet/root/pods/a/volumes/vol rw - tmpfs tmpfs rw
42 27 0:51 / {root}/realnode/containerd/state/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw - overlay o rw
43 27 0:52 / {root}/realnode/with\\040space rw - tmpfs tmpfs rw
44 27 0:53 / {root}/realnode-other/not-ours rw - tmpfs tmpfs rw
45 27 0:54 / {root}/realnode rw - tmpfs tmpfs rw
46 27 0:55 / {root}/realnode/kubelet/root rw - tmpfs tmpfs rw
"""


def test_mounts_under_a_folder_come_deepest_first_and_only_its_own(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """mounts_under reads /proc/self/mountinfo; here it reads a made-up one naming folders under tmp_path."""
    fake = tmp_path / "mountinfo"
    fake.write_text(MOUNTINFO.format(root=tmp_path.resolve()))
    monkeypatch.setattr(realnode, "Path", lambda p: fake if p == "/proc/self/mountinfo" else Path(p))
    base = tmp_path.resolve() / "realnode"
    assert realnode.mounts_under(tmp_path / "realnode") == [
        f"{base}/containerd/state/io.containerd.runtime.v2.task/k8s.io/abc/rootfs",
        f"{base}/kubelet/root/pods/a/volumes/vol",
        f"{base}/kubelet/root",
        f"{base}/with space",
        f"{base}",
    ]

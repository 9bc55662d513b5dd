"""The runner image, built for real: debootstrap as root, this machine's pip, pypa's installer, the
sandbox's kubectl, etcdctl and velero.  Then proved to work by unpacking its layers and running its
programs in a chroot, as the user the image runs as.

A cold build (debootstrap, every wheel) takes a few minutes; then every layer is cached.  Importing
the image into containerd is the game-day CronJob test's business, not this one's.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import dirt
from dirt.sandbox import oci, runner_image
from dirt.sandbox.binaries import ETCD_VERSION, KUBERNETES_VERSION, VELERO_VERSION

pytestmark = [pytest.mark.integration]

#: The image's environment, as a container runtime sets it from the config.
IMAGE_ENV = dict(entry.split("=", 1) for entry in runner_image.ENV) | {"HOME": runner_image.HOME}


@pytest.fixture(scope="module")
def builds(tmp_path_factory, dirt_dist) -> dict:
    """Two builds of the same inputs, and the layer cache's files between and after them."""
    if os.geteuid() != 0:
        pytest.skip("building the root filesystem needs root (debootstrap)")
    if shutil.which("debootstrap", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        pytest.skip("debootstrap is not installed (scripts/install-system-deps.sh installs it)")
    out = tmp_path_factory.mktemp("image")
    # One dirt wheel for both builds (the session's release build: the CronJob test's image is then a cache hit)
    wheel = dirt_dist["wheel"]
    first = runner_image.build_runner_image(wheel=wheel, output=out / "first.oci.tar",
                                            log=lambda m: print(m, file=sys.stderr))
    cache = runner_image.image_cache() / "layers"
    between = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    second = runner_image.build_runner_image(wheel=wheel, output=out / "second.oci.tar",
                                             log=lambda m: print(m, file=sys.stderr))
    after = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    print(f"\nfirst build {first.seconds}s, second {second.seconds}s; layers: "
          + ", ".join(f"{la.name} {la.size / 1e6:.1f} MB ({la.uncompressed_size / 1e6:.1f} MB)" for la in first.layers)
          + f"; total {first.size / 1e6:.1f} MB ({first.uncompressed_size / 1e6:.1f} MB)", file=sys.stderr)
    return {"first": first, "second": second, "between": between, "after": after}


def _members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name: m for m in tar.getmembers()}


def _json(archive: Path, name: str) -> dict:
    with tarfile.open(archive) as tar:
        return json.loads(tar.extractfile(name).read())  # type: ignore[union-attr]


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest.split(':', 1)[1]}"


def test_the_archive_holds_four_layers_of_the_sizes_reported(builds) -> None:
    image = builds["first"]
    assert image.references == (f"dirt.local/dirt:{dirt.__version__}", "dirt.local/dirt:latest")
    index = _json(image.archive, "index.json")
    assert [m["annotations"]["io.containerd.image.name"] for m in index["manifests"]] == list(image.references)
    assert {m["digest"] for m in index["manifests"]} == {image.digest}
    manifest = _json(image.archive, _blob_name(image.digest))
    assert [la["digest"] for la in manifest["layers"]] == [la.digest for la in image.layers]
    assert [la["size"] for la in manifest["layers"]] == [la.size for la in image.layers]
    assert [la.name for la in image.layers] == ["base", "python-dependencies", "tools", "dirt"]
    members = _members(image.archive)
    config = _json(image.archive, _blob_name(manifest["config"]["digest"]))
    with tarfile.open(image.archive) as tar:
        for layer, diff_id in zip(image.layers, config["rootfs"]["diff_ids"], strict=True):
            assert members[_blob_name(layer.digest)].size == layer.size
            sha, size = hashlib.sha256(), 0
            with gzip.open(tar.extractfile(_blob_name(layer.digest))) as plain:  # type: ignore[arg-type]
                for chunk in iter(lambda: plain.read(1 << 20), b""):
                    sha.update(chunk)
                    size += len(chunk)
            assert (f"sha256:{sha.hexdigest()}", size) == (diff_id, layer.uncompressed_size), layer.name
    assert image.size == sum(la.size for la in image.layers) and image.size < image.uncompressed_size
    assert config["config"]["User"] == "65532:65532" and config["config"]["Entrypoint"] == ["dirt"]


@pytest.fixture(scope="module")
def unpacked(builds, tmp_path_factory) -> Path:
    """The image's layers extracted in order into one folder, as a container runtime stacks them."""
    image = builds["first"]
    root = tmp_path_factory.mktemp("rootfs")
    root.chmod(0o755)  # "/" of a container; pytest makes its folders 0700
    manifest = _json(image.archive, _blob_name(image.digest))
    with tarfile.open(image.archive) as outer:
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=outer.extractfile(_blob_name(layer["digest"])), mode="r|gz") as tar:
                tar.extractall(root, numeric_owner=True, filter="fully_trusted")
    return root


def _chroot(root: Path, *argv: str, user: str = "65532:65532", env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["chroot", f"--userspec={user}", str(root), *argv], capture_output=True, text=True,
                            timeout=120, env=env if env is not None else IMAGE_ENV, cwd="/")
    assert result.returncode == 0, f"{argv}: {result.stderr or result.stdout}"
    return result.stdout + result.stderr


def test_dirt_runs_in_the_image_as_its_user(unpacked: Path) -> None:
    assert dirt.__version__ in _chroot(unpacked, "/opt/dirt/bin/dirt", "--version")
    assert "Usage: dirt" in _chroot(unpacked, "dirt", "--help")
    home = (unpacked / "home/dirt").stat()
    assert (home.st_uid, home.st_gid) == (65532, 65532)


@pytest.mark.parametrize(("tool", "args", "version"), [
    ("kubectl", ("version", "--client"), KUBERNETES_VERSION),
    ("etcdctl", ("version",), ETCD_VERSION.lstrip("v")),
    ("velero", ("version", "--client-only"), VELERO_VERSION),
])
def test_the_tools_a_drill_calls_run_in_the_image(unpacked: Path, tool: str, args: tuple[str, ...],
                                                  version: str) -> None:
    assert version in _chroot(unpacked, f"/usr/local/bin/{tool}", *args)


def test_every_pyc_in_the_image_is_valid_so_nothing_is_compiled_at_start(unpacked: Path) -> None:
    """Run as root with bytecode writing on: Python rewrites any .pyc it finds stale; none may change."""
    def pycs() -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for folder in ("usr/lib", "opt/dirt")
                for p in (unpacked / folder).rglob("*.pyc")}

    before = pycs()
    assert len(before) > 1000
    env = {k: v for k, v in IMAGE_ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    _chroot(unpacked, "dirt", "--version", user="0:0", env=env)
    _chroot(unpacked, "python3", "-c", "import dirt.cli, dirt.sandbox.oci, json, asyncio, email.parser", user="0:0",
            env=env)
    assert pycs() == before


def test_a_second_build_reuses_every_layer_and_gives_the_same_image(builds) -> None:
    first, second = builds["first"], builds["second"]
    assert all(layer.cached for layer in second.layers), [la for la in second.layers if not la.cached]
    assert second.digest == first.digest
    assert [la.digest for la in second.layers] == [la.digest for la in first.layers]
    assert builds["after"] == builds["between"], "the second build wrote nothing into the layer cache"
    assert second.archive.read_bytes() == first.archive.read_bytes()


def test_every_cached_layer_has_its_sidecar(builds) -> None:
    cache = runner_image.image_cache() / "layers"
    for layer in builds["first"].layers:
        key = Path(_layer_path(cache, layer.digest)).name.removesuffix(".tar.gz")
        found = oci.cached_layer(cache, key)
        assert found is not None and found.digest == layer.digest


def _layer_path(cache: Path, digest: str) -> Path:
    for sidecar in cache.glob("*.json"):
        if json.loads(sidecar.read_text())["digest"] == digest:
            return sidecar.with_suffix(".tar.gz")
    raise AssertionError(f"no sidecar in {cache} names {digest}")

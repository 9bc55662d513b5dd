"""Reproducible, streamed, cached OCI layers and the image layout written from them.

An importer (``ctr images import``) follows index.json → manifest → config and layer blobs, each
named by its sha256; these tests read the archive the same way.  Trees are small folders made here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import py_compile
import socket
import stat
import sys
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from dirt.sandbox import oci
from tests.unit.test_images import _blob, _members


def _tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "usr/bin").mkdir(parents=True)
    tool = root / "usr/bin/tool"
    tool.write_bytes(b"#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    (root / "usr/bin/alias").symlink_to("tool")
    (root / "tmp").mkdir()
    (root / "tmp").chmod(0o1777)
    return root


def _entries(layer: oci.Layer) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(layer.path, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(layer: oci.Layer, name: str) -> bytes:
    with tarfile.open(layer.path, "r:gz") as tar:
        return tar.extractfile(name).read()  # type: ignore[union-attr]


def test_the_same_tree_gives_the_same_layer_wherever_it_is_packed(tmp_path: Path) -> None:
    first = oci.layer_from_tree(_tree(tmp_path / "a"), tmp_path / "cache", key="one")
    second = oci.layer_from_tree(_tree(tmp_path / "b"), tmp_path / "cache", key="two")
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)
    assert first.path.read_bytes() == second.path.read_bytes()


def test_a_layer_says_what_it_holds_the_digest_of_the_blob_and_the_diff_id_of_the_tar(tmp_path: Path) -> None:
    layer = oci.layer_from_tree(_tree(tmp_path / "a"), tmp_path / "cache", key="one")
    blob = layer.path.read_bytes()
    assert layer.digest == f"sha256:{hashlib.sha256(blob).hexdigest()}" and layer.size == len(blob)
    tar = gzip.decompress(blob)
    assert layer.diff_id == f"sha256:{hashlib.sha256(tar).hexdigest()}" and layer.uncompressed_size == len(tar)


def test_entries_are_sorted_with_no_time_no_user_names_and_their_modes(tmp_path: Path) -> None:
    layer = oci.layer_from_tree(_tree(tmp_path / "a"), tmp_path / "cache", key="one")
    entries = _entries(layer)
    assert list(entries) == ["etc", "etc/passwd", "tmp", "usr", "usr/bin", "usr/bin/alias", "usr/bin/tool"]
    assert {m.mtime for m in entries.values()} == {0}
    assert {(m.uname, m.gname) for m in entries.values()} == {("", "")}
    assert {m.uid for m in entries.values()} == {os.getuid()}, "owners are the numeric ids on disk"
    assert entries["usr/bin/tool"].mode == 0o755 and entries["etc/passwd"].mode == 0o644
    assert entries["tmp"].mode == 0o1777
    assert entries["usr/bin/alias"].issym() and entries["usr/bin/alias"].linkname == "tool"
    assert gzip.decompress(layer.path.read_bytes())[257:265] == b"ustar\x0000", "POSIX (PAX) headers, not GNU"


def test_a_changed_mtime_does_not_change_the_layer_but_a_changed_byte_does(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    before = oci.layer_from_tree(root, tmp_path / "cache", key="before")
    os.utime(root / "etc/passwd", (1_700_000_000, 1_700_000_000))
    touched = oci.layer_from_tree(root, tmp_path / "cache", key="touched")
    assert touched.digest == before.digest
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    changed = oci.layer_from_tree(root, tmp_path / "cache", key="changed")
    assert changed.digest != before.digest and changed.diff_id != before.diff_id


def test_hard_links_stay_hard_links_to_the_first_name(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    os.link(root / "usr/bin/tool", root / "usr/bin/zz-same-tool")
    entries = _entries(oci.layer_from_tree(root, tmp_path / "cache", key="links"))
    assert entries["usr/bin/tool"].isfile() and entries["usr/bin/tool"].size > 0
    assert entries["usr/bin/zz-same-tool"].islnk() and entries["usr/bin/zz-same-tool"].linkname == "usr/bin/tool"


def test_device_nodes_fifos_and_sockets_are_left_out_and_mount_points_kept_empty(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    os.mkfifo(root / "tmp/fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "tmp/socket"))
    for folder in oci.MOUNT_POINTS:
        (root / folder).mkdir()
    (root / "proc/cpuinfo").write_text("not a real one\n")
    (root / "run/lock").mkdir()
    try:
        os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:  # not root: the FIFO and the socket still show the rule
        pass
    entries = _entries(oci.layer_from_tree(root, tmp_path / "cache", key="special"))
    assert "tmp/fifo" not in entries and "tmp/socket" not in entries
    for folder in oci.MOUNT_POINTS:
        assert entries[folder].isdir()
        assert not [name for name in entries if name.startswith(folder + "/")], f"{folder}/ is kept empty"


def test_excluded_paths_are_left_out_with_all_they_hold(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    (root / "var/cache/apt").mkdir(parents=True)
    (root / "var/cache/apt/pkgcache.bin").write_bytes(b"x")
    entries = _entries(oci.layer_from_tree(root, tmp_path / "cache", key="exclude", exclude=("var/cache/*",)))
    assert "var/cache" in entries and not [n for n in entries if n.startswith("var/cache/")]


def test_owners_can_be_given_for_the_whole_tree_and_for_some_paths(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    (root / "home/dirt").mkdir(parents=True)
    entries = _entries(oci.layer_from_tree(root, tmp_path / "cache", key="owners", default_owner=(0, 0),
                                           owners={"home/dirt": (65532, 65532)}))
    assert (entries["home/dirt"].uid, entries["home/dirt"].gid) == (65532, 65532)
    assert {(m.uid, m.gid) for name, m in entries.items() if name != "home/dirt"} == {(0, 0)}


def test_a_cache_hit_writes_nothing(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    made = oci.layer_from_tree(root, tmp_path / "cache", key="k")
    before = made.path.stat()
    (root / "etc/passwd").write_text("changed, but the key says it is the same\n")
    again = oci.layer_from_tree(root, tmp_path / "cache", key="k")
    assert not made.cached and again.cached
    assert (again.digest, again.diff_id, again.size) == (made.digest, made.diff_id, made.size)
    after = made.path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert oci.cached_layer(tmp_path / "cache", "k") == again
    assert oci.cached_layer(tmp_path / "cache", "other") is None
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k.json", "k.tar.gz"]


def test_a_damaged_cache_entry_is_made_again(tmp_path: Path) -> None:
    root = _tree(tmp_path / "a")
    made = oci.layer_from_tree(root, tmp_path / "cache", key="k")
    made.path.write_bytes(b"truncated")
    again = oci.layer_from_tree(root, tmp_path / "cache", key="k")
    assert not again.cached and again.digest == made.digest


def test_a_large_file_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    with (root / "blob").open("wb") as fh:
        for _ in range(32):
            fh.write(os.urandom(1024 * 1024))
    tracemalloc.start()
    try:
        layer = oci.layer_from_tree(root, tmp_path / "cache", key="big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert layer.uncompressed_size > 32 * 1024 * 1024
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB for a 32 MB file"


def test_timestamp_pycs_that_matched_their_source_are_cleared_like_the_mtimes(tmp_path: Path) -> None:
    """Every mtime in a layer is 0; a timestamp .pyc recording its source's real mtime would be stale."""
    root = tmp_path / "lib"
    root.mkdir()
    (root / "fresh.py").write_text("X = 1\n")
    (root / "stale.py").write_text("Y = 1\n")
    py_compile.compile(str(root / "fresh.py"), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    py_compile.compile(str(root / "stale.py"), invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    os.utime(root / "stale.py", (1_000_000, 1_000_000))  # the .pyc no longer matches: left as it is
    layer = oci.layer_from_tree(root, tmp_path / "cache", key="pyc")
    tag = sys.implementation.cache_tag
    fresh = _read(layer, f"__pycache__/fresh.{tag}.pyc")
    stale = _read(layer, f"__pycache__/stale.{tag}.pyc")
    assert fresh[8:12] == bytes(4) and fresh[12:16] == (root / "fresh.py").stat().st_size.to_bytes(4, "little")
    assert stale == (root / f"__pycache__/stale.{tag}.pyc").read_bytes()


def test_a_pyc_whose_source_links_elsewhere_in_the_tree_is_judged_by_the_trees_file(tmp_path: Path) -> None:
    """Debian's /usr/lib/python3.11/sitecustomize.py links to /etc/python3.11/: that is the tree's /etc."""
    root = tmp_path / "root"
    (root / "etc/py").mkdir(parents=True)
    (root / "etc/py/linked.py").write_text("Z = 1\n")
    (root / "lib/__pycache__").mkdir(parents=True)
    (root / "lib/linked.py").symlink_to("/etc/py/linked.py")  # absolute: dangling on this machine
    pyc = root / f"lib/__pycache__/linked.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(str(root / "etc/py/linked.py"), cfile=str(pyc),
                       invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
    layer = oci.layer_from_tree(root, tmp_path / "cache", key="linked")
    assert _read(layer, f"lib/__pycache__/{pyc.name}")[8:12] == bytes(4)


# --- the image layout --------------------------------------------------------------------------------


@pytest.fixture
def two_layer_image(tmp_path: Path) -> tuple[Path, str, list[oci.Layer]]:
    base = oci.layer_from_tree(_tree(tmp_path / "base"), tmp_path / "cache", key="base")
    top = tmp_path / "top"
    (top / "opt/app").mkdir(parents=True)
    (top / "opt/app/run").write_text("#!/bin/sh\n")
    app = oci.layer_from_tree(top, tmp_path / "cache", key="app")
    config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
              "config": {"Entrypoint": ["/opt/app/run"], "User": "65532:65532"}}
    archive = tmp_path / "out" / "app.oci.tar"
    digest = oci.write_image(archive, [base, app], config=config,
                             references=["dirt.local/app:1.0", "dirt.local/app:latest"])
    return archive, digest, [base, app]


def test_an_image_of_two_layers_is_an_oci_layout_whose_index_leads_to_every_blob(two_layer_image) -> None:
    archive, digest, layers = two_layer_image
    members = _members(archive)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(members["index.json"])
    assert index["schemaVersion"] == 2 and index["mediaType"] == oci.INDEX_MEDIA_TYPE
    assert [m["digest"] for m in index["manifests"]] == [digest, digest]
    manifest_bytes = _blob(members, digest)
    assert {m["size"] for m in index["manifests"]} == {len(manifest_bytes)}
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == oci.MANIFEST_MEDIA_TYPE
    config_bytes = _blob(members, manifest["config"]["digest"])
    assert manifest["config"]["size"] == len(config_bytes)
    config = json.loads(config_bytes)
    assert config["config"]["User"] == "65532:65532"
    diff_ids = []
    for entry, layer in zip(manifest["layers"], layers, strict=True):
        assert entry["mediaType"] == oci.LAYER_MEDIA_TYPE
        compressed = _blob(members, entry["digest"])
        assert (entry["digest"], entry["size"]) == (layer.digest, len(compressed))
        diff_ids.append(f"sha256:{hashlib.sha256(gzip.decompress(compressed)).hexdigest()}")
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    assert diff_ids == [layer.diff_id for layer in layers]
    assert sorted(members) == sorted(["oci-layout", "index.json", *(f"blobs/sha256/{d.split(':')[1]}" for d in (
        digest, manifest["config"]["digest"], *(layer.digest for layer in layers)))])


def test_the_index_names_the_image_by_every_reference(two_layer_image) -> None:
    archive, _, _ = two_layer_image
    index = json.loads(_members(archive)["index.json"])
    assert [m["annotations"] for m in index["manifests"]] == [
        {oci.NAME_ANNOTATION: "dirt.local/app:1.0", oci.REF_ANNOTATION: "1.0"},
        {oci.NAME_ANNOTATION: "dirt.local/app:latest", oci.REF_ANNOTATION: "latest"},
    ]
    assert {json.dumps(m["platform"]) for m in index["manifests"]} == {'{"architecture": "amd64", "os": "linux"}'}


def test_writing_the_image_again_gives_the_same_bytes_and_leaves_no_partial_file(two_layer_image, tmp_path) -> None:
    archive, digest, layers = two_layer_image
    config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
              "config": {"Entrypoint": ["/opt/app/run"], "User": "65532:65532"}}
    again = tmp_path / "again.oci.tar"
    assert oci.write_image(again, layers, config=config,
                           references=["dirt.local/app:1.0", "dirt.local/app:latest"]) == digest
    assert again.read_bytes() == archive.read_bytes()
    assert not list(archive.parent.glob("*.partial")) and not list(tmp_path.glob("*.partial"))


def test_layer_blobs_are_streamed_into_the_archive_as_cached(two_layer_image) -> None:
    archive, _, layers = two_layer_image
    with tarfile.open(archive) as tar:
        for layer in layers:
            member = tar.getmember(f"blobs/sha256/{layer.digest.split(':')[1]}")
            assert tar.extractfile(member).read() == layer.path.read_bytes()  # type: ignore[union-attr]
            assert member.mtime == 0 and member.mode == 0o644


def test_file_sha256_reads_in_chunks_what_hashlib_says(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 7))
    assert oci.file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_layer_streams_entries_a_caller_adds_itself(tmp_path: Path) -> None:
    with oci.write_layer(tmp_path / "l.tar.gz", compresslevel=9) as (tar, made):
        info = tarfile.TarInfo("hello")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    (layer,) = made
    assert gzip.decompress(layer.path.read_bytes())[:5] == b"hello"
    assert layer.path.read_bytes()[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03", "no name, no time in gzip"

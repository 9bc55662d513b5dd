"""The real node's images: OCI layout archives made on this machine from Debian's busybox-static.

``ctr images import`` reads what ``write_archive`` writes, so the archive is checked here the way
an importer reads it: index.json → manifest → config and layer blobs, every blob named by its sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import struct
import tarfile
from pathlib import Path

import pytest

from dirt.core.errors import BinaryError
from dirt.sandbox import images

NAME_ANNOTATION = "io.containerd.image.name"


def _static_busybox() -> Path:
    found = shutil.which("busybox")
    if found is None or images._dynamic(Path(found)):
        pytest.skip("Debian's busybox-static is not installed (scripts/install-system-deps.sh installs it)")
    return Path(found)


def _elf(*segment_types: int) -> bytes:
    """A minimal 64-bit little-endian ELF header followed by program headers of the given types."""
    phoff, phentsize = 64, 56
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0, phoff, 0, 0, 64, phentsize, len(segment_types),
                                 0, 0, 0)
    assert len(header) == 64
    return header + b"".join(struct.pack("<I", t) + bytes(phentsize - 4) for t in segment_types)


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _blob(members: dict[str, bytes], digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    assert algorithm == "sha256"
    data = members[f"blobs/sha256/{hexdigest}"]
    assert hashlib.sha256(data).hexdigest() == hexdigest, f"blob {digest} does not hold what its name says"
    return data


@pytest.fixture(scope="module")
def specs() -> dict[str, images.ImageSpec]:
    return {spec.reference.split(":")[0]: spec for spec in images.builtin_specs(_static_busybox())}


@pytest.fixture(scope="module")
def busybox_archive(specs, tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("images") / "busybox.oci.tar"
    return path, images.write_archive(specs[images.BUSYBOX_REPOSITORY], path)


def test_an_archive_is_an_oci_layout_whose_index_leads_to_every_blob(busybox_archive) -> None:
    path, digest = busybox_archive
    members = _members(path)
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(members["index.json"])
    assert index["schemaVersion"] == 2
    assert {m["digest"] for m in index["manifests"]} == {digest}
    manifest_bytes = _blob(members, digest)
    assert index["manifests"][0]["size"] == len(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    config_bytes = _blob(members, manifest["config"]["digest"])
    assert manifest["config"]["size"] == len(config_bytes)
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    compressed = _blob(members, layer["digest"])
    assert layer["size"] == len(compressed)
    config = json.loads(config_bytes)
    uncompressed = gzip.decompress(compressed)
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(uncompressed).hexdigest()}"]
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert sorted(members) == sorted(["oci-layout", "index.json", *(f"blobs/sha256/{d.split(':')[1]}" for d in (
        digest, manifest["config"]["digest"], layer["digest"]))])


def test_the_busybox_layer_holds_busybox_its_applets_and_the_users(busybox_archive) -> None:
    path, digest = busybox_archive
    members = _members(path)
    manifest = json.loads(_blob(members, digest))
    layer = gzip.decompress(_blob(members, manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        entries = {m.name: m for m in tar.getmembers()}
        busybox = tar.extractfile(entries["bin/busybox"]).read()  # type: ignore[union-attr]
        passwd = tar.extractfile(entries["etc/passwd"]).read().decode()  # type: ignore[union-attr]
    assert busybox == _static_busybox().read_bytes()
    assert entries["bin/busybox"].mode == 0o755
    for applet in ("sh", "httpd", "sleep", "wget"):
        assert entries[f"bin/{applet}"].issym() and entries[f"bin/{applet}"].linkname == "busybox", applet
    assert passwd.startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert entries["tmp"].isdir() and entries["tmp"].mode == 0o1777
    assert {m.mtime for m in entries.values()} == {0} and {m.uid for m in entries.values()} == {0}


def test_the_index_names_the_image_by_its_reference_and_every_alias(busybox_archive, specs) -> None:
    path, digest = busybox_archive
    index = json.loads(_members(path)["index.json"])
    names = [m["annotations"][NAME_ANNOTATION] for m in index["manifests"]]
    version = images.busybox_version(_static_busybox())
    assert names == [f"{images.BUSYBOX_REPOSITORY}:{version}", images.BUSYBOX]
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [version, "latest"]
    assert specs[images.BUSYBOX_REPOSITORY].aliases == (images.BUSYBOX,)


def test_the_pause_image_starts_a_shell_that_waits_for_its_signal(specs, tmp_path: Path) -> None:
    pause = specs[images.PAUSE.split(":")[0]]
    assert pause.reference == images.PAUSE and pause.aliases == ()
    assert pause.archive_name == "dirt.local_pause_3.10.oci.tar"
    digest = images.write_archive(pause, tmp_path / pause.archive_name)
    members = _members(tmp_path / pause.archive_name)
    index = json.loads(members["index.json"])
    assert [m["annotations"][NAME_ANNOTATION] for m in index["manifests"]] == [images.PAUSE]
    config = json.loads(_blob(members, json.loads(_blob(members, digest))["config"]["digest"]))
    assert config["config"]["Entrypoint"][:2] == ["/bin/sh", "-c"]
    assert "trap 'exit 0' TERM INT" in config["config"]["Entrypoint"][2]
    assert config["config"]["Cmd"] is None


def test_writing_an_image_twice_gives_the_same_bytes(specs, busybox_archive, tmp_path: Path) -> None:
    path, digest = busybox_archive
    again = tmp_path / "elsewhere" / "again.tar"
    assert images.write_archive(specs[images.BUSYBOX_REPOSITORY], again) == digest
    assert again.read_bytes() == path.read_bytes()
    assert not list(again.parent.glob("*.partial")), "the partial file was renamed into place"


def test_a_spec_with_different_content_gives_a_different_digest(tmp_path: Path) -> None:
    """The control for the test above: the digest follows the content, it is not a constant."""
    source = tmp_path / "tool"
    source.write_bytes(b"one")
    first = images.write_archive(images.ImageSpec("dirt.local/t:1", files={"bin/tool": source}), tmp_path / "a.tar")
    source.write_bytes(b"two")
    second = images.write_archive(images.ImageSpec("dirt.local/t:1", files={"bin/tool": source}), tmp_path / "b.tar")
    assert first != second


def test_a_static_busybox_is_not_dynamic_and_a_dynamic_program_is(tmp_path: Path) -> None:
    assert images._dynamic(_static_busybox()) is False
    ls = Path("/bin/ls")
    if not ls.is_file():
        pytest.skip("no /bin/ls on this machine")
    assert images._dynamic(ls) is True


@pytest.mark.parametrize("segments, dynamic", [((1, 1, 4), False), ((6, 3, 1), True), ((), False)],
                         ids=["static", "with-interpreter", "no-segments"])
def test_dynamic_means_an_elf_that_asks_for_a_program_interpreter(tmp_path: Path, segments, dynamic) -> None:
    binary = tmp_path / "program"
    binary.write_bytes(_elf(*segments))
    assert images._dynamic(binary) is dynamic


def test_a_file_that_is_not_a_64_bit_elf_counts_as_dynamic(tmp_path: Path) -> None:
    script = tmp_path / "busybox"
    script.write_text("#!/bin/sh\necho BusyBox v1.0.0\n")
    assert images._dynamic(script) is True


def test_a_dynamically_linked_busybox_is_refused_naming_busybox_static() -> None:
    ls = Path("/bin/ls")
    if not ls.is_file() or not images._dynamic(ls):
        pytest.skip("no dynamically linked /bin/ls on this machine")
    with pytest.raises(BinaryError) as caught:
        images.builtin_specs(ls)
    assert str(caught.value).startswith(f"{ls} is linked dynamically")
    assert "busybox-static" in str(caught.value)
    assert "scripts/install-system-deps.sh" in str(caught.value)


def test_an_archive_is_checked_before_containerd_reads_it(tmp_path: Path) -> None:
    """A FIFO (never read: it would block), a non-tar and a tar without an image each get one clear line, exit 2."""
    import os

    from dirt.core.errors import UsageError

    fifo = tmp_path / "pipe.tar"
    os.mkfifo(fifo)
    text = tmp_path / "notes.tar"
    text.write_text("not an archive\n")
    plain = tmp_path / "plain.tar"
    (tmp_path / "hello.txt").write_text("hello")
    with tarfile.open(plain, "w") as tar:
        tar.add(tmp_path / "hello.txt", arcname="hello.txt")
    cases = {fifo: "not a regular file", text: "not a tar archive", plain: "no index.json or manifest.json",
             tmp_path: "not a regular file"}
    for path, words in cases.items():
        with pytest.raises(UsageError) as caught:
            images.check_archive(path)
        assert words in str(caught.value) and caught.value.exit_code == 2, (path, caught.value)
        assert "\n" not in str(caught.value)
    good = tmp_path / "good.tar"
    images.write_archive(images.ImageSpec(reference="example.local/x:1", files={}, texts={"etc/x": "x"}), good)
    images.check_archive(good)  # an OCI layout passes

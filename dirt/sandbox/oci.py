"""OCI images written by dirt itself: reproducible layers, streamed, cached, packed as an image layout tar.

No docker, no registry: an image here is a handful of gzip-compressed tar layers, a config, a
manifest and an index, packed as an OCI image layout in one tar archive — what ``ctr images import``
(and ``skopeo``, ``podman load``) read.  Layers can be large (a Debian root filesystem with Python),
so a layer is streamed: the tar is written entry by entry into gzip into a file, hashing both the
uncompressed stream (the layer's ``diff_id``) and the compressed file (its ``digest``) on the way;
nothing holds a whole layer in memory.

A layer made from a folder is reproducible: entries sorted, every mtime 0, numeric owners as on disk
(no user names), PAX format, hard links kept as links; device nodes, FIFOs and sockets are left out,
and ``dev``, ``proc``, ``sys`` and ``run`` are kept as empty folders (the runtime mounts over them).
The same tree gives the same digest wherever and whenever it is packed.  Because mtimes are cleared,
the header of each timestamp-based ``.pyc`` that matched its source is cleared the same way: else
every ``.pyc`` (Debian's standard library has thousands) would look stale to Python in the image.

Compressed layers are cached as ``<cache>/<key>.tar.gz`` with a JSON sidecar (digest, diff_id,
sizes): the caller names a layer by a key made from its inputs, and a second build with the same
inputs reads the sidecar and writes nothing.  Extended attributes are not kept.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
#: The annotation containerd names an imported image by.
NAME_ANNOTATION = "io.containerd.image.name"
REF_ANNOTATION = "org.opencontainers.image.ref.name"

#: Bumped whenever a tree is packed differently: cached layers of an older format are made again.
LAYER_FORMAT = 1
#: gzip's usual level (docker's and containerd's): much faster than 9 on large layers, a little larger.
TREE_COMPRESSLEVEL = 6
#: Folders the container runtime mounts over: kept, empty.
MOUNT_POINTS = ("dev", "proc", "sys", "run")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Layer:
    """A compressed layer blob on disk, and what a manifest and a config say of it."""

    path: Path
    digest: str  # sha256 of the compressed blob ("sha256:…")
    diff_id: str  # sha256 of the uncompressed tar
    size: int  # compressed bytes
    uncompressed_size: int
    cached: bool = False  # found in the cache: nothing was written


class _Digesting(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through it to ``sink``."""

    def __init__(self, sink: BinaryIO | _Gzipping) -> None:
        self.sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:  # tarfile asks where it starts
        return self.size

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.sha.update(view)
        self.size += len(view)
        self.sink.write(view)
        return len(view)


class _Gzipping(io.RawIOBase):
    """A write-only stream that gzip-compresses into ``sink``: zlib's own gzip wrapper (no name, time 0),
    byte for byte what ``gzip.compress(data, mtime=0)`` gives, so images.py's archives kept their digests."""

    def __init__(self, sink: _Digesting, compresslevel: int) -> None:
        self.sink = sink
        self.zlib = zlib.compressobj(compresslevel, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sink.write(self.zlib.compress(data))
        return len(memoryview(data))

    def finish(self) -> None:
        self.sink.write(self.zlib.flush())


@contextmanager
def write_layer(path: Path, *,
                compresslevel: int = TREE_COMPRESSLEVEL) -> Iterator[tuple[tarfile.TarFile, list[Layer]]]:
    """Open a tar to fill entry by entry, gzip-compressed into ``path`` as it is written.

    Yields the tar and a list that holds the finished ``Layer`` once the block ends.  The gzip header
    carries no name and no time, so the blob depends on the entries alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    done: list[Layer] = []
    with path.open("wb") as fh:
        compressed = _Digesting(fh)
        gz = _Gzipping(compressed, compresslevel)
        plain = _Digesting(gz)
        with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            yield tar, done
        gz.finish()
    done.append(Layer(path=path, digest=f"sha256:{compressed.sha.hexdigest()}",
                      diff_id=f"sha256:{plain.sha.hexdigest()}", size=compressed.size,
                      uncompressed_size=plain.size))


def layer_from_tree(root: Path, cache: Path, *, key: str, exclude: Iterable[str] = (),
                    mount_points: Iterable[str] = MOUNT_POINTS, default_owner: tuple[int, int] | None = None,
                    owners: Mapping[str, tuple[int, int]] | None = None,
                    compresslevel: int = TREE_COMPRESSLEVEL) -> Layer:
    """The folder ``root`` as a reproducible, compressed layer cached at ``cache/<key>.tar.gz``.

    ``exclude``: glob patterns of paths below ``root`` (``var/cache/*``) left out, a folder with all
    it holds.  Owners are as on disk, unless ``default_owner`` (uid, gid) replaces them all, and
    ``owners`` gives some paths their own.  A cached layer of the same key is returned as is: the key
    must change whenever the tree's content does."""
    found = cached_layer(cache, key, compresslevel=compresslevel)
    if found is not None:
        return found
    blob, sidecar = cache / f"{key}.tar.gz", cache / f"{key}.json"
    partial = blob.with_name(f"{blob.name}.{os.getpid()}.partial")  # a concurrent build of the same key never collides
    packer = _TreePacker(root, tuple(exclude), tuple(mount_points), default_owner, dict(owners or {}))
    try:
        with write_layer(partial, compresslevel=compresslevel) as (tar, made):
            packer.pack(tar)
        partial.replace(blob)
    finally:
        partial.unlink(missing_ok=True)
    layer = Layer(path=blob, digest=made[0].digest, diff_id=made[0].diff_id, size=made[0].size,
                  uncompressed_size=made[0].uncompressed_size)
    _write_json(sidecar, {"format": LAYER_FORMAT, "compresslevel": compresslevel, "digest": layer.digest,
                          "diff_id": layer.diff_id, "size": layer.size, "uncompressed_size": layer.uncompressed_size})
    return layer


def cached_layer(cache: Path, key: str, *, compresslevel: int = TREE_COMPRESSLEVEL) -> Layer | None:
    """The layer cached under ``key``, or None: lets a caller skip preparing a tree it would not need."""
    blob, sidecar = cache / f"{key}.tar.gz", cache / f"{key}.json"
    try:
        data = json.loads(sidecar.read_text())
        if (data["format"], data["compresslevel"]) != (LAYER_FORMAT, compresslevel):
            return None
        if blob.stat().st_size != data["size"]:  # a damaged or foreign blob: make it again
            return None
        return Layer(path=blob, digest=data["digest"], diff_id=data["diff_id"], size=data["size"],
                     uncompressed_size=data["uncompressed_size"], cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data, sort_keys=True, indent=1))
    partial.replace(path)


class _TreePacker:
    """Walks a folder in sorted order and adds each entry to a tar the reproducible way."""

    def __init__(self, root: Path, exclude: tuple[str, ...], mount_points: tuple[str, ...],
                 default_owner: tuple[int, int] | None, owners: dict[str, tuple[int, int]]) -> None:
        self.root = root
        self.exclude = exclude
        self.mount_points = mount_points
        self.default_owner = default_owner
        self.owners = owners
        self.links: dict[tuple[int, int], str] = {}  # (device, inode) -> the first name it was packed as

    def pack(self, tar: tarfile.TarFile) -> None:
        self._walk(tar, "")

    def _walk(self, tar: tarfile.TarFile, folder: str) -> None:
        path = self.root / folder if folder else self.root
        for name in sorted(os.listdir(path)):
            relative = f"{folder}/{name}" if folder else name
            if any(fnmatch.fnmatchcase(relative, pattern) for pattern in self.exclude):
                continue
            info = os.lstat(path / name)
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                self._add(tar, relative, info, tarfile.DIRTYPE)
                if relative not in self.mount_points:
                    self._walk(tar, relative)
            elif stat.S_ISLNK(mode):
                self._add(tar, relative, info, tarfile.SYMTYPE, link=os.readlink(path / name))
            elif stat.S_ISREG(mode):
                first = self.links.get((info.st_dev, info.st_ino)) if info.st_nlink > 1 else None
                if first is not None:
                    self._add(tar, relative, info, tarfile.LNKTYPE, link=first)
                    continue
                if info.st_nlink > 1:
                    self.links[(info.st_dev, info.st_ino)] = relative
                self._add(tar, relative, info, tarfile.REGTYPE, source=path / name)
            # device nodes, FIFOs and sockets: the runtime makes what a container needs

    def _add(self, tar: tarfile.TarFile, name: str, info: os.stat_result, kind: bytes, *, link: str = "",
             source: Path | None = None) -> None:
        entry = tarfile.TarInfo(name)
        entry.type = kind
        entry.mode = stat.S_IMODE(info.st_mode)
        entry.uid, entry.gid = self.owners.get(name) or self.default_owner or (info.st_uid, info.st_gid)
        entry.uname = entry.gname = ""
        entry.mtime = 0
        entry.linkname = link
        if source is None:
            tar.addfile(entry)
            return
        entry.size = info.st_size
        with source.open("rb") as fh:
            if name.endswith(".pyc") and "__pycache__/" in name:
                data = _clear_pyc_time(fh.read(), source, self.root)
                if len(data) != entry.size:
                    raise OSError(f"{source} changed while it was packed")
                tar.addfile(entry, io.BytesIO(data))
            else:
                tar.addfile(entry, fh)


def _clear_pyc_time(data: bytes, pyc: Path, root: Path) -> bytes:
    """A timestamp-based ``.pyc`` records its source's mtime; the layer clears that mtime to 0, so clear
    the record too — but only where it matched (a stale ``.pyc`` stays stale)."""
    if len(data) < 16 or int.from_bytes(data[4:8], "little") != 0:  # flags != 0: hash-based, no time in it
        return data
    module = pyc.name.split(".", 1)[0]
    source = _stat_in_tree(pyc.parent.parent / f"{module}.py", root)
    if source is None or int.from_bytes(data[8:12], "little") != int(source.st_mtime) & 0xFFFFFFFF:
        return data
    return data[:8] + bytes(4) + data[12:]


def _stat_in_tree(path: Path, root: Path) -> os.stat_result | None:
    """``stat`` of ``path`` following symbolic links as they resolve inside ``root`` (Debian's
    ``sitecustomize.py`` links to ``/etc/python3.11/…``: the tree's file, not this machine's)."""
    for _ in range(40):
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISLNK(info.st_mode):
            return info
        target = os.readlink(path)
        path = root / target.lstrip("/") if target.startswith("/") else Path(os.path.normpath(path.parent / target))
    return None


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    _add_bytes(tar, f"blobs/sha256/{digest}", data)
    return f"sha256:{digest}"


def _add_layer_blob(tar: tarfile.TarFile, layer: Layer) -> None:
    info = tarfile.TarInfo(f"blobs/sha256/{layer.digest.split(':', 1)[1]}")
    info.size = layer.size
    info.mtime = 0
    info.mode = 0o644
    with layer.path.open("rb") as fh:
        tar.addfile(info, fh)


def write_image(path: Path, layers: list[Layer], *, config: dict[str, Any], references: list[str],
                docker: bool = False) -> str:
    """Write an OCI image layout tar at ``path`` (via a ``.partial`` file); return the manifest's digest.

    ``config`` is the image config (architecture, os, config, history…); its ``rootfs`` is set here from
    ``layers``.  Each of ``references`` (``dirt.local/dirt:0.2.0``) names the image in the index.  Blobs are
    streamed from the layers' files; the same inputs give the same bytes.  ``docker``: also write the
    ``manifest.json`` of ``docker save``'s format, pointing at the same blobs, so that ``docker load``
    (which reads no OCI layout before Docker 25) loads the same archive."""
    config = {**config, "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            config_bytes = json.dumps(config, sort_keys=True).encode()
            config_digest = _add_blob(tar, config_bytes)
            for layer in dict.fromkeys(layers):  # a layer used twice is one blob
                _add_layer_blob(tar, layer)
            manifest = {
                "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": len(config_bytes)},
                "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer.digest, "size": layer.size}
                           for layer in layers],
            }
            manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
            manifest_digest = _add_blob(tar, manifest_bytes)
            platform = {"architecture": config.get("architecture", "amd64"), "os": config.get("os", "linux")}
            index = {
                "schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE,
                "manifests": [{"mediaType": MANIFEST_MEDIA_TYPE, "digest": manifest_digest,
                               "size": len(manifest_bytes), "platform": platform,
                               "annotations": {NAME_ANNOTATION: reference,
                                               REF_ANNOTATION: reference.rsplit(":", 1)[-1]}}
                              for reference in references],
            }
            _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
            _add_bytes(tar, "index.json", json.dumps(index, sort_keys=True).encode())
            if docker:
                legacy = [{"Config": f"blobs/sha256/{config_digest.split(':', 1)[1]}", "RepoTags": references,
                           "Layers": [f"blobs/sha256/{layer.digest.split(':', 1)[1]}" for layer in layers]}]
                _add_bytes(tar, "manifest.json", json.dumps(legacy).encode())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return manifest_digest


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


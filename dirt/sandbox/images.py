"""Container images for the sandbox's real node, made on this machine: no registry is reachable.

An image here is an OCI image layout packed as a tar archive (what ``ctr images import`` reads):
one layer holding a small root filesystem, a config naming its entrypoint, a manifest and an index
whose ``io.containerd.image.name`` annotation gives the reference pods use (with
``imagePullPolicy: Never``).  The built-in images come from Debian's ``busybox-static``:

- ``dirt.local/pause`` — the pod sandbox ("pause") container: a shell that waits for its signal;
- ``dirt.local/busybox:latest`` (and ``:<busybox version>``) — a shell and ~270 tools, ``httpd`` among them (the sample shop's
  frontend on the real node serves with it).

Archives are written reproducibly (fixed times, sorted entries) by ``dirt.sandbox.oci``, so the same
busybox gives the same image digest.  Users import their own archives (``docker save``, ``buildah push oci-archive:``,
any OCI layout tar) with ``dirt sandbox image import FILE``.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dirt.clients.commands import run
from dirt.core.errors import BinaryError, CommandError, UsageError
from dirt.sandbox import oci

REGISTRY = "dirt.local"
PAUSE = f"{REGISTRY}/pause:3.10"
#: The busybox image is tagged with the busybox it was made from (Debian's busybox-static).
BUSYBOX_REPOSITORY = f"{REGISTRY}/busybox"
#: ... and as ``latest``, which manifests use (the version follows Debian's package).
BUSYBOX = f"{BUSYBOX_REPOSITORY}:latest"

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnobody:x:65534:\n"
#: The pause container only waits: for SIGTERM/SIGINT (exit 0), and reaps nothing else (it has no children).
_PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"


@dataclass(frozen=True)
class ImageSpec:
    """What goes into one image: files copied from the host, symbolic links, folders, and how it starts."""

    reference: str
    files: dict[str, Path]  # path in the image -> file on the host
    aliases: tuple[str, ...] = ()  # more references to the same image
    symlinks: dict[str, str] = field(default_factory=dict)  # path in the image -> target
    folders: tuple[str, ...] = ()
    texts: dict[str, str] = field(default_factory=dict)  # path in the image -> content
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ("PATH=/bin:/sbin:/usr/bin:/usr/sbin",)

    @property
    def archive_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.reference) + ".oci.tar"


def busybox_binary() -> Path:
    found = shutil.which("busybox")
    if found is None:
        raise BinaryError("busybox not found: the sandbox's images are made from Debian's busybox-static "
                          "(scripts/install-system-deps.sh installs it)")
    return Path(found)


def _dynamic(binary: Path) -> bool:
    """Does the ELF ``binary`` ask for a program interpreter (a dynamic loader, so a C library)?"""
    import struct

    with binary.open("rb") as fh:
        header = fh.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only
            return True
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        for i in range(phnum):
            fh.seek(phoff + i * phentsize)
            if struct.unpack("<I", fh.read(4))[0] == 3:  # PT_INTERP
                return True
    return False


def busybox_version(busybox: Path) -> str:
    try:
        out = run([str(busybox)], timeout=10, what="busybox")
    except CommandError as exc:
        raise BinaryError(f"busybox does not run: {exc}") from None
    match = re.search(r"BusyBox v(\d+\.\d+\.\d+)", out.stdout + out.stderr)
    if not match:
        raise BinaryError(f"{busybox}: cannot tell its version from {out.stdout[:80]!r}")
    return match.group(1)


def _applets(busybox: Path) -> list[str]:
    out = run([str(busybox), "--list"], timeout=10, what="busybox --list")
    return sorted(a for a in out.stdout.split() if re.fullmatch(r"[A-Za-z0-9_.\[-]+", a) and a != "busybox")


def builtin_specs(busybox: Path | None = None) -> list[ImageSpec]:
    """The pause image and the busybox image, from the machine's busybox-static."""
    busybox = busybox or busybox_binary()
    if _dynamic(busybox):
        raise BinaryError(f"{busybox} is linked dynamically: the images need Debian's busybox-static "
                          "(scripts/install-system-deps.sh installs it)")
    version = busybox_version(busybox)
    base = {
        "files": {"bin/busybox": busybox},
        "folders": ("etc", "tmp", "root", "proc", "sys", "dev", "var", "var/www", "run"),
        "texts": {"etc/passwd": _PASSWD, "etc/group": _GROUP},
    }
    return [
        ImageSpec(reference=PAUSE, symlinks={"bin/sh": "busybox", "bin/sleep": "busybox"},
                  entrypoint=("/bin/sh", "-c", _PAUSE_SCRIPT), **base),  # type: ignore[arg-type]
        ImageSpec(reference=f"{BUSYBOX_REPOSITORY}:{version}", aliases=(BUSYBOX,),
                  symlinks={f"bin/{a}": "busybox" for a in _applets(busybox)}, cmd=("/bin/sh",),
                  **base),  # type: ignore[arg-type]
    ]


def _layer(spec: ImageSpec, path: Path) -> oci.Layer:
    """The root filesystem as a reproducible, gzip-compressed tar at ``path``."""
    # Level 9, as these archives always were: the same busybox keeps giving the same digests.
    with oci.write_layer(path, compresslevel=9) as (tar, made):
        def add(name: str, mode: int, *, data: bytes | None = None, kind: bytes = tarfile.REGTYPE,
                link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            info.size = len(data) if data is not None else 0
            info.mtime = info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for folder in sorted({*spec.folders, "bin"}):
            add(folder, 0o1777 if folder == "tmp" else 0o755, kind=tarfile.DIRTYPE)
        for name, source in sorted(spec.files.items()):
            add(name, 0o755, data=source.read_bytes())
        for name, text in sorted(spec.texts.items()):
            add(name, 0o644, data=text.encode())
        for name, target in sorted(spec.symlinks.items()):
            if name not in spec.files:
                add(name, 0o777, kind=tarfile.SYMTYPE, link=target)
    return made[0]


def write_archive(spec: ImageSpec, path: Path) -> str:
    """Write ``spec`` as an OCI image layout tar at ``path``; return the manifest's digest."""
    config = {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": list(spec.env), "Entrypoint": list(spec.entrypoint) or None, "Cmd": list(spec.cmd) or None,
                   "WorkingDir": "/"},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "dirt sandbox image build"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".layer-") as scratch:
        layer = _layer(spec, Path(scratch) / "layer.tar.gz")
        return oci.write_image(path, [layer], config=config, references=[spec.reference, *spec.aliases])


def build_builtin(folder: Path, *, busybox: Path | None = None) -> dict[str, Path]:
    """Write the built-in images' archives into ``folder``; return reference -> archive."""
    made = {}
    for spec in builtin_specs(busybox):
        archive = folder / spec.archive_name
        write_archive(spec, archive)
        made[spec.reference] = archive
    return made


def check_archive(path: Path) -> None:
    """A ``UsageError`` (exit 2) unless ``path`` is a tar archive holding an image: an OCI layout
    (``index.json``) or ``docker save`` output (``manifest.json``).  Checked before containerd reads it,
    so a wrong file gets one clear line, and a FIFO or device is never read."""
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file (an image archive is a tar file from `docker save` or "
                         "an OCI layout)")
    hint = "make one with `docker save IMAGE -o FILE` or `buildah push IMAGE oci-archive:FILE`"
    try:
        with tarfile.open(path) as tar:
            names = {member.name.removeprefix("./") for member in tar}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"{path}: not a tar archive ({str(exc).splitlines()[0].rstrip(':')}); {hint}") from None
    if not names & {"index.json", "manifest.json"}:
        raise UsageError(f"{path}: a tar archive, but not of an image (no index.json or manifest.json); {hint}")

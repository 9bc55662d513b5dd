"""Debian root filesystems made with ``debootstrap``, built once and cached.

An image dirt makes on this machine (the runner image today, kind node images later) starts from a
real Debian: its packages, its dynamic loader, its ``python3``.  No registry is reachable, so no
base image can be pulled; ``debootstrap`` installs the packages asked for straight from the Debian
mirror apt already uses here (read from apt's sources, never written down in dirt) into a folder.

Each root filesystem lives in ``<cache>/rootfs/<suite>-<variant>-<hash>`` (the hash is of the
suite, variant and sorted packages, so another package list is another folder).  It is built in a
``.partial`` sibling and renamed when done; a ``<name>.complete`` file beside it (never inside: the
folder is the image's content) says it is whole.  A lock file keeps two processes from
debootstrapping the same folder at once: the second waits, then finds it built.

Building needs root (debootstrap unpacks files owned by root and runs package scripts in a chroot)
and the ``debootstrap`` program (``scripts/install-system-deps.sh`` installs it).  Using a cached
root filesystem needs neither.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dirt.clients.commands import run
from dirt.core.errors import BinaryError, CommandError
from dirt.sandbox import binaries

#: A cold debootstrap of a minimal system with Python takes a few minutes; an hour means it is stuck.
DEBOOTSTRAP_TIMEOUT = 3600.0
#: Where apt keeps its sources on a Debian machine.
APT_ETC = Path("/etc/apt")

#: Removed after debootstrap: downloaded packages, package lists, documentation, translations and logs
#: (nothing a program in the image reads; apt fetches the lists again if someone installs more).
#: Each is a glob below the root; a matched folder goes whole.  usr/share/zoneinfo stays (time zones).
TRIM = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "var/log/*",
)
#: Copied from the host by debootstrap, emptied: a container gets its own from the runtime, and the
#: image must not carry this machine's name servers and host name.
HOST_FILES = ("etc/resolv.conf", "etc/hostname")


def rootfs_cache() -> Path:
    """The folder holding every cached root filesystem (beside the binary cache)."""
    return binaries.cache_root().parent / "rootfs"


def rootfs_name(packages: tuple[str, ...], *, suite: str = "bookworm", variant: str = "minbase") -> str:
    """The cache folder's name: readable suite and variant, then a short hash of everything that shapes it."""
    recipe = json.dumps([suite, variant, sorted(set(packages))])
    return f"{suite}-{variant}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def debootstrap_rootfs(packages: tuple[str, ...], *, suite: str = "bookworm", variant: str = "minbase",
                       log: Callable[[str], None] = print) -> Path:
    """A Debian ``suite`` root filesystem (``variant``) with ``packages`` installed: cached, else built."""
    folder = rootfs_cache() / rootfs_name(packages, suite=suite, variant=variant)
    if _complete(folder):
        return folder
    debootstrap = _debootstrap()
    if os.geteuid() != 0:
        raise BinaryError("building a root filesystem needs root: debootstrap and its package scripts run as root "
                          f"(run `dirt image build` as root once; {folder} is then reused by anyone)")
    mirror = apt_mirror(suite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.with_name(folder.name + ".lock")):
        if _complete(folder):  # another process built it while this one waited
            return folder
        return _build(folder, debootstrap, mirror, packages, suite=suite, variant=variant, log=log)


def rootfs_id(folder: Path) -> str:
    """``folder``'s name and a hash of its ``.complete`` marker: another build in the same folder (after a
    removal) gives another id, so whatever is cached from a root filesystem is made again."""
    marker = _marker(folder).read_bytes()
    return f"{folder.name}-{hashlib.sha256(marker).hexdigest()[:12]}"


def _complete(folder: Path) -> bool:
    return folder.is_dir() and _marker(folder).is_file()


def _marker(folder: Path) -> Path:
    return folder.with_name(folder.name + ".complete")


def _debootstrap() -> str:
    # /usr/sbin is not on every user's PATH, and debootstrap lives there.
    found = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin:/sbin")
    if found is None:
        raise BinaryError("debootstrap not found: the image's root filesystem is made with it "
                          "(scripts/install-system-deps.sh installs it, or `apt-get install debootstrap`)")
    return found


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build(folder: Path, debootstrap: str, mirror: str, packages: tuple[str, ...], *, suite: str, variant: str,
           log: Callable[[str], None]) -> Path:
    partial = folder.with_name(folder.name + ".partial")
    for stale in (partial, folder):  # left by a killed build: debootstrap may have left proc or sys mounted
        if stale.exists():
            _unmount_below(stale)
            shutil.rmtree(stale)
    partial.mkdir()
    debs = rootfs_cache() / "debs"  # downloaded packages, kept so another package list or a rebuild fetches less
    debs.mkdir(exist_ok=True)
    argv = [debootstrap, f"--variant={variant}", f"--cache-dir={debs}"]
    if packages:
        argv.append(f"--include={','.join(sorted(set(packages)))}")
    argv += [suite, str(partial), mirror]
    log_path = folder.with_name(folder.name + ".log")
    log(f"debootstrapping Debian {suite} ({variant}, {', '.join(sorted(set(packages))) or 'no extra packages'}) "
        f"from {mirror} — a cold build takes a few minutes; log: {log_path}")
    started = time.monotonic()
    said = [started]

    def progress(elapsed: float) -> None:
        if time.monotonic() - said[0] >= 30:
            said[0] = time.monotonic()
            log(f"  … still debootstrapping ({elapsed:.0f}s)")

    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"  # debootstrap calls chroot, found in /usr/sbin
    try:
        result = run(argv, timeout=DEBOOTSTRAP_TIMEOUT, env=env, on_wait=progress, what="debootstrap")
    except CommandError as exc:
        _unmount_below(partial)
        raise BinaryError(f"debootstrap {suite}: {exc}") from None
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        _unmount_below(partial)
        inner = partial / "debootstrap" / "debootstrap.log"
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BinaryError(f"debootstrap {suite} failed (exit {result.returncode}); last lines of {log_path}"
                          + (f" (and {inner})" if inner.is_file() else "") + f":\n{tail}\n"
                          f"check that {mirror} is reachable, then retry")
    _unmount_below(partial)
    trimmed = trim(partial)
    partial.rename(folder)
    seconds = round(time.monotonic() - started, 1)
    _marker(folder).write_text(json.dumps({"suite": suite, "variant": variant, "packages": sorted(set(packages)),
                                           "mirror": mirror, "built_at": time.time(), "seconds": seconds,
                                           "trimmed_bytes": trimmed}))
    log(f"debootstrapped {folder.name} in {seconds:.0f}s ({trimmed / 1e6:.0f} MB trimmed) -> {folder}")
    return folder


def trim(root: Path) -> int:
    """Remove what ``TRIM`` names below ``root`` and empty ``HOST_FILES``; return the bytes freed."""
    freed = 0
    for name in HOST_FILES:
        path = root / name
        if path.is_file() and not path.is_symlink():
            freed += path.stat().st_size
            path.write_bytes(b"")
    for pattern in TRIM:
        for path in sorted(root.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                freed += sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())
                shutil.rmtree(path)
            else:
                freed += path.lstat().st_size
                path.unlink()
    return freed


def _unmount_below(path: Path) -> None:
    """Unmount whatever is mounted at or below ``path`` (deepest first), so removing it never
    reaches into the host's /proc or /sys."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    base = str(path.resolve())
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) < 2:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        if point == base or point.startswith(base + "/"):
            points.append(point)
    for point in sorted(points, key=len, reverse=True):
        result = run(["umount", "--lazy", point], timeout=60, what=f"umount {point}")
        if result.returncode != 0:
            raise BinaryError(f"{point} is still mounted ({result.last_line()}): unmount it, then retry")


def apt_mirror(suite: str, *, etc: Path = APT_ETC) -> str:
    """The Debian mirror apt uses on this machine for ``suite`` (or for Debian at all), from its sources:
    deb822 files (``sources.list.d/*.sources``, ``URIs:``) first, then one-line ``deb URI suite …`` files."""
    candidates: list[tuple[str, list[str]]] = []  # (uri, suites), in apt's order
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        candidates += _deb822_sources(_read(path))
    for path in [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]:
        candidates += _one_line_sources(_read(path))
    usable = [(uri, suites) for uri, suites in candidates if re.match(r"(https?|file):", uri)]
    for uri, suites in usable:
        if suite in suites:
            return uri.rstrip("/")
    # Another release's mirror serves this one too (the same archive); never a security mirror.
    for uri, suites in usable:
        if not any(s.endswith(("-security", "/updates")) for s in suites):
            return uri.rstrip("/")
    raise BinaryError(f"no Debian mirror found in {etc}/sources.list.d/*.sources or {etc}/sources.list: "
                      f"debootstrap installs {suite} from the mirror apt uses; add one to apt's sources")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _deb822_sources(text: str) -> list[tuple[str, list[str]]]:
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:  # a folded continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        found += [(uri, suites) for uri in fields.get("uris", "").split()]
    return found


def _one_line_sources(text: str) -> list[tuple[str, list[str]]]:
    found = []
    for line in text.splitlines():
        match = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
        if match:
            found.append((match.group(1), [match.group(2)]))
    return found

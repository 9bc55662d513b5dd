"""Debian root filesystems: the mirror read from apt's sources, the cache, the trim, and clear errors.

debootstrap itself runs in tests/integration/test_runner_image.py; here only what needs no root
and no network.  The errors a machine with debootstrap and root cannot produce are simulated.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dirt.core.errors import BinaryError
from dirt.sandbox import rootfs

DEB822 = """\
Types: deb
# a snapshot once: http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def _etc(tmp_path: Path, *, sources: str = "", one_line: str = "", name: str = "debian.sources") -> Path:
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    if sources:
        (etc / "sources.list.d" / name).write_text(sources)
    if one_line:
        (etc / "sources.list").write_text(one_line)
    return etc


def test_the_mirror_comes_from_the_deb822_sources_apt_uses(tmp_path: Path) -> None:
    etc = _etc(tmp_path, sources=DEB822)
    assert rootfs.apt_mirror("bookworm", etc=etc) == "http://mirror.example/debian"


def test_another_release_is_fetched_from_the_same_archive_never_from_the_security_mirror(tmp_path: Path) -> None:
    security_first = DEB822.split("\n\n")[1] + "\n\n" + DEB822.split("\n\n")[0]
    etc = _etc(tmp_path, sources=security_first)
    assert rootfs.apt_mirror("trixie", etc=etc) == "http://mirror.example/debian"


def test_the_mirror_comes_from_a_one_line_sources_list(tmp_path: Path) -> None:
    etc = _etc(tmp_path, one_line=(
        "# deb http://old.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://one.example/debian/ "
        "bookworm main contrib\n"
        "deb-src http://one.example/debian bookworm main\n"))
    assert rootfs.apt_mirror("bookworm", etc=etc) == "http://one.example/debian"


def test_deb822_sources_win_over_the_one_line_list_and_disabled_ones_are_ignored(tmp_path: Path) -> None:
    disabled = "Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\n\n"
    etc = _etc(tmp_path, sources=disabled + DEB822, one_line="deb http://one.example/debian bookworm main\n")
    assert rootfs.apt_mirror("bookworm", etc=etc) == "http://mirror.example/debian"


def test_no_mirror_is_a_clear_error(tmp_path: Path) -> None:
    etc = _etc(tmp_path, sources="Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n")
    with pytest.raises(BinaryError, match=r"no Debian mirror found in .*sources.list.d/\*.sources"):
        rootfs.apt_mirror("bookworm", etc=etc)


def test_the_cache_folder_is_named_by_suite_variant_and_the_package_set(tmp_path: Path) -> None:
    name = rootfs.rootfs_name(("python3", "ca-certificates"))
    assert name.startswith("bookworm-minbase-")
    assert rootfs.rootfs_name(("ca-certificates", "python3", "python3")) == name
    assert rootfs.rootfs_name(("python3",)) != name
    assert rootfs.rootfs_name(("python3", "ca-certificates"), suite="trixie").startswith("trixie-minbase-")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DIRT_BIN_CACHE", str(tmp_path / "cache" / "bin"))
    return tmp_path / "cache" / "rootfs"


def test_a_cached_root_filesystem_needs_neither_debootstrap_nor_root(cache: Path, monkeypatch) -> None:
    folder = cache / rootfs.rootfs_name(("python3",))
    (folder / "usr/bin").mkdir(parents=True)
    folder.with_name(folder.name + ".complete").write_text(json.dumps({"suite": "bookworm"}))
    monkeypatch.setattr(rootfs.shutil, "which", lambda *a, **k: None)
    monkeypatch.setattr(rootfs.os, "geteuid", lambda: 1000)
    assert rootfs.debootstrap_rootfs(("python3",), log=lambda m: None) == folder


def test_a_folder_without_its_complete_marker_is_not_used(cache: Path, monkeypatch) -> None:
    folder = cache / rootfs.rootfs_name(("python3",))
    (folder / "usr/bin").mkdir(parents=True)  # a build killed after the rename, before the marker
    monkeypatch.setattr(rootfs.shutil, "which", lambda *a, **k: None)
    with pytest.raises(BinaryError, match="debootstrap not found"):
        rootfs.debootstrap_rootfs(("python3",), log=lambda m: None)


def test_no_debootstrap_says_how_to_install_it(cache: Path, monkeypatch) -> None:
    monkeypatch.setattr(rootfs.shutil, "which", lambda *a, **k: None)
    with pytest.raises(BinaryError) as info:
        rootfs.debootstrap_rootfs(("python3",), log=lambda m: None)
    assert "scripts/install-system-deps.sh installs it" in str(info.value)


def test_not_root_says_why_root_is_needed(cache: Path, monkeypatch) -> None:
    monkeypatch.setattr(rootfs.shutil, "which", lambda *a, **k: "/usr/sbin/debootstrap")
    monkeypatch.setattr(rootfs.os, "geteuid", lambda: 1000)
    with pytest.raises(BinaryError) as info:
        rootfs.debootstrap_rootfs(("python3",), log=lambda m: None)
    assert str(info.value).startswith(
        "building a root filesystem needs root: debootstrap and its package scripts run as root")


def test_trim_removes_packages_lists_docs_and_logs_but_keeps_time_zones(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for path in ("var/cache/apt/archives/python3_3.11.deb", "var/cache/apt/archives/lock",
                 "var/cache/apt/pkgcache.bin", "var/lib/apt/lists/deb.list_Packages", "usr/share/doc/python3/README",
                 "usr/share/man/man1/python3.1.gz", "usr/share/info/dir", "usr/share/locale/de/LC_MESSAGES/x.mo",
                 "var/log/dpkg.log", "var/log/apt/history.log", "usr/share/zoneinfo/Europe/Paris",
                 "etc/resolv.conf", "etc/hostname", "usr/bin/python3"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("something\n")
    freed = rootfs.trim(root)
    assert freed > 0
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == ["etc/hostname", "etc/resolv.conf", "usr/bin/python3", "usr/share/zoneinfo/Europe/Paris",
                    "var/cache/apt/archives/lock"]
    assert (root / "etc/resolv.conf").read_text() == "" and (root / "etc/hostname").read_text() == ""
    for folder in ("usr/share/doc", "usr/share/man", "var/log", "var/lib/apt/lists"):
        assert (root / folder).is_dir(), f"{folder} itself stays"

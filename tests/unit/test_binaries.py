"""Sandbox binaries: reused from the cache or PATH at the right version, never rebuilt needlessly."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dirt.sandbox import binaries
from dirt.sandbox.binaries import KWOK, build, is_built


def fake_binary(folder: Path, name: str, output: str) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_binaries_on_path_at_the_right_version_are_used_without_building(tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_binary(bin_dir, "kwok", f"kwok version {KWOK.version} go1.26.8 (linux/amd64)")
    fake_binary(bin_dir, "kwokctl", f"kwokctl version {KWOK.version} go1.26.8 (linux/amd64)")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DIRT_BIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(binaries, "_go", lambda: (_ for _ in ()).throw(AssertionError("must not build")))
    messages: list[str] = []
    folder = build(KWOK, log=messages.append)
    assert is_built(KWOK)
    assert (folder / "kwokctl").resolve() == (bin_dir / "kwokctl").resolve()
    assert messages[0].startswith(f"using kwok {KWOK.version} from PATH")


def test_a_binary_on_path_at_another_version_is_not_used(tmp_path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_binary(bin_dir, "kwok", "kwok version v0.7.0")
    fake_binary(bin_dir, "kwokctl", "kwokctl version v0.7.0")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert binaries.on_path(KWOK) is None


def test_a_failed_build_names_the_component_the_reason_and_how_to_retry(tmp_path, monkeypatch) -> None:
    import pytest

    from dirt.core.errors import BinaryError

    go = fake_binary(tmp_path, "go", "go: module lookup disabled")
    go.write_text("#!/bin/sh\necho 'go: sigs.k8s.io/kwok@v0.8.0: no route to host' >&2\nexit 1\n")
    monkeypatch.setenv("DIRT_BIN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(binaries, "on_path", lambda component: None)
    monkeypatch.setattr(binaries, "_go", lambda: str(go))
    with pytest.raises(BinaryError) as info:
        build(KWOK, log=lambda m: None)
    text = str(info.value)
    assert text.startswith("building kwok v0.8.0 failed (exit 1)")
    assert "no route to host" in text and "retry with: dirt sandbox build --force" in text


def test_binaries_that_cannot_say_their_version_are_never_taken_from_path(tmp_path, monkeypatch) -> None:
    from dirt.sandbox.binaries import VELERO, VELERO_AWS_PLUGIN

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_binary(bin_dir, "velero", f"Client:\n\tVersion: {VELERO.version}")
    fake_binary(bin_dir, "gofakes3", "flag provided but not defined: -version")
    fake_binary(bin_dir, "velero-plugin-for-aws", "This binary is a plugin.")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert binaries.on_path(VELERO) is None and binaries.on_path(VELERO_AWS_PLUGIN) is None
    # a build of ours is trusted: it is only checked to be executable
    assert binaries._answers(bin_dir / "gofakes3", VELERO)


def test_a_rebuilt_variant_of_the_same_version_gets_its_own_cache_folder(tmp_path, monkeypatch) -> None:
    from dirt.sandbox.binaries import VELERO

    monkeypatch.setenv("DIRT_BIN_CACHE", str(tmp_path))
    assert VELERO.folder == tmp_path / f"velero-{VELERO.version}-{VELERO.build_id}"
    assert KWOK.folder == tmp_path / f"kwok-{KWOK.version}"
    # controller-runtime's hidden metrics server (":8080", every interface) is switched off at link time
    assert "controller-runtime/pkg/metrics/server.DefaultBindAddress=0" in VELERO.ldflags(VELERO)


def test_a_sandbox_from_an_older_dirt_keeps_its_ports_and_gets_the_new_ones(tmp_path) -> None:
    import json

    from dirt.sandbox.cluster import Sandbox
    from dirt.sandbox.monitoring import Ports

    box = Sandbox("old", home=tmp_path)
    old = {name: 21000 + i for i, name in enumerate(Ports.names()) if name not in ("object_store", "velero_metrics")}
    box.root.mkdir(parents=True)
    box.state_file.write_text(json.dumps({"ports": old}))
    ports = box.ports
    assert {k: getattr(ports, k) for k in old} == old
    assert ports.object_store and ports.velero_metrics and len(set(vars(ports).values())) == len(Ports.names())
    assert json.loads(box.state_file.read_text())["ports"]["object_store"] == ports.object_store

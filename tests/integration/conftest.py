"""Fixtures shared by the integration suites that treat dirt as a user does: as a package, installed
from its wheel into a fresh virtual environment (`user`: one per test module, with its own sandbox)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="session")
def dirt_dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """dirt's sdist and wheel, built once a session as a release would be (``python -m build``: the
    wheel is built from the sdist, so a file missing from the sdist is missing from the wheel too)."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels, sdists = sorted(out.glob("dirt-*.whl")), sorted(out.glob("dirt-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


class User:
    """A shell of the new user: the venv's dirt first on PATH, an empty project folder, a fresh sandbox home."""

    def __init__(self, venv: Path, project: Path, sandbox_home: Path) -> None:
        self.venv, self.project, self.sandbox_home = venv, project, sandbox_home
        keep = ("HOME", "LANG", "TERM", "XDG_CACHE_HOME", "DIRT_BIN_CACHE", "GOPATH", "GOCACHE", "GOMODCACHE",
                "GOFLAGS", "GOPROXY", "GONOSUMDB", "GOPRIVATE", "GOTOOLCHAIN")
        self.env = {k: v for k, v in os.environ.items() if k in keep}
        self.env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "DIRT_SANDBOX_HOME": str(sandbox_home),
                     "XDG_STATE_HOME": str(sandbox_home.parent / "state")}

    def run(self, *argv: str, check: bool = True, timeout: float = 900, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(argv), cwd=cwd or self.project, env={**self.env, **(env or {})}, text=True,
                              capture_output=True, timeout=timeout)
        if check:
            assert done.returncode == 0, (f"{argv} exited {done.returncode}:\n"
                                          f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done

    def dirt(self, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.venv / "bin" / "dirt"), *args, **kwargs)


@pytest.fixture(scope="module")
def user(dirt_dist, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("new-user")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                str(dirt_dist["wheel"])], capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    project = base / "my-drills"
    project.mkdir()
    person = User(venv, project, base / "sandboxes")
    yield person
    person.dirt("sandbox", "down", check=False, timeout=300)

"""Fixtures shared by the integration suites that treat dirt as a user does: as a package."""

from __future__ import annotations

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

"""Tools the tests check dirt's output with, built from their Go modules into dirt's binary cache."""

from __future__ import annotations

from pathlib import Path

from dirt.sandbox.binaries import Component, build

#: rhysd/actionlint: the linter of GitHub Actions workflows (runs shellcheck on `run:` scripts when present).
ACTIONLINT = Component(name="actionlint", version="v1.7.12",
                       binaries={"actionlint": "github.com/rhysd/actionlint/cmd/actionlint"}, module_dir=None)


def actionlint() -> Path:
    """actionlint, built once (seconds with a warm Go cache) and then found in the cache."""
    return build(ACTIONLINT, log=lambda message: None) / "actionlint"

"""What the integration tests share about drills they write and the reports those drills leave."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path


def write(tmp_path: Path, name: str, text: str) -> Path:
    """A scenario file ``name.yaml`` in ``tmp_path`` (a drill not in the repository)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def report(result) -> dict:
    """The run's report.json."""
    return json.loads((result.run_dir / "report.json").read_text())


def cli(target, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    """A command with the drill's environment (``target.command_env()``: the sandbox's kubectl, velero and
    ctr first on PATH and pointed at it), as a playbook step would run it."""
    env = {**os.environ, **target.command_env()}
    proc = subprocess.run(list(args), input=stdin, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc

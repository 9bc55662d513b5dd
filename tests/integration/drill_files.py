"""What the integration tests share about drills they write and the reports those drills leave."""

from __future__ import annotations

import json
from pathlib import Path


def write(tmp_path: Path, name: str, text: str) -> Path:
    """A scenario file ``name.yaml`` in ``tmp_path`` (a drill not in the repository)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def report(result) -> dict:
    """The run's report.json."""
    return json.loads((result.run_dir / "report.json").read_text())

"""The import contracts of .importlinter hold, and they bite.

The layers (entry points, use cases, engine, drivers, documents, targets,
clients, core), the Kubernetes/HTTP clients kept in dirt.clients, the engine
knowing drivers by name only, pure reports and no import cycles: each is proved
to fail on a copy of the package with one forbidden import added.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy, not the installed package
    return subprocess.run([str(LINT), "--no-cache", str(root / ".importlinter")], cwd=root,
                          capture_output=True, text=True, timeout=300, env=env)


def test_import_contracts_are_kept() -> None:
    proc = lint(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 kept, 0 broken" in proc.stdout


@pytest.mark.parametrize("edits, broken", [
    ({"dirt/drivers/base.py": "import kubernetes"}, "Only dirt.clients talks to Kubernetes"),
    ({"dirt/checks/kube.py": "import requests"}, "Only dirt.clients talks to Kubernetes"),
    ({"dirt/engine/runner.py": "import dirt.faults.cluster"}, "The engine knows drivers"),
    ({"dirt/core/errors.py": "import dirt.journal.events"}, "One layered package"),
    ({"dirt/checks/kube.py": "import dirt.recovery.resources"}, "One layered package"),
    ({"dirt/report/model.py": "import dirt.drivers"}, "Reports are rendered from the journal alone"),
    ({"dirt/core/durations.py": "import dirt.core.redact",
      "dirt/core/redact.py": "import dirt.core.durations"}, "No import cycles"),
], ids=["kubernetes-in-drivers", "requests-in-checks", "engine-imports-a-fault", "core-imports-up",
        "checks-import-recovery", "report-imports-drivers", "cycle"])
def test_a_forbidden_import_breaks_the_contracts(tmp_path, edits: dict[str, str], broken: str) -> None:
    shutil.copytree(REPO / "dirt", tmp_path / "dirt", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    for relative, line in edits.items():
        path = tmp_path / relative
        text = path.read_text()
        head, sep, rest = text.partition("from __future__ import annotations\n")
        path.write_text(head + sep + line + "\n" + rest)
    proc = lint(tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert f"{broken}" in proc.stdout and "BROKEN" in proc.stdout

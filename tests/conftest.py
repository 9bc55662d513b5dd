"""Shared test helpers: a throw-away project folder with a fake target."""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]

# The suite opts into dirt's test doubles (the fake target, fake.* drivers); set in the
# environment so that `dirt` run as a subprocess by a test sees them too.
os.environ["DIRT_TESTING"] = "1"

# Malformed scenario files are test data, not tests for the dirt pytest plugin.
collect_ignore_glob = ["unit/corpus/*", "unit/data/*"]
DIRT = [sys.executable, "-m", "dirt"]


def load_script(path: Path, name: str) -> ModuleType:
    """A script that is not a package module (bench/*.py), imported as module ``name``."""
    if str(path.parent) not in sys.path:  # its sibling modules (bench/measure.py), as when run as a script
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module

FAKE_CONFIG = """\
default_target: fake
targets:
  fake:
    provider: fake
    settings: {alert_delay: 0.2, resolve_delay: 0.2}
  guarded:
    provider: fake
    allow: []
"""

PLAYBOOK = """\
# Fake outage

## Recognise it

The FakeDown alert fires.

## Repair the thing

```bash dirt-step=repair timeout=20s
echo "repairing {{ who }}" > repaired.txt
```

## Confirm

Check the dashboards.
"""


#: A fault whose effect lives outside any process: a file, removed by its revert.
FILE_FAULT = """\
    inject:
      - fault: exec
        name: break-file
        command: "touch broken.flag"
        verify: "test -f broken.flag"
        revert: "rm -f broken.flag"
    """


def journal_lines(run_dir: Path) -> list[dict]:
    """The journal as written on disk: one JSON object per line."""
    import json

    path = run_dir / "journal.jsonl" if run_dir.is_dir() else run_dir
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Project:
    """A folder with dirt.yaml (fake target), a playbook, and scenario files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "playbooks").mkdir(parents=True, exist_ok=True)
        (root / "dirt.yaml").write_text(FAKE_CONFIG)
        (root / "playbooks" / "fake.md").write_text(PLAYBOOK)
        self.reports = root / "reports"

    def scenario(self, name: str, body: str) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(textwrap.dedent(body))
        return path

    def loaded(self):
        from dirt.config import load_config

        return load_config(self.root / "dirt.yaml")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIRT_CONFIG", raising=False)
    return Project(tmp_path)


def basic_scenario(**overrides: str) -> str:
    """A passing fake drill; pass section texts to replace parts of it."""
    parts = {
        "head": """\
            apiVersion: dirt/v1
            kind: Scenario
            metadata:
              name: fake-drill
              description: A drill against the fake target.
              playbook: playbooks/fake.md
              tags: [fast, fake-target]
            vars:
              who: world
            """,
        "backups": """\
            backups:
              - backup: fake.backup
                name: store
            """,
        "steady_state": """\
            steady_state:
              - check: fake.check
            """,
        "inject": """\
            inject:
              - fault: fake.fault
                name: break-it
                fires: [FakeDown]
                playbook: "#recognise-it"
            """,
        "expect": """\
            expect:
              alerts:
                - name: FakeDown
                  fires_within: 5s
                  resolves_within: 5s
              silent: [OtherAlert]
              mttr: 30s
            """,
        "recover": """\
            recover:
              - step: playbook.run
                playbook: "#repair-the-thing"
              - step: fake.step
                takes: 0.2s
                within: 10s
            """,
        "verify": """\
            verify:
              - check: fake.check
                within: 10s
            """,
        "extra": "",
        "timing": """\
            timing:
              poll_interval: 100ms
            """,
    }
    parts.update(overrides)
    return "".join(textwrap.dedent(v) for v in parts.values())

"""A real `dirt run` child process: signals roll back, and a killed run's journal survives.

These run the CLI as a separate process (the real thing, with the fake target)
and send it real signals.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dirt.journal import read_journal
from tests.conftest import DIRT, FILE_FAULT, basic_scenario, journal_lines

LONG_RECOVERY = """\
    recover:
      - step: fake.step
        name: slow-restore
        takes: 60s
    """

def start_run(project, text: str) -> subprocess.Popen[str]:
    path = project.scenario("drill", text)
    return subprocess.Popen([*DIRT, "run", str(path), "--display", "plain"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_event(project, predicate, timeout: float = 30.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for journal in project.reports.glob("*/journal.jsonl"):
            if any(predicate(e) for e in journal_lines(journal)):
                return journal.parent
        time.sleep(0.1)
    raise AssertionError("the run never reached the expected event")


def in_slow_step(event) -> bool:
    return event["event"] == "step.start" and event.get("name") == "slow-restore"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_aborts_the_drill_rolls_back_and_reports(project, sig) -> None:
    proc = start_run(project, basic_scenario(inject=FILE_FAULT, expect="", recover=LONG_RECOVERY))
    run_dir = wait_for_event(project, in_slow_step)
    assert (project.root / "broken.flag").exists()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 3, err
    assert "Traceback" not in err
    events = journal_lines(run_dir)
    kinds = [e["event"] for e in events]
    assert {"event": "signal", "signal": sig.name}.items() <= next(e for e in events if e["event"] == "signal").items()
    assert kinds.index("rollback.start") < kinds.index("run.end")
    assert not (project.root / "broken.flag").exists(), "rollback ran the revert command"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["verdict"] == "aborted"
    assert report["rollback"]["ran"] is True
    assert report["signals"] == [sig.name]


def test_a_killed_run_leaves_a_journal_that_renders_and_rolls_back(project) -> None:
    proc = start_run(project, basic_scenario(inject=FILE_FAULT, expect="", recover=LONG_RECOVERY))
    run_dir = wait_for_event(project, in_slow_step)
    proc.kill()  # SIGKILL: no handler, no rollback, no run.end
    proc.communicate(timeout=10)
    events = journal_lines(run_dir)
    assert events[-1]["event"] == "step.start"
    assert any(e["event"] == "fault.injected" for e in events)
    assert (project.root / "broken.flag").exists()

    rendered = subprocess.run([*DIRT, "report", str(run_dir)], cwd=project.root, capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr
    report = json.loads((run_dir / "report.json").read_text())
    assert report["complete"] is False and report["verdict"] == "aborted"
    assert [s["status"] for s in report["steps"] if s["name"] == "slow-restore"] == ["interrupted"]

    rolled = subprocess.run([*DIRT, "rollback", str(run_dir), "--yes"], cwd=project.root,
                            capture_output=True, text=True)
    assert rolled.returncode == 0, rolled.stderr
    assert "reverted break-file" in rolled.stdout
    assert not (project.root / "broken.flag").exists()
    after = journal_lines(run_dir)
    assert after[-1]["event"] == "run.end" and after[-1]["verdict"] == "aborted"
    assert [e["seq"] for e in after] == list(range(1, len(after) + 1))
    again = subprocess.run([*DIRT, "rollback", str(run_dir), "--yes"], cwd=project.root,
                           capture_output=True, text=True)
    assert "nothing to roll back" in again.stdout


def test_a_torn_last_line_is_skipped(tmp_path) -> None:
    journal = tmp_path / "journal.jsonl"
    journal.write_text('{"seq": 1, "ts": 1.0, "t": 0.0, "event": "run.start", "run_id": "r", "schema_version": 2}\n'
                       '{"seq": 2, "ts": 1.1, "t": 0.1, "ev')
    contents = read_journal(journal)
    assert [e.seq for e in contents.events] == [1] and contents.torn and not contents.problems

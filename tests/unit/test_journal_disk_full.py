"""A reports folder whose disk fills up mid-drill: the drill stops and rolls back from the fault
ledger (which still sees every event), the journal on disk stays valid JSON Lines and takes the
waiting lines in order once there is room, and the command says what was not written.  Here the
disk is full by way of ``os.write`` raising ENOSPC; tests/integration/test_dependency_faults.py
fills a real tmpfs under a real drill."""

from __future__ import annotations

import errno
import json
import os

import pytest

from dirt.journal import JOURNAL_NAME, read_journal, writer
from dirt.journal.events import AlertsNoise, RunStarted
from dirt.journal.writer import Journal
from tests.conftest import basic_scenario

FULL = OSError(errno.ENOSPC, "No space left on device")


class Disk:
    """``os.write`` for journals: fails with ENOSPC while ``full``, and may write half a line first."""

    def __init__(self) -> None:
        self.full = False
        self.half_first = False
        self.real = os.write

    def write(self, fd: int, data: bytes) -> int:
        if self.full:
            if self.half_first:
                self.half_first = False
                self.real(fd, data[: len(data) // 2])  # a line cut short, as a disk that fills mid-write
            raise FULL
        return self.real(fd, data)


@pytest.fixture
def disk(monkeypatch) -> Disk:
    disk = Disk()
    monkeypatch.setattr(writer.os, "write", disk.write)
    return disk


def test_lines_the_disk_refused_wait_and_are_written_in_order_once_there_is_room(tmp_path, disk) -> None:
    journal = Journal(tmp_path / JOURNAL_NAME)
    errors: list[OSError] = []
    journal.on_write_error.append(errors.append)
    seen = []
    journal.subscribe(seen.append)
    journal.emit(RunStarted(run_id="r"))
    disk.full = disk.half_first = True
    journal.emit(AlertsNoise(polls=1))
    journal.emit(AlertsNoise(polls=2))
    assert [e.event for e in seen] == ["run.start", "alerts.noise", "alerts.noise"], "listeners still hear all"
    assert len(errors) == 1 and errors[0].errno == errno.ENOSPC, "told once, at the first failure"
    assert journal.unwritten == 2
    on_disk = read_journal(tmp_path / JOURNAL_NAME)
    assert [e.seq for e in on_disk.events] == [1] and not on_disk.problems, "the half-written line was cut off"
    disk.full = False
    journal.emit(AlertsNoise(polls=3))
    journal.close()
    lines = (tmp_path / JOURNAL_NAME).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]
    assert journal.unwritten == 0 and journal.write_error is None


def test_a_drill_whose_journal_cannot_be_written_stops_rolls_back_and_says_what_was_not_written(
        project, disk, monkeypatch) -> None:
    from dirt.app.run import run_one
    from dirt.engine.runner import RunOptions
    from dirt.scenario import load_scenario
    from dirt.testing import FakeTarget

    scenario = load_scenario(project.scenario("drill", basic_scenario(expect="")))
    name, config = project.loaded().target("fake")
    target = FakeTarget(name, config, project.root)
    real_emit = Journal.emit

    def emit(self: Journal, event):  # the disk fills up the moment the fault is in
        stamped = real_emit(self, event)
        if event.event == "fault.injected":
            disk.full = True
        return stamped

    monkeypatch.setattr(Journal, "emit", emit)
    result = run_one(scenario, target, RunOptions(report_dir=project.reports, handle_signals=False))
    assert result.verdict == "aborted"
    assert "the journal cannot be written (No space left on device" in (result.aborted or ""), result.aborted
    assert any(c.startswith("revert") for c in target.calls), "rolled back from the ledger in memory"
    assert result.still_in_effect == []
    assert result.not_written and "could not be written" in result.not_written[0]
    assert "No space left on device" in result.not_written[0]
    contents = read_journal(result.run_dir)
    assert not contents.problems and contents.events[-1].event == "fault.injected", "valid, ends early"
    disk.full = False
    from dirt.report import render_run

    assert render_run(result.run_dir)["verdict"] == "aborted", "dirt report renders what was kept"

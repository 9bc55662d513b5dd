"""Report readers against hostile run folders: other runs' damage never breaks this run.

One foreign or corrupt ``report.json`` in the reports folder once made every later
``dirt run`` fail while updating the index (a PASSED drill exited 1).  Damaged
journals are rendered as far as they read, located line by line, and exit 2.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dirt.report import render_run, update_index
from tests.conftest import DIRT

RECORDED = Path(__file__).parent / "data" / "recorded-journal.jsonl"

FOREIGN_REPORTS: dict[str, bytes] = {
    "list": b"[]",
    "garbage": b"not json at all",
    "nan": b'{"schema_version": 2, "duration_seconds": NaN}',
    "inf": b'{"schema_version": 2, "duration_seconds": 1e999, "timings": {"mttr_seconds": -1e999}}',
    "huge-int": b'{"schema_version": 2, "duration_seconds": 1' + b"0" * 400 + b"}",
    "wrong-types": b'{"schema_version": 2, "scenario": [], "timings": {"mttd_seconds": "x"}, "verdict": 7}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "not-utf8": b'{"schema_version": 2, "scenario": {"name": "\xff\xfe"}}',
}


def test_the_index_lists_good_runs_and_names_foreign_or_corrupt_folders(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(RECORDED, good / "journal.jsonl")
    render_run(good)
    for name, content in FOREIGN_REPORTS.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_bytes(content)
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "report.json")

    html = update_index(tmp_path).read_text()  # must neither raise nor block on the FIFO

    assert 'href="good/report.html"' in html
    for name in [*FOREIGN_REPORTS, "fifo"]:
        if name in ("nan", "inf", "huge-int", "wrong-types"):
            assert f'href="{name}/report.html"' in html, name  # a report; its bad values shown as "-" or "?"
        else:
            assert f"<code>{name}</code>" in html, name  # listed as skipped, with why
    cells = {c.strip().lower() for c in re.findall(r"<td[^>]*>([^<]*)</td>", html)}
    assert not cells & {"inf", "-inf", "nan", "infinity", "infs", "nans"}, cells


@pytest.mark.parametrize("content, where", [
    (b"", ":1:1: the journal holds no readable event"),
    (b"not json\n\xff\n", "journal.jsonl:1:1: not JSON"),
    (b'{"seq": 1, "event": "run.start", "t": NaN}\n', "journal.jsonl:1:1: not JSON"),
    (b'{"seq": 1, "event": 5}\n[1]\n"x"\n', "journal.jsonl:1:1: not a journal event"),
    (b"[" * 100_000 + b"]" * 100_000 + b"\n", "journal.jsonl:1:1: nested too deeply"),
])
def test_report_and_rollback_of_an_unreadable_journal_exit_2_located(project, content: bytes, where: str) -> None:
    run = project.root / "run"
    run.mkdir()
    (run / "journal.jsonl").write_bytes(content)
    for command in (["report"], ["rollback", "--yes"]):
        proc = subprocess.run([*DIRT, *command, str(run)], capture_output=True, text=True, timeout=60,
                              cwd=project.root)
        assert proc.returncode == 2, proc.stderr
        assert where in proc.stderr or (command[0] == "rollback" and "journal.jsonl:1:1: the journal has no "
                                        "readable run.start event" in proc.stderr), proc.stderr
        assert "Traceback" not in proc.stderr


def test_a_partly_damaged_journal_is_rendered_and_exits_2(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    lines = RECORDED.read_bytes().splitlines(keepends=True)
    (run / "journal.jsonl").write_bytes(b"".join(lines[:3]) + b'{"seq": NaN}\n' + b"".join(lines[3:]))
    proc = subprocess.run([*DIRT, "report", str(run)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "journal.jsonl:4:1: not JSON" in proc.stderr
    assert (run / "report.html").is_file() and (run / "report.json").is_file()
    assert "PASSED" in proc.stdout

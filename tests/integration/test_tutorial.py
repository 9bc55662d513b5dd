"""The tutorial (docs/tutorial.md) word for word, as a new user follows it: it cannot rot.

Every ``sh`` block's commands run in order, each in a shell whose working folder carries over
(``cd my-drills`` is a command like any other), as a user whose dirt is the wheel installed in a
fresh virtual environment, with a sandbox of their own.  A ``yaml`` block marked
``<!-- tutorial: file PATH -->`` is written to PATH, as the reader is told to save it.  The one
block not run is the install: the fixture installs the wheel this session built, which is what
``pip install dirt`` does.  Every command must exit 0 except one in a block marked
``<!-- tutorial: exits N -->``; a ``text`` block after a command holds lines its output must
contain (``...`` skips, and a report's path is compared up to its run folder).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.conftest import User

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

TUTORIAL = REPO / "docs" / "tutorial.md"
MARKER = re.compile(r"<!--\s*tutorial:\s*(.*?)\s*-->")
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    lang: str
    text: str
    line: int
    marker: str = ""
    commands: list[str] = field(default_factory=list)


def tutorial_blocks(text: str) -> list[Block]:
    """The fenced blocks of the page, each with the ``<!-- tutorial: ... -->`` marker just before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    marker, i = "", 0
    while i < len(lines):
        found = MARKER.search(lines[i])
        fence = FENCE.match(lines[i])
        if found:
            marker = found.group(1)
        elif fence:
            start, body = i, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            block = Block(fence.group(1), "\n".join(body) + "\n", start + 1, marker)
            if block.lang == "sh":
                block.commands = [c for c in (line.split("  #")[0].strip() for line in body) if c and c[0] != "#"]
            blocks.append(block)
            marker = ""
        elif lines[i].strip():
            marker = "" if not lines[i].startswith("<!--") else marker
        i += 1
    return blocks


def _normalise(text: str) -> str:
    return re.sub(r"\S*reports/\d{8}-\d{6}-[\w-]+/", "reports/RUN/", text)


def test_the_tutorial_parses_into_commands_files_and_checked_output() -> None:
    blocks = tutorial_blocks(TUTORIAL.read_text())
    skipped = [b for b in blocks if b.marker.startswith("not run")]
    assert len(skipped) == 1 and "pip install dirt" in skipped[0].text, "only the install is left to the fixture"
    files = [b.marker.split()[1] for b in blocks if b.marker.startswith("file ")]
    assert files == ["scenarios/web-down.yaml", "apps/hello/alerts.yaml"]
    commands = [c for b in blocks if b.lang == "sh" and b not in skipped for c in b.commands]
    assert commands[:2] == ["dirt init my-drills", "cd my-drills"] and "dirt sandbox up" in commands
    assert sum(1 for b in blocks if b.marker.startswith("exits ")) == 1


def test_the_tutorial_word_for_word(user: User) -> None:
    home = user.project.parent / "tutorial"
    home.mkdir()
    cwd, last_output, ran, results = home, "", [], {}
    for block in tutorial_blocks(TUTORIAL.read_text()):
        where = f"docs/tutorial.md:{block.line}"
        if block.marker.startswith("not run"):
            continue
        if block.marker.startswith("file "):
            path = cwd / block.marker.split()[1]
            assert path.parent.is_dir(), f"{where}: {path.parent} does not exist when the reader saves the file"
            path.write_text(block.text)
            continue
        if block.lang == "text" and ran:
            for line in block.text.splitlines():
                if line.strip() and line.strip() != "...":
                    assert _normalise(line.strip()) in _normalise(last_output), (
                        f"{where}: the output of {ran[-1]!r} has no line {line.strip()!r}:\n{last_output[-3000:]}")
            continue
        if block.lang != "sh":
            continue
        expected_last = int(block.marker.split()[1]) if block.marker.startswith("exits ") else 0
        for n, command in enumerate(block.commands):
            expected = expected_last if n == len(block.commands) - 1 else 0
            # one shell per command; the folder it ends in is where the next one starts
            script = f"cd {shlex.quote(str(cwd))} && {command}\nstatus=$?\npwd > {shlex.quote(str(home / '.cwd'))}\n" \
                     "exit $status"
            done = user.run("bash", "-c", script, check=False, timeout=900, cwd=cwd)
            last_output = done.stdout + done.stderr
            assert done.returncode == expected, (f"{where}: {command!r} exited {done.returncode}, expected {expected}"
                                                 f":\n{last_output[-5000:]}")
            cwd = Path((home / ".cwd").read_text().strip())
            ran.append(command)
            results.setdefault(command, []).append(last_output)

    project = home / "my-drills"
    assert cwd == project
    reports = {p.name: json.loads((p / "report.json").read_text())
               for p in sorted((project / "reports").iterdir()) if (p / "report.json").exists()}
    verdicts = [(r["scenario"]["name"], r["verdict"]) for r in reports.values()]
    # first-drill passes; web-down fails (the alert never fires), then passes with the fixed rule; first-drill again
    assert verdicts == [("first-drill", "passed"), ("web-down", "failed"), ("web-down", "passed"),
                        ("first-drill", "passed")], verdicts
    failed = [r for r in reports.values() if r["verdict"] == "failed"][0]
    assert failed["failures"] == ["alert HelloWorkloadsMissing: HelloWorkloadsMissing did not fire within 30s"]
    fixed = [r for r in reports.values() if r["scenario"]["name"] == "web-down" and r["verdict"] == "passed"][0]
    assert fixed["timings"]["mttd_seconds"]["HelloWorkloadsMissing"] > 0
    for run in reports:
        assert (project / "reports" / run / "report.html").is_file()
    assert "web-down" in results["dirt history"][0] and "first-drill" in results["dirt history"][0]

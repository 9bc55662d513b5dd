"""Reports: rendered from the journal alone, in JSON, Markdown, HTML and JUnit.

``render_run(run_dir)`` reads ``journal.jsonl`` and writes ``report.json``,
``report.md``, ``report.html`` and ``junit.xml`` beside it; ``update_index``
rewrites ``reports/index.html`` (the dashboard, see ``dirt.report.dashboard``) from
every run's ``report.json`` and every game day's.  Neither
trusts what it reads: journal lines that cannot be read are listed in the
report (``journal_problems``), and run folders whose ``report.json`` is not a
dirt report are skipped and listed in the index, never fatal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dirt.core import safefile
from dirt.core.errors import JournalError
from dirt.core.redact import redact
from dirt.journal import read_journal
from dirt.report.dashboard import MAX_POINTS, gameday_summaries, number, scenario_rows, text
from dirt.report.model import SCHEMA_VERSION, build_report

__all__ = ["SCHEMA_VERSION", "build_report", "render_run", "update_index", "REPORT_FILES"]

REPORT_FILES = ("report.json", "report.md", "report.html", "junit.xml")
#: A report.json larger than this is not one of ours.
MAX_REPORT_BYTES = 64 * 1024 * 1024


def render_run(run_dir: Path) -> dict[str, Any]:
    from dirt.report.render import to_html, to_json, to_junit, to_markdown

    contents = read_journal(run_dir)
    if not contents.events:
        detail = f": {contents.problems[0]}" if contents.problems else ""
        raise JournalError(f"{contents.path}:1:1: the journal holds no readable event{detail}")
    report = redact(build_report(contents.events, contents.problems))
    for name, render in zip(REPORT_FILES, (to_json, to_markdown, to_html, to_junit)):
        _write(run_dir / name, render(report))
    return report


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written file behind
        raise
    os.replace(tmp, path)


def _summary(path: Path) -> dict[str, Any]:
    """One run's line in the index, from its report.json; raises ValueError when it is not one."""
    try:
        raw = safefile.read_bytes(path, limit=MAX_REPORT_BYTES)  # a FIFO is refused, not waited on
    except safefile.UnreadableFile as exc:
        raise ValueError(exc.message) from None
    data = json.loads(raw.decode("utf-8"), parse_constant=lambda name: None)
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
        raise ValueError("not a dirt report")

    scenario, target, timings = (data.get(k) if isinstance(data.get(k), dict) else {}
                                 for k in ("scenario", "target", "timings"))
    mttd = timings.get("mttd_seconds") if isinstance(timings.get("mttd_seconds"), dict) else {}
    expectations = data.get("expectations") if isinstance(data.get("expectations"), list) else []
    return {
        "href": quote(f"{path.parent.name}/report.html", safe="/"),
        "started_at": text(data.get("started_at"), ""),
        "scenario": text(scenario.get("name")),
        "target": text(target.get("name")),
        "verdict": text(data.get("verdict")) if data.get("verdict") in ("passed", "failed", "aborted") else "?",
        "mttd": {str(k): number(v) for k, v in mttd.items()},
        "mttr": number(timings.get("mttr_seconds")),
        "duration": number(data.get("duration_seconds")),
        "failed": sum(1 for x in expectations if isinstance(x, dict) and not x.get("passed")),
        "score": _score(data),
    }


def _score(report: dict[str, Any]) -> float | None:
    """The run's resilience score (dirt.history.analysis), None when this report cannot be scored."""
    from dirt.history.analysis import run_score  # here, not at the top: it loads SQLAlchemy

    try:
        return number(run_score(report))
    except (TypeError, ValueError, KeyError, AttributeError, ArithmeticError):  # a damaged or foreign report
        return None


def update_index(report_dir: Path, *, overdue: dict[str, str] | None = None, gamedays_dir: Path | None = None) -> Path:
    """Rewrite ``index.html`` under ``report_dir``: the dashboard of every run and game day there.

    ``overdue`` (scenario name -> why) comes from the caller, which knows the schedules;
    game days are read from ``gamedays_dir`` (default ``<report_dir>/gamedays``).
    """
    from dirt.history.analysis import WINDOW
    from dirt.report.render import _env

    runs, skipped = [], []
    for path in sorted(report_dir.glob("*/report.json")):
        try:
            runs.append(_summary(path))
        except (OSError, ValueError, ArithmeticError, RecursionError) as exc:
            skipped.append({"folder": path.parent.name, "why": str(exc).split("\n")[0][:120]})
    runs.sort(key=lambda r: r["started_at"], reverse=True)
    gamedays, gamedays_skipped = gameday_summaries(
        report_dir.resolve(), (gamedays_dir or report_dir / "gamedays").resolve())
    index = report_dir / "index.html"
    report_dir.mkdir(parents=True, exist_ok=True)
    scenarios = scenario_rows(runs, overdue or {}, window=WINDOW)
    page = _env().get_template("index.html.j2").render(
        runs=runs, skipped=skipped + gamedays_skipped, scenarios=scenarios, gamedays=gamedays,
        max_points=MAX_POINTS, score_runs=WINDOW)
    _write(index, page)
    return index

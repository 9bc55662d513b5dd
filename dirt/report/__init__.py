"""Reports: rendered from the journal alone, in JSON, Markdown, HTML and JUnit.

``render_run(run_dir)`` reads ``journal.jsonl`` and writes ``report.json``,
``report.md``, ``report.html`` and ``junit.xml`` beside it; ``update_index``
rewrites ``reports/index.html`` from every run's ``report.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dirt.engine.journal import read_journal
from dirt.errors import ReportError
from dirt.redact import redact
from dirt.report.model import SCHEMA_VERSION, build_report

__all__ = ["SCHEMA_VERSION", "build_report", "render_run", "update_index", "REPORT_FILES"]

REPORT_FILES = ("report.json", "report.md", "report.html", "junit.xml")


def render_run(run_dir: Path) -> dict[str, Any]:
    from dirt.report.render import to_html, to_json, to_junit, to_markdown

    events = read_journal(run_dir)
    if not events:
        raise ReportError(f"{run_dir}: the journal is empty")
    report = redact(build_report(events))
    for name, render in zip(REPORT_FILES, (to_json, to_markdown, to_html, to_junit)):
        _write(run_dir / name, render(report))
    return report


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def update_index(report_dir: Path) -> Path:
    """Rewrite ``index.html`` listing every run under ``report_dir``, newest first."""
    from dirt.report.render import _env

    runs = []
    for path in report_dir.glob("*/report.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        runs.append({
            "href": f"{path.parent.name}/report.html",
            "started_at": data.get("started_at") or "",
            "scenario": data.get("scenario", {}).get("name", "?"),
            "target": data.get("target", {}).get("name", "?"),
            "verdict": data.get("verdict", "?"),
            "mttd": data.get("timings", {}).get("mttd_seconds", {}),
            "mttr": data.get("timings", {}).get("mttr_seconds"),
            "duration": data.get("duration_seconds"),
            "failed": sum(1 for x in data.get("expectations", []) if not x.get("passed")),
        })
    runs.sort(key=lambda r: r["started_at"], reverse=True)
    index = report_dir / "index.html"
    report_dir.mkdir(parents=True, exist_ok=True)
    _write(index, _env().get_template("index.html.j2").render(runs=runs))
    return index

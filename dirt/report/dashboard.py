"""The team's DiRT dashboard (``reports/index.html``): per-scenario trends and game days.

Everything here is a pure function of the run summaries that ``update_index``
reads from the reports folder, so the dashboard can be rebuilt from the folder
alone at any time.  The sparklines are geometry computed here (testable without
a browser) and drawn as inline SVG by the template: no script, no network.

MTTD is drawn as *the worst alert per run* (the longest time to detect among the
run's expected alerts): one line per scenario stays readable when a scenario
expects several alerts, and a run whose slowest alert got slower is exactly the
regression a team wants to see.  A run where an expected alert never fired has
no MTTD; it is marked "not detected" at the top of the chart.

Game days are read from their own ``report.json`` (``dirt.report.gameday``); a
drill is linked to its report only when that file exists (found by its run id,
or its ``report_href`` relative to the game day's folder), never outside the
reports and game-day folders.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dirt.core import safefile
from dirt.core.durations import format_duration

#: Points per sparkline: the most recent runs only, so a long history stays light.
MAX_POINTS = 50
#: A game-day report.json larger than this is not one of ours.
MAX_GAMEDAY_BYTES = 16 * 1024 * 1024
FAILED_VERDICTS = frozenset({"failed", "aborted"})
_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class SeriesPoint:
    """One run's value in a series; ``value`` None means the run measured nothing."""

    at: str
    value: float | None
    verdict: str
    href: str
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in FAILED_VERDICTS


@dataclass(frozen=True)
class PlotPoint:
    x: float
    y: float
    point: SeriesPoint

    @property
    def title(self) -> str:
        value = format_duration(self.point.value) if self.point.value is not None else "not measured"
        note = f" ({self.point.note})" if self.point.note else ""
        return f"{value}{note} · {self.point.at or '?'} · {self.point.verdict}"


@dataclass(frozen=True)
class Sparkline:
    """Where to draw one series: a polyline through the measured points, a mark per run."""

    width: int
    height: int
    points: tuple[PlotPoint, ...]  # runs with a value
    missing: tuple[PlotPoint, ...]  # runs without one (drawn at the top, in red when failed)
    top: float | None  # the value at the top of the chart

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)

    @property
    def last(self) -> str:
        """The latest measured value, shown beside the chart."""
        return format_duration(self.points[-1].point.value) if self.points else "-"

    @property
    def label(self) -> str:
        values = [p.point.value for p in self.points if p.point.value is not None]
        if not values:
            return "no measurement"
        return f"last {format_duration(values[-1])}, best {format_duration(min(values))}, " \
               f"worst {format_duration(max(values))}"


def sparkline(series: Sequence[SeriesPoint], *, width: int = 180, height: int = 36, pad: int = 4) -> Sparkline:
    """Lay out the last ``MAX_POINTS`` of ``series`` (oldest first) evenly from left to right.

    The y axis runs from 0 (bottom) to the largest value (top), so the height of a
    point is comparable across runs of the same scenario.
    """
    series = list(series)[-MAX_POINTS:]
    values = [p.value for p in series if p.value is not None]
    top = max(values) if values else None
    step = (width - 2 * pad) / (len(series) - 1) if len(series) > 1 else 0.0
    points, missing = [], []
    for i, p in enumerate(series):
        x = pad + i * step if len(series) > 1 else width / 2
        if p.value is None:
            missing.append(PlotPoint(x, float(pad), p))
            continue
        share = p.value / top if top else 0.0
        points.append(PlotPoint(x, height - pad - share * (height - 2 * pad), p))
    return Sparkline(width, height, tuple(points), tuple(missing), top)


def worst_mttd(mttd: dict[str, float | None]) -> tuple[float | None, str]:
    """The run's MTTD for the chart and a note: the slowest alert, or 'not detected'."""
    undetected = sorted(name for name, value in mttd.items() if value is None)
    if undetected:
        return None, f"{', '.join(undetected)} not detected"
    name = max(mttd, key=lambda n: mttd[n] or 0.0)
    return mttd[name], name


def scenario_rows(runs: Sequence[dict[str, Any]], overdue: dict[str, str], *,
                  window: int = 5) -> list[dict[str, Any]]:
    """One row per scenario (by name), from run summaries in any order; overdue scenarios
    that never ran get a row too (never having run is the worst kind of overdue).

    A scenario's score is the mean of its last ``window`` runs' scores, as in
    ``dirt.history.analysis.scenario_scores`` (the caller passes its ``WINDOW``).
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_name.setdefault(run["scenario"], []).append(run)
    for name in overdue:
        by_name.setdefault(name, [])
    rows = []
    for name in sorted(by_name):
        history = sorted(by_name[name], key=lambda r: r["started_at"])
        recent = history[-MAX_POINTS:]
        scores = [r["score"] for r in history[-window:] if r.get("score") is not None]
        mttd = []
        for r in recent:
            if r["mttd"]:  # a run that expected no alert has nothing to detect
                value, note = worst_mttd(r["mttd"])
                mttd.append(SeriesPoint(r["started_at"], value, r["verdict"], r["href"], note))
        rows.append({
            "scenario": name,
            "runs": len(history),
            "last": history[-1] if history else None,
            "score": round(sum(scores) / len(scores), 1) if scores else None,
            "overdue": overdue.get(name),
            "mttd": sparkline(mttd),
            "mttr": sparkline([SeriesPoint(r["started_at"], r["mttr"], r["verdict"], r["href"]) for r in recent]),
        })
    return rows


def gameday_summaries(report_dir: Path, gamedays_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every game day under ``gamedays_dir`` (newest first) and the folders that could not be read."""
    found, skipped = [], []
    for path in sorted(gamedays_dir.glob("*/report.json")):
        try:
            found.append(_gameday(path, report_dir))
        except (OSError, ValueError, ArithmeticError, RecursionError) as exc:
            why = str(exc).split("\n")[0][:120]
            skipped.append({"folder": f"{gamedays_dir.name}/{path.parent.name}", "why": why})
    found.sort(key=lambda g: g["started_at"], reverse=True)
    return found, skipped


def _gameday(path: Path, report_dir: Path) -> dict[str, Any]:
    try:
        raw = safefile.read_bytes(path, limit=MAX_GAMEDAY_BYTES)
    except safefile.UnreadableFile as exc:
        raise ValueError(exc.message) from None
    data = json.loads(raw.decode("utf-8"), parse_constant=lambda name: None)
    if not isinstance(data, dict) or not isinstance(data.get("drills"), list):
        raise ValueError("not a dirt game-day report")
    drills = []
    for d in data["drills"]:
        if not isinstance(d, dict):
            continue
        drills.append({
            "id": text(d.get("id")), "scenario": text(d.get("name"), text(d.get("scenario"), "")),
            "verdict": verdict(d.get("verdict")),
            "score": number(d.get("score")), "weight": number(d.get("weight")),
            "href": _drill_href(d, path.parent, report_dir),
        })
    own = path.parent / "report.html"
    return {
        "name": text(data.get("name")), "run_id": text(data.get("run_id"), path.parent.name),
        "started_at": text(data.get("started_at"), ""), "ended_at": text(data.get("ended_at"), ""),
        "verdict": verdict(data.get("verdict")), "score": number(data.get("score")), "drills": drills,
        "href": _href(own, report_dir) if own.is_file() else None,
    }


def _drill_href(drill: dict[str, Any], gameday_dir: Path, report_dir: Path) -> str | None:
    """A link from the index to the drill's report, only if that file is really there."""
    candidates = []
    run_id = drill.get("run_id")
    if isinstance(run_id, str) and _FOLDER.fullmatch(run_id):
        candidates.append(report_dir / run_id / "report.html")
    for report in (drill.get("report_href"), drill.get("report")):  # relative to the game day's folder
        if isinstance(report, str) and report and "\x00" not in report:
            candidates += [gameday_dir / report, report_dir / report]
    for candidate in candidates:
        resolved = Path(os.path.normpath(candidate))
        if any(resolved.is_relative_to(d) for d in (report_dir, gameday_dir.parent)) and _is_file(resolved):
            return _href(resolved, report_dir)
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, a permission: not a link we can offer
        return False


def _href(path: Path, report_dir: Path) -> str:
    """A link from ``report_dir/index.html``; game days may live in another folder (``gamedays_dir``)."""
    return quote(Path(os.path.relpath(path, report_dir)).as_posix(), safe="/")


def text(value: Any, default: str = "?") -> str:
    return value if isinstance(value, str) else default


def verdict(value: Any) -> str:
    return value if value in ("passed", "failed", "aborted", "skipped", "not-run") else "?"


def number(value: Any) -> float | None:
    """Finite numbers only: 1e999 parses as inf, a 400-digit int overflows a float."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except OverflowError:
        return None
    return result if math.isfinite(result) else None

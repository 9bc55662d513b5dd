"""The game-day report: one page for the whole day, from its journal and its drills' report.json files.

``render_gameday(day_dir)`` reads ``<reports>/gamedays/<run_id>/journal.jsonl``
(``dirt.journal.gameday``) and the ``report.json`` of every drill it ran, and
writes ``report.json``, ``report.md``, ``report.html`` and ``junit.xml`` beside
the journal: who took part in which role, who allowed the day, one timeline
across every drill, what failed, the day's score, and links to each drill's
report and playbook.  Like a drill report it is a pure function of files
already written, so it can be re-rendered at any time.

The day's score is the weighted mean (each drill's ``weight``) of its drills'
run scores (``dirt.history.analysis.run_score``, 0..100); a drill that was
skipped or not run counts as 0 — it proved nothing.  A day skipped or vetoed
before any drill ran has no score.

report.json (``schema_version`` 1, ``kind: gameday``): run_id, name, path,
digest, description, owner, trigger, schedule, participants[], approval{allowed,
via, by, reason, webhook}, verdict, reason, stopped_after, skipped{reason,
alerts}, started_at, ended_at, duration_seconds, score, drills[] {id, scenario,
target, weight, depends_on, on_failure, blast_radius[], verdict, reason,
run_id, run_dir, report_href, playbook, playbook_href, mttd{alert: s}, mttr,
score, failures[], start_offset, end_offset}, findings[] {drill, kind, name,
detail}, notifications[] {notification, sink, ok, detail, drill},
warnings[], journal_problems[].
"""

from __future__ import annotations

import html
import json
import math
import os
import posixpath
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from dirt.core import safefile
from dirt.core.durations import format_duration
from dirt.core.errors import JournalError
from dirt.core.redact import redact
from dirt.journal import events as ev
from dirt.journal import gameday as gd
from dirt.report.model import iso

SCHEMA_VERSION = 1
REPORT_FILES = ("report.json", "report.md", "report.html", "junit.xml")
MAX_REPORT_BYTES = 64 * 1024 * 1024
VERDICT_COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "aborted": "#ef6c00", "skipped": "#9e9e9e",
                   "not-run": "#bdbdbd"}


def drill_score(report: dict[str, Any] | None) -> float | None:
    """A drill's run score, 0..100 (``dirt.history.analysis.run_score``); None without a report."""
    if report is None:
        return None
    try:
        from dirt.history.analysis import run_score
    except ImportError:  # the history package is optional to the report; same idea, coarser
        return _fallback_score(report)
    try:
        return round(float(run_score(report)), 1)
    except Exception:  # noqa: BLE001 - a report the scorer cannot read scores nothing, it breaks nothing
        return None


def _fallback_score(report: dict[str, Any]) -> float:
    if report.get("verdict") == "aborted":
        return 0.0
    expectations = [x for x in report.get("expectations") or [] if isinstance(x, dict)]
    if not expectations:
        return 100.0 if report.get("verdict") == "passed" else 0.0
    return round(100.0 * sum(1 for x in expectations if x.get("passed")) / len(expectations), 1)


def day_score(drills: list[dict[str, Any]]) -> float | None:
    """Weighted mean of the drills' scores; skipped and not-run drills count as 0; None if nothing ran."""
    if not any(d.get("run_id") for d in drills):
        return None
    total = sum(float(d.get("weight") or 1.0) for d in drills)
    if total <= 0:
        return None
    points = sum(float(d.get("weight") or 1.0) * float(d.get("score") or 0.0) for d in drills)
    return round(points / total, 1)


# -- building the report -------------------------------------------------------------------

def render_gameday(day_dir: Path) -> dict[str, Any]:
    """Write the game-day report files into ``day_dir``; returns the report dictionary."""
    events, problems = gd.read_gameday_journal(day_dir)
    if not events:
        raise JournalError(f"{day_dir / gd.JOURNAL_NAME}:1:1: the game-day journal holds no readable event")
    reports_dir = day_dir.resolve().parent.parent
    drill_reports: dict[str, dict[str, Any] | None] = {}
    for event in events:
        if isinstance(event, gd.DrillEnded) and event.run_dir:
            drill_reports[event.run_dir] = _drill_report(reports_dir / event.run_dir, problems)
    report = redact(build_gameday_report(events, drill_reports, problems))
    for name, render in zip(REPORT_FILES, (to_json, to_markdown, to_html, to_junit)):
        _write(day_dir / name, render(report))
    return report


def _drill_report(run_dir: Path, problems: list[str]) -> dict[str, Any] | None:
    path = run_dir / "report.json"
    try:
        data = json.loads(safefile.read_bytes(path, limit=MAX_REPORT_BYTES).decode("utf-8"),
                          parse_constant=lambda name: None)
    except (safefile.UnreadableFile, UnicodeDecodeError, ValueError, RecursionError) as exc:
        problems.append(f"{path}: cannot read the drill's report ({getattr(exc, 'message', None) or exc})")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("schema_version"), int):
        problems.append(f"{path}: not a dirt report")
        return None
    return data


def build_gameday_report(events: list[ev.Event], drill_reports: dict[str, dict[str, Any] | None],
                         problems: list[str] | None = None) -> dict[str, Any]:
    """Fold the game-day events (and each drill's report) into the report dictionary."""
    start = next((e for e in events if isinstance(e, gd.GameDayStarted)), None)
    end = next((e for e in reversed(events) if isinstance(e, gd.GameDayEnded)), None)
    approval = next((e for e in reversed(events) if isinstance(e, gd.ApprovalResult)), None)
    skipped = next((e for e in events if isinstance(e, gd.DaySkipped)), None)
    planned = {d.get("id"): d for d in (start.drills if start else [])}
    first_ts = events[0].ts if events else None
    started: dict[str, gd.DrillStarted] = {e.drill: e for e in events if isinstance(e, gd.DrillStarted)}
    drills: list[dict[str, Any]] = []
    ended_ids = set()
    for e in events:
        if isinstance(e, gd.DrillEnded):
            ended_ids.add(e.drill)
            data = drill_reports.get(e.run_dir or "") if e.run_dir else None
            drills.append(_drill_entry(e, planned.get(e.drill, {}), data, started.get(e.drill)))
    for drill_id, plan in planned.items():  # planned but the day died before it ended
        if drill_id not in ended_ids:
            drills.append(_drill_entry(None, plan, None, started.get(drill_id)))
    findings = [f for d in drills for f in _findings(d, drill_reports.get(d.get("run_dir") or ""))]
    verdict = end.verdict if end else "aborted"
    reason = end.reason if end else "the game day ended without a gameday.end event (killed?)"
    last_ts = events[-1].ts if events else None
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "gameday",
        "run_id": start.run_id if start else None,
        "name": start.name if start else None,
        "path": start.path if start else None,
        "digest": start.digest if start else "",
        "description": start.description if start else "",
        "owner": start.owner if start else None,
        "dirt_version": start.dirt_version if start else "",
        "trigger": start.trigger if start else None,
        "schedule": start.schedule if start else None,
        "participants": start.participants if start else [],
        "approval": None if approval is None else {
            "allowed": approval.allowed, "via": approval.via, "by": approval.by, "reason": approval.reason,
            "webhook": approval.webhook, "at": iso(approval.ts)},
        "verdict": verdict,
        "complete": end is not None,
        "reason": reason,
        "stopped_after": end.stopped_after if end else None,
        "skipped": None if skipped is None else {"reason": skipped.reason, "alerts": skipped.alerts},
        "started_at": iso(first_ts),
        "ended_at": iso(last_ts),
        "duration_seconds": None if first_ts is None or last_ts is None else round(last_ts - first_ts, 3),
        "score": None if skipped is not None else day_score(drills),
        "abort_when": start.abort_when if start else [],
        "drills": drills,
        "findings": findings,
        "notifications": [{"notification": e.notification, "sink": e.sink, "ok": e.ok, "detail": e.detail,
                           "drill": e.drill, "offset": e.t} for e in events if isinstance(e, gd.NotifySent)],
        "warnings": [e.message for e in events if isinstance(e, gd.GameDayWarning)],
        "journal_problems": list(problems or []),
    }


def _drill_entry(e: gd.DrillEnded | None, plan: dict[str, Any], data: dict[str, Any] | None,
                 began: gd.DrillStarted | None) -> dict[str, Any]:
    run_dir = e.run_dir if e else None
    href = f"../../{run_dir}/report.html" if run_dir else None
    playbook, playbook_href = _playbook(data, run_dir)
    timings = data.get("timings") if data and isinstance(data.get("timings"), dict) else {}
    return {
        "id": e.drill if e else plan.get("id"),
        "scenario": e.scenario if e else plan.get("scenario"),
        "name": (data.get("scenario") or {}).get("name") if data else plan.get("name"),
        "target": (data.get("target") or {}).get("name") if data else plan.get("target"),
        "weight": plan.get("weight", 1.0),
        "depends_on": plan.get("depends_on", []),
        "on_failure": plan.get("on_failure", "stop"),
        "blast_radius": plan.get("blast_radius", []),
        "verdict": e.verdict if e else "not-run",
        "reason": e.reason if e else "the game day ended before this drill",
        "run_id": e.run_id if e else None,
        "run_dir": run_dir,
        "report_href": href,
        "playbook": playbook,
        "playbook_href": playbook_href,
        "mttd": dict(e.mttd) if e else {},
        "mttr": e.mttr if e else None,
        "duration_seconds": data.get("duration_seconds") if data else None,
        "score": drill_score(data),
        "failures": list(e.failures) if e else [],
        "start_offset": began.t if began else None,
        "end_offset": e.t if e and began else None,
        "phases": [p for p in (data.get("phases") or []) if isinstance(p, dict)] if data else [],
        "t_inject_offset": timings.get("t_inject_offset"),
        "alerts": [a for a in ((data.get("alerts") or {}).get("fired") or []) if isinstance(a, dict)] if data else [],
    }


def _playbook(data: dict[str, Any] | None, run_dir: str | None) -> tuple[str | None, str | None]:
    """The drill's playbook (as its report names it) and a link to it from the game-day folder."""
    if not data:
        return None, None
    name = (data.get("scenario") or {}).get("playbook")
    url = next((s.get("playbook_url") for s in data.get("steps") or []
                if isinstance(s, dict) and isinstance(s.get("playbook_url"), str)), None)
    if url is None:
        return name, None
    url = url.split("#")[0]
    if "://" not in url and not url.startswith("/") and run_dir:
        url = posixpath.normpath(f"../../{run_dir}/{url}")  # the drill report's links are relative to its folder
    return name or url, url


def _findings(drill: dict[str, Any], data: dict[str, Any] | None) -> list[dict[str, Any]]:
    """What went wrong in one drill: failed expectations, errors, faults left in effect, or why it did not run."""
    found: list[dict[str, Any]] = []
    if drill["verdict"] in ("skipped", "not-run") or (data is None and drill["verdict"] != "passed"):
        return [{"drill": drill["id"], "kind": drill["verdict"], "name": drill["id"], "detail": drill["reason"]}]
    if data is None:
        return found
    for x in data.get("expectations") or []:
        if isinstance(x, dict) and not x.get("passed"):
            found.append({"drill": drill["id"], "kind": str(x.get("kind") or "expectation"),
                          "name": str(x.get("name") or ""), "detail": str(x.get("detail") or "failed")})
    for step in data.get("steps") or []:
        if isinstance(step, dict) and step.get("status") == "failed":
            found.append({"drill": drill["id"], "kind": f"{step.get('section') or 'step'} step",
                          "name": str(step.get("name") or ""), "detail": str(step.get("detail") or "failed")})
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            found.append({"drill": drill["id"], "kind": "error", "name": str(err.get("phase") or ""),
                          "detail": str(err.get("message") or "")})
    if data.get("verdict") == "aborted" and isinstance(data.get("abort"), dict):
        found.append({"drill": drill["id"], "kind": "aborted", "name": "abort",
                      "detail": str(data["abort"].get("reason") or "aborted")})
    for fault in data.get("still_in_effect") or []:
        found.append({"drill": drill["id"], "kind": "still in effect", "name": str(fault),
                      "detail": "the drill left this fault in effect: run `dirt rollback` on its run folder"})
    if not found and drill["verdict"] != "passed":
        found.extend({"drill": drill["id"], "kind": "failure", "name": drill["id"], "detail": str(f)}
                     for f in drill["failures"] or [drill["reason"]])
    return found


# -- rendering ----------------------------------------------------------------------------

def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def to_markdown(report: dict[str, Any]) -> str:
    from dirt.report.render import _env

    return _env().get_template("gameday.md.j2").render(r=report)


def to_html(report: dict[str, Any]) -> str:
    from dirt.report.render import _env

    return _env().get_template("gameday.html.j2").render(r=report, timeline=timeline_svg(report),
                                                         colours=VERDICT_COLOURS)


def to_junit(report: dict[str, Any]) -> str:
    """One test case per drill: failed is a failure, aborted an error, skipped and not run skipped."""
    name = report.get("name") or "gameday"
    suite = ET.Element("testsuite", name=f"dirt.gameday.{name}", timestamp=report.get("started_at") or "",
                       time=f"{report.get('duration_seconds') or 0:.3f}")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for d in report["drills"]:
        case = ET.SubElement(suite, "testcase", classname=f"dirt.gameday.{name}", name=str(d["id"]),
                             time=f"{d.get('duration_seconds') or 0:.3f}")
        counts["tests"] += 1
        if d.get("report_href"):
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="report", value=d["report_href"])
        detail = "; ".join(d.get("failures") or []) or d.get("reason") or d["verdict"]
        if d["verdict"] == "failed":
            counts["failures"] += 1
            ET.SubElement(case, "failure", message=detail, type="failed")
        elif d["verdict"] == "aborted":
            counts["errors"] += 1
            ET.SubElement(case, "error", message=detail, type="aborted")
        elif d["verdict"] in ("skipped", "not-run"):
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=d.get("reason") or d["verdict"])
    for key, value in counts.items():
        suite.set(key, str(value))
    suites = ET.Element("testsuites", name="dirt", **{k: str(v) for k, v in counts.items() if k != "skipped"})
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def timeline_svg(report: dict[str, Any]) -> str:
    """One lane per drill on the day's clock: the drill's span coloured by verdict, its phases inside,
    a diamond where its fault took effect and a tick where each alert fired."""
    from dirt.report.render import PHASE_COLOURS, _ticks

    total = max(report.get("duration_seconds") or 0.0, 1.0)
    label_w, width, lane_h, top = 170, 1000, 26, 28
    plot_w = width - label_w - 20

    def x(offset: Any) -> float:
        value = offset if _finite(offset) else 0.0
        return label_w + max(0.0, min(value, total)) / total * plot_w

    def esc(text: Any) -> str:
        return html.escape(str(text), quote=True)

    drills = report.get("drills") or []
    height = top + lane_h * max(1, len(drills)) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="timeline of the game day">']
    for t in _ticks(total):
        parts.append(f'<line x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{height - 6}" stroke="#e0e0e0"/>'
                     f'<text x="{x(t):.1f}" y="{top - 10}" font-size="10" text-anchor="middle" fill="#555">'
                     f'{format_duration(t)}</text>')
    for i, d in enumerate(drills):
        y = top + i * lane_h
        parts.append(f'<text x="4" y="{y + 13}" font-size="11" fill="#333">{esc(str(d["id"])[:26])}</text>')
        start = d.get("start_offset")
        if not _finite(start):
            parts.append(f'<text class="not-run" x="{label_w}" y="{y + 13}" font-size="11" fill="#757575">'
                         f'{esc(d["verdict"])}: {esc(str(d.get("reason") or "")[:90])}</text>')
            continue
        end = d.get("end_offset") if _finite(d.get("end_offset")) else total
        colour = VERDICT_COLOURS.get(d["verdict"], "#757575")
        parts.append(f'<rect class="drill" data-drill="{esc(d["id"])}" x="{x(start):.1f}" y="{y}" '
                     f'width="{max(2.0, x(end) - x(start)):.1f}" height="20" fill="{colour}" fill-opacity="0.25" '
                     f'stroke="{colour}" rx="2"><title>{esc(d["id"])}: {esc(d["verdict"])} '
                     f'({format_duration(d.get("duration_seconds"))})</title></rect>')
        for p in d.get("phases") or []:
            if not _finite(p.get("start_offset")):
                continue
            p_end = p.get("end_offset") if _finite(p.get("end_offset")) else (end - start)
            parts.append(f'<rect class="phase" x="{x(start + p["start_offset"]):.1f}" y="{y + 4}" '
                         f'width="{max(1.0, x(start + p_end) - x(start + p["start_offset"])):.1f}" height="12" '
                         f'fill="{PHASE_COLOURS.get(str(p.get("name")), "#999")}"><title>{esc(d["id"])}: '
                         f'{esc(p.get("name"))} {esc(p.get("status"))}</title></rect>')
        if _finite(d.get("t_inject_offset")):
            at = x(start + d["t_inject_offset"])
            parts.append(f'<path class="fault" d="M{at:.1f},{y + 2} l5,8 l-5,8 l-5,-8 z" fill="#c2185b">'
                         f'<title>{esc(d["id"])}: fault took effect</title></path>')
        for a in d.get("alerts") or []:
            offset = a.get("server_offset") if _finite(a.get("server_offset")) else a.get("offset")
            if _finite(offset):
                parts.append(f'<line class="alert" x1="{x(start + offset):.1f}" y1="{y}" x2="{x(start + offset):.1f}" '
                             f'y2="{y + 20}" stroke="#f9a825" stroke-width="2"><title>{esc(a.get("name"))} fired'
                             f'</title></line>')
    parts.append("</svg>")
    return "\n".join(parts)

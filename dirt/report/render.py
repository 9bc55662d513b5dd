"""Render a report dictionary as JSON, Markdown, self-contained HTML and JUnit XML.

All renderers are pure functions of the dictionary from ``build_report``; the
HTML has its CSS inline and draws the timeline as inline SVG, so the file can
be mailed or archived as CI artefact and opened without any network.
"""

from __future__ import annotations

import functools
import html
import json
import math
import xml.etree.ElementTree as ET
from typing import Any

from dirt.core.durations import format_duration
from dirt.report.model import served_runs

PHASE_COLOURS = {
    "preflight": "#8da0cb", "inject": "#e78ac3", "detect": "#fc8d62", "recover": "#66c2a5",
    "verify": "#a6d854", "rollback": "#e5c494", "cleanup": "#b3b3b3",
}
STATUS_COLOURS = {"passed": "#2e7d32", "failed": "#c62828", "aborted": "#ef6c00", "interrupted": "#6d4c41",
                  "running": "#757575", "skipped": "#9e9e9e"}
#: One colour per server on an availability lane's "served by" sub-lanes (cycled).
SERVER_COLOURS = ("#00897b", "#5e35b1", "#f4511e", "#3949ab", "#7cb342", "#8e24aa", "#00acc1", "#6d4c41")
#: Height of one server's sub-lane on the timeline.
_SERVED_LANE = 10
#: The Markdown and HTML list at most this many gaps of one server.
MAX_GAPS_SHOWN = 5


@functools.cache
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dirt.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "xml", "html.j2"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["dur"] = format_duration
    env.filters["num"] = lambda v, digits=1: f"{v:.{digits}f}" if isinstance(v, (int, float)) and math.isfinite(v) else "-"
    env.filters["pct"] = _percent
    env.filters["ms"] = lambda v: f"{v * 1000:.0f}ms" if _finite(v) else "-"
    env.filters["objective"] = _objective
    env.filters["waits"] = waits_text
    env.globals["STATUS_COLOURS"] = STATUS_COLOURS
    env.globals["served_rows"] = served_rows
    return env


def waits_text(waits: Any, limit: int = 3) -> str:
    """What a phase or step waited on, longest first: ``namespaces terminating 9.5s; verify: web 1.0s``."""
    if not isinstance(waits, dict) or not waits:
        return ""
    ranked = sorted(((v, k) for k, v in waits.items() if _finite(v)), reverse=True)
    text = "; ".join(f"{label} {format_duration(seconds)}" for seconds, label in ranked[:limit])
    return text + (f"; {len(ranked) - limit} more" if len(ranked) > limit else "")


def timings_text(report: dict[str, Any]) -> str:
    """Where a drill's time went, as ``dirt run --timings`` prints it: each phase split into the
    time dirt waited (sleeping between polls, by what it waited for) and the time it worked (its
    steps' own actions: API calls, commands, restores), then the steps that waited longest."""
    name = (report.get("scenario") or {}).get("name", "?")
    lines = [f"timings: {name} ({format_duration(report.get('duration_seconds'))})",
             f"  {'phase':10} {'total':>8} {'working':>8} {'waiting':>8}  waiting on"]
    for p in report.get("phases") or []:
        lines.append(f"  {p['name']:10} {format_duration(p.get('seconds')):>8} "
                     f"{format_duration(p.get('working_seconds')):>8} {format_duration(p.get('waited_seconds')):>8}"
                     f"  {waits_text(p.get('waits'))}")
    waited = sorted(((sum(s["waits"].values()), s) for s in report.get("steps") or [] if s.get("waits")),
                    key=lambda pair: -pair[0])
    if waited:
        lines.append("  steps that waited longest:")
        for seconds, s in waited[:5]:
            lines.append(f"    {s.get('phase') or s['section']}: {s['name']} {format_duration(s.get('seconds'))}, "
                         f"of which waiting {format_duration(seconds)} ({waits_text(s['waits'])})")
    return "\n".join(lines)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _percent(ratio: Any) -> str:
    if not _finite(ratio):
        return "-"
    digits = 0 if ratio in (0, 1) else (2 if ratio > 0.99 else 1)
    return f"{ratio * 100:.{digits}f}%"


def _objective(objective: Any) -> str:
    """An availability objective in words: 'success ≥ 99.9%, outage ≤ 2s'."""
    objective = objective if isinstance(objective, dict) else {}
    parts = []
    if _finite(objective.get("min_success")):
        parts.append(f"success ≥ {objective['min_success'] * 100:g}%")
    if _finite(objective.get("max_outage_seconds")):
        parts.append(f"outage ≤ {format_duration(objective['max_outage_seconds'])}")
    return ", ".join(parts) or "none (measured only)"


def served_rows(probe: dict[str, Any]) -> list[dict[str, Any]]:
    """Who served a probe's users: per server its answers, share, first and last answer, and the gaps
    between its spans in words ("+5.0s to +100.0s (95.0s)")."""
    served = {k: v for k, v in (probe.get("served") or {}).items() if _finite(v)}
    spans = probe.get("served_spans") if isinstance(probe.get("served_spans"), dict) else {}
    total = sum(served.values())
    rows = []
    for name, answers in served.items():
        runs = [s for s in spans.get(name) or [] if isinstance(s, dict)
                and _finite(s.get("start_offset")) and _finite(s.get("end_offset"))]
        gaps = [f"+{a['end_offset']:.1f}s to +{b['start_offset']:.1f}s "
                f"({format_duration(b['start_offset'] - a['end_offset'])})" for a, b in zip(runs, runs[1:])]
        if len(gaps) > MAX_GAPS_SHOWN:
            gaps = gaps[:MAX_GAPS_SHOWN] + [f"{len(gaps) - MAX_GAPS_SHOWN} more"]
        rows.append({"name": name, "answers": answers, "share": answers / total if total else None,
                     "first_offset": runs[0]["start_offset"] if runs else None,
                     "last_offset": runs[-1]["end_offset"] if runs else None,
                     "gaps": ", ".join(gaps) or "none"})
    return rows


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def to_markdown(report: dict[str, Any]) -> str:
    return _env().get_template("report.md.j2").render(r=report)


def to_html(report: dict[str, Any]) -> str:
    return _env().get_template("report.html.j2").render(r=report, timeline=timeline_svg(report))


def to_junit(report: dict[str, Any]) -> str:
    """One test case per expectation and per step; failures carry the detail."""
    name = report["scenario"].get("name", "scenario")
    suite = ET.Element("testsuite", name=f"dirt.{name}", timestamp=report.get("started_at") or "",
                       time=f"{report.get('duration_seconds') or 0:.3f}")
    cases = 0
    failures = 0
    errors = 0
    for x in report["expectations"]:
        case = ET.SubElement(suite, "testcase", classname=f"dirt.{name}.expectations",
                             name=f"{x['kind']}: {x['name']}", time=f"{x.get('measured_seconds') or 0:.3f}")
        cases += 1
        if not x.get("passed"):
            failures += 1
            fail = ET.SubElement(case, "failure", message=x.get("detail") or "expectation failed", type=x["kind"])
            fail.text = (f"objective {x.get('objective_seconds')}s, measured {x.get('measured_seconds')}s\n"
                         f"{x.get('detail') or ''}")
            if x["kind"] == "availability":
                data = x.get("data") or {}
                fail.text = (f"objective {data.get('objective')}, measured {data.get('measured')}\n"
                             f"{x.get('detail') or ''}")
    for s in report["steps"]:
        case = ET.SubElement(suite, "testcase", classname=f"dirt.{name}.{s.get('section')}",
                             name=f"{s.get('section')}[{s.get('index')}] {s.get('name')}",
                             time=f"{s.get('seconds') or 0:.3f}")
        cases += 1
        if s.get("playbook_url"):
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="playbook_url", value=s["playbook_url"])
        if s.get("status") == "failed":
            failures += 1
            ET.SubElement(case, "failure", message=s.get("detail") or "step failed", type=s.get("kind") or "step")
        elif s.get("status") in ("aborted", "interrupted"):
            errors += 1
            ET.SubElement(case, "error", message=s.get("detail") or s["status"], type=s["status"])
        elif s.get("status") == "skipped":
            ET.SubElement(case, "skipped")
    for e in report["errors"]:
        case = ET.SubElement(suite, "testcase", classname=f"dirt.{name}.errors", name=f"error in {e.get('phase')}")
        cases += 1
        errors += 1
        ET.SubElement(case, "error", message=e.get("message") or "error", type=e.get("type") or "error")
    for a in report.get("availability") or []:
        if a.get("verdict") is None:  # judged probes are expectations above; this one never was
            case = ET.SubElement(suite, "testcase", classname=f"dirt.{name}.availability",
                                 name=f"availability: {a['name']}")
            cases += 1
            errors += 1
            ET.SubElement(case, "error", message="the run ended before the probe was judged", type="interrupted")
    if report["verdict"] == "aborted" and report.get("abort"):
        case = ET.SubElement(suite, "testcase", classname=f"dirt.{name}", name="abort conditions")
        cases += 1
        errors += 1
        ET.SubElement(case, "error", message=report["abort"].get("reason") or "aborted", type="aborted")
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suites = ET.Element("testsuites", name="dirt", tests=str(cases), failures=str(failures), errors=str(errors))
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# -- the SVG timeline -------------------------------------------------------------------

def timeline_svg(report: dict[str, Any]) -> str:
    """Lanes for phases, faults, alerts and steps on one time axis (seconds from start)."""
    total = max(report.get("duration_seconds") or 0.0, 1.0)
    label_w, width, lane_h, top = 150, 1000, 22, 28
    plot_w = width - label_w - 20
    lanes: list[tuple[str, list[str]]] = []

    def x(offset: float | None) -> float:
        return label_w + max(0.0, min(offset or 0.0, total)) / total * plot_w

    def esc(text: Any) -> str:
        return html.escape(str(text), quote=True)

    # phases
    items = []
    for p in report["phases"]:
        end = p["end_offset"] if p["end_offset"] is not None else total
        colour = PHASE_COLOURS.get(p["name"], "#999")
        items.append(
            f'<rect class="phase" data-phase="{esc(p["name"])}" x="{x(p["start_offset"]):.1f}" y="{{y}}" '
            f'width="{max(2.0, x(end) - x(p["start_offset"])):.1f}" height="16" fill="{colour}" rx="2">'
            f'<title>{esc(p["name"])}: {esc(p["status"])} ({format_duration(p.get("seconds"))})</title></rect>'
        )
    lanes.append(("phases", items))
    # faults
    items = []
    for f in report["faults"]:
        if f.get("offset") is None:
            continue
        items.append(
            f'<path class="fault" d="M{x(f["offset"]):.1f},{{y}} l6,8 l-6,8 l-6,-8 z" fill="#c2185b">'
            f'<title>fault {esc(f["name"])} injected at +{f["offset"]:.1f}s</title></path>'
        )
        if f.get("resolved_offset") is not None:
            items.append(
                f'<path class="fault-{esc(f["status"])}" d="M{x(f["resolved_offset"]):.1f},{{y}} l6,8 l-6,8 l-6,-8 z" '
                f'fill="none" stroke="#c2185b"><title>fault {esc(f["name"])} {esc(f["life"])}</title></path>'
            )
    lanes.append(("faults", items))
    # alerts: one lane per alert name
    resolved = {(a["name"], a["source"]): a["offset"] for a in report["alerts"].get("resolved", [])}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for a in report["alerts"]["fired"]:
        by_name.setdefault(a["name"], []).append(a)
    for name, alerts in by_name.items():
        items = []
        for a in alerts:
            start = a.get("server_offset") if a.get("server_offset") is not None else a["offset"]
            end = resolved.get((name, a["source"]), total)
            colour = "#d84315" if a.get("forbidden") else ("#f9a825" if a.get("expected") else "#9e9e9e")
            dy = 0 if a["source"] == "prometheus" else 8
            items.append(
                f'<rect class="alert" data-alert="{esc(name)}" x="{x(start):.1f}" y="{{y+{dy}}}" '
                f'width="{max(2.0, x(end) - x(start)):.1f}" height="7" fill="{colour}">'
                f'<title>{esc(name)} firing in {esc(a["source"])} from +{start:.1f}s</title></rect>'
            )
        lanes.append((f"alert {name}", items))
    # steps
    for s in report["steps"]:
        if s.get("start_offset") is None:
            continue
        end = s["end_offset"] if s.get("end_offset") is not None else total
        colour = STATUS_COLOURS.get(s.get("status") or "running", "#757575")
        link_open = f'<a href="{esc(s["playbook_url"])}">' if s.get("playbook_url") else ""
        link_close = "</a>" if link_open else ""
        lanes.append((
            f"{s['section']}: {s['name']}",
            [f'{link_open}<rect class="step" data-step="{esc(s["name"])}" x="{x(s["start_offset"]):.1f}" '
             f'y="{{y}}" width="{max(2.0, x(end) - x(s["start_offset"])):.1f}" height="16" fill="{colour}" rx="2">'
             f'<title>{esc(s["name"])}: {esc(s.get("status"))} ({format_duration(s.get("seconds"))})</title>'
             f'</rect>{link_close}'],
        ))
    tall = [_availability_lane(a, x, total) for a in report.get("availability") or []]
    height = top + lane_h * len(lanes) + sum(h for _, _, h in tall) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="timeline of the drill">']
    # time axis
    ticks = _ticks(total)
    for t in ticks:
        parts.append(f'<line x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{height - 6}" stroke="#e0e0e0"/>'
                     f'<text x="{x(t):.1f}" y="{top - 10}" font-size="10" text-anchor="middle" fill="#555">'
                     f'{format_duration(t)}</text>')
    t_inject = report["timings"].get("t_inject_offset")
    if t_inject is not None:
        parts.append(f'<line class="t-inject" x1="{x(t_inject):.1f}" y1="{top - 6}" x2="{x(t_inject):.1f}" '
                     f'y2="{height - 6}" stroke="#c2185b" stroke-dasharray="4 3"><title>fault took effect</title></line>')
    for i, (label, items) in enumerate(lanes):
        y = top + i * lane_h
        parts.append(f'<text x="4" y="{y + 12}" font-size="11" fill="#333">{esc(label[:24])}</text>')
        for item in items:
            parts.append(item.replace("{y}", str(y)).replace("{y+8}", str(y + 8)).replace("{y+0}", str(y)))
    y = top + lane_h * len(lanes)
    for label, body, lane_height in tall:
        parts.append(f'<text x="4" y="{y + 12}" font-size="11" fill="#333">{esc(label[:24])}</text>'
                     f'<g class="availability-lane" transform="translate(0,{y})">{body}</g>')
        y += lane_height
    parts.append("</svg>")
    return "\n".join(parts)


def _availability_lane(probe: dict[str, Any], x: Any, total: float) -> tuple[str, str, int]:
    """One probe on the timeline: its window, a bar per second (red share: failed samples),
    the longest outage shaded, and the latency series (max per second) as a line; with
    ``served_by``, a thin sub-lane per server below it: the seconds it served users."""
    height, plot = 46, 36  # the lane, and the latency plot inside it

    def esc(text: Any) -> str:
        return html.escape(str(text), quote=True)

    window = probe.get("window") or {}
    start = window.get("start_offset")
    end = window.get("end_offset")
    parts = []
    if _finite(start):
        stop = end if _finite(end) else total
        parts.append(f'<rect class="availability-window" x="{x(start):.1f}" y="0" '
                     f'width="{max(1.0, x(stop) - x(start)):.1f}" height="{plot}" fill="#f1f8e9">'
                     f'<title>{esc(probe.get("name"))}: sampled from +{start:.1f}s'
                     f'{" (cut short)" if probe.get("cut_short") else ""}</title></rect>')
    outage = probe.get("longest_outage") or {}
    if _finite(outage.get("start_offset")) and _finite(outage.get("end_offset")):
        parts.append(f'<rect class="availability-outage" x="{x(outage["start_offset"]):.1f}" y="0" '
                     f'width="{max(2.0, x(outage["end_offset"]) - x(outage["start_offset"])):.1f}" height="{plot}" '
                     f'fill="#c62828" fill-opacity="0.18" stroke="#c62828"><title>longest outage: '
                     f'{format_duration(outage.get("seconds"))} from +{outage["start_offset"]:.1f}s</title></rect>')
    buckets = [b for b in probe.get("buckets") or [] if isinstance(b, dict) and _finite(b.get("offset"))]
    width = max(1.0, x(1.0) - x(0.0))
    for b in buckets:
        n = b.get("n") or 0
        failed = b.get("failed") or 0
        if n and failed:
            share = min(1.0, failed / n)
            parts.append(f'<rect class="availability-failed" x="{x(b["offset"]):.1f}" y="{plot - plot * share:.1f}" '
                         f'width="{width:.1f}" height="{plot * share:.1f}" fill="#c62828">'
                         f'<title>+{b["offset"]:.0f}s: {failed} of {n} samples failed</title></rect>')
    latencies = [(b["offset"], b["max"]) for b in buckets if _finite(b.get("max"))]
    if latencies:
        top = max(v for _, v in latencies) or 1.0
        points = " ".join(f"{x(t) + width / 2:.1f},{plot - plot * v / top:.1f}" for t, v in latencies)
        parts.append(f'<polyline class="availability-latency" points="{points}" fill="none" stroke="#1565c0" '
                     f'stroke-width="1.2"><title>latency (max per second), top of lane {top * 1000:.0f}ms'
                     f'</title></polyline>')
    served, servers = _served_lanes(buckets, x, top=plot + 4)
    parts.extend(served)
    label = f"{probe.get('name')} {_percent(probe.get('ratio'))}"
    return label, "".join(parts), height + _SERVED_LANE * servers



def _served_lanes(buckets: list[dict[str, Any]], x: Any, top: int) -> tuple[list[str], int]:
    """One thin lane per server: a bar over each run of consecutive seconds in which it served;
    the SVG parts and how many lanes."""
    esc = functools.partial(html.escape, quote=True)
    parts = []
    runs = served_runs(buckets, key="offset")
    for i, (name, mine) in enumerate(runs.items()):
        y = top + i * _SERVED_LANE
        colour = SERVER_COLOURS[i % len(SERVER_COLOURS)]
        parts.append(f'<text class="served-label" x="12" y="{y + 7}" font-size="9" fill="{colour}">'
                     f'{esc(name[:22])}<title>served by {esc(name)}</title></text>')
        for first, last, answers in mine:
            parts.append(f'<rect class="served" data-server="{esc(name)}" x="{x(first):.1f}" y="{y + 1}" '
                         f'width="{max(1.0, x(last + 1.0) - x(first)):.1f}" height="6" fill="{colour}">'
                         f'<title>{esc(name)} served +{first:.0f}s to +{last + 1.0:.0f}s '
                         f'({answers} answers)</title></rect>')
    return parts, len(runs)


def _ticks(total: float) -> list[float]:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if total / step <= 10:
            return [i * step for i in range(int(total // step) + 1)]
    return [0.0, total]

"""From journal events to the report: a pure function, no I/O, no clock.

``build_report(events)`` folds the journal into the dictionary written as
``report.json`` (schema below, versioned by ``schema_version``); every other
format renders from that dictionary.  Because it only reads events, a report
can be re-rendered at any time (``dirt report RUN_DIR``), including from the
journal of a run that was killed half-way (its verdict is then ``aborted``).

Top-level fields: schema_version, run_id, dirt_version, scenario, target,
verdict, started_at, ended_at, duration_seconds, phases[], expectations[],
timings{t_inject, mttd_seconds{alert: s}, mttr_seconds, rpo_seconds{backup: s}},
faults[], steps[], backups[], restores[], restore_verification[] (per objects.match_backup
check: objects_expected, objects_missing, objects_changed, objects_extra and the
names), alerts{fired[], noise[], baseline[]},
rollback{ran, reason, actions[]}, abort, errors[], failures[], complete.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

SCHEMA_VERSION = 1


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_report(events: list[dict[str, Any]]) -> dict[str, Any]:
    start = next((e for e in events if e["event"] == "run.start"), None)
    end = next((e for e in reversed(events) if e["event"] == "run.end"), None)
    first_ts = events[0]["ts"] if events else None
    last_ts = events[-1]["ts"] if events else None

    phases: list[dict[str, Any]] = []
    open_phases: dict[str, dict[str, Any]] = {}
    steps: list[dict[str, Any]] = []
    open_steps: dict[tuple[Any, ...], dict[str, Any]] = {}
    expectations: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    backups: list[dict[str, Any]] = []
    restores: list[dict[str, Any]] = []
    fired: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    noise: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    rollback: dict[str, Any] = {"ran": False, "reason": None, "actions": []}
    abort: dict[str, Any] | None = None
    signals: list[str] = []
    mttr = None
    t_inject = None
    recovered_at = None
    current_phase = None

    for e in events:
        kind = e["event"]
        if kind == "phase.start":
            current_phase = e["phase"]
            entry = {"name": e["phase"], "start": iso(e["ts"]), "end": None, "status": "running",
                     "start_offset": e["t"], "end_offset": None, "seconds": None, "error": None}
            open_phases[e["phase"]] = entry
            phases.append(entry)
        elif kind == "phase.end":
            entry = open_phases.pop(e["phase"], None)
            if entry is not None:
                entry.update(end=iso(e["ts"]), end_offset=e["t"], status=e.get("status", "passed"),
                             error=e.get("error"))
                entry["seconds"] = round(e["t"] - entry["start_offset"], 3)
        elif kind == "step.start":
            key = (e.get("section"), e.get("index"))
            entry = {
                "section": e.get("section"), "index": e.get("index"), "kind": e.get("kind"),
                "driver": e.get("driver"), "name": e.get("name"), "line": e.get("line"),
                "phase": current_phase, "status": "running", "outcome": "running",
                "start": iso(e["ts"]), "end": None, "start_offset": e["t"], "end_offset": None,
                "seconds": None, "objective_seconds": e.get("objective_seconds"), "detail": "",
                "playbook_url": (e.get("playbook") or {}).get("url"),
                "playbook_title": (e.get("playbook") or {}).get("title"),
                "playbook_path": (e.get("playbook") or {}).get("path"),
                "playbook_anchor": (e.get("playbook") or {}).get("anchor"),
                "data": {},
            }
            open_steps[key] = entry
            steps.append(entry)
        elif kind == "step.end":
            entry = open_steps.pop((e.get("section"), e.get("index")), None)
            if entry is not None:
                entry.update(status=e.get("status"), outcome=e.get("status"), detail=e.get("detail", ""),
                             end=iso(e["ts"]), end_offset=e["t"], seconds=e.get("seconds"),
                             data=e.get("data") or {})
                if e.get("objective_seconds") is not None:
                    entry["objective_seconds"] = e["objective_seconds"]
        elif kind == "expectation":
            expectations.append({k: v for k, v in e.items() if k not in ("seq", "ts", "t", "event")}
                                | {"at": iso(e["ts"]), "offset": e["t"]})
        elif kind == "fault.injected":
            if t_inject is None:
                t_inject = e.get("t_inject", e["ts"])
            faults.append({"name": e.get("name"), "driver": e.get("driver"), "injected_at": iso(e.get("t_inject")),
                           "offset": e["t"], "state": e.get("state"), "reversible": e.get("reversible"),
                           "reverted": False, "verified": None, "plan": []})
        elif kind == "fault.plan":
            pending_plan = e.get("plan") or []
            # attach to the next injected fault of that name
            faults.append({"name": e.get("name"), "driver": e.get("driver"), "plan": pending_plan,
                           "_planned": True, "offset": e["t"]})
        elif kind == "fault.verified":
            for f in reversed(faults):
                if f["name"] == e.get("name") and not f.get("_planned"):
                    f["verified"] = e.get("ok")
                    f["verify_detail"] = e.get("detail")
                    f["verify_seconds"] = e.get("seconds")
                    break
        elif kind == "fault.reverted":
            for f in reversed(faults):
                if f["name"] == e.get("name") and not f.get("_planned"):
                    f["reverted"] = True
                    f["reverted_offset"] = e["t"]
                    break
        elif kind == "backup.taken":
            backups.append({k: e.get(k) for k in ("name", "type", "location", "objects", "age_seconds", "data")}
                           | {"created_at": iso(e.get("created_at"))})
        elif kind == "backup.restored":
            restores.append({k: e.get(k) for k in ("name", "type", "location", "detail", "data")}
                            | {"offset": e["t"]})
        elif kind == "alert.firing":
            fired.append({k: e.get(k) for k in ("name", "labels", "source", "state", "server_time",
                                                 "active_at", "for_seconds", "value", "expected", "forbidden")}
                         | {"observed_at": iso(e.get("observed_at")), "server_at": iso(e.get("server_time")),
                            "offset": e["t"],
                            "server_offset": None if e.get("server_time") is None or first_ts is None
                            else round(e["server_time"] - first_ts, 3)})
        elif kind == "alert.resolved":
            resolved.append({"name": e.get("name"), "labels": e.get("labels"), "source": e.get("source"),
                             "offset": e["t"], "observed_at": iso(e.get("observed_at"))})
        elif kind == "alerts.noise":
            noise = [dict(a) | {"server_at": iso(a.get("server_time"))} for a in e.get("alerts", [])]
        elif kind == "alerts.baseline":
            baseline = e.get("alerts", [])
        elif kind == "recovered":
            recovered_at = e["t"]
        elif kind == "mttr":
            mttr = e.get("seconds")
        elif kind == "rollback.start":
            rollback.update(ran=True, reason=e.get("reason"), offset=e["t"])
        elif kind == "rollback.action":
            rollback["actions"].append({k: e.get(k) for k in ("name", "action", "status", "detail")})
        elif kind == "abort.breach":
            abort = {"condition": e.get("condition"), "value": e.get("value"), "at": iso(e.get("at")),
                     "since": iso(e.get("since")), "promql": e.get("promql"), "alert": e.get("alert"),
                     "above": e.get("above"), "below": e.get("below"), "offset": e["t"]}
        elif kind == "abort":
            abort = (abort or {}) | {"reason": e.get("reason"), "offset": e["t"]}
        elif kind == "signal":
            signals.append(e.get("signal", "?"))
        elif kind == "error":
            errors.append({"phase": e.get("phase", current_phase), "message": e.get("message"),
                           "type": e.get("type"), "offset": e["t"]})

    faults = _merge_plans(faults)
    for entry in open_phases.values():  # a killed run: phases never closed
        entry.update(status="interrupted", end_offset=None)
    for entry in open_steps.values():
        entry.update(status="interrupted", outcome="interrupted")

    complete = end is not None
    verdict = end.get("verdict") if end else "aborted"
    failures = list(end.get("failures", [])) if end else ["the run ended without a run.end event (killed?)"]
    mttd: dict[str, float | None] = {}
    for x in expectations:
        if x.get("kind") == "alert":
            mttd[x.get("alert") or x["name"]] = x.get("measured_seconds")
    rpo = {b["name"]: b.get("age_seconds") for b in backups}
    restore_checks = [
        {"name": x["name"], "passed": x.get("passed"),
         **{k: (x.get("data") or {}).get(k) for k in ("objects_expected", "objects_missing", "objects_changed",
                                                      "objects_extra", "missing", "changed")}}
        for x in expectations if "objects_missing" in (x.get("data") or {})
    ]
    scenario = (start or {}).get("scenario", {})
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": (start or {}).get("run_id"),
        "dirt_version": (start or {}).get("dirt_version"),
        "scenario": scenario,
        "target": (start or {}).get("target", {}),
        "verdict": verdict,
        "complete": complete,
        "started_at": iso(first_ts),
        "ended_at": iso(last_ts),
        "duration_seconds": None if first_ts is None or last_ts is None else round(last_ts - first_ts, 3),
        "phases": phases,
        "expectations": expectations,
        "timings": {
            "t_inject": iso(t_inject),
            "t_inject_offset": None if t_inject is None or first_ts is None else round(t_inject - first_ts, 3),
            "recovered_offset": recovered_at,
            "mttd_seconds": mttd,
            "mttr_seconds": mttr,
            "rpo_seconds": rpo,
        },
        "faults": faults,
        "steps": steps,
        "backups": backups,
        "restores": restores,
        "restore_verification": restore_checks,
        "alerts": {"fired": fired, "resolved": resolved, "noise": noise, "baseline": baseline},
        "rollback": rollback,
        "abort": abort,
        "signals": signals,
        "errors": errors,
        "failures": failures,
        "expected": (start or {}).get("expect", {}),
        "abort_when": (start or {}).get("abort_when", []),
        "playbook_sections": (start or {}).get("playbook_sections", {}),
    }


def _merge_plans(faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fold each ``fault.plan`` entry into the injected fault that follows it."""
    merged: list[dict[str, Any]] = []
    plan: dict[str, list[str]] = {}
    for f in faults:
        if f.get("_planned"):
            plan[f["name"]] = f.get("plan", [])
            continue
        f["plan"] = plan.pop(f["name"], f.get("plan", []))
        merged.append(f)
    for name, lines in plan.items():  # planned but never injected (inject failed)
        merged.append({"name": name, "driver": None, "plan": lines, "injected_at": None, "reverted": False,
                       "verified": None, "state": None, "reversible": None, "offset": None})
    return merged

"""Journals written by dirt 0.1 (schema version 1), read as today's events.

What changed: a fault is known by its ``index`` everywhere (0.1 keyed some
fault events by name); its plan is part of ``run.start`` (0.1 wrote a
``fault.plan`` event before injecting); 0.1 wrote ``fault.reverted`` both when
a ``fault.revert`` recovery step undid a fault and when rollback did — the
phase it happened in tells them apart.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


def upgrade_v1(records: list[tuple[int, Record]]) -> list[tuple[int, Record]]:
    start = next((r for _, r in records if r.get("event") == "run.start"), {})
    planned: list[Record] = []
    for step in start.get("steps") or []:
        if isinstance(step, dict) and step.get("section") == "inject":
            planned.append({"index": step.get("index", len(planned)), "name": str(step.get("name", "")),
                            "driver": str(step.get("driver", ""))})
    by_name: dict[str, int] = {}
    phase = None
    step: Record | None = None
    out: list[tuple[int, Record]] = []
    for number, record in records:
        r = dict(record)
        kind = r.get("event")
        if kind == "run.start":
            r["schema_version"] = 1
            r["faults"] = planned
        elif kind == "phase.start":
            phase = r.get("phase")
        elif kind == "step.start":
            step = r
        elif kind == "fault.plan":
            for p in planned:
                if p["name"] == r.get("name"):
                    p["plan"] = list(r.get("plan") or [])
            continue
        elif kind == "fault.injected":
            if isinstance(r.get("index"), int):
                by_name[str(r.get("name"))] = r["index"]
        elif kind in ("fault.verified", "fault.reverted", "rollback.action"):
            if not isinstance(r.get("index"), int) and str(r.get("name")) in by_name:
                r["index"] = by_name[str(r.get("name"))]
            if kind == "fault.reverted" and phase == "recover" and step is not None:
                r = {k: r[k] for k in ("seq", "ts", "t", "index", "name") if k in r}
                r.update(event="fault.recovered", detail="fault.revert",
                         step={k: step.get(k) for k in ("section", "index", "name", "driver")})
        out.append((number, r))
    return out

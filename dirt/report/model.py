"""From journal events to the report: a pure function, no I/O, no clock.

``build_report(events)`` folds the journal into the dictionary written as
``report.json`` (schema below, versioned by ``schema_version``); every other
format renders from that dictionary.  Each event type has one small handler in
``_Fold``; the faults' lives come from the same ledger the engine and
``dirt rollback`` use (``dirt.journal.faults``).  Because it only reads events,
a report can be re-rendered at any time (``dirt report RUN_DIR``), including
from the journal of a run that was killed half-way (its verdict is then
``aborted``) or of dirt 0.1.

Top-level fields: schema_version, run_id, dirt_version, scenario, target,
verdict, complete, started_at, ended_at, duration_seconds, phases[],
expectations[], timings{t_inject, mttd_seconds{alert: s}, mttr_seconds,
rpo_seconds{backup: s}}, faults[] (each with its life: ``status`` planned |
injecting | injected | verified | recovered | reverted, ``in_effect``,
``life`` in words, ``resolved_by`` (the recovery step that undid it),
``resolution``, ``history[]``), steps[], backups[], restores[],
restore_verification[] (per objects.match_backup check: objects_expected,
objects_missing, objects_changed, objects_extra and the names),
alerts{fired[], resolved[], noise[], baseline[]}, availability[] (per
``expect.availability`` probe: name, kind, url | promql, objective{min_success,
max_outage_seconds}, verdict (null when the run died first), complete,
cut_short, cut_reason, samples, successes, unknown, ratio, longest_outage{start,
end, seconds, ongoing, start_offset, end_offset}, latency{p50, p95, max},
failures{reason: count}, window{start, end, start_offset, end_offset},
buckets[] {at, offset, n, failed, unknown, score, p50, max, served{server: answers}} per second,
served_by, served{server: successful answers}, served_spans{server: [{start, end, start_offset,
end_offset}]}), rollback{ran, reason,
actions[], runs[]}, abort, signals[], errors[], failures[], still_in_effect[],
journal_problems[].

Schema version 2 (dirt 0.2) added the fault life fields, ``rollback.runs``,
``still_in_effect``, ``journal_problems`` and ``availability``; version 1
fields are kept.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from functools import singledispatchmethod
from typing import Any

from dirt.journal import events as ev
from dirt.journal.faults import FaultLedger, FaultLife, FaultState

SCHEMA_VERSION = 2


def iso(ts: float | None) -> str | None:
    if ts is None or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        return None
    try:
        return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return None


class _Fold:
    """The report being built, one handler per event type."""

    def __init__(self, events: list[ev.Event]) -> None:
        self.first_ts = events[0].ts if events else None
        self.start: ev.RunStarted | None = None
        self.end: ev.RunEnded | None = None
        self.phases: list[dict[str, Any]] = []
        self.open_phases: dict[str, dict[str, Any]] = {}
        self.steps: list[dict[str, Any]] = []
        self.open_steps: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.expectations: list[dict[str, Any]] = []
        self.backups: list[dict[str, Any]] = []
        self.restores: list[dict[str, Any]] = []
        self.fired: list[dict[str, Any]] = []
        self.resolved: list[dict[str, Any]] = []
        self.noise: list[dict[str, Any]] = []
        self.baseline: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.rollback: dict[str, Any] = {"ran": False, "reason": None, "actions": [], "runs": []}
        self.abort: dict[str, Any] | None = None
        self.signals: list[str] = []
        self.mttr: float | None = None
        self.t_inject: float | None = None
        self.recovered_at: float | None = None
        self.current_phase: str | None = None
        self.ledger = FaultLedger()
        self.availability: dict[str, dict[str, Any]] = {}

    @singledispatchmethod
    def fold(self, event: ev.Event) -> None:
        """Events the report does not show (playbook steps, journal repairs...)."""

    @fold.register
    def _(self, e: ev.RunStarted) -> None:
        self.start = self.start or e

    @fold.register
    def _(self, e: ev.RunEnded) -> None:
        self.end = e

    @fold.register
    def _(self, e: ev.PhaseStarted) -> None:
        self.current_phase = e.phase
        entry = {"name": e.phase, "start": iso(e.ts), "end": None, "status": "running",
                 "start_offset": e.t, "end_offset": None, "seconds": None, "error": None, "waits": {}}
        self.open_phases[e.phase] = entry
        self.phases.append(entry)

    @fold.register
    def _(self, e: ev.PhaseEnded) -> None:
        entry = self.open_phases.pop(e.phase, None)
        if entry is not None:
            seconds = round(e.t - entry["start_offset"], 3)
            waited = round(min(seconds, sum(e.waits.values())), 3)
            entry.update(end=iso(e.ts), end_offset=e.t, status=e.status, error=e.error, seconds=seconds,
                         waits=dict(e.waits), waited_seconds=waited, working_seconds=round(seconds - waited, 3))

    @fold.register
    def _(self, e: ev.StepStarted) -> None:
        book = e.playbook or {}
        entry = {
            "section": e.section, "index": e.index, "kind": e.kind, "driver": e.driver, "name": e.name,
            "line": e.line, "phase": self.current_phase, "status": "running", "outcome": "running",
            "start": iso(e.ts), "end": None, "start_offset": e.t, "end_offset": None, "seconds": None,
            "objective_seconds": e.objective_seconds, "detail": "", "playbook_url": book.get("url"),
            "playbook_title": book.get("title"), "playbook_path": book.get("path"),
            "playbook_anchor": book.get("anchor"), "data": {}, "waits": {},
        }
        self.open_steps[(e.section, e.index)] = entry
        self.steps.append(entry)

    @fold.register
    def _(self, e: ev.StepEnded) -> None:
        entry = self.open_steps.pop((e.section, e.index), None)
        if entry is not None:
            entry.update(status=e.status, outcome=e.status, detail=e.detail, end=iso(e.ts), end_offset=e.t,
                         seconds=e.seconds, data=e.data, waits=dict(e.waits))
            if e.objective_seconds is not None:
                entry["objective_seconds"] = e.objective_seconds

    @fold.register
    def _(self, e: ev.ExpectationResult) -> None:
        self.expectations.append(e.model_dump(exclude={"seq", "ts", "t", "event"}) | {"at": iso(e.ts),
                                                                                       "offset": e.t})

    @fold.register
    def _(self, e: ev.FaultInjected) -> None:
        if self.t_inject is None and e.error is None:
            self.t_inject = e.t_inject if e.t_inject is not None else e.ts

    @fold.register
    def _(self, e: ev.BackupTaken) -> None:
        self.backups.append({"name": e.name, "type": e.type, "location": e.location, "objects": e.objects,
                             "age_seconds": e.age_seconds, "data": e.data, "created_at": iso(e.created_at)})

    @fold.register
    def _(self, e: ev.BackupRestored) -> None:
        self.restores.append({"name": e.name, "type": e.type, "location": e.location, "detail": e.detail,
                              "data": e.data, "offset": e.t})

    @fold.register
    def _(self, e: ev.AlertFiring) -> None:
        server_offset = None
        if e.server_time is not None and self.first_ts is not None:
            server_offset = round(e.server_time - self.first_ts, 3)
        self.fired.append(e.model_dump(include={"name", "labels", "source", "state", "server_time", "active_at",
                                                "for_seconds", "value", "expected", "forbidden"})
                          | {"observed_at": iso(e.observed_at), "server_at": iso(e.server_time), "offset": e.t,
                             "server_offset": server_offset})

    @fold.register
    def _(self, e: ev.AlertResolved) -> None:
        self.resolved.append({"name": e.name, "labels": e.labels, "source": e.source, "offset": e.t,
                              "observed_at": iso(e.observed_at)})

    @fold.register
    def _(self, e: ev.AlertsNoise) -> None:
        self.noise = [dict(a) | {"server_at": iso(a.get("server_time"))} for a in e.alerts]

    @fold.register
    def _(self, e: ev.AlertsBaseline) -> None:
        self.baseline = list(e.alerts)

    @fold.register
    def _(self, e: ev.Recovered) -> None:
        self.recovered_at = e.t

    @fold.register
    def _(self, e: ev.Mttr) -> None:
        self.mttr = e.seconds

    @fold.register
    def _(self, e: ev.RollbackStarted) -> None:
        self.rollback.update(ran=True, reason=e.reason, offset=e.t)
        self.rollback["runs"].append({"by": e.by, "reason": e.reason, "at": iso(e.ts), "offset": e.t,
                                      "in_effect": e.in_effect})

    @fold.register
    def _(self, e: ev.RollbackAction) -> None:
        self.rollback["actions"].append({"index": e.index, "name": e.name, "action": e.action, "status": e.status,
                                         "detail": e.detail})

    @fold.register
    def _(self, e: ev.AbortBreach) -> None:
        self.abort = {"condition": e.condition, "value": e.value, "at": iso(e.at), "since": iso(e.since),
                      "promql": e.promql, "alert": e.alert, "above": e.above, "below": e.below, "offset": e.t}

    @fold.register
    def _(self, e: ev.AvailabilityStarted) -> None:
        self.availability[e.name] = {
            "name": e.name, "kind": e.kind, "url": e.url, "promql": e.promql, "interval_seconds": e.interval_seconds,
            "timeout_seconds": e.timeout_seconds, "max_latency_seconds": e.max_latency_seconds,
            "expect_status": e.expect_status, "objective": {"min_success": e.min_success,
                                                            "max_outage_seconds": e.max_outage_seconds},
            "served_by": e.served_by,
            "start_offset": e.t, "buckets": [], "result": None,
        }

    @fold.register
    def _(self, e: ev.AvailabilityBuckets) -> None:
        probe = self.availability.get(e.name)
        if probe is not None:
            probe["buckets"].extend(b.model_dump() for b in e.buckets)

    @fold.register
    def _(self, e: ev.AvailabilityResult) -> None:
        probe = self.availability.get(e.name)
        if probe is not None:
            probe["result"] = e

    @fold.register
    def _(self, e: ev.Aborted) -> None:
        self.abort = (self.abort or {}) | {"reason": e.reason, "offset": e.t}

    @fold.register
    def _(self, e: ev.SignalReceived) -> None:
        self.signals.append(e.signal)

    @fold.register
    def _(self, e: ev.ErrorRaised) -> None:
        self.errors.append({"phase": e.phase or self.current_phase, "message": e.message, "type": e.type,
                            "offset": e.t})


def fault_entry(life: FaultLife) -> dict[str, Any]:
    """One fault's life as the report shows it."""
    history = [{"status": str(h.state), "at": iso(h.ts), "offset": h.t, "detail": h.detail} for h in life.history]
    began = next((h for h in life.history if h.state in (FaultState.INJECTING, FaultState.INJECTED)), None)
    ended = next((h for h in life.history if h.state in (FaultState.RECOVERED, FaultState.REVERTED)), None)
    return {
        "index": life.index, "name": life.name, "driver": life.driver, "family": life.family,
        "status": str(life.status), "in_effect": life.in_effect, "life": life.describe(),
        "resolved_by": life.resolved_by, "resolution": life.resolution,
        "resolved_offset": ended.t if ended else None,
        "injected_at": iso(life.injected_at), "offset": began.t if began else None,
        "inject_error": life.inject_error, "verified": life.verified, "verify_detail": life.verify_detail,
        "reversible": life.reversible, "rollback": life.rollback, "snapshot_revert": life.snapshot_revert,
        "plan": list(life.plan), "state": life.state, "history": history,
        # schema 1 fields
        "reverted": life.status is FaultState.REVERTED,
        "reverted_offset": ended.t if ended and ended.state is FaultState.REVERTED else None,
    }


def availability_entry(probe: dict[str, Any], first_ts: float | None) -> dict[str, Any]:
    """One probe as the report shows it: from its result, or (a run that died) from its buckets so far."""

    def offset(ts: float | None) -> float | None:
        return None if ts is None or first_ts is None else round(ts - first_ts, 3)

    result: ev.AvailabilityResult | None = probe["result"]
    probe = {k: v for k, v in probe.items() if k != "result"}
    names = ev.ServerNames()  # the journal's names bounded again: it may not be dirt's
    probe["buckets"] = [_served_bucket(b, names) | {"offset": offset(b["at"])} for b in probe["buckets"]]
    samples = sum(b["n"] for b in probe["buckets"])
    entry = probe | {"complete": result is not None, "verdict": None, "passed": None, "cut_short": None,
                     "cut_reason": None, "samples": samples,
                     "successes": sum(b["n"] - b["failed"] for b in probe["buckets"]),
                     "unknown": sum(b["unknown"] for b in probe["buckets"]),
                     "ratio": round(sum(b["score"] for b in probe["buckets"]) / samples, 6) if samples else None,
                     "longest_outage": None, "latency": {"p50": None, "p95": None, "max": None},
                     "failures": {}, "window": {"start": None, "end": None, "start_offset": probe["start_offset"],
                                                "end_offset": None},
                     "served": _served_total(probe["buckets"]), "served_spans": {}}
    if result is None:
        entry["served_spans"] = {name: [_span(first, last + 1, offset) for first, last, _ in runs]
                                 for name, runs in served_runs(probe["buckets"]).items()}
        return entry
    spans: dict[str, list[tuple[float, float]]] = {}
    for name, runs in result.served_spans.items():
        key = names.name(name)
        if key is not None:
            spans.setdefault(key, []).extend(runs)
    outage = result.longest_outage
    entry.update(
        verdict="passed" if result.passed else "failed", passed=result.passed, cut_short=result.cut_short,
        cut_reason=result.cut_reason, samples=result.samples, successes=result.successes, unknown=result.unknown,
        ratio=result.ratio, failures=dict(result.failures),
        latency={"p50": result.latency_p50, "p95": result.latency_p95, "max": result.latency_max},
        window={"start": iso(result.window_start), "end": iso(result.window_end),
                "start_offset": offset(result.window_start), "end_offset": offset(result.window_end)},
        longest_outage=None if outage is None else {
            "start": iso(outage.start), "end": iso(outage.end), "seconds": outage.seconds, "ongoing": outage.ongoing,
            "samples": outage.samples, "start_offset": offset(outage.start), "end_offset": offset(outage.end)},
        served=_counted(result.served, names),
        served_spans={name: [_span(a, b, offset) for a, b in sorted(runs)] for name, runs in spans.items()},
    )
    return entry


def _served_bucket(bucket: dict[str, Any], names: ev.ServerNames) -> dict[str, Any]:
    """A bucket with its servers' names as the report records them (bounded in number and length)."""
    return bucket | {"served": _counted(bucket["served"], names)} if bucket.get("served") else bucket


def _counted(counts: dict[str, int], names: ev.ServerNames) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, count in counts.items():
        key = names.name(name)
        if key is not None and count > 0:
            out[key] = out.get(key, 0) + count
    return out


def _served_total(buckets: list[dict[str, Any]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for b in buckets:
        for name, count in (b.get("served") or {}).items():
            total[name] = total.get(name, 0) + count
    return total


def served_runs(buckets: list[dict[str, Any]], key: str = "at") -> dict[str, list[list[Any]]]:
    """Per server (in the order first seen), each run of consecutive seconds in which it served:
    [the first second's ``key``, the last second's ``key``, answers]."""
    runs: dict[str, list[list[Any]]] = {}
    last: dict[str, int] = {}
    for b in buckets:
        served = b.get("served")
        for name, count in served.items() if isinstance(served, dict) else ():
            if not (isinstance(count, int) and count > 0):
                continue
            mine = runs.setdefault(name, [])
            if mine and last[name] == b["at"] - 1:
                mine[-1][1:] = [b[key], mine[-1][2] + count]
            else:
                mine.append([b[key], b[key], count])
            last[name] = b["at"]
    return runs


def _span(start: float, end: float, offset: Any) -> dict[str, Any]:
    return {"start": iso(start), "end": iso(end), "start_offset": offset(start), "end_offset": offset(end)}


def build_report(events: list[ev.Event], problems: list[str] | None = None) -> dict[str, Any]:
    fold = _Fold(events)
    for event in events:
        fold.fold(event)
        fold.ledger.apply(event)
    last_ts = events[-1].ts if events else None
    for entry in fold.open_phases.values():  # a killed run: phases never closed
        entry.update(status="interrupted", end_offset=None)
    for entry in fold.open_steps.values():
        entry.update(status="interrupted", outcome="interrupted")

    start, end = fold.start, fold.end
    complete = end is not None
    verdict = end.verdict if end else "aborted"
    failures = list(end.failures) if end else ["the run ended without a run.end event (killed?)"]
    mttd: dict[str, float | None] = {}
    for x in fold.expectations:
        if x.get("kind") == "alert":
            mttd[x.get("alert") or x["name"]] = x.get("measured_seconds")
    rpo = {b["name"]: b.get("age_seconds") for b in fold.backups}
    restore_checks = [
        {"name": x["name"], "passed": x.get("passed"),
         **{k: (x.get("data") or {}).get(k) for k in ("objects_expected", "objects_missing", "objects_changed",
                                                      "objects_extra", "objects_uncaptured", "missing", "changed",
                                                      "uncaptured")}}
        for x in fold.expectations if "objects_missing" in (x.get("data") or {})
    ]
    faults = [fault_entry(life) for life in fold.ledger.all()]
    first_ts = fold.first_ts
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": start.run_id if start else None,
        "dirt_version": start.dirt_version if start else None,
        "scenario": start.scenario if start else {},
        "target": start.target if start else {},
        "verdict": verdict,
        "complete": complete,
        "started_at": iso(first_ts),
        "ended_at": iso(last_ts),
        "duration_seconds": None if first_ts is None or last_ts is None else round(last_ts - first_ts, 3),
        "phases": fold.phases,
        "expectations": fold.expectations,
        "timings": {
            "t_inject": iso(fold.t_inject),
            "t_inject_offset": None if fold.t_inject is None or first_ts is None
            else round(fold.t_inject - first_ts, 3),
            "recovered_offset": fold.recovered_at,
            "mttd_seconds": mttd,
            "mttr_seconds": fold.mttr,
            "rpo_seconds": rpo,
        },
        "faults": faults,
        "still_in_effect": [f["name"] for f in faults if f["in_effect"]],
        "steps": fold.steps,
        "backups": fold.backups,
        "restores": fold.restores,
        "restore_verification": restore_checks,
        "alerts": {"fired": fold.fired, "resolved": fold.resolved, "noise": fold.noise, "baseline": fold.baseline},
        "availability": [availability_entry(p, first_ts) for p in fold.availability.values()],
        "rollback": fold.rollback,
        "abort": fold.abort,
        "signals": fold.signals,
        "errors": fold.errors,
        "failures": failures,
        "expected": start.expect if start else {},
        "abort_when": start.abort_when if start else [],
        "playbook_sections": start.playbook_sections if start else {},
        "journal_problems": list(problems or []) + fold.ledger.ignored,
    }

"""Did we notice?  Expected alerts, forbidden alerts, noise, and abort conditions.

``AlertMonitor`` runs beside the drill from just before the first fault until
verification ends, polling every alert source of the target (Prometheus rules
API, Alertmanager API v2) once per ``timing.poll_interval``:

* every alert seen firing is journaled once (``alert.firing``) with the server's
  own fire time (Prometheus ``activeAt`` + ``for``; Alertmanager ``startsAt``)
  and the moment dirt observed it; ``alert.resolved`` (observation time only:
  neither server keeps a resolved alert in its API) when it goes away;
* an alert is *baseline*, not caused by the drill, when it was firing at the
  first poll or its server fire time is before the monitor started (a Watchdog,
  or an alert that reaches the Alertmanager late); the monitor refuses to start
  when a source cannot be read then, since nothing could be told apart after;
* expected alerts: MTTD = server fire time - the moment the fault took effect;
  an expectation passes when the alert fired in every source asked for within
  ``fires_within``; ``resolves_within`` is measured from the end of recovery;
* ``expect.silent`` alerts must not fire; every other alert that fired after the
  fault is *noise*, listed in the report;
* ``abort_when`` conditions (PromQL thresholds or alert names) are evaluated on
  every poll after the fault; a breach cancels the drill (verdict ``aborted``,
  rollback runs) and journals the breaching value and time.

It is the engine's detection loop (a thread, with cancellation and the abort
logic); the read-only checks ``alert.firing`` and ``alert.absent`` live in
``dirt.checks.alerts`` and share only the sources of ``dirt.clients.monitoring``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dirt.clients.monitoring import ActiveAlert, AlertSource, MonitoringClient
from dirt.core.errors import DirtError, MonitoringError
from dirt.drivers import CancelToken, Context
from dirt.journal.events import (
    AbortBreach,
    AlertFiring,
    AlertResolved,
    AlertsBaseline,
    AlertsNoise,
    Event,
    MonitorError,
)
from dirt.scenario.model import AbortCondition, AlertExpectation, AlertMatch, Expect

Key = tuple[str, str, tuple[tuple[str, str], ...]]


@dataclass
class _Blind:
    """A source that could not be read after the fault: when, how often, and what it said last."""

    first_at: float
    last_at: float
    count: int = 0
    message: str = ""


@dataclass
class _Seen:
    alert: ActiveAlert
    observed_at: float  # wall clock when dirt first saw it firing
    baseline: bool  # firing before the monitor started (not caused by the drill)
    resolved_at: float | None = None


@dataclass
class _Breach:
    since: float | None = None  # wall time the condition first held


@dataclass
class AlertMonitor:
    target: Any
    expect: Expect
    abort_when: list[AbortCondition]
    interval: float
    emit: Callable[[Event], object]
    cancel: CancelToken
    wall: Callable[[], float]
    expectation: Callable[..., None] | None = None
    sources: list[AlertSource] = field(default_factory=list)
    seen: dict[Key, _Seen] = field(default_factory=dict)
    t_inject: float | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _breaches: dict[int, _Breach] = field(default_factory=dict)
    _errors: dict[str, int] = field(default_factory=dict)
    _blind: dict[str, _Blind] = field(default_factory=dict)  # sources unreadable after the fault
    _polls: int = 0
    _prom: MonitoringClient | None = None
    _finished: bool = False
    t_start: float | None = None  # wall time of the baseline poll

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = list(self.target.alert_sources())
        wanted = {s for a in self.expect.alerts for s in (a.sources or [])}
        missing = wanted - {s.source for s in self.sources}
        if missing:
            raise DirtError(f"target {self.target.name!r} has no {', '.join(sorted(missing))} configured, "
                            "but the scenario expects alerts there")
        if not self.sources:
            raise DirtError(f"target {self.target.name!r} has no Prometheus or Alertmanager to watch alerts on")

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Take the baseline (raising ``MonitoringError`` if a source cannot be read), then poll."""
        self.t_start = self.wall()
        failed = self._poll(baseline=True)
        if failed:
            raise MonitoringError("cannot watch alerts, so no fault was injected: " + "; ".join(failed))
        self.emit(AlertsBaseline(alerts=[s.alert.to_event() for s in self.seen.values()],
                                 sources=[s.source for s in self.sources]))
        self._thread = threading.Thread(target=self._loop, name="dirt-alert-monitor", daemon=True)
        self._thread.start()

    def mark_inject(self, wall_time: float) -> None:
        self.t_inject = wall_time

    def stop(self) -> None:
        """Stop polling, after one last look: the drill may have ended between two polls."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval * 3))
            if self.t_inject is not None and not self._finished:
                self._poll(baseline=False)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll(baseline=False)
            if self.t_inject is not None:
                self._evaluate_aborts()

    # -- polling ----------------------------------------------------------------------
    def _poll(self, *, baseline: bool) -> list[str]:
        """Read every source once; return the errors of the sources that failed."""
        now = self.wall()
        current: dict[Key, ActiveAlert] = {}
        answered: set[str] = set()
        failed: list[str] = []
        for source in self.sources:
            try:
                alerts = source.active()
            except DirtError as exc:
                self._error(source.source, str(exc))
                failed.append(str(exc))
                continue
            answered.add(source.source)
            for alert in alerts:
                if alert.firing:
                    current[alert.key] = alert
        with self._lock:
            self._polls += 1
            for key, alert in current.items():
                entry = self.seen.get(key)
                if entry is None or entry.resolved_at is not None:
                    before = baseline or self._fired_before_start(alert)
                    self.seen[key] = _Seen(alert, now, before)
                    if not before:
                        self.emit(AlertFiring(**alert.to_event(), observed_at=now,
                                              expected=self._is_expected(alert), forbidden=self._is_silent(alert)))
            for key, entry in self.seen.items():
                if entry.resolved_at is None and key not in current and entry.alert.source in answered:
                    entry.resolved_at = now
                    # No server time: neither API keeps resolved alerts, and a firing
                    # alert's endsAt (``valid_until``) is not when it resolved.
                    self.emit(AlertResolved(name=entry.alert.name, labels=entry.alert.labels,
                                            source=entry.alert.source, observed_at=now, baseline=entry.baseline))
        return failed

    def _fired_before_start(self, alert: ActiveAlert) -> bool:
        return alert.fired_at is not None and self.t_start is not None and alert.fired_at < self.t_start

    def _error(self, source: str, message: str) -> None:
        count = self._errors.get(source, 0) + 1
        self._errors[source] = count
        if self.t_inject is not None:
            now = self.wall()
            blind = self._blind.setdefault(source, _Blind(first_at=now, last_at=now))
            blind.last_at, blind.count, blind.message = now, blind.count + 1, message
        if count == 1 or count % 30 == 0:  # do not flood the journal while a server is down
            self.emit(MonitorError(source=source, message=message, count=count))

    def _is_expected(self, alert: ActiveAlert) -> bool:
        return any(alert.matches(a.name, a.labels) for a in self.expect.alerts)

    def _silent_matches(self) -> list[AlertMatch]:
        return [AlertMatch(name=s) if isinstance(s, str) else s for s in self.expect.silent]

    def _is_silent(self, alert: ActiveAlert) -> bool:
        return any(alert.matches(s.name, s.labels) for s in self._silent_matches())

    # -- expected alerts ---------------------------------------------------------------
    def _first(self, expected: AlertMatch, source: str, *, after_inject: bool = True) -> _Seen | None:
        with self._lock:
            hits = [s for s in self.seen.values()
                    if s.alert.source == source and s.alert.matches(expected.name, expected.labels)
                    and (not after_inject or not s.baseline)]
        return min(hits, key=lambda s: s.alert.fired_at or s.observed_at, default=None)

    def _sources_for(self, expected: AlertExpectation) -> list[str]:
        return list(expected.sources or [s.source for s in self.sources])

    def wait_fired(self, ctx: Context) -> None:
        """Block until every expected alert fired (or its deadline passed); record each."""
        assert self.t_inject is not None
        pending = list(self.expect.alerts)
        while pending:
            now = self.wall()
            for expected in list(pending):
                sources = self._sources_for(expected)
                if all(self._first(expected, s) for s in sources) or \
                        now > self.t_inject + expected.fires_within + self.interval:
                    pending.remove(expected)
            if not pending:
                break
            first = pending[0]
            ctx.waiting(f"waiting for {first.name}", now - self.t_inject, first.fires_within)
            ctx.sleep(min(self.interval, 0.5))
        for expected in self.expect.alerts:
            self._record_fired(expected)

    def _record_fired(self, expected: AlertExpectation) -> None:
        assert self.t_inject is not None
        per_source: dict[str, Any] = {}
        ok = True
        for source in self._sources_for(expected):
            hit = self._first(expected, source)
            if hit is None:
                before = self._first(expected, source, after_inject=False)
                per_source[source] = {"fired": False,
                                      "already_firing_before_fault": before is not None}
                blind = self._blind.get(source)
                if blind is not None and blind.first_at <= self.t_inject + expected.fires_within + self.interval:
                    per_source[source]["unreadable"] = {
                        "from_seconds": round(blind.first_at - self.t_inject, 1),
                        "to_seconds": round(blind.last_at - self.t_inject, 1),
                        "failed_reads": blind.count, "last_error": blind.message[:300]}
                ok = False
                continue
            server = hit.alert.fired_at
            mttd = max(0.0, (server if server is not None else hit.observed_at) - self.t_inject)
            per_source[source] = {
                "fired": True, "server_time": server, "observed_at": hit.observed_at,
                "mttd_seconds": round(mttd, 3),
                "observed_seconds": round(hit.observed_at - self.t_inject, 3),
                "active_at": hit.alert.active_at, "for_seconds": hit.alert.for_seconds,
            }
            if mttd > expected.fires_within:
                ok = False
        fired = [v for v in per_source.values() if v.get("fired")]
        mttd = per_source.get("prometheus", {}).get("mttd_seconds") if per_source.get("prometheus", {}).get("fired") \
            else min((v["mttd_seconds"] for v in fired), default=None)
        if ok:
            detail = ", ".join(f"{s}: fired after {v['mttd_seconds']:.1f}s" for s, v in per_source.items())
        elif not fired and (blind := {s: v["unreadable"] for s, v in per_source.items() if "unreadable" in v}):
            # not "it did not fire": nobody could look.  The drill still fails: detection is unproven.
            said = "; ".join(_unreadable(s, b) for s, b in blind.items())
            detail = f"cannot tell whether {expected.name} fired within {expected.fires_within:g}s: {said}"
        elif not fired:
            pre = any(v.get("already_firing_before_fault") for v in per_source.values())
            detail = (f"{expected.name} did not fire within {expected.fires_within:g}s"
                      + (" (it was already firing before the fault)" if pre else ""))
        else:
            missing = [s for s, v in per_source.items() if not v.get("fired")]
            late = [f"{s} after {v['mttd_seconds']:.1f}s" for s, v in per_source.items()
                    if v.get("fired") and v["mttd_seconds"] > expected.fires_within]
            detail = f"{expected.name} objective {expected.fires_within:g}s: " + "; ".join(
                [_unseen(s, per_source[s]) for s in missing] + [f"late in {x}" for x in late])
        self._expect(expected.name, "alert", expected.fires_within, mttd, ok, detail,
                     alert=expected.name, labels=expected.labels, sources=per_source)

    def wait_resolved(self, ctx: Context, recovered_monotonic: float) -> None:
        """After recovery: every expected alert with ``resolves_within`` must go away."""
        wanted = [a for a in self.expect.alerts if a.resolves_within is not None]
        if not wanted:
            return
        t_recovered = self.wall() - (time.monotonic() - recovered_monotonic)
        pending = list(wanted)
        while pending:
            now = self.wall()
            for expected in list(pending):
                if not self._still_firing(expected) or now > t_recovered + expected.resolves_within + self.interval:
                    pending.remove(expected)
            if not pending:
                break
            ctx.waiting(f"waiting for {pending[0].name} to resolve", now - t_recovered, pending[0].resolves_within)
            ctx.sleep(min(self.interval, 0.5))
        for expected in wanted:
            firing = self._still_firing(expected)
            with self._lock:
                hits = [s for s in self.seen.values()
                        if s.alert.matches(expected.name, expected.labels) and s.resolved_at is not None]
            resolved_at = max((s.resolved_at for s in hits if s.resolved_at), default=None)
            measured = None if firing or resolved_at is None else max(0.0, resolved_at - t_recovered)
            ok = not firing and (measured is None or measured <= expected.resolves_within)
            if measured is None and not firing:
                measured = 0.0  # never fired or resolved before recovery ended
            detail = (f"{expected.name} still firing {expected.resolves_within:g}s after recovery"
                      if firing else f"resolved {measured:.1f}s after recovery")
            self._expect(f"{expected.name} resolves", "alert_resolution", expected.resolves_within,
                         measured, ok, "" if ok else detail, alert=expected.name)

    def _still_firing(self, expected: AlertMatch) -> bool:
        with self._lock:
            return any(s.resolved_at is None and s.alert.matches(expected.name, expected.labels)
                       for s in self.seen.values())

    # -- abort conditions --------------------------------------------------------------
    def _evaluate_aborts(self) -> None:
        for index, condition in enumerate(self.abort_when):
            try:
                breached, value = self._condition_value(condition)
            except DirtError as exc:
                self._error("abort_when", f"{condition.title()}: {exc}")
                continue
            state = self._breaches.setdefault(index, _Breach())
            now = self.wall()
            if not breached:
                state.since = None
                continue
            if state.since is None:
                state.since = now
            if now - state.since >= condition.for_:
                reason = f"abort condition '{condition.title()}' breached"
                if value is not None:
                    reason += f": value {value:g}"
                self.emit(AbortBreach(condition=condition.title(), value=value, at=now, since=state.since,
                                      promql=condition.promql, alert=condition.alert, above=condition.above,
                                      below=condition.below))
                self.cancel.cancel(reason)
                self._stop.set()
                return

    def _condition_value(self, condition: AbortCondition) -> tuple[bool, float | None]:
        if condition.alert is not None:
            with self._lock:
                hit = any(s.resolved_at is None and not s.baseline
                          and s.alert.matches(condition.alert, condition.labels) for s in self.seen.values())
            return hit, None
        if self._prom is None:
            self._prom = self.target.monitoring()
        samples = self._prom.query(condition.promql or "")
        worst: float | None = None
        for _labels, value in samples:
            over = condition.above is not None and value > condition.above
            under = condition.below is not None and value < condition.below
            if over or under:
                worst = value if worst is None else (max(worst, value) if over else min(worst, value))
        return worst is not None, worst

    # -- end of drill ------------------------------------------------------------------
    def finish(self) -> None:
        """Silent-alert expectations and the noise list; call once after stopping."""
        if self._finished:
            return
        self._finished = True
        if self.t_inject is None:
            return
        with self._lock:
            after = [s for s in self.seen.values() if not s.baseline]
        for match in self._silent_matches():
            fired = [s for s in after if s.alert.matches(match.name, match.labels)]
            detail = "" if not fired else (
                f"forbidden alert {match.name} fired ({fired[0].alert.source}, "
                f"{max(0.0, (fired[0].alert.fired_at or fired[0].observed_at) - self.t_inject):.1f}s after the fault)")
            self._expect(f"{match.name} stays silent", "silent", None, None, not fired, detail, alert=match.name)
        noise = [s.alert.to_event() | {"observed_at": s.observed_at} for s in after
                 if not self._is_expected(s.alert) and not self._is_silent(s.alert)]
        self.emit(AlertsNoise(alerts=noise, polls=self._polls, errors=dict(self._errors)))

    def _expect(self, name: str, kind: str, objective: float | None, measured: float | None,
                passed: bool, detail: str, **extra: Any) -> None:
        if self.expectation is not None:
            self.expectation(name, kind, objective, measured, passed, detail, **extra)


def _unreadable(source: str, blind: dict[str, Any]) -> str:
    return (f"{source} could not be read from {blind['from_seconds']:g}s to {blind['to_seconds']:g}s after the "
            f"fault ({blind['failed_reads']} failed reads; last: {blind['last_error']})")


def _unseen(source: str, found: dict[str, Any]) -> str:
    """Why one source has no firing alert: it never fired there, or nobody could look."""
    blind = found.get("unreadable")
    return f"cannot tell in {source}: {_unreadable(source, blind)}" if blind else f"never in {source}"

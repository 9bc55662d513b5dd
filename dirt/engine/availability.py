"""Did the users notice?  Availability probes sampled all through a drill (``expect.availability``).

MTTD and MTTR say how fast the team reacted; they do not say what users lived
through meanwhile.  Each probe here samples on its own thread from just before
the first fault is injected to the end of verify:

* ``http``: dirt GETs the URL itself (``dirt.clients.http.timed_get``); a sample
  succeeds when an answer comes within ``timeout``, with an expected status, no
  slower than ``max_latency``; with ``served_by`` each answer also records who
  served it (a response header: a fleet entry point's ``X-Served-By``);
* ``promql``: a success-ratio expression on the target's Prometheus (the client
  abort conditions use); the sample's score is the ratio, and no value at all
  (an empty result, Prometheus unreachable) is *unknown*: counted as a failure,
  and reported as such.

Samples stay in memory in parallel arrays (a 10-minute drill at 200 ms is 3 000
rows per probe); the journal gets per-second buckets every ``FLUSH_EVERY``
seconds and one ``availability.result`` per probe, so a report can be drawn
from the journal alone, even after a crash.  A probe stops at the end of verify,
when the drill is cancelled (abort, signal), at ``MAX_SAMPLES`` or at the run's
own deadlines (``window_limit``); it is joined before the run ends.  A window
that closed before the end of verify is reported as cut short.

The statistics (``summarize``, ``longest_outage``, ``buckets``, ``served_counts``,
``served_spans``) are pure functions of the samples, tested on synthetic series.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dirt.clients import http
from dirt.clients.monitoring import safe_url, url_problem
from dirt.core.durations import MAX_DURATION
from dirt.core.errors import DirtError, StepFailed
from dirt.core.templating import substitute
from dirt.drivers import CancelToken
from dirt.journal.events import (
    AvailabilityBucket,
    AvailabilityBuckets,
    AvailabilityOutage,
    AvailabilityResult,
    AvailabilityStarted,
    Event,
    ServerNames,
)
from dirt.scenario.model import AvailabilityExpectation, Scenario

#: A probe never keeps more samples than this (about 5.5 hours at 200 ms).
MAX_SAMPLES = 100_000
#: Seconds between two ``availability.buckets`` events of one probe.
FLUSH_EVERY = 5.0
#: Slack on top of the scenario's own deadlines before a probe stops by itself.
WINDOW_SLACK = 300.0
#: At most this many distinct failure reasons are kept per probe; the rest count as "other".
MAX_REASONS = 20
#: A server's answers closer together than this many of its turns make one span (see ``served_spans``).
SPAN_MERGE_TURNS = 3

SUCCESS, FAILURE, UNKNOWN = 1, 0, -1


# -- samples and their statistics (pure) ---------------------------------------------------


class Samples:
    """One probe's samples as parallel arrays: when asked, latency, score, outcome, who served."""

    def __init__(self) -> None:
        self.at = array("d")  # wall time the sample was asked
        self.latency = array("d")  # seconds to the answer; NaN when nothing answered (and for promql)
        self.score = array("d")  # http: 1 or 0; promql: the ratio (0 when unknown)
        self.ok = array("b")  # SUCCESS, FAILURE or UNKNOWN (a failure too)
        self.served = array("h")  # who answered: an index into ``servers``; -1 when nobody said
        self.servers = ServerNames()

    def add(self, at: float, latency: float, score: float, ok: int, served: str | None = None) -> None:
        self.at.append(at)
        self.latency.append(latency)
        self.score.append(score)
        self.ok.append(ok)
        self.served.append(self.servers.index(served))

    def __len__(self) -> int:
        return len(self.at)


@dataclass(frozen=True)
class Outage:
    """A run of failed samples: from the first failure to the next success (or the window's end)."""

    start: float
    end: float
    samples: int
    ongoing: bool = False

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


def longest_outage(at: Sequence[float], ok: Sequence[int], window_end: float) -> Outage | None:
    """The longest run of consecutive failed (or unknown) samples; None when none failed."""
    best: Outage | None = None
    first: float | None = None
    count = 0
    for when, outcome in zip(at, ok):
        if outcome == SUCCESS:
            if first is not None:
                best = _longer(best, Outage(first, when, count))
                first, count = None, 0
        else:
            first = when if first is None else first
            count += 1
    if first is not None:
        best = _longer(best, Outage(first, max(first, window_end), count, ongoing=True))
    return best


def _longer(a: Outage | None, b: Outage) -> Outage:
    return b if a is None or b.seconds > a.seconds else a


def latency_stats(latencies: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """p50, p95 and max of the answered samples (NaN rows: nothing answered, left out)."""
    values = sorted(v for v in latencies if not math.isnan(v))
    if not values:
        return None, None, None
    p95 = values[0] if len(values) == 1 else statistics.quantiles(values, n=20, method="inclusive")[18]
    return statistics.median(values), p95, values[-1]


@dataclass(frozen=True)
class Summary:
    samples: int
    successes: int
    unknown: int
    ratio: float | None  # mean score: the share of users served (None: no sample)
    outage: Outage | None
    p50: float | None
    p95: float | None
    max: float | None


def summarize(samples: Samples, window_end: float) -> Summary:
    n = len(samples)
    p50, p95, top = latency_stats(samples.latency)
    return Summary(
        samples=n,
        successes=sum(1 for o in samples.ok if o == SUCCESS),
        unknown=sum(1 for o in samples.ok if o == UNKNOWN),
        ratio=None if n == 0 else math.fsum(samples.score) / n,
        outage=longest_outage(samples.at, samples.ok, window_end),
        p50=p50, p95=p95, max=top,
    )


def buckets(samples: Samples, lo: int, hi: int) -> list[AvailabilityBucket]:
    """Rows ``lo:hi`` grouped by the wall-clock second they were asked in."""
    out: list[AvailabilityBucket] = []
    i = lo
    while i < hi:
        second = int(samples.at[i])
        j = i
        while j < hi and int(samples.at[j]) == second:
            j += 1
        ok = samples.ok[i:j]
        p50, _, top = latency_stats(samples.latency[i:j])
        out.append(AvailabilityBucket(
            at=second, n=j - i, failed=sum(1 for o in ok if o != SUCCESS), unknown=sum(1 for o in ok if o == UNKNOWN),
            score=round(math.fsum(samples.score[i:j]), 6),
            p50=None if p50 is None else round(p50, 6), max=None if top is None else round(top, 6),
            served=served_counts(samples, i, j)))
        i = j
    return out


def served_counts(samples: Samples, lo: int = 0, hi: int | None = None) -> dict[str, int]:
    """Successful answers per server in rows ``lo:hi``, in the order the servers were first seen."""
    if not samples.servers.names:
        return {}
    counts = Counter(who for who, ok in zip(samples.served[lo:hi], samples.ok[lo:hi]) if who >= 0 and ok == SUCCESS)
    return {name: counts[i] for i, name in enumerate(samples.servers.names) if counts[i]}


def served_spans(samples: Samples, merge_within: float) -> dict[str, list[tuple[float, float]]]:
    """For each server, the wall-time spans [first, last answer] during which it answered successfully.

    Two answers of one server less than ``merge_within`` seconds apart belong to one span, so a
    member that stopped answering shows as two spans with the gap between them.
    """
    spans: dict[int, list[list[float]]] = {}
    for at, who, ok in zip(samples.at, samples.served, samples.ok):
        if who < 0 or ok != SUCCESS:
            continue
        runs = spans.setdefault(who, [])
        if runs and at - runs[-1][1] < merge_within:
            runs[-1][1] = at
        else:
            runs.append([at, at])
    return {name: [(round(a, 3), round(b, 3)) for a, b in spans[i]]
            for i, name in enumerate(samples.servers.names) if i in spans}


def span_merge_window(interval: float, servers: int) -> float:
    """How far apart two answers of one server may be and still make one span.

    A balancer shares the users among ``servers``, so one server answers about every
    ``servers`` samples: ``SPAN_MERGE_TURNS`` of its turns.  Only a real gap splits a span.
    """
    return SPAN_MERGE_TURNS * interval * max(1, servers)


def judge(spec: AvailabilityExpectation, summary: Summary) -> tuple[bool, str]:
    """Objectives vs measurement: (passed, what was measured and what missed)."""
    measured = describe(summary)
    missed = []
    if summary.samples == 0 and (spec.min_success is not None or spec.max_outage is not None):
        return False, "no sample was taken"
    if spec.min_success is not None and (summary.ratio is None or summary.ratio + 1e-12 < spec.min_success):
        missed.append(f"success {percent(summary.ratio)}, objective {spec.min_success * 100:g}%")
    outage = summary.outage.seconds if summary.outage else 0.0
    if spec.max_outage is not None and outage > spec.max_outage:
        missed.append(f"longest outage {outage:.1f}s, objective {spec.max_outage:g}s")
    return not missed, "; ".join(missed) + f" ({measured})" if missed else measured


def describe(summary: Summary) -> str:
    outage = summary.outage
    text = f"{percent(summary.ratio)} of {summary.samples} samples succeeded"
    if summary.unknown:
        text += f" ({summary.unknown} unknown)"
    text += f"; longest outage {outage.seconds:.1f}s" if outage else "; no outage"
    return text


def percent(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    digits = 0 if ratio in (0.0, 1.0) else (2 if ratio > 0.99 else 1)
    return f"{ratio * 100:.{digits}f}%"


def window_limit(scenario: Scenario) -> float:
    """The longest the window may stay open: the scenario's own deadlines, plus slack."""
    timing = scenario.timing
    inject = sum(s.within or timing.inject_within for s in scenario.inject)
    detect = max((a.fires_within for a in scenario.expect.alerts), default=0.0)
    recover = sum(s.within or timing.step_within for s in scenario.recover)
    verify = max((s.within or timing.verify_within for s in scenario.verify), default=0.0)
    resolve = max((a.resolves_within or 0.0 for a in scenario.expect.alerts), default=0.0)
    return min(MAX_DURATION, inject + detect + recover + verify + resolve + WINDOW_SLACK)


# -- samplers: one sample of what users see ---------------------------------------------------


@dataclass(frozen=True)
class Sample:
    latency: float  # NaN: no answer, or not an HTTP probe
    score: float
    ok: int
    reason: str = ""  # why it failed
    served: str | None = None  # who answered (the ``served_by`` header's value)


class HttpSampler:
    def __init__(self, spec: AvailabilityExpectation, url: str) -> None:
        self.spec = spec
        self.url = url

    def sample(self) -> Sample:
        spec = self.spec
        answer = http.timed_get(self.url, timeout=spec.timeout, header=spec.served_by)
        if answer.status is None:
            return Sample(math.nan, 0.0, FAILURE, answer.error or "no answer")
        who = answer.header
        if answer.seconds > spec.timeout:
            return Sample(answer.seconds, 0.0, FAILURE, "timeout", who)
        if not (answer.status in spec.expect_status if spec.expect_status else 200 <= answer.status < 400):
            return Sample(answer.seconds, 0.0, FAILURE, f"HTTP {answer.status}", who)
        if spec.max_latency is not None and answer.seconds > spec.max_latency:
            return Sample(answer.seconds, 0.0, FAILURE, "slower than max_latency", who)
        return Sample(answer.seconds, 1.0, SUCCESS, served=who)


class PromqlSampler:
    def __init__(self, spec: AvailabilityExpectation, expr: str, client: Any) -> None:
        self.spec = spec
        self.expr = expr
        self.client = client
        self.threshold = spec.min_success if spec.min_success is not None else 1.0

    def sample(self) -> Sample:
        try:
            values = [v for _, v in self.client.query(self.expr)]
        except DirtError as exc:
            return Sample(math.nan, 0.0, UNKNOWN, f"unknown: {str(exc)[:100]}")
        if not values:
            return Sample(math.nan, 0.0, UNKNOWN, "unknown: no value")
        value = min(values)  # the worst-served series
        if not (0.0 <= value <= 1.0):  # NaN included
            return Sample(math.nan, 0.0, UNKNOWN, "unknown: value outside 0..1")
        ok = SUCCESS if value + 1e-12 >= self.threshold else FAILURE
        return Sample(math.nan, value, ok, "" if ok == SUCCESS else "ratio below min_success")


# -- one probe on its thread -------------------------------------------------------------------


@dataclass
class Probe:
    spec: AvailabilityExpectation
    sampler: HttpSampler | PromqlSampler
    emit: Callable[[Event], object]
    wall: Callable[[], float]
    cancel: CancelToken
    deadline: float  # monotonic
    samples: Samples = field(default_factory=Samples)
    reasons: Counter[str] = field(default_factory=Counter)
    window_start: float = 0.0
    window_end: float | None = None
    cut_reason: str | None = None  # set when the probe stopped by itself before the end of verify
    _flushed: int = 0
    _last_flush: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _result: AvailabilityResult | None = None
    _summary: Summary | None = None

    @property
    def name(self) -> str:
        return self.spec.title()

    def start(self) -> None:
        spec = self.spec
        url = self.sampler.url if isinstance(self.sampler, HttpSampler) else None
        self.emit(AvailabilityStarted(
            name=self.name, kind=spec.kind,  # type: ignore[arg-type]
            url=None if url is None else safe_url(url),
            promql=self.sampler.expr if isinstance(self.sampler, PromqlSampler) else None,
            interval_seconds=spec.every, timeout_seconds=spec.timeout if url is not None else None,
            max_latency_seconds=spec.max_latency, expect_status=spec.expect_status,
            min_success=spec.min_success, max_outage_seconds=spec.max_outage,
            served_by=spec.served_by if url is not None else None))
        self.window_start = self.wall()
        self._last_flush = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"dirt-availability-{self.name[:40]}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        interval = self.spec.every
        next_at = time.monotonic()
        while not self._stop.is_set():
            why = self._why_stop()
            if why:
                self.cut_reason, self.window_end = why, self.wall()
                return
            asked = time.monotonic()
            at = self.wall()
            try:
                sample = self.sampler.sample()
            except Exception as exc:  # noqa: BLE001 - a sampler bug is an unknown sample, not a dead probe
                sample = Sample(math.nan, 0.0, UNKNOWN, f"internal error: {type(exc).__name__}")
            with self._lock:
                self.samples.add(at, sample.latency, sample.score, sample.ok, sample.served)
                if sample.ok != SUCCESS:
                    self._count(sample.reason)
                if time.monotonic() - self._last_flush >= FLUSH_EVERY:
                    self._flush(complete_only=True)
            next_at = max(next_at + interval, asked)  # a slow answer skips ticks rather than bursting
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _why_stop(self) -> str | None:
        if self.cancel.cancelled:
            return f"the drill was cancelled ({self.cancel.reason})"
        if len(self.samples) >= MAX_SAMPLES:
            return f"the probe reached its cap of {MAX_SAMPLES} samples"
        if time.monotonic() >= self.deadline:
            return "the probe reached the run's deadlines"
        return None

    def _count(self, reason: str) -> None:
        key = reason or "failed"
        if key not in self.reasons and len(self.reasons) >= MAX_REASONS:
            key = "other"
        self.reasons[key] += 1

    def _flush(self, *, complete_only: bool) -> None:
        """Journal the buckets not yet written (only whole seconds unless the window closed)."""
        hi = len(self.samples)
        if complete_only:
            current = int(self.wall())
            while hi > self._flushed and int(self.samples.at[hi - 1]) >= current:
                hi -= 1
        self._last_flush = time.monotonic()
        if hi <= self._flushed:
            return
        rows = buckets(self.samples, self._flushed, hi)
        self._flushed = hi
        self.emit(AvailabilityBuckets(name=self.name, buckets=rows))

    def request_stop(self) -> None:
        if self.window_end is None:
            self.window_end = self.wall()
        self._stop.set()

    def finish(self, cut_reason: str | None) -> AvailabilityResult:
        """Stop (waiting for a sample in flight), write the last buckets and the result; once."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout=self.spec.timeout + 15.0)  # a PromQL query has its own timeout too
        with self._lock:
            if self._result is not None:
                return self._result
            self._flush(complete_only=False)
            assert self.window_end is not None
            summary = summarize(self.samples, self.window_end)
            reason = self.cut_reason or cut_reason
            passed, _ = judge(self.spec, summary)
            outage = summary.outage
            served = served_counts(self.samples)
            self._result = AvailabilityResult(
                name=self.name, kind=self.spec.kind,  # type: ignore[arg-type]
                window_start=self.window_start, window_end=self.window_end,
                cut_short=reason is not None, cut_reason=reason,
                samples=summary.samples, successes=summary.successes, unknown=summary.unknown,
                ratio=None if summary.ratio is None else round(summary.ratio, 6),
                longest_outage=None if outage is None else AvailabilityOutage(
                    start=outage.start, end=outage.end, seconds=round(outage.seconds, 3),
                    ongoing=outage.ongoing, samples=outage.samples),
                latency_p50=_round(summary.p50), latency_p95=_round(summary.p95), latency_max=_round(summary.max),
                min_success=self.spec.min_success, max_outage_seconds=self.spec.max_outage,
                passed=passed, failures=dict(self.reasons.most_common()), served=served,
                served_spans=served_spans(self.samples, span_merge_window(self.spec.every, len(served))))
            self.emit(self._result)
            self._summary = summary
            return self._result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


# -- every probe of a run ------------------------------------------------------------------------


class AvailabilityWatch:
    """The run's probes: started together before the first fault, judged together after verify."""

    def __init__(self, specs: Sequence[AvailabilityExpectation], *, target: Any, variables: Mapping[str, Any],
                 emit: Callable[[Event], object], wall: Callable[[], float], cancel: CancelToken,
                 expectation: Callable[..., None], limit: float) -> None:
        self.expectation = expectation
        deadline = time.monotonic() + limit
        client = None
        self.probes: list[Probe] = []
        for spec in specs:
            if spec.http is not None:
                sampler: HttpSampler | PromqlSampler = HttpSampler(spec, _url(spec, variables))
            else:
                client = client or target.monitoring()  # raises when the target has no Prometheus
                sampler = PromqlSampler(spec, _expand(spec.promql or "", variables, spec), client)
            self.probes.append(Probe(spec, sampler, emit, wall, cancel, deadline))
        self._finished = False

    def start(self) -> None:
        for probe in self.probes:
            probe.start()

    def finish(self, cut_reason: str | None = None) -> None:
        """Close every window, then judge each probe as one expectation (objective vs measured)."""
        if self._finished:
            return
        self._finished = True
        for probe in self.probes:
            probe.request_stop()  # every window closes at the same moment
        for probe in self.probes:
            result = probe.finish(cut_reason)
            self._expect(probe, result)

    def _expect(self, probe: Probe, result: AvailabilityResult) -> None:
        spec = probe.spec
        assert probe._summary is not None
        passed, detail = judge(spec, probe._summary)
        objective = [f"success ≥ {spec.min_success * 100:g}%"] if spec.min_success is not None else []
        if spec.max_outage is not None:
            objective.append(f"outage ≤ {spec.max_outage:g}s")
        outage = result.longest_outage.seconds if result.longest_outage else 0.0
        if result.cut_short:
            detail += f" (window cut short: {result.cut_reason})"
        self.expectation(
            probe.name, "availability", spec.max_outage, outage, passed,
            detail if objective else f"measured only: {detail}",
            data={"ratio": result.ratio, "min_success": spec.min_success, "samples": result.samples,
                  "objective": ", ".join(objective) or "none (measured only)",
                  "measured": f"{percent(result.ratio)}, longest outage {outage:.1f}s",
                  "cut_short": result.cut_short})


def _expand(text: str, variables: Mapping[str, Any], spec: AvailabilityExpectation) -> str:
    try:
        return substitute(text, variables)
    except KeyError as exc:
        raise StepFailed(f"availability {spec.title()}: unknown variable {exc.args[0]!r}") from None


def _url(spec: AvailabilityExpectation, variables: Mapping[str, Any]) -> str:
    url = _expand(spec.http or "", variables, spec)
    problem = url_problem(url)
    if problem:
        raise StepFailed(f"availability {spec.title()}: {problem}")
    return url

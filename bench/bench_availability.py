"""Benchmarks: what an availability probe (``expect.availability``) costs the drill it watches.

A probe samples on its own thread all through a drill, in dirt's process, so its
CPU is dirt's CPU.  Each figure is shown against a baseline run in the same process
(so the ratios mean something on any machine):

* sampling: ``HttpSampler.sample()`` (``timed_get``: a fresh connection per sample)
  and ``PromqlSampler.sample()`` (dirt's Prometheus client) against a local server,
  vs a bare ``requests.get`` and a bare ``http.client`` request on a fresh connection;
  samples/s and client CPU per sample (``time.process_time``; the server runs in a
  child process so none of its CPU is counted), samples back to back.  The methods
  take turns in rounds so the machine's noise falls on all of them alike;
* CPU share of one core at the default interval, what a drill pays: a real
  ``AvailabilityWatch`` left sampling (its events go to a list here, not to a journal
  file) vs a bare ``requests.get`` paced the same way on the main thread.  Also the
  share computed from the back-to-back CPU per sample (per sample / interval): a
  floor, well below the paced figures, because a sample that follows a 200 ms sleep
  runs on cold caches;
* memory: ``Samples`` holding ``MAX_SAMPLES`` rows vs a list of (at, latency, score,
  ok) tuples, as peak bytes traced by ``tracemalloc`` while each is filled;
* statistics: ``summarize`` and ``buckets`` over ``MAX_SAMPLES`` rows with a few
  outages vs a plain Python loop computing the same success ratio; and ``buckets``
  of one flush (``FLUSH_EVERY`` seconds at 200 ms), which a probe pays all drill long.

The local server listens on 127.0.0.1 only and is stopped at the end.  ``--quick``
runs a tiny version (for the unit test): same lines, small counts.

Run: make bench   (or .venv/bin/python bench/bench_availability.py [--quick])
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
from measure import best, traced_peak  # noqa: E402

T0 = 1_795_000_000.0  # wall time of the first synthetic sample
#: (where it starts, as a share of the series; how many samples) for the statistics' series
OUTAGES = ((0.2, 150), (0.5, 25), (0.8, 300))

SERVER = r"""
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VECTOR = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"job": "shop"}, "value": [1795000000.0, "0.999"]}]}}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for the Prometheus client's session; the others ask to close
    disable_nagle_algorithm = True  # headers and body go out in two writes: Nagle would hold the body 40 ms

    def do_GET(self):
        body = VECTOR if self.path.startswith("/api/v1/query") else b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass(frozen=True)
class Sizes:
    samples: int  # samples per sampling method
    rounds: int  # the methods take turns this many times
    watch_seconds: float  # how long the real AvailabilityWatch samples
    rows: int  # rows of the memory and statistics series
    runs: int  # best of this many for the statistics


NORMAL = Sizes(samples=2_000, rounds=4, watch_seconds=10.0, rows=100_000, runs=3)  # rows: MAX_SAMPLES
QUICK = Sizes(samples=40, rounds=2, watch_seconds=0.5, rows=5_000, runs=1)


@dataclass
class Rate:
    """Samples taken by one method: wall and CPU time spent in them."""

    n: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    failed: int = 0

    @property
    def per_second(self) -> float:
        return self.n / self.wall

    @property
    def cpu_per_sample(self) -> float:
        return self.cpu / self.n


def start_server() -> tuple[subprocess.Popen[str], int]:
    """The local web server in a child process (its CPU is not ours), and its port."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        proc.wait()
        raise SystemExit(f"the bench's web server did not start (exit {proc.poll()})")
    return proc, int(line)


def interleaved(methods: dict[str, Callable[[], bool]], samples: int, rounds: int) -> dict[str, Rate]:
    """Each method ``samples`` times, in ``rounds`` turns; a method returns whether its sample succeeded."""
    rates = {name: Rate() for name in methods}
    per_round = max(1, samples // rounds)
    for fn in methods.values():  # warm up: imports, first connections
        fn()
    for _ in range(rounds):
        for name, fn in methods.items():
            rate = rates[name]
            wall, cpu = time.perf_counter(), time.process_time()
            failed = 0
            for _ in range(per_round):
                failed += not fn()
            rate.wall += time.perf_counter() - wall
            rate.cpu += time.process_time() - cpu
            rate.n += per_round
            rate.failed += failed
    bad = {name: rate.failed for name, rate in rates.items() if rate.failed}
    if bad:
        raise SystemExit(f"samples failed against the local server: {bad}")
    return rates


def sampling_methods(port: int) -> dict[str, Callable[[], bool]]:
    import http.client

    import requests

    from dirt.clients.monitoring import Endpoint, MonitoringClient
    from dirt.engine.availability import SUCCESS, HttpSampler, PromqlSampler
    from dirt.scenario.model import AvailabilityExpectation

    url = f"http://127.0.0.1:{port}/healthz"

    def bare_http_client() -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            conn.request("GET", "/healthz", headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            return response.status == 200
        finally:
            conn.close()

    def bare_requests() -> bool:
        response = requests.get(url, timeout=(1.0, 1.0), headers={"Connection": "close"})
        return response.status_code == 200 and response.content == b"ok\n"

    http_sampler = HttpSampler(AvailabilityExpectation(http=url), url)
    client = MonitoringClient(Endpoint(url=f"http://127.0.0.1:{port}"))
    expr = 'sum(rate(ok_total{job="shop"}[30s])) / sum(rate(requests_total{job="shop"}[30s]))'
    promql_sampler = PromqlSampler(AvailabilityExpectation(promql=expr, min_success=0.99), expr, client)
    return {
        "http.client": bare_http_client,
        "requests.get": bare_requests,
        "HttpSampler": lambda: http_sampler.sample().ok == SUCCESS,
        "PromqlSampler": lambda: promql_sampler.sample().ok == SUCCESS,
    }


def paced(fn: Callable[[], bool], interval: float, seconds: float) -> tuple[float, int]:
    """The baseline of a watch: ``fn`` every ``interval`` for ``seconds`` on this thread; CPU share and samples."""
    wall, cpu = time.perf_counter(), time.process_time()
    next_at, taken = time.monotonic(), 0
    while time.perf_counter() - wall < seconds:
        asked = time.monotonic()
        if not fn():
            raise SystemExit("a paced baseline sample failed against the local server")
        taken += 1
        next_at = max(next_at + interval, asked)
        time.sleep(max(0.0, next_at - time.monotonic()))
    return (time.process_time() - cpu) / (time.perf_counter() - wall), taken


def watched(port: int, seconds: float) -> tuple[float, int]:
    """A real AvailabilityWatch with one http probe at its default interval: CPU share and samples taken."""
    from dirt.drivers import CancelToken
    from dirt.engine.availability import AvailabilityWatch
    from dirt.journal.events import AvailabilityResult, Event
    from dirt.scenario.model import AvailabilityExpectation

    events: list[Event] = []
    watch = AvailabilityWatch([AvailabilityExpectation(http=f"http://127.0.0.1:{port}/healthz")], target=None,
                              variables={}, emit=events.append, wall=time.time, cancel=CancelToken(),
                              expectation=lambda *args, **kwargs: None, limit=seconds + 60.0)
    wall, cpu = time.perf_counter(), time.process_time()
    watch.start()
    time.sleep(seconds)
    watch.finish()
    share = (time.process_time() - cpu) / (time.perf_counter() - wall)
    result = next(e for e in events if isinstance(e, AvailabilityResult))
    if result.samples == 0 or result.successes != result.samples:
        raise SystemExit(f"the watched probe failed samples: {result.successes}/{result.samples}")
    return share, result.samples


# -- memory ------------------------------------------------------------------------------------


def filled_samples(rows: int) -> Any:
    from dirt.engine.availability import SUCCESS, Samples

    samples = Samples()
    for i in range(rows):
        samples.add(T0 + i * 0.2, 0.001 + (i % 97) * 1e-5, 1.0, SUCCESS)
    return samples


def filled_tuples(rows: int) -> list[tuple[float, float, float, int]]:
    out = []
    for i in range(rows):
        out.append((T0 + i * 0.2, 0.001 + (i % 97) * 1e-5, 1.0, 1))
    return out


# -- statistics --------------------------------------------------------------------------------


def with_outages(rows: int, outages: Sequence[tuple[float, int]] = OUTAGES) -> Any:
    """``rows`` samples at 200 ms, all served except in ``outages`` (nothing answered)."""
    from dirt.engine.availability import FAILURE, SUCCESS, Samples

    down = set()
    for share, length in outages:
        first = int(rows * share)
        down.update(range(first, min(rows, first + length)))
    samples = Samples()
    for i in range(rows):
        if i in down:
            samples.add(T0 + i * 0.2, math.nan, 0.0, FAILURE)
        else:
            samples.add(T0 + i * 0.2, 0.001 + (i % 97) * 1e-5, 1.0, SUCCESS)
    return samples


def plain_ratio(ok: Sequence[int]) -> float:
    """The baseline: the success ratio by the simplest loop."""
    good = 0
    for outcome in ok:
        if outcome == 1:
            good += 1
    return good / len(ok)


def per_call(fn: Callable[[], object], calls: int, runs: int) -> float:
    return best(lambda: [fn() for _ in range(calls)], runs) / calls


# -- the report --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (seconds, for the unit test)")
    sizes = QUICK if parser.parse_args(argv).quick else NORMAL
    sys.path.insert(0, str(REPO))
    from dirt.engine.availability import FLUSH_EVERY, buckets, summarize

    server, port = start_server()
    try:
        methods = sampling_methods(port)
        rates = interleaved(methods, sizes.samples, sizes.rounds)
        paced_share, paced_samples = paced(methods["requests.get"], 0.2, sizes.watch_seconds)
        watch_share, watch_samples = watched(port, sizes.watch_seconds)
    finally:
        server.terminate()
        server.wait()

    samples_peak = traced_peak(lambda: filled_samples(sizes.rows))
    tuples_peak = traced_peak(lambda: filled_tuples(sizes.rows))

    series = with_outages(sizes.rows)
    end = series.at[-1] + 0.2
    summary = summarize(series, end)
    baseline_ratio = plain_ratio(series.ok)
    longest = max(length for _, length in OUTAGES)
    if summary.ratio != baseline_ratio or summary.outage is None or summary.outage.samples != longest:
        raise SystemExit(f"summarize disagrees with the series: {summary}, plain ratio {baseline_ratio}")
    loop = best(lambda: plain_ratio(series.ok), sizes.runs)
    summarize_time = best(lambda: summarize(series, end), sizes.runs)
    all_buckets = buckets(series, 0, len(series))
    buckets_time = best(lambda: buckets(series, 0, len(series)), sizes.runs)
    flush_rows = int(FLUSH_EVERY / 0.2)
    flush_time = per_call(lambda: buckets(series, 1000, 1000 + flush_rows), 200, sizes.runs)

    base = rates["requests.get"].cpu_per_sample
    print(f"{f'sampling a local server ({sizes.samples:,} back to back)':52} {'samples/s':>10} {'CPU ms/sample':>14} "
          f"{'ratio':>9}")
    for label, name in (("http.client, fresh connection", "http.client"),
                        ("requests.get, fresh connection (baseline)", "requests.get"),
                        ("HttpSampler.sample() (timed_get)", "HttpSampler"),
                        ("PromqlSampler.sample() (kept-alive session)", "PromqlSampler")):
        rate = rates[name]
        ratio = f"{1.0:9.2f}" if name == "requests.get" else f"{rate.cpu_per_sample / base:9.2f}x requests"
        print(f"{label:52} {rate.per_second:10.0f} {rate.cpu_per_sample * 1000:14.3f} {ratio}")
    http_share = rates["HttpSampler"].cpu_per_sample / 0.2
    promql_share = rates["PromqlSampler"].cpu_per_sample / 1.0
    print()
    print(f"{f'CPU share of one probe, {sizes.watch_seconds:g}s (% of a core)':52} {'samples':>10} "
          f"{'CPU share':>14} {'ratio':>9}")
    print(f"{'requests.get every 200 ms (baseline)':52} {paced_samples:10} {paced_share * 100:13.2f}% {1.0:9.2f}")
    print(f"{'AvailabilityWatch, one http probe at 200 ms':52} {watch_samples:10} {watch_share * 100:13.2f}% "
          f"{watch_share / paced_share:9.2f}x requests")
    print(f"{'http at 200 ms from the back-to-back CPU/sample':52} {'':10} {http_share * 100:13.2f}% "
          f"{http_share / paced_share:9.2f}x requests")
    print(f"{'promql at 1 s from the back-to-back CPU/sample':52} {'':10} {promql_share * 100:13.2f}%")
    print()
    print(f"{f'memory of {sizes.rows:,} samples (tracemalloc peak)':52} {'bytes':>10} {'bytes/sample':>14} "
          f"{'ratio':>9}")
    print(f"{'list of (at, latency, score, ok) tuples (baseline)':52} {tuples_peak:10,} "
          f"{tuples_peak / sizes.rows:14.1f} {1.0:9.2f}")
    print(f"{'Samples (five arrays)':52} {samples_peak:10,} {samples_peak / sizes.rows:14.1f} "
          f"{samples_peak / tuples_peak:9.2f}x tuples")
    print()
    print(f"{f'statistics over {sizes.rows:,} samples, {len(OUTAGES)} outages':52} {'seconds':>10} "
          f"{'ratio':>14}")
    print(f"{'plain loop: success ratio (baseline)':52} {loop:10.4f} {1.0:14.2f}")
    print(f"{'summarize()':52} {summarize_time:10.4f} {summarize_time / loop:14.2f}x loop")
    print(f"{f'buckets(): {len(all_buckets):,} one-second buckets':52} {buckets_time:10.4f} "
          f"{buckets_time / loop:14.2f}x loop")
    print(f"{f'buckets() of one {FLUSH_EVERY:g}s flush ({flush_rows} samples)':52} {flush_time:10.6f} "
          f"{flush_time / FLUSH_EVERY * 100:13.4f}% of a core")
    print(f"(sampling in {sizes.rounds} interleaved rounds; statistics best of {sizes.runs}; "
          f"{os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()

"""Benchmark: a drill watched by 20 availability probes for 10 minutes — what it costs dirt.

Each ``expect.availability`` probe samples on its own thread all through a drill and
journals its buckets every ``FLUSH_EVERY`` seconds, so a long drill with many probes
pays in CPU, memory and journal size.  This runs a real ``AvailabilityWatch`` writing
into a real journal (``dirt.journal.writer.Journal``, as ``dirt run`` does), its probes
sampling a local web server (a child process, 127.0.0.1 only) at the default interval,
in a process of its own so its CPU and peak RSS are its own:

* the baseline: one probe for one minute;
* the load: 20 probes for 10 minutes (``--probes``, ``--minutes``).

Printed for each: samples taken and their share of those due, the CPU share of one
core, the peak RSS, the journal's size and events; and, per probe-minute, CPU and
journal bytes against the baseline's (1.00: the cost grows linearly with probes × time).
The server always answers: if fewer than 99 % of the samples succeed, the machine starved
it (or the probes) and the benchmark stops rather than print figures of a different load.

Run: .venv/bin/python bench/bench_probes.py [--probes 20 --minutes 10]   (make bench runs it)
``--quick``: 2 probes for 2 seconds against one for 1 second (for the unit test).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
from bench_availability import start_server  # noqa: E402

INTERVAL = 0.2  # the http probe's default


def watch(probes: int, seconds: float, port: int, journal_path: Path) -> dict[str, float]:
    """In this process: ``probes`` http probes for ``seconds``, journaled; what it cost."""
    sys.path.insert(0, str(REPO))
    from dirt.drivers import CancelToken
    from dirt.engine.availability import AvailabilityWatch
    from dirt.journal.events import AvailabilityResult
    from dirt.journal.writer import Journal
    from dirt.scenario.model import AvailabilityExpectation

    journal = Journal(journal_path)
    specs = [AvailabilityExpectation(name=f"probe-{i}", http=f"http://127.0.0.1:{port}/healthz?probe={i}")
             for i in range(probes)]
    watcher = AvailabilityWatch(specs, target=None, variables={}, emit=journal.emit, wall=journal.wall,
                                cancel=CancelToken(), expectation=lambda *args, **kwargs: None, limit=seconds + 60.0)
    wall, cpu = time.perf_counter(), time.process_time()
    watcher.start()
    time.sleep(seconds)
    watcher.finish()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    journal.close()
    events = [json.loads(line) for line in journal_path.read_text().splitlines()]
    results = [e for e in events if e["event"] == AvailabilityResult.model_fields["event"].default]
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return {"probes": probes, "wall": wall, "cpu": cpu, "samples": sum(r["samples"] for r in results),
            "successes": sum(r["successes"] for r in results), "results": len(results), "events": len(events),
            "journal_bytes": journal_path.stat().st_size, "peak_bytes": peak_kib * 1024}


def measured(probes: int, seconds: float, port: int, work: Path) -> dict[str, float]:
    """``watch`` in a new process (its own CPU and peak RSS)."""
    journal = work / f"journal-{probes}x{seconds:g}.jsonl"
    proc = subprocess.run([sys.executable, __file__, "--child", str(probes), str(seconds), str(port), str(journal)],
                          capture_output=True, text=True, timeout=seconds + 300)
    if proc.returncode != 0:
        raise SystemExit(f"the watch of {probes} probe(s) failed:\n{proc.stderr}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    # the server always answers: a sample fails only when the machine starves it past the probe's 1 s timeout
    if figures["results"] != probes or not figures["samples"] or figures["successes"] < 0.99 * figures["samples"]:
        raise SystemExit(f"{probes} probe(s): {figures['successes']}/{figures['samples']} samples succeeded, "
                         f"{figures['results']} result(s) journaled")
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="2 probes for 2 s against 1 for 1 s (the unit test)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        probes, seconds, port, journal = args.child
        print(json.dumps(watch(int(probes), float(seconds), int(port), Path(journal))))
        return
    probes, seconds = (2, 2.0) if args.quick else (args.probes, args.minutes * 60)
    base_seconds = 1.0 if args.quick else 60.0
    server, port = start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="dirt-bench-probes-") as tmp:
            base = measured(1, base_seconds, port, Path(tmp))
            load = measured(probes, seconds, port, Path(tmp))
    finally:
        server.terminate()
        server.wait()

    def per_probe_minute(figures: dict[str, float], key: str) -> float:
        return figures[key] / (figures["probes"] * figures["wall"] / 60)

    print(f"{'availability probes, journaled':44} {'samples':>9} {'due':>6} {'ok':>8} {'CPU %':>7} {'peak MiB':>9} "
          f"{'journal KiB':>12} {'events':>7}")
    for label, f in ((f"1 probe, {base_seconds:g}s (baseline)", base), (f"{probes} probes, {seconds:g}s", load)):
        due = f["probes"] * f["wall"] / INTERVAL
        print(f"{label:44} {f['samples']:9,.0f} {f['samples'] / due * 100:5.0f}% "
              f"{f['successes'] / f['samples'] * 100:7.2f}% {f['cpu'] / f['wall'] * 100:7.2f} "
              f"{f['peak_bytes'] / 2**20:9.1f} {f['journal_bytes'] / 1024:12,.1f} {f['events']:7,.0f}")
    print()
    print(f"{'per probe-minute':44} {'value':>12} {'ratio':>9}")
    for label, key, shown in (("CPU", "cpu", "{:.3f}s"), ("journal", "journal_bytes", "{:,.0f} B")):
        b, l = per_probe_minute(base, key), per_probe_minute(load, key)
        print(f"{f'{label}, 1 probe (baseline)':44} {shown.format(b):>12} {1.0:9.2f}")
        print(f"{f'{label}, {probes} probes':44} {shown.format(l):>12} {l / b:9.2f}x baseline")
    print(f"{'peak RSS, ' + str(probes) + ' probes vs 1':44} {'':12} {load['peak_bytes'] / base['peak_bytes']:9.2f}x "
          "baseline")


if __name__ == "__main__":
    main()

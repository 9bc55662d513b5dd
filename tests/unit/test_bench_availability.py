"""bench/bench_availability.py: its synthetic series says what its label says, and a tiny run prints every figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "bench_availability.py"


bench = load_script(SCRIPT, "bench_availability")


def test_the_statistics_series_has_the_outages_it_names() -> None:
    from dirt.engine.availability import summarize

    series = bench.with_outages(1000, [(0.1, 5), (0.5, 30)])
    summary = summarize(series, series.at[-1] + 0.2)
    assert summary.samples == 1000 and summary.successes == 965
    assert summary.outage is not None and summary.outage.samples == 30
    assert bench.plain_ratio(series.ok) == summary.ratio == 0.965


def test_a_quick_run_prints_each_figure_against_its_baseline() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    number = r"\s+[\d,.]+"
    for line in (rf"requests\.get, fresh connection \(baseline\){number}{number}\s+1\.00$",
                 rf"HttpSampler\.sample\(\) \(timed_get\){number}{number}{number}x requests$",
                 rf"PromqlSampler\.sample\(\) \(kept-alive session\){number}{number}{number}x requests$",
                 rf"AvailabilityWatch, one http probe at 200 ms{number}{number}%{number}x requests$",
                 rf"Samples \(five arrays\){number}{number}{number}x tuples$",
                 rf"summarize\(\){number}{number}x loop$",
                 rf"buckets\(\): [\d,]+ one-second buckets{number}{number}x loop$"):
        assert re.search(line, out, re.M), f"no line like {line!r} in:\n{out}"

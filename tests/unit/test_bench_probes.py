"""bench/bench_probes.py prints each figure against its baseline; bench/measure.py's ``module_run``
measures the peak RSS of the process it starts, not of the benchmark that starts it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]
measure = load_script(REPO / "bench" / "measure.py", "measure")


def test_a_quick_run_prints_each_figure_against_its_baseline() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_probes.py"), "--quick"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in (r"1 probe, 1s \(baseline\)\s+[\d,]+\s+\d+%\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d,.]+\s+\d+$",
                 r"2 probes, 2s\s+[\d,]+\s+\d+%\s+[\d.]+%\s+[\d.]+\s+[\d.]+\s+[\d,.]+\s+\d+$",
                 r"CPU, 1 probe \(baseline\)\s+[\d.]+s\s+1\.00$",
                 r"CPU, 2 probes\s+[\d.]+s\s+[\d.]+x baseline$",
                 r"journal, 2 probes\s+[\d,]+ B\s+[\d.]+x baseline$",
                 r"peak RSS, 2 probes vs 1\s+[\d.]+x baseline$"):
        assert re.search(line, out, re.M), f"no line like {line!r} in:\n{out}"


def test_module_run_gives_the_peak_rss_of_the_process_it_started(tmp_path: Path) -> None:
    (tmp_path / "grow.py").write_text("import sys\nheld = bytearray(int(sys.argv[1]) * 2**20)\nheld[::4096] = "
                                      "b'x' * len(held[::4096])\n")
    held = bytearray(300 * 2**20)  # the benchmark's own data: a forked child's ru_maxrss would show it
    held[::4096] = b"x" * len(held[::4096])
    _, small = measure.module_run(sys.executable, "grow", ["1"], tmp_path)
    seconds, large = measure.module_run(sys.executable, "grow", ["200"], tmp_path)
    assert small < 100 * 2**20 < 200 * 2**20 < large < 300 * 2**20 and seconds > 0
    del held

"""Timing and memory helpers the benchmark scripts share (imported by them as ``measure``)."""

from __future__ import annotations

import gc
import os
import subprocess
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best(fn: Callable[[], object], runs: int) -> float:
    """The fastest of ``runs`` calls: the figure least disturbed by the machine's noise."""
    return min(timed(fn) for _ in range(runs))


def traced_peak(build: Callable[[], object]) -> int:
    """Peak bytes allocated while ``build`` runs (what it keeps and what it needed on the way)."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = build()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return peak


#: Runs a module as ``python -m`` would, and writes the process's own peak RSS (VmHWM, KiB) to the file
#: named by $DIRT_BENCH_PEAK when it exits.  Not ``wait4``'s ru_maxrss: on Linux a child started by
#: fork or vfork + exec keeps the larger of its own peak and its parent's, so a benchmark holding a
#: large data set would see its own size in every child it measures.
_PEAK_RUNNER = """
import atexit, os, runpy, sys
def _peak():
    with open('/proc/self/status') as status:
        kib = next(line.split()[1] for line in status if line.startswith('VmHWM:'))
    with open(os.environ['DIRT_BENCH_PEAK'], 'w') as out:
        out.write(kib)
atexit.register(_peak)
sys.argv = sys.argv[1:]
if sys.argv[0].endswith('.py'):
    runpy.run_path(sys.argv[0], run_name='__main__')
else:
    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
"""


def module_run(python: str, module: str, args: list[str], cwd: str | os.PathLike[str]) -> tuple[float, int]:
    """``python -m module args`` (or ``python script.py args``) in a new process: its wall time in seconds
    and its own peak RSS in bytes.  A failure stops the benchmark with the command's stderr."""
    with tempfile.TemporaryDirectory(prefix="dirt-bench-peak-") as tmp:
        peak = Path(tmp) / "peak"
        errors = Path(tmp) / "stderr"
        with errors.open("wb") as err:
            start = time.perf_counter()
            proc = subprocess.run([python, "-c", _PEAK_RUNNER, module, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                                  stderr=err, env={**os.environ, "DIRT_BENCH_PEAK": str(peak)})
            seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"python -m {module} {' '.join(args)} failed:\n{errors.read_text(errors='replace')}")
        return seconds, int(peak.read_text()) * 1024

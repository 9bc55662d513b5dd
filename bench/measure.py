"""Timing and memory helpers the benchmark scripts share (imported by them as ``measure``)."""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable


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

"""Benchmarks: `dirt validate` on 200 scenario files, and `dirt --help` start-up.

Prints figures and ratios against baselines run in the same process, on the
same machine, at the same time (so the ratios mean something on any machine):

* start-up: `dirt --help` vs `python -c pass` (the interpreter alone);
* validate: 200 files through the CLI vs the same files loaded in-process
  (what the CLI's own start-up costs), and per-file time;
* peak memory (max RSS) of the validate run.

Run: make bench   (or .venv/bin/python bench/bench_cli.py)
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "unit" / "data"
SAMPLE = DATA / "bench-scenario.yaml"
RUNS = 7


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{proc.stderr}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, usage.ru_maxrss


def median(argv: list[str], cwd: Path) -> float:
    return statistics.median(timed(argv, cwd)[0] for _ in range(RUNS))


def main() -> None:
    os.environ["DIRT_TESTING"] = "1"  # the sample scenario uses the fake.* drivers
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="dirt-bench-"))
    try:
        (work / "scenarios").mkdir()
        shutil.copy(DATA / "bench-playbook.md", work / "scenarios" / "bench-playbook.md")
        text = SAMPLE.read_text()
        for i in range(200):
            (work / "scenarios" / f"s{i:03d}.yaml").write_text(text.replace("bench-drill", f"bench-drill-{i}"))
        baseline = median([python, "-c", "pass"], work)
        help_time = median([python, "-m", "dirt", "--help"], work)
        import_all = median([python, "-c", "import dirt.cli, dirt.engine.runner, dirt.drivers.registry;"
                                           "dirt.drivers.registry.default_registry()"], work)
        validate = median([python, "-m", "dirt", "validate", "-q", "scenarios"], work)

        sys.path.insert(0, str(REPO))
        from dirt.scenario import load_scenario

        files = sorted((work / "scenarios").glob("*.yaml"))
        load_scenario(files[0])  # warm caches (registry, playbooks) as the CLI run has to build them
        start = time.perf_counter()
        for f in files:
            load_scenario(f)
        in_process = time.perf_counter() - start
        rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss

        print(f"{'benchmark':42} {'seconds':>9} {'ratio':>9}")
        print(f"{'python -c pass (baseline)':42} {baseline:9.3f} {1.0:9.2f}")
        print(f"{'dirt --help':42} {help_time:9.3f} {help_time / baseline:9.2f}x python")
        print(f"{'import engine + all drivers':42} {import_all:9.3f} {import_all / baseline:9.2f}x python")
        print(f"{'dirt validate 200 files (CLI)':42} {validate:9.3f} {validate / baseline:9.2f}x python")
        print(f"{'load 200 files in-process (warm)':42} {in_process:9.3f} {validate / in_process:9.2f}x CLI/in-process")
        print(f"{'per file, in-process':42} {in_process / len(files) * 1000:8.2f}ms")
        print(f"{'peak RSS of child processes':42} {rss_kib / 1024:8.1f}MiB")
        print(f"(median of {RUNS} runs each; {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

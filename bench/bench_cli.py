"""Benchmarks: `dirt validate` on 200 and 2,000 scenario files, and `dirt --help` start-up.

Prints figures and ratios against baselines run in the same process, on the
same machine, at the same time (so the ratios mean something on any machine):

* start-up: `dirt --help` vs `python -c pass` (the interpreter alone);
* validate: 200 and 2,000 files through the CLI vs the same files loaded in-process
  (what the CLI's own start-up costs), and per-file time; the per-file time at
  2,000 against that at 200 says whether the cost grows linearly;
* peak memory (max RSS) of each validate run.

Run: make bench   (or .venv/bin/python bench/bench_cli.py)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
from measure import module_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "unit" / "data"
SAMPLE = DATA / "bench-scenario.yaml"
RUNS = 7
LARGE_RUNS = 3
COUNTS = (200, 2_000)


def run_checked(argv: list[str], cwd: Path) -> float:
    """Seconds one run of ``argv`` takes; a failure stops the benchmark."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{proc.stderr}")
    return elapsed


def median(argv: list[str], cwd: Path, runs: int = RUNS) -> float:
    return statistics.median(run_checked(argv, cwd) for _ in range(runs))


def validate(folder: Path, runs: int) -> tuple[float, int]:
    """``dirt validate -q FOLDER``: the median seconds of ``runs`` runs, and the largest peak RSS (bytes)."""
    results = [module_run(sys.executable, "dirt", ["validate", "-q", folder.name], folder.parent)
               for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def scenarios(work: Path, count: int) -> Path:
    folder = work / f"scenarios-{count}"
    folder.mkdir()
    shutil.copy(DATA / "bench-playbook.md", folder / "bench-playbook.md")
    text = SAMPLE.read_text()
    for i in range(count):
        (folder / f"s{i:04d}.yaml").write_text(text.replace("bench-drill", f"bench-drill-{i}"))
    return folder


def main() -> None:
    os.environ["DIRT_TESTING"] = "1"  # the sample scenario uses the fake.* drivers
    python = sys.executable
    work = Path(tempfile.mkdtemp(prefix="dirt-bench-"))
    try:
        folders = {count: scenarios(work, count) for count in COUNTS}
        baseline = median([python, "-c", "pass"], work)
        help_time = median([python, "-m", "dirt", "--help"], work)
        import_all = median([python, "-c", "import dirt.cli, dirt.engine.runner, dirt.drivers.registry;"
                                           "dirt.drivers.registry.default_registry()"], work)
        validated = {count: validate(folder, RUNS if count <= 200 else LARGE_RUNS) for count, folder in folders.items()}

        sys.path.insert(0, str(REPO))
        from dirt.scenario import load_scenario

        in_process = {}
        for count, folder in folders.items():
            files = sorted(folder.glob("*.yaml"))
            load_scenario(files[0])  # warm caches (registry, playbooks) as the CLI run has to build them
            start = time.perf_counter()
            for f in files:
                load_scenario(f)
            in_process[count] = time.perf_counter() - start

        print(f"{'benchmark':42} {'seconds':>9} {'ratio':>9}")
        print(f"{'python -c pass (baseline)':42} {baseline:9.3f} {1.0:9.2f}")
        print(f"{'dirt --help':42} {help_time:9.3f} {help_time / baseline:9.2f}x python")
        print(f"{'import engine + all drivers':42} {import_all:9.3f} {import_all / baseline:9.2f}x python")
        for count in COUNTS:
            seconds, rss = validated[count]
            print(f"{f'dirt validate {count:,} files (CLI)':42} {seconds:9.3f} {seconds / baseline:9.2f}x python")
            print(f"{f'load {count:,} files in-process (warm)':42} {in_process[count]:9.3f} "
                  f"{seconds / in_process[count]:9.2f}x CLI/in-process")
            print(f"{'  per file, in-process':42} {in_process[count] / count * 1000:8.2f}ms")
            print(f"{'  per file, CLI':42} {seconds / count * 1000:8.2f}ms")
            print(f"{'  peak RSS of the validate run':42} {rss / 2**20:8.1f}MiB")
        small, large = COUNTS[0], COUNTS[-1]
        growth = (validated[large][0] / large) / (validated[small][0] / small)
        print(f"{f'per-file CLI time, {large:,} vs {small:,} files':42} {growth:9.2f}x (1.00: linear)")
        print(f"(median of {RUNS} runs each, {LARGE_RUNS} for {large:,} files; {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmarks: reading, folding and rolling back large journals.

A real drill against the fake target writes a journal; it is then grown to about
50 MB two ways, and each is timed against a baseline run in the same process:

* a long drill (50 MB of distinct alert events): ``read_journal`` (every line
  parsed and typed) and ``build_report`` vs plain ``json.loads`` of every line;
* a journal of repeated events (the same ``fault.injected`` 150,000 times, as a
  buggy tool or a bad copy leaves it): ``dirt rollback`` as a CLI process, which
  must revert once, vs ``python -c pass``.

Peak memory (max RSS) of the rollback child (run first, while this process is
small: a forked child starts with its parent's size) and of this process.

Run: make bench   (or .venv/bin/python bench/bench_journal.py)
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
from measure import best  # noqa: E402

TARGET_BYTES = 50 * 1024 * 1024
RUNS = 3

SCENARIO = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: bench-journal}
inject:
  - fault: exec
    name: break-file
    command: "touch broken.flag"
    verify: "test -f broken.flag"
    revert: "rm -f broken.flag"
recover:
  - step: fake.step
verify:
  - check: fake.check
    mode: pass
"""


def recorded_run(work: Path) -> Path:
    """The folder of a real run: a real (fake-target) drill in this process."""
    os.environ["DIRT_TESTING"] = "1"
    from dirt.app.run import run_one
    from dirt.engine.runner import RunOptions
    from dirt.scenario import load_scenario
    from dirt.testing import FakeTarget

    (work / "drill.yaml").write_text(SCENARIO)
    result = run_one(load_scenario(work / "drill.yaml"), FakeTarget("fake", root=work),
                     RunOptions(report_dir=work / "reports", handle_signals=False))
    return result.run_dir


def grown(lines: list[str], target_bytes: int) -> str:
    """The drill with many more (distinct, in-order) alert events before its end."""
    head, tail = lines[:-1], lines[-1:]
    seq = len(head)
    body = []
    size = sum(len(x) + 1 for x in lines)
    while size < target_bytes:
        seq += 1
        event = {"seq": seq, "ts": 1795000000.0 + seq / 1000, "t": seq / 1000, "event": "alert.firing",
                 "name": f"Noise{seq % 50}", "labels": {"alertname": f"Noise{seq % 50}", "severity": "warning"},
                 "source": "prometheus", "state": "firing", "server_time": 1795000000.0 + seq / 1000,
                 "observed_at": 1795000000.0 + seq / 1000, "expected": False, "forbidden": False}
        line = json.dumps(event)
        body.append(line)
        size += len(line) + 1
    end = json.loads(tail[0])
    end["seq"] = seq + 1
    return "\n".join(head + body + [json.dumps(end)]) + "\n"


def main() -> None:
    sys.path.insert(0, str(REPO))
    work = Path(tempfile.mkdtemp(prefix="dirt-bench-journal-"))
    try:
        run_dir = recorded_run(work)
        lines = (run_dir / "journal.jsonl").read_text().splitlines()
        from dirt.journal import read_journal
        from dirt.report import build_report

        dup_dir = work / "dups"
        shutil.copytree(run_dir, dup_dir)
        original = (dup_dir / "journal.jsonl").read_text().splitlines()
        injected = next(x for x in original if '"fault.injected"' in x)
        cut = next(i for i, x in enumerate(original) if '"fault.verified"' in x)
        kept = original[:cut + 1]  # a run killed with its fault in effect ...
        kept[0] = json.dumps(json.loads(kept[0]) | {"pid": 1 << 22})  # ... and its process gone
        copies = max(1, (TARGET_BYTES - sum(len(x) + 1 for x in kept)) // (len(injected) + 1))
        (dup_dir / "journal.jsonl").write_text("\n".join(kept) + "\n" + (injected + "\n") * copies)
        (work / "broken.flag").touch()
        (work / "dirt.yaml").write_text(textwrap.dedent("""\
            default_target: fake
            targets: {fake: {provider: fake}}
            """))
        python = sys.executable
        start_py = best(lambda: subprocess.run([python, "-c", "pass"], check=True), RUNS)
        start = time.perf_counter()
        proc = subprocess.run([python, "-m", "dirt", "rollback", str(dup_dir), "--yes"], cwd=work,
                              capture_output=True, text=True, env={**os.environ, "DIRT_TESTING": "1"})
        rollback = time.perf_counter() - start
        if proc.returncode != 0 or proc.stdout.count("reverted break-file") != 1:
            raise SystemExit(f"rollback misbehaved ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        long_run = work / "long" / "journal.jsonl"
        long_run.parent.mkdir()
        long_run.write_text(grown(lines, TARGET_BYTES))
        size_mb = long_run.stat().st_size / 1024 / 1024
        raw = long_run.read_text().splitlines()
        baseline = best(lambda: [json.loads(x) for x in raw], RUNS)
        contents = read_journal(long_run)
        read = best(lambda: read_journal(long_run), RUNS)
        report = best(lambda: build_report(contents.events, contents.problems), RUNS)

        child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        print(f"{'benchmark':52} {'seconds':>9} {'ratio':>12}")
        print(f"{f'json.loads of {len(raw):,} lines ({size_mb:.0f} MB) (baseline)':52} {baseline:9.3f} {1.0:9.2f}")
        print(f"{'read_journal (parse + type + dedupe)':52} {read:9.3f} {read / baseline:9.2f}x json")
        print(f"{'build_report from those events':52} {report:9.3f} {report / baseline:9.2f}x json")
        print(f"{'python -c pass (baseline)':52} {start_py:9.3f} {1.0:9.2f}")
        print(f"{f'dirt rollback, {copies:,} duplicate events ({size_mb:.0f} MB)':52} {rollback:9.3f} "
              f"{rollback / start_py:9.2f}x python")
        print(f"{'  reverts done':52} {proc.stdout.count('reverted'):9d}")
        print(f"{'peak RSS: this process / the rollback child':52} {own_rss:8.0f}M / {child_rss:.0f}M")
        print(f"(best of {RUNS} in-process runs; {os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

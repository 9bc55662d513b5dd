"""Benchmarks: what the run history, the dashboard and game-day schedules cost.

Every finished drill is recorded in the history store (SQLite beside the reports
by default) and rewrites ``reports/index.html``; ``dirt history`` and ``dirt gameday
next`` read them back.  Each figure is shown against a baseline run in the same
process (so the ratios mean something on any machine):

* recording: ``HistoryStore.record_run(report)`` into SQLite vs ``json.dump`` of the
  same report to a file + ``fsync`` (what writing report.json costs); the two take
  turns run by run, so the disk's noise falls on both alike.  Also ``open_store``:
  a new store (its migrations), first in the process and warm; an existing one; and
  open + record + close, what ``dirt run`` pays per drill (``dirt.app.history.record_run``);
* reading and analysis: ``store.runs()`` and ``dirt.app.history.history_view`` (what
  ``dirt history`` shows) over N recorded runs vs ``json.load`` of the same N report.json
  files, each dropped once parsed (a floor for any reader of the files);
* at scale: ``dirt history`` (the CLI, a new process: its wall time and peak RSS) over a store
  of 100,000 runs (and a game day per ten) vs the same command over the N runs above, so the
  ratio says how the answer grows with the history (it reads the newest runs and aggregates,
  never every run);
* dashboard: ``dirt.report.update_index`` over N run folders vs ``json.load`` of every
  report.json (what the index did before it drew trends);
* schedule: ``dirt.gameday.schedule.upcoming`` for 1,000 runs of a daily cron in
  Europe/Berlin with jitter and three blackouts vs a bare croniter loop over the same cron times;
* memory: peak bytes traced by ``tracemalloc`` while ``store.runs()`` returns N
  records vs while the N report dicts are loaded and held.

The reports are the recorded drills in tests/unit/data/history, copied N times
with new run ids and start times.  Everything is written in a temporary folder
(on the same disk as /tmp: fsync is real there) that is removed at the end.
``--quick`` runs a tiny version (for the unit test): same lines, small counts.

Run: make bench   (or .venv/bin/python bench/bench_history.py [--quick])
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
from measure import best, module_run, timed, traced_peak  # noqa: E402

DATA = REPO / "tests" / "unit" / "data" / "history"
#: When the first synthetic run starts; one run every RUN_EVERY after it.
FIRST = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)
RUN_EVERY = timedelta(hours=7)
#: Expected interval per scenario, for the overdue part of ``history_view``.
INTERVALS = {"etcd-loss": 7 * 86400.0, "cluster-deletion": 30 * 86400.0}
SCHEDULE = {
    "cron": "30 2 * * *",  # daily at 02:30: the wall time Berlin skips once a year (spring forward)
    "timezone": "Europe/Berlin",
    "jitter": "45m",
    "blackouts": [
        {"name": "weekends", "weekly": {"days": ["sat", "sun"]}},
        {"name": "year-end freeze", "freeze": {"from": "2026-12-18", "to": "2027-01-06"}},
        {"dates": {"from": "2027-07-01", "to": "2027-07-31"}},
    ],
}
SCHEDULE_AFTER = datetime(2026, 6, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Sizes:
    runs: int  # recorded runs, run folders
    cycles: int  # open + record + close cycles
    schedule: int  # runs asked of upcoming()
    best_of: int  # best of this many for the reading figures
    load: int  # runs in the store `dirt history` reads at scale


NORMAL = Sizes(runs=2_000, cycles=50, schedule=1_000, best_of=3, load=100_000)
QUICK = Sizes(runs=50, cycles=5, schedule=100, best_of=1, load=500)
#: One run every LOAD_EVERY in the large store: 100,000 runs are about two years of a busy team.
LOAD_EVERY = timedelta(minutes=10)


def templates() -> list[dict[str, Any]]:
    """The recorded drills the synthetic history copies (real report.json files)."""
    paths = sorted(DATA.glob("*.json"))
    if not paths:
        raise SystemExit(f"no report.json templates in {DATA}")
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def synthetic_reports(sources: Sequence[dict[str, Any]], count: int, first: datetime = FIRST,
                      every: timedelta = RUN_EVERY) -> list[dict[str, Any]]:
    """``count`` reports taking the sources in turn, each with its own run id and start time
    (``every`` apart from ``first``, oldest first); its end keeps the source's duration."""
    reports = []
    for i in range(count):
        report = copy.deepcopy(sources[i % len(sources)])
        started = first + i * every
        name = report["scenario"]["name"]
        report["run_id"] = f"{started:%Y%m%d-%H%M%S}-{name}-{i:04x}"
        report["started_at"] = _iso(started)
        report["ended_at"] = _iso(started + timedelta(seconds=float(report.get("duration_seconds") or 0.0)))
        reports.append(report)
    return reports


def gameday_summary(i: int, drills: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A game day that ran ``drills`` (reports), for ``store.record_gameday``."""
    return {"run_id": f"gameday-{i:04x}", "name": "quarterly", "path": "gamedays/quarterly.yaml", "digest": None,
            "started_at": drills[0]["started_at"], "ended_at": drills[-1]["ended_at"],
            "verdict": "passed" if all(d["verdict"] == "passed" for d in drills) else "failed", "score": None,
            "trigger": "schedule", "schedule": SCHEDULE["cron"], "approved_by": None,
            "drills": [{"id": f"d{k}", "scenario": d["scenario"]["name"], "run_id": d["run_id"],
                        "verdict": d["verdict"], "weight": 1.0, "score": None} for k, d in enumerate(drills)]}


def write_report(report: dict[str, Any], path: Path) -> None:
    """The baseline of recording: report.json written as ``dirt.report`` writes it, then fsync'd."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        json.dump(report, out, indent=2, ensure_ascii=False)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())


def load_reports(paths: Sequence[Path], *, keep: bool = False) -> list[Any]:
    """The baseline of reading: every report.json, parsed; kept only when ``keep`` (the memory baseline).

    Not kept for the timings: the old index kept one summary line per run, and holding
    every dict would add the garbage collector's passes over a growing heap to the baseline."""
    out = []
    for path in paths:
        with path.open(encoding="utf-8") as f:
            report = json.load(f)
        if keep:
            out.append(report)
    return out


# -- recording ---------------------------------------------------------------------------------


@dataclass
class Recorded:
    record: float = 0.0  # seconds in record_run, all runs
    dump: float = 0.0  # seconds in json.dump + fsync, all runs
    first_open: float = 0.0
    warm_open: float = 0.0
    reopen: float = 0.0
    cycle: float = 0.0  # per open + record + close


def record_all(reports: Sequence[dict[str, Any]], store_dir: Path, reports_dir: Path, sizes: Sizes) -> Recorded:
    """Record every report in a new store at ``store_dir`` and write it under ``reports_dir``, taking turns."""
    from dirt.app.history import Recording, record_run
    from dirt.history import open_store

    out = Recorded()
    out.first_open = timed(lambda: open_store(None, store_dir).close())  # cold: SQLAlchemy's first statements
    fresh = []
    for i in range(max(3, sizes.best_of)):
        folder = store_dir.parent / f"fresh-{i}"
        fresh.append(timed(lambda: open_store(None, folder).close()))
    out.warm_open = min(fresh)
    store = open_store(None, store_dir)
    try:
        for report in reports:
            start = time.perf_counter()
            store.record_run(report)
            middle = time.perf_counter()
            write_report(report, reports_dir / report["run_id"] / "report.json")
            out.dump += time.perf_counter() - middle
            out.record += middle - start
        for i in range(len(reports) // 10):
            store.record_gameday(gameday_summary(i, reports[i * 10:i * 10 + 3]))
    finally:
        store.close()
    out.reopen = best(lambda: open_store(None, store_dir).close(), max(3, sizes.best_of))
    again = reports[-sizes.cycles:]  # recorded again: record_run replaces them, the store keeps its size
    where = Recording(url=f"sqlite:///{store_dir / 'history.sqlite'}")
    warnings: list[str] = []
    out.cycle = timed(lambda: [record_run(r, store_dir, where, warnings.append) for r in again]) / len(again)
    if warnings:
        raise SystemExit(f"recording failed: {warnings[0]}")
    return out


# -- at scale ----------------------------------------------------------------------------------


def fill(store_dir: Path, count: int, sources: Sequence[dict[str, Any]]) -> None:
    """A store of ``count`` runs, one every ``LOAD_EVERY``, and a game day of three of them per ten runs:
    the rows the store itself makes of the template reports (``run_rows``, ``gameday_rows``), written
    in large transactions (recording them one by one is measured above, and would take minutes)."""
    from dirt.history import open_store
    from dirt.history.store import gameday_rows, run_rows
    from dirt.history.tables import RUN_CHILDREN, gameday_drills, gamedays, runs

    made = [run_rows(r, gameday_run_id=None, gameday=None, schedule=None, trigger="schedule") for r in sources]
    store = open_store(None, store_dir)
    try:
        with store.engine.begin() as conn:
            for first in range(0, count, 5_000):
                rows: list[dict[str, Any]] = []
                children: dict[Any, list[dict[str, Any]]] = {table: [] for table in RUN_CHILDREN}
                days: list[dict[str, Any]] = []
                drills: list[dict[str, Any]] = []
                for i in range(first, min(count, first + 5_000)):
                    row, details = made[i % len(made)]
                    started = FIRST + i * LOAD_EVERY
                    run_id = f"{started:%Y%m%d-%H%M%S}-{row['scenario']}-{i:05x}"
                    rows.append({**row, "run_id": run_id, "started_at": started,
                                 "ended_at": started + timedelta(seconds=row["duration"] or 0.0)})
                    for table, items in details.items():
                        children[table].extend({**item, "run_id": run_id} for item in items)
                    if i % 10 == 2:
                        ran = [{"run_id": r["run_id"], "started_at": _iso(r["started_at"]),
                                "ended_at": _iso(r["ended_at"]), "verdict": r["verdict"],
                                "scenario": {"name": r["scenario"]}} for r in rows[-3:]]
                        day, its_drills = gameday_rows(gameday_summary(i // 10, ran))
                        days.append(day)
                        drills.extend(its_drills)
                conn.execute(runs.insert(), rows)
                for table, items in children.items():
                    if items:
                        conn.execute(table.insert(), items)
                if days:
                    conn.execute(gamedays.insert(), days)
                    conn.execute(gameday_drills.insert(), drills)
    finally:
        store.close()


def cli_history(store_dir: Path, *args: str, runs: int = 3) -> tuple[float, int]:
    """``dirt history --report-dir STORE`` in a new process: the fastest of ``runs`` wall times, and
    the largest peak RSS (bytes) among them (that process's own)."""
    results = [module_run(sys.executable, "dirt", ["history", "--report-dir", str(store_dir), *args], REPO)
               for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


# -- schedule ----------------------------------------------------------------------------------


def bare_cron_loop(cron: str, zone: str, after: datetime, times: int) -> list[datetime]:
    """The baseline of a schedule: croniter's next ``times`` wall-clock times, nothing else."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    walls = croniter(cron, after.astimezone(ZoneInfo(zone)).replace(tzinfo=None))
    return [walls.get_next(datetime) for _ in range(times)]


# -- the report --------------------------------------------------------------------------------


def row(label: str, value: str, per: str, ratio: float | None, versus: str = "") -> str:
    shown = f"{1.0:9.2f}" if ratio is None else f"{ratio:9.2f}x {versus}"
    return f"{label:56} {value:>12} {per:>14} {shown}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts (seconds, for the unit test)")
    sizes = QUICK if parser.parse_args(argv).quick else NORMAL
    sys.path.insert(0, str(REPO))
    from dirt.app.history import history_view
    from dirt.gameday.model import Schedule
    from dirt.gameday.schedule import upcoming
    from dirt.history import open_store
    from dirt.report import update_index

    n = sizes.runs
    reports = synthetic_reports(templates(), n)
    with tempfile.TemporaryDirectory(prefix="dirt-bench-history-") as tmp:
        store_dir, reports_dir = Path(tmp) / "store", Path(tmp) / "reports"
        rec = record_all(reports, store_dir, reports_dir, sizes)
        paths = sorted(reports_dir.glob("*/report.json"))
        now = datetime.fromisoformat(reports[-1]["ended_at"].replace("Z", "+00:00")) + timedelta(days=1)

        with open_store(None, store_dir) as store:
            records = store.runs()
            gamedays = store.gamedays()
            if len(records) != n or len(paths) != n:
                raise SystemExit(f"expected {n} runs, the store has {len(records)} and the folder {len(paths)}")
            view = history_view(store.summary(), INTERVALS, now)
            if view["runs_total"] != n or not view["runs"] or not view["trends"]:
                raise SystemExit("history_view lost runs or trends")
            load_reports(paths)  # warm: the files in the page cache, json's first calls
            load_time = best(lambda: load_reports(paths), sizes.best_of)
            runs_time = best(store.runs, sizes.best_of)
            view_time = best(lambda: history_view(store.summary(), INTERVALS, now), sizes.best_of)
            gc.collect()
            runs_peak = traced_peak(store.runs)
            dicts_peak = traced_peak(lambda: load_reports(paths, keep=True))

        load_dir = Path(tmp) / "load"
        fill(load_dir, sizes.load, templates())
        shown = json.loads(subprocess.run([sys.executable, "-m", "dirt", "history", "--report-dir", str(load_dir),
                                           "--json"], cwd=REPO, capture_output=True, text=True, check=True).stdout)
        if shown["runs_total"] != sizes.load or not shown["trends"] or not shown["scores"]["gamedays"]:
            raise SystemExit(f"dirt history over {sizes.load:,} runs lost runs, trends or game days")
        small_cli = cli_history(store_dir, runs=sizes.best_of)
        large_cli = cli_history(load_dir, runs=sizes.best_of)

        update_index(reports_dir)  # warm: templates compiled, modules imported
        index_load = best(lambda: load_reports(paths), sizes.best_of)
        index_time = best(lambda: update_index(reports_dir), sizes.best_of)
        index_bytes = (reports_dir / "index.html").stat().st_size

    schedule = Schedule.model_validate(SCHEDULE)
    occurrences = upcoming(schedule, SCHEDULE_AFTER, sizes.schedule, seed="quarterly")
    times = len(occurrences)
    blacked = sum(1 for o in occurrences if o.status == "blackout")
    cron_time = best(lambda: bare_cron_loop(schedule.cron, schedule.timezone, SCHEDULE_AFTER, times), sizes.best_of)
    upcoming_time = best(lambda: upcoming(schedule, SCHEDULE_AFTER, sizes.schedule, seed="quarterly"),
                         sizes.best_of)

    dump = rec.dump / n
    print(f"{f'recording {n:,} runs into SQLite':56} {'runs/s':>12} {'ms/run':>14} {'ratio':>9}")
    print(row("json.dump report.json + fsync (baseline)", f"{1 / dump:.0f}", f"{dump * 1000:.3f}", None))
    print(row("HistoryStore.record_run(report)", f"{n / rec.record:.0f}", f"{rec.record / n * 1000:.3f}",
              rec.record / n / dump, "report.json"))
    print(row("open_store + record_run + close (what dirt run pays)", f"{1 / rec.cycle:.0f}",
              f"{rec.cycle * 1000:.3f}", rec.cycle / dump, "report.json"))
    print(row("open_store, new store (migrations), first in process", "", f"{rec.first_open * 1000:.3f}",
              rec.first_open / dump, "report.json"))
    print(row("open_store, new store (migrations), warm", "", f"{rec.warm_open * 1000:.3f}",
              rec.warm_open / dump, "report.json"))
    print(row("open_store, existing store", "", f"{rec.reopen * 1000:.3f}", rec.reopen / dump, "report.json"))
    print()
    print(f"{f'reading {n:,} runs ({len(gamedays)} game days)':56} {'seconds':>12} {'ms/run':>14} {'ratio':>9}")
    print(row("json.load of every report.json (baseline)", f"{load_time:.4f}", f"{load_time / n * 1000:.3f}", None))
    print(row("store.runs()", f"{runs_time:.4f}", f"{runs_time / n * 1000:.3f}", runs_time / load_time,
              "json.load"))
    print(row("store.summary() + history_view() (dirt history)", f"{view_time:.4f}", f"{view_time / n * 1000:.3f}",
              view_time / load_time, "json.load"))
    print()
    print(f"{'dirt history at scale (CLI, a new process)':56} {'seconds':>12} {'peak RSS MiB':>14} {'ratio':>9}")
    print(row(f"dirt history, {n:,} runs (baseline)", f"{small_cli[0]:.3f}", f"{small_cli[1] / 2**20:.1f}", None))
    print(row(f"dirt history, {sizes.load:,} runs: time", f"{large_cli[0]:.3f}", f"{large_cli[1] / 2**20:.1f}",
              large_cli[0] / small_cli[0], f"{n:,} runs"))
    print(row(f"dirt history, {sizes.load:,} runs: peak RSS", "", "", large_cli[1] / small_cli[1], f"{n:,} runs"))
    print()
    print(f"{f'dashboard over {n:,} run folders':56} {'seconds':>12} {'ms/run':>14} {'ratio':>9}")
    print(row("json.load of every report.json (baseline)", f"{index_load:.4f}", f"{index_load / n * 1000:.3f}",
              None))
    print(row(f"update_index() ({index_bytes / 1024:,.0f} KiB index.html)", f"{index_time:.4f}",
              f"{index_time / n * 1000:.3f}", index_time / index_load, "json.load"))
    print()
    print(f"{f'schedule: {sizes.schedule:,} runs, {times:,} cron times ({blacked} blacked out)':56} {'seconds':>12} "
          f"{'us/time':>14} {'ratio':>9}")
    print(row("croniter get_next loop (baseline)", f"{cron_time:.4f}", f"{cron_time / times * 1e6:.1f}", None))
    print(row("upcoming() (zone, DST, jitter, blackouts)", f"{upcoming_time:.4f}",
              f"{upcoming_time / times * 1e6:.1f}", upcoming_time / cron_time, "croniter"))
    print()
    print(f"{f'memory of {n:,} runs (tracemalloc peak)':56} {'bytes':>12} {'bytes/run':>14} {'ratio':>9}")
    print(row("report dicts, json.load'ed and held (baseline)", f"{dicts_peak:,}", f"{dicts_peak / n:,.0f}", None))
    print(row("store.runs() records", f"{runs_peak:,}", f"{runs_peak / n:,.0f}", runs_peak / dicts_peak,
              "dicts"))
    print(f"(reading, dashboard and schedule best of {sizes.best_of}; report.json {dump * 1000:.2f} ms with fsync; "
          f"{os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()

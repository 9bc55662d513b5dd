"""bench/bench_history.py: its synthetic history and baselines are what its labels say, and a tiny run
prints every figure."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "bench_history.py"


bench = load_script(SCRIPT, "bench_history")


def test_the_synthetic_reports_are_distinct_runs_oldest_first(tmp_path: Path) -> None:
    from dirt.history import open_store

    sources = bench.templates()
    before = [dict(s) for s in sources]
    first = datetime(2026, 3, 1, tzinfo=timezone.utc)
    reports = bench.synthetic_reports(sources, 7, first, timedelta(hours=2))
    assert sources == before  # the templates are copied, not changed
    assert len({r["run_id"] for r in reports}) == 7
    assert [r["started_at"] for r in reports] == [f"2026-03-01T{h:02d}:00:00.000Z" for h in range(0, 14, 2)]
    assert [r["scenario"]["name"] for r in reports[:len(sources)]] == [s["scenario"]["name"] for s in sources]
    end = datetime.fromisoformat(reports[0]["ended_at"].replace("Z", "+00:00"))
    assert (end - first).total_seconds() == sources[0]["duration_seconds"]
    with open_store(None, tmp_path) as store:
        for report in reports:
            store.record_run(report)
        assert [r.run_id for r in store.runs()] == [r["run_id"] for r in reports]


def test_the_cron_baseline_walks_the_cron_times_upcoming_judges() -> None:
    from dirt.gameday.model import Schedule
    from dirt.gameday.schedule import upcoming

    schedule = Schedule.model_validate(bench.SCHEDULE)
    occurrences = upcoming(schedule, bench.SCHEDULE_AFTER, 60, seed="quarterly")
    assert any(o.status == "blackout" for o in occurrences) and any(o.at != o.cron_at for o in occurrences)
    walls = bench.bare_cron_loop(schedule.cron, schedule.timezone, bench.SCHEDULE_AFTER, len(occurrences))
    assert walls == [o.cron_at.replace(tzinfo=None) for o in occurrences]


def test_a_quick_run_prints_each_figure_against_its_baseline() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    number = r"\s+[\d,.]+"
    for line in (rf"json\.dump report\.json \+ fsync \(baseline\){number}{number}\s+1\.00$",
                 rf"HistoryStore\.record_run\(report\){number}{number}{number}x report\.json$",
                 rf"open_store \+ record_run \+ close \(what dirt run pays\){number}{number}{number}x report\.json$",
                 rf"open_store, new store \(migrations\), first in process{number}{number}x report\.json$",
                 rf"open_store, existing store{number}{number}x report\.json$",
                 rf"store\.runs\(\){number}{number}{number}x json\.load$",
                 rf"store\.summary\(\) \+ history_view\(\) \(dirt history\){number}{number}{number}x json\.load$",
                 rf"dirt history, 50 runs \(baseline\){number}{number}\s+1\.00$",
                 rf"dirt history, 500 runs: time{number}{number}{number}x 50 runs$",
                 r"dirt history, 500 runs: peak RSS\s+[\d.]+x 50 runs$",
                 rf"update_index\(\) \([\d,]+ KiB index\.html\){number}{number}{number}x json\.load$",
                 rf"croniter get_next loop \(baseline\){number}{number}\s+1\.00$",
                 rf"upcoming\(\) \(zone, DST, jitter, blackouts\){number}{number}{number}x croniter$",
                 rf"report dicts, json\.load'ed and held \(baseline\){number}{number}\s+1\.00$",
                 rf"store\.runs\(\) records{number}{number}{number}x dicts$"):
        assert re.search(line, out, re.M), f"no line like {line!r} in:\n{out}"


def test_the_large_store_holds_the_rows_recording_would_write(tmp_path: Path) -> None:
    """``fill`` writes in bulk what ``record_run`` and ``record_gameday`` would, one run every LOAD_EVERY."""
    from dirt.history import open_store
    from dirt.history.analysis import summary_of

    bench.fill(tmp_path, 25, bench.templates())
    with open_store(None, tmp_path) as store:
        runs, days = store.runs(), store.gamedays()
        assert len(runs) == 25 and len({r.run_id for r in runs}) == 25
        assert [r.started_at for r in runs[:2]] == [bench.FIRST, bench.FIRST + bench.LOAD_EVERY]
        assert [d.run_id for d in days] == ["gameday-0000", "gameday-0001", "gameday-0002"]
        assert [d.run_id for d in days[0].drills] == [r.run_id for r in runs[:3]]
        assert {r.scenario for r in runs} == {t["scenario"]["name"] for t in bench.templates()}
        assert store.summary(limit=4, per_scenario=3) == summary_of(runs, days, limit=4, per_scenario=3)


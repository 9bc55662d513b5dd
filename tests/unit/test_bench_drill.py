"""bench/drill.py's own logic: /proc parsing, drill selection, and what its CPU figure counts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import load_script

REPO = Path(__file__).resolve().parents[2]


bench = load_script(REPO / "bench" / "drill.py", "bench_drill")

# /proc/PID/stat of a process whose name holds a space and parentheses (fields 14-17: 250 40 700 60)
STAT = ("4242 (dirt (run) x) S 1 4242 4242 0 -1 4194304 9000 12000 0 0 250 40 700 60 20 0 3 0 "
        "1000 250000000 20000 18446744073709551615 1 1 0 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0")


def test_stat_fields_are_counted_from_the_last_parenthesis() -> None:
    stat = bench.parse_stat(STAT, ticks=100)
    assert stat.ppid == 1
    assert stat.own == pytest.approx(2.9)
    assert stat.reaped_children == pytest.approx(7.6)


def test_status_memory_figures_in_kib() -> None:
    status = "Name:\tkube-apiserver\nVmPeak:\t 2000000 kB\nVmHWM:\t  300000 kB\nVmRSS:\t  266956 kB\n"
    assert bench.parse_status_kib(status) == 266956
    assert bench.parse_status_kib(status, "VmHWM") == 300000


def test_a_zombie_has_no_rss() -> None:
    assert bench.parse_status_kib("Name:\tdirt\nState:\tZ (zombie)\nThreads:\t1\n") is None


def _drills() -> list:
    return [bench.Drill("control-plane-down", Path("/s/control-plane-down.yaml")),
            bench.Drill("wiped", Path("/s/namespace-deletion.yaml")),
            bench.Drill("node-loss", Path("/s/node-loss.yaml"))]


def test_only_and_skip_take_scenario_names_or_file_stems() -> None:
    assert [d.name for d in bench.select(_drills(), ["namespace-deletion", "node-loss"], ["node-loss"])] == ["wiped"]
    assert [d.name for d in bench.select(_drills(), [], ["wiped"])] == ["control-plane-down", "node-loss"]


def test_an_unknown_drill_name_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"no drill named etcd-los \(known: control-plane-down, node-loss, wiped\)"):
        bench.select(_drills(), ["etcd-los"], [])


def _run(returncode: int | None, timed_out: bool = False) -> object:
    return bench.Measured(argv=["dirt"], returncode=returncode, wall=30.0, cpu=1.0, own_cpu=0.8, peak_rss_kib=0,
                          timed_out=timed_out)


def test_a_failed_drill_ran_but_a_refused_or_unreported_one_did_not() -> None:
    report = {"verdict": "failed"}
    assert bench.problem_of(_run(1), report, 600) is None
    assert bench.problem_of(_run(3), report, 600) is None
    assert bench.problem_of(_run(2), None, 600) == "dirt run exited 2"
    assert bench.problem_of(_run(0), None, 600) == "no report.json"
    assert bench.problem_of(_run(None, timed_out=True), report, 600) == "timed out after 600s"


def _figures(cpu: float, wall: float, tools: float = 0.0) -> object:
    return bench.DrillFigures(name="d", path="d.yaml", wall=wall, cpu=cpu + tools, own_cpu=cpu, tools_cpu=tools,
                              servers_cpu=0.0, peak_rss_kib=0, plan_cpu=0.5, returncode=0, verdict="passed",
                              phases=[], problem=None)


def test_the_goal_is_the_dirt_process_cpu_under_a_tenth_of_wall() -> None:
    assert _figures(cpu=2.9, wall=30.0).goal_met
    assert not _figures(cpu=3.0, wall=30.0).goal_met
    assert _figures(cpu=3.0, wall=30.0).plan_ratio == pytest.approx(6.0)
    # the commands the drill's procedure runs are shown, not judged
    with_tools = _figures(cpu=2.0, wall=30.0, tools=2.0)
    assert with_tools.goal_met and with_tools.cpu_share == pytest.approx(4.0 / 30.0)


BURN = "import time\nwhile time.process_time() < {cpu}: pass\n"


def test_cpu_counts_the_tools_dirt_waits_for_but_not_servers_it_leaves_running(tmp_path: Path) -> None:
    """A waited-for child's CPU is dirt's ('tools'); a process started in its own session and
    still running when dirt exits (a restarted API server) is not counted at all."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""\
        import subprocess, sys
        subprocess.run([sys.executable, "-c", {BURN.format(cpu=0.3)!r}], check=True)
        subprocess.Popen([sys.executable, "-c", {BURN.format(cpu=1.0)!r}], start_new_session=True)
        """))
    measured = bench.measure([sys.executable, str(script)], env=dict(os.environ), log=tmp_path / "log")
    assert measured.returncode == 0
    assert measured.tools_cpu >= 0.3
    assert measured.cpu < 1.0


def test_a_server_the_drill_starts_and_stops_itself_is_taken_out_of_its_cpu(tmp_path: Path) -> None:
    """This test process plays dirt: it starts a 'server' (its PID in a pid file), which burns
    CPU, then stops and reaps it.  The watch gives back what the server burnt."""
    burnt = tmp_path / "burnt"
    server = subprocess.Popen([sys.executable, "-c", BURN.format(cpu=0.3)
                               + f"open({str(burnt)!r}, 'w').close()\ntime.sleep(600)\n"], start_new_session=True)
    try:
        pidfile = tmp_path / "kube-apiserver.pid"
        pidfile.write_text(str(server.pid))
        (tmp_path / "init.pid").write_text("1")  # a process that is not ours: ignored
        watch = bench.Watch(os.getpid(), [pidfile, tmp_path / "init.pid", tmp_path / "missing.pid"])
        watch.sample()
        assert list(watch.servers) == [server.pid]
        while not burnt.exists():
            assert server.poll() is None
            os.sched_yield()
        watch.sample()
    finally:
        server.kill()
        server.wait()
    watch.sample()
    assert watch.servers == {}
    assert watch.reaped_servers_cpu >= 0.28  # /proc/PID/stat counts in clock ticks, rounded down

"""Benchmark: what each example drill costs on the real sandbox, and what dirt itself costs.

Measured from nothing but the binary cache (~/.cache/dirt/bin), on the real sandbox:

* the sandbox: wall time of ``dirt sandbox up`` of a fresh sandbox (its own
  ``DIRT_SANDBOX_HOME`` in a temp folder unless the caller set one), then its memory:
  the RSS (``VmRSS`` of /proc/PID/status) of every process it started, found by the
  PIDs in its pid files as ``dirt sandbox status --json`` reports them, per component;
* each example drill (``scenarios/``, found with dirt's own loader, so new drills are
  included): ``dirt run FILE --display plain`` as a child process, as a user runs it,
  with its wall time, dirt's CPU time, CPU as % of wall, the dirt process's peak RSS,
  the verdict and the phases' durations from the run's report.json;
* baselines run in the same process, so ratios mean something on any machine:
  ``python -c pass``, ``python -c "import dirt.cli"`` and ``dirt plan FILE`` (which
  touches nothing) for each drill; the drill's CPU is shown as a multiple of its plan's.

Goal (issue 12): dirt's own CPU (user+sys of the dirt process) is under 10 % of a drill's
wall time; PASS/MISS per drill.  The tools it runs for the drill's procedure are shown beside it.  A benchmark, not a test: a MISS still exits 0; a drill that could not run at
all (bad input, target locked, timeout, no report) exits 1.

What counts as dirt's CPU, and why it is read this way: the dirt process's own
user+sys time plus that of the tools it ran and waited for (kubectl, kwokctl,
etcdctl, playbook commands): ``os.wait4`` of the dirt process, which covers exactly
the descendants that were reaped.  The sandbox is up before the first drill and its
servers run in their own sessions, children of no drill, so none is counted.  A drill
that restarts a component or recreates the whole cluster (cluster-deletion, through
``kwokctl create cluster``) starts servers that outlive the dirt process: they are
orphaned when it exits and reaped by init, never by dirt, so their CPU is not counted
either.  The one exception is a server the drill both starts and stops (etcd-loss:
dirt restarts the API server, then stops it again to restore etcd): dirt reaps it,
so its CPU is in dirt's rusage.  Such servers are found by their PIDs in the sandbox's
pid files and their parent (the dirt process), sampled from /proc while dirt runs,
and their CPU is taken back out (the 'servers' column).  The split between the dirt process itself
and its tools comes from /proc/PID/stat (utime+stime vs cutime+cstime), read while the
exited process is still a zombie (``waitid(WNOWAIT)``), just before it is reaped.

Run: .venv/bin/python bench/drill.py [--only NAME]... [--skip NAME]... [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
GOAL = 0.10  # dirt's CPU as a fraction of a drill's wall time
DEFAULT_TIMEOUT = 600.0
GRACE = 120.0  # after SIGINT at a timeout: time for the drill's rollback
UP_TIMEOUT = 600.0
BASELINE_RUNS = 5
TICKS = os.sysconf("SC_CLK_TCK")


# -- /proc parsing (pure) ------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcStat:
    """One process as /proc/PID/stat shows it: its parent, its CPU seconds, and those of the
    children it has reaped."""

    ppid: int
    own: float
    reaped_children: float


def parse_status_kib(status_text: str, key: str = "VmRSS") -> int | None:
    """A memory figure (``VmRSS``, ``VmHWM``) in KiB from /proc/PID/status text; None for a
    process without memory (a zombie, a kernel thread)."""
    for line in status_text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


def parse_stat(stat_text: str, ticks: int = TICKS) -> ProcStat:
    """ppid, utime+stime and cutime+cstime from /proc/PID/stat text.

    The command name (field 2) is in parentheses and may itself hold spaces and
    parentheses, so fields are counted from the last ``)``.
    """
    fields = stat_text.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ProcStat(ppid=int(fields[1]), own=(utime + stime) / ticks, reaped_children=(cutime + cstime) / ticks)


def read_stat(pid: int) -> ProcStat | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError, ValueError):
        return None


def rss_kib(pid: int, key: str = "VmRSS") -> int | None:
    try:
        return parse_status_kib(Path(f"/proc/{pid}/status").read_text(), key)
    except OSError:
        return None


# -- running a child and measuring it ---------------------------------------------------------
@dataclass
class Measured:
    """One child process: its wall time and CPU, as its parent (this script) saw them."""

    argv: list[str]
    returncode: int | None
    wall: float
    cpu: float  # the process and every descendant it reaped (wait4), less servers_cpu
    own_cpu: float  # the process alone (/proc/PID/stat)
    peak_rss_kib: int  # the process alone (VmHWM, sampled while it runs)
    servers_cpu: float = 0.0  # sandbox servers it started and reaped itself: not counted in cpu
    timed_out: bool = False
    log: Path | None = None

    @property
    def tools_cpu(self) -> float:
        return max(0.0, self.cpu - self.own_cpu)


class Watch:
    """Samples a running child: its peak RSS, and the sandbox servers that are its children.

    VmHWM is read while the process lives because a zombie has no memory to report,
    and wait4's ``ru_maxrss`` is no use here: it keeps the RSS of the forked copy of
    this process from before the exec.

    A server the drill starts (its PID in a sandbox pid file, its parent the dirt
    process) and later stops is reaped by dirt, and its CPU lands in dirt's rusage;
    its last sampled CPU is taken back out (to within one sampling interval).  One
    still running when dirt exits is orphaned, never reaped by dirt: nothing to take out.
    """

    def __init__(self, pid: int, pidfiles: Sequence[Path] = ()) -> None:
        self.pid = pid
        self.pidfiles = list(pidfiles)
        self.peak_kib = 0
        self.servers: dict[int, float] = {}  # server PID -> its CPU when last seen
        self.reaped_servers_cpu = 0.0

    def sample(self) -> None:
        """Call only while the child is alive: once it exits, its children are reparented."""
        self.peak_kib = max(self.peak_kib, rss_kib(self.pid, "VmHWM") or 0)
        for pidfile in self.pidfiles:
            server = _read_pid(pidfile)
            if server and server not in self.servers:
                stat = read_stat(server)
                if stat and stat.ppid == self.pid:
                    self.servers[server] = stat.own
        for server, last in list(self.servers.items()):
            stat = read_stat(server)
            if stat is None or stat.ppid != self.pid:  # gone while dirt lives: dirt reaped it
                self.reaped_servers_cpu += last
                del self.servers[server]
            else:
                self.servers[server] = stat.own


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _exited(pid: int) -> bool:
    """Has the child exited?  It stays a zombie (WNOWAIT), so its /proc entry can still be read."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None


def _wait_exit(watch: Watch, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if _exited(watch.pid):
            return True
        watch.sample()
        time.sleep(0.1)
    return _exited(watch.pid)


def measure(argv: list[str], *, env: dict[str, str], log: Path, timeout: float = DEFAULT_TIMEOUT,
            pidfiles: Sequence[Path] = ()) -> Measured:
    """Run ``argv`` in the repository, output to ``log``; at ``timeout`` SIGINT (dirt rolls back), then SIGKILL.

    ``pidfiles``: the sandbox's, whose servers are not dirt's CPU even when dirt started them.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    timed_out = False
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        watch = Watch(proc.pid, pidfiles)
        try:
            if not _wait_exit(watch, time.monotonic() + timeout):
                timed_out = True
                proc.send_signal(signal.SIGINT)
                if not _wait_exit(watch, time.monotonic() + GRACE):
                    proc.kill()
                    _wait_exit(watch, time.monotonic() + 30)
        except KeyboardInterrupt:  # the child got the same SIGINT: let it roll back
            _wait_exit(watch, time.monotonic() + GRACE)
            raise
        wall = time.perf_counter() - start
        stat = read_stat(proc.pid)  # the zombie's own CPU, before it is reaped
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    total = usage.ru_utime + usage.ru_stime
    return Measured(argv=argv, returncode=proc.returncode, wall=wall,
                    cpu=max(0.0, total - watch.reaped_servers_cpu), own_cpu=stat.own if stat else 0.0,
                    peak_rss_kib=watch.peak_kib, servers_cpu=watch.reaped_servers_cpu, timed_out=timed_out, log=log)


def dirt(*args: str) -> list[str]:
    return [sys.executable, "-m", "dirt", *args]


# -- the sandbox -------------------------------------------------------------------------------
@dataclass
class SandboxFigures:
    home: str
    started_here: bool
    created_here: bool
    up_seconds: float | None
    memory_kib: dict[str, int | None] = field(default_factory=dict)
    memory_after_kib: dict[str, int | None] = field(default_factory=dict)
    pidfiles: list[str] = field(default_factory=list)


def sandbox_status(env: dict[str, str]) -> dict[str, Any]:
    """``dirt sandbox status --json`` (exit 1 when not up, with the same JSON)."""
    proc = subprocess.run(dirt("sandbox", "status", "--json"), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    try:
        return dict(json.loads(proc.stdout))
    except ValueError:
        raise SystemExit(f"dirt sandbox status --json: no JSON (exit {proc.returncode}):\n{proc.stderr}") from None


def is_up(status: dict[str, Any]) -> bool:
    return bool(status.get("exists")) and all(c.get("healthy") for c in status.get("components", []))


def sandbox_pidfiles(status: dict[str, Any]) -> list[Path]:
    """Where each component's PID is kept (the layout of ``Sandbox._pid``), whether it runs or not."""
    from dirt.sandbox.cluster import CONTROL_PLANE, Sandbox

    box = Sandbox(status["name"], home=Path(status["root"]).parent)
    return [(box.cluster_dir if c["name"] in CONTROL_PLANE else box.root) / "pids" / f"{c['name']}.pid"
            for c in status.get("components", [])]


def sandbox_memory(status: dict[str, Any]) -> dict[str, int | None]:
    """RSS per component, KiB (None: not running)."""
    return {c["name"]: rss_kib(c["pid"]) if c.get("pid") else None for c in status.get("components", [])}


def probe(env: dict[str, str]) -> SandboxFigures:
    """What is there before: whether this script will start the sandbox, and create it."""
    before = sandbox_status(env)
    return SandboxFigures(home=env["DIRT_SANDBOX_HOME"], started_here=not is_up(before),
                          created_here=not before.get("exists"), up_seconds=None)


def bring_up(figures: SandboxFigures, env: dict[str, str], work: Path) -> None:
    """Time ``dirt sandbox up`` (unless it was up already), then read its memory and pid files."""
    if figures.started_here:
        up = measure(dirt("sandbox", "up"), env=env, log=work / "sandbox-up.log", timeout=UP_TIMEOUT)
        if up.returncode != 0:
            raise SandboxDown(f"dirt sandbox up failed (exit {up.returncode}); log: {up.log}\n{_tail(up.log)}")
        figures.up_seconds = up.wall
    status = sandbox_status(env)
    figures.memory_kib = sandbox_memory(status)
    figures.pidfiles = [str(p) for p in sandbox_pidfiles(status)]


class SandboxDown(Exception):
    pass


def bring_down(env: dict[str, str]) -> None:
    proc = subprocess.run(dirt("sandbox", "down"), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        print(f"dirt sandbox down failed (exit {proc.returncode}): {proc.stderr.strip()}", file=sys.stderr)


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.is_file():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# -- drills ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Drill:
    name: str
    path: Path


def find_drills(folder: Path = SCENARIOS) -> list[Drill]:
    """Every scenario (and broken would-be scenario, which then fails to run) under ``folder``."""
    from dirt.core.errors import DirtError
    from dirt.scenario import load_scenario
    from dirt.scenario.loader import discover

    drills = []
    for path in discover([folder]).files:
        try:
            name = load_scenario(path).metadata.name
        except DirtError:
            name = path.stem
        drills.append(Drill(name=name, path=path.resolve()))
    return drills


def select(drills: Sequence[Drill], only: Iterable[str], skip: Iterable[str]) -> list[Drill]:
    """Drills named by ``--only`` (all when none), less those named by ``--skip``; a name is the
    scenario's metadata.name or its file's stem.  An unknown name is a ``ValueError``."""
    only, skip = list(only), list(skip)
    known = {d.name for d in drills} | {d.path.stem for d in drills}
    unknown = [n for n in (*only, *skip) if n not in known]
    if unknown:
        raise ValueError(f"no drill named {', '.join(unknown)} (known: {', '.join(sorted(d.name for d in drills))})")

    def named(d: Drill, names: list[str]) -> bool:
        return d.name in names or d.path.stem in names

    return [d for d in drills if (not only or named(d, only)) and not named(d, skip)]


def latest_report(report_dir: Path) -> dict[str, Any] | None:
    """report.json of the newest run folder under ``report_dir``."""
    reports = sorted(report_dir.glob("*/report.json"), key=lambda p: p.stat().st_mtime)
    if not reports:
        return None
    try:
        return dict(json.loads(reports[-1].read_text()))
    except ValueError:
        return None


@dataclass
class DrillFigures:
    name: str
    path: str
    wall: float
    cpu: float
    own_cpu: float
    tools_cpu: float
    servers_cpu: float
    peak_rss_kib: int
    plan_cpu: float
    returncode: int | None
    verdict: str | None
    phases: list[dict[str, Any]]
    problem: str | None

    @property
    def cpu_share(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0

    @property
    def own_share(self) -> float:
        return self.own_cpu / self.wall if self.wall else 0.0

    @property
    def goal_met(self) -> bool:
        """The issue's goal is about the dirt process (user+sys); the commands a drill's playbook runs
        (kubectl, etcdctl) are the procedure's cost, shown beside it but not judged."""
        return self.own_share < GOAL

    @property
    def plan_ratio(self) -> float:
        return self.cpu / self.plan_cpu if self.plan_cpu else 0.0


def problem_of(run: Measured, report: dict[str, Any] | None, timeout: float) -> str | None:
    """Why a drill could not run at all (None: it ran, whatever its verdict)."""
    if run.timed_out:
        return f"timed out after {timeout:.0f}s"
    if run.returncode not in (0, 1, 3):
        return f"dirt run exited {run.returncode}"
    if report is None:
        return "no report.json"
    return None


def run_drill(drill: Drill, env: dict[str, str], work: Path, report_root: Path, timeout: float,
              pidfiles: Sequence[Path]) -> DrillFigures:
    plan = measure(dirt("plan", str(drill.path)), env=env, log=work / f"{drill.name}.plan.log", timeout=120)
    report_dir = report_root / drill.name
    report_dir.mkdir(parents=True, exist_ok=True)
    print(f"running {drill.name} ...", file=sys.stderr, flush=True)
    run = measure(dirt("run", str(drill.path), "--display", "plain", "--report-dir", str(report_dir)),
                  env=env, log=work / f"{drill.name}.run.log", timeout=timeout, pidfiles=pidfiles)
    report = latest_report(report_dir)
    problem = problem_of(run, report, timeout)
    if problem:
        print(f"{drill.name}: {problem}; log: {run.log}\n{_tail(run.log)}", file=sys.stderr)
    phases = [{"name": p.get("name"), "seconds": p.get("seconds"), "status": p.get("status")}
              for p in (report or {}).get("phases", [])]
    path = drill.path.relative_to(REPO) if drill.path.is_relative_to(REPO) else drill.path
    return DrillFigures(name=drill.name, path=str(path), wall=run.wall, cpu=run.cpu, own_cpu=run.own_cpu,
                        tools_cpu=run.tools_cpu, servers_cpu=run.servers_cpu, peak_rss_kib=run.peak_rss_kib,
                        plan_cpu=plan.cpu, returncode=run.returncode, verdict=(report or {}).get("verdict"),
                        phases=phases, problem=problem)


def baseline_cpu(argv: list[str], env: dict[str, str], work: Path, label: str) -> float:
    return statistics.median(measure(argv, env=env, log=work / f"baseline-{label}.log", timeout=120).cpu
                             for _ in range(BASELINE_RUNS))


# -- output ------------------------------------------------------------------------------------
def mib(kib: int | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}M"


def print_sandbox(sb: SandboxFigures) -> None:
    if sb.up_seconds is not None:
        what = "dirt sandbox up (fresh)" if sb.created_here else "dirt sandbox up (resumed)"
        print(f"{what:42} {sb.up_seconds:9.1f}s   (home {sb.home})")
    else:
        print(f"{'dirt sandbox up':42} {'-':>9}    (already up in {sb.home}: not measured)")
    print(f"{'sandbox memory (RSS)':42} {'after up':>9} {'after drills':>13}")
    for name, kib in sb.memory_kib.items():
        print(f"  {name:40} {mib(kib):>9} {mib(sb.memory_after_kib.get(name)):>13}")
    total = sum(k or 0 for k in sb.memory_kib.values())
    after = sum(k or 0 for k in sb.memory_after_kib.values())
    print(f"  {'total':40} {mib(total):>9} {mib(after) if sb.memory_after_kib else '-':>13}")


def print_drills(drills: list[DrillFigures], python_cpu: float, import_cpu: float) -> None:
    print()
    print(f"{'baseline':42} {'CPU s':>9}")
    print(f"{'python -c pass':42} {python_cpu:9.3f}")
    label = 'python -c "import dirt.cli"'
    print(f"{label:42} {import_cpu:9.3f}   {import_cpu / python_cpu if python_cpu else 0:.1f}x python")
    print()
    head = (f"{'drill':26} {'wall s':>8} {'dirt CPU':>9} {'own':>7} {'tools':>7} {'own/wall':>9} {'all/wall':>9} "
            f"{'goal':>5} "
            f"{'servers':>8} {'peak RSS':>9} {'plan CPU':>9} {'x plan':>7}  verdict")
    print(head)
    for d in drills:
        verdict = d.verdict or "-"
        if d.problem:
            verdict += f" (NOT RUN: {d.problem})"
        print(f"{d.name:26} {d.wall:8.1f} {d.cpu:9.2f} {d.own_cpu:7.2f} {d.tools_cpu:7.2f} {d.own_share:8.1%} "
              f"{d.cpu_share:8.1%} {'PASS' if d.goal_met else 'MISS':>5} {d.servers_cpu:8.2f} {mib(d.peak_rss_kib):>9} {d.plan_cpu:9.2f} "
              f"{d.plan_ratio:6.1f}x  {verdict}")
        if d.phases:
            print("    phases: " + ", ".join(f"{p['name']} {_secs(p['seconds'])}" + ("" if p["status"] == "passed"
                                                                                   else f" ({p['status']})")
                                          for p in d.phases))
    wall = sum(d.wall for d in drills)
    cpu = sum(d.cpu for d in drills)
    own = sum(d.own_cpu for d in drills)
    print(f"{'total':26} {wall:8.1f} {cpu:9.2f} {own:7.2f} {'':7} {(own / wall if wall else 0):8.1%} "
          f"{(cpu / wall if wall else 0):8.1%} {'PASS' if all(d.goal_met for d in drills) else 'MISS':>5}")
    unfinished = [d.name for d in drills if d.verdict != "passed"]
    if unfinished:
        print(f"(did not pass, so their figures are not a whole drill's: {', '.join(unfinished)})")
    print(f"(goal: the dirt process's own CPU (user+sys) under {GOAL:.0%} of each drill's wall time: 'own/wall'. "
          "dirt CPU = the dirt process ('own') + the tools it ran and reaped ('tools': kubectl, kwokctl, etcdctl, "
          "playbook commands), 'all/wall' shows both. Not counted: the "
          "sandbox's servers; 'servers' is the CPU of those the drill started and stopped itself, taken out. "
          f"Peak RSS: the dirt process. {os.cpu_count()} CPUs; baselines: median of {BASELINE_RUNS}.)")


def _secs(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}s"


def as_json(sb: SandboxFigures | None, drills: list[DrillFigures], python_cpu: float, import_cpu: float) -> str:
    wall = sum(d.wall for d in drills)
    cpu = sum(d.cpu for d in drills)
    return json.dumps({
        "cpus": os.cpu_count(),
        "goal_cpu_share": GOAL,
        "sandbox": asdict(sb) if sb else None,
        "baseline": {"python_pass_cpu": python_cpu, "import_dirt_cli_cpu": import_cpu},
        "drills": [asdict(d) | {"cpu_share": d.cpu_share, "own_share": d.own_share, "goal_met": d.goal_met,
                                "plan_ratio": d.plan_ratio}
                   for d in drills],
        "total": {"wall": wall, "cpu": cpu, "cpu_share": cpu / wall if wall else None,
                  "goal_met": all(d.goal_met for d in drills)},
    }, indent=2)


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="What each example drill costs, and what dirt itself costs.")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run this drill (repeatable)")
    parser.add_argument("--skip", action="append", default=[], metavar="NAME", help="skip this drill (repeatable)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per drill (default 600)")
    parser.add_argument("--report-dir", type=lambda s: Path(s).resolve(),
                        help="keep run folders here (default: a temp folder, removed)")
    parser.add_argument("--keep-sandbox", action="store_true", help="leave a sandbox this script started up")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON as well")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    try:
        drills = select(find_drills(), args.only, args.skip)
    except ValueError as exc:
        print(f"drill.py: error: {exc}", file=sys.stderr)
        return 2
    if not drills:
        print("drill.py: error: no drills selected", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="dirt-bench-drill-"))  # logs, and run folders unless --report-dir
    env = {k: v for k, v in os.environ.items() if k != "DIRT_TESTING"}  # real drivers, real target
    own_home = None if "DIRT_SANDBOX_HOME" in env else Path(tempfile.mkdtemp(prefix="dirt-bench-sandbox-"))
    if own_home:
        env["DIRT_SANDBOX_HOME"] = str(own_home)
    sb: SandboxFigures | None = None
    results: list[DrillFigures] = []
    try:
        sb = probe(env)
        bring_up(sb, env, work)
        python_cpu = baseline_cpu([sys.executable, "-c", "pass"], env, work, "python")
        import_cpu = baseline_cpu([sys.executable, "-c", "import dirt.cli"], env, work, "import")
        for drill in drills:
            results.append(run_drill(drill, env, work, args.report_dir or work / "reports", args.timeout,
                                     [Path(p) for p in sb.pidfiles]))
        sb.memory_after_kib = sandbox_memory(sandbox_status(env))
        print_sandbox(sb)
        print_drills(results, python_cpu, import_cpu)
        if args.json:
            print(as_json(sb, results, python_cpu, import_cpu))
        return 1 if any(d.problem for d in results) else 0
    except SandboxDown as exc:
        print(f"drill.py: {exc}", file=sys.stderr)
        return 1
    finally:
        cleanup(sb, env, work, own_home, keep_sandbox=args.keep_sandbox,
                keep_logs=not results or any(d.problem for d in results))


def cleanup(sb: SandboxFigures | None, env: dict[str, str], work: Path, own_home: Path | None, *,
            keep_sandbox: bool, keep_logs: bool) -> None:
    """Down only a sandbox this script created; logs are kept when something went wrong."""
    if sb is not None and sb.created_here and not keep_sandbox:
        bring_down(env)
        if own_home:
            shutil.rmtree(own_home, ignore_errors=True)
    elif sb is not None and sb.started_here:
        print(f"the sandbox in {sb.home} is left up", file=sys.stderr)
    if keep_logs:
        print(f"logs kept in {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

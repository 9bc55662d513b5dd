"""Benchmark: what a fleet costs on this machine, and what its entry point does when a member is lost.

Measured on the real thing (real control planes, real kubelets, Velero, Debian's HAProxy), each part
started from nothing but the binary cache (~/.cache/dirt/bin): every sandbox and fleet gets its own
fresh ``DIRT_SANDBOX_HOME`` in a temp folder, and is downed (in a ``finally``) once measured.

1. Up time and memory.  The wall time of ``up()`` of a cold fleet, in this process, and the RSS sum
   of every process the fleet runs: ``VmRSS`` of /proc/PID/status for each PID in
   ``status()["components"]`` (every member's control plane, monitoring, Velero, containerd and
   kubelet, the shared bucket, the fleet's Prometheus and Alertmanager, the entry point's HAProxy;
   not the pods' containers), split into the fleet's own parts and its members.  For each member
   count of ``--members``: the repository's ``fleet`` target of dirt.yaml for its count (2, east and
   west), ``Fleet("fleet", [east, west, north...])`` for the others.  The baseline, measured in the
   same run: one ``Sandbox`` set up as one member is (``nodes=1, real_nodes=1, velero=True``, but its
   own bucket), its ``up()`` time and RSS; the table shows fleet/sandbox ratios, and how the RSS of
   one member compares with the standalone sandbox.

2. The drill.  ``python -m dirt run scenarios/fleet-cluster-loss.yaml --display plain`` as a child
   process, as a user runs it, against the repository's fleet brought up in step 1 (the same
   ``DIRT_SANDBOX_HOME``): its wall time and the dirt process's CPU, and from its report.json the
   verdict, the availability users saw through the entry point (ratio, samples, longest outage), the
   MTTR, and how long FleetMemberDown (and FleetCapacityLow) took to fire.

3. The entry point when a member is lost, the same client in both rows: a request every 50 ms, each
   on a fresh connection (2 s timeout), through the entry point; the lost member's state read from
   HAProxy's admin socket every 10 ms.
   (a) bare: an ``EntryPoint`` with the fleet's own settings in front of three ``python -m
       http.server`` processes on free 127.0.0.1 ports; one is SIGKILLed at t=3 s and started again
       at t=6 s; ~10 s in all.
   (b) fleet: the same client against the fleet's entry point (the storefront deployed on every
       member first, as the drill's setup does: namespace shop-fleet, ConfigMap ``cluster``, then
       scenarios/apps/shop/fleet/storefront.yaml with the member's kubeconfig and the sandbox's
       kubectl); at t=3 s member west's cluster is deleted for real (``Sandbox.delete_cluster()``:
       its node's containers killed, its control plane and data gone); at least 3 s later it is
       created again (``create_cluster()``) and the storefront redeployed, until west is back in
       rotation.
   Figures: requests, failed requests, time to DOWN (from the kill / the start of the deletion),
   time back in rotation (from the restart / the start of the re-creation); fleet/bare ratios.  The
   bare row runs while the fleet is up, so both see the same machine.

A benchmark, not a test: a failed drill verdict or a slow entry point still exits 0; a part that
could not be measured (a fleet that did not come up, a drill without a report, a timeout) exits 1,
after printing what was measured.  Logs are kept when something went wrong.

Run: .venv/bin/python bench/fleet.py [--members 2,3] [--skip sandbox,drill,entry] [--drill-timeout 900] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers
sys.path.insert(1, str(REPO))
import drill as drillbench  # noqa: E402

SCENARIO = REPO / "scenarios" / "fleet-cluster-loss.yaml"
STOREFRONT = REPO / "scenarios" / "apps" / "shop" / "fleet" / "storefront.yaml"
NAMESPACE = "shop-fleet"
FLEET_TARGET = "fleet"  # the repository's fleet in dirt.yaml
FLEET_NAME = "fleet"
MEMBER_NAMES = ("east", "west", "north", "south", "central")
VICTIM = "west"
UP_TIMEOUT = 300.0  # each member's up()
DRILL_TIMEOUT = 900.0
EVERY = 0.05  # the client's interval
REQUEST_TIMEOUT = 2.0
POLL = 0.01  # the admin socket
BARE_KILL_AT, BARE_RESTART_AT, BARE_SECONDS = 3.0, 6.0, 10.0
DOWN_TIMEOUT = 30.0  # from the kill to DOWN
BARE_BACK_TIMEOUT = 10.0
FLEET_BACK_TIMEOUT = 120.0  # from the storefront ready to in rotation
DEPLOY_TIMEOUT = 180.0
IN_ROTATION = ("UP", "no check")
NOT_DOWN = ("UP", "UP 1/2", "no check")  # "UP 1/2": failing, not out yet

START = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - START:6.0f}s] {message}", file=sys.stderr, flush=True)


class Log:
    """What dirt says while a sandbox or a fleet comes up or goes down: to a file, with times."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("a", encoding="utf-8")

    def __call__(self, message: str) -> None:
        self._fh.write(f"{time.strftime('%H:%M:%S')} {message}\n")
        self._fh.flush()


def problem_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"


def port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- 1. up time and memory ------------------------------------------------------------------------
@dataclass
class UpFigures:
    what: str
    members: int
    home: str
    up_seconds: float | None = None
    down_seconds: float | None = None
    processes: int = 0
    rss_kib: int = 0
    own_rss_kib: int = 0  # the fleet's own parts (bucket, monitoring, entry point); 0 for a sandbox
    per_component_kib: dict[str, int | None] = field(default_factory=dict)
    problem: str | None = None

    @property
    def member_rss_kib(self) -> float:
        return (self.rss_kib - self.own_rss_kib) / self.members if self.members else 0.0


def read_memory(fig: UpFigures, components: list[dict[str, Any]], member_names: list[str]) -> None:
    """RSS of each component's PID; the fleet's own parts are those not named MEMBER/PROCESS."""
    fig.per_component_kib = {c["name"]: drillbench.rss_kib(c["pid"]) if c.get("pid") else None for c in components}
    fig.processes = sum(1 for kib in fig.per_component_kib.values() if kib is not None)
    fig.rss_kib = sum(kib or 0 for kib in fig.per_component_kib.values())
    fig.own_rss_kib = sum(kib or 0 for name, kib in fig.per_component_kib.items()
                          if name.split("/", 1)[0] not in member_names) if member_names else 0


def measure_sandbox(home: Path, work: Path) -> UpFigures:
    """The baseline: one sandbox set up as a fleet member is."""
    from dirt.sandbox.cluster import Sandbox

    fig = UpFigures(what="sandbox (baseline)", members=1, home=str(home))
    box = Sandbox("single", nodes=1, real_nodes=1, velero=True, home=home)
    log = Log(work / "sandbox.log")
    say(f"sandbox: up in {home}")
    try:
        start = time.perf_counter()
        box.up(log=log, timeout=UP_TIMEOUT)
        fig.up_seconds = time.perf_counter() - start
        read_memory(fig, box.status()["components"], [])
        say(f"sandbox: up in {fig.up_seconds:.1f}s, {fig.rss_kib / 1024:.0f} MiB")
    except Exception as exc:  # noqa: BLE001 - reported, and the sandbox downed
        fig.problem = problem_text(exc)
        say(f"sandbox: {fig.problem}")
    finally:
        fig.down_seconds, problem = down(box, log)
        fig.problem = fig.problem or problem
    return fig


def down(thing: Any, log: Log) -> tuple[float | None, str | None]:
    """``down()`` of a sandbox or fleet; its seconds, or why it failed."""
    start = time.perf_counter()
    try:
        thing.down(log=log)
    except Exception as exc:  # noqa: BLE001 - said, and the caller keeps the folder for a look
        say(f"down of {thing.name!r} failed: {problem_text(exc)}")
        return None, f"down failed: {problem_text(exc)}"
    return time.perf_counter() - start, None


def repo_fleet(home: Path) -> Any:
    """The repository's ``fleet`` target's fleet, in ``home`` (the target reads DIRT_SANDBOX_HOME)."""
    from dirt.config import load_config
    from dirt.targets.base import make_target

    loaded = load_config(start=REPO)
    name, config = loaded.target(FLEET_TARGET)
    before = os.environ.get("DIRT_SANDBOX_HOME")
    os.environ["DIRT_SANDBOX_HOME"] = str(home)
    try:
        fleet = make_target(name, config, loaded.root).fleet
    finally:
        if before is None:
            os.environ.pop("DIRT_SANDBOX_HOME", None)
        else:
            os.environ["DIRT_SANDBOX_HOME"] = before
    if fleet.root != home / fleet.name:
        raise RuntimeError(f"the {FLEET_TARGET} target's fleet is in {fleet.root}, not under {home}")
    return fleet


def bring_up_fleet(fleet: Any, fig: UpFigures, log: Log) -> bool:
    busy = [p for p in [fleet.entry_port, *(fleet.member_port(m) for m in fleet.member_names)] if port_taken(p)]
    if busy:
        fig.problem = (f"port {', '.join(map(str, busy))} is taken (another fleet up on this machine?): "
                       "not measured")
        say(f"fleet of {fig.members}: {fig.problem}")
        return False
    say(f"fleet of {fig.members} ({', '.join(fleet.member_names)}): up in {fig.home}")
    try:
        start = time.perf_counter()
        fleet.up(log=log, timeout=UP_TIMEOUT)
        fig.up_seconds = time.perf_counter() - start
        read_memory(fig, fleet.status()["components"], fleet.member_names)
        say(f"fleet of {fig.members}: up in {fig.up_seconds:.1f}s, {fig.rss_kib / 1024:.0f} MiB")
        return True
    except Exception as exc:  # noqa: BLE001 - reported, and the fleet downed
        fig.problem = problem_text(exc)
        say(f"fleet of {fig.members}: {fig.problem}")
        return False


# -- 2. the drill ---------------------------------------------------------------------------------
@dataclass
class DrillFigures:
    scenario: str
    wall: float | None = None
    dirt_cpu: float | None = None
    returncode: int | None = None
    verdict: str | None = None
    availability_ratio: float | None = None
    availability_objective: float | None = None
    samples: int | None = None
    successes: int | None = None
    longest_outage: float | None = None
    mttr: float | None = None
    mttr_objective: float | None = None
    member_down: float | None = None  # FleetMemberDown fired after (s)
    member_down_objective: float | None = None
    capacity_low: float | None = None  # FleetCapacityLow fired after (s)
    phases: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    problem: str | None = None


def run_drill(home: Path, work: Path, timeout: float) -> DrillFigures:
    env = {k: v for k, v in os.environ.items() if k != "DIRT_TESTING"}  # real drivers, real target
    env |= {"DIRT_SANDBOX_HOME": str(home), "NO_COLOR": "1"}
    report_dir = work / "drill-reports"
    report_dir.mkdir(parents=True, exist_ok=True)
    fig = DrillFigures(scenario=str(SCENARIO.relative_to(REPO)))
    say(f"drill: dirt run {fig.scenario} ...")
    run = drillbench.measure(drillbench.dirt("run", str(SCENARIO), "--report-dir", str(report_dir),
                                             "--display", "plain"),
                             env=env, log=work / "drill.log", timeout=timeout)
    fig.wall, fig.dirt_cpu, fig.returncode = run.wall, run.own_cpu, run.returncode
    report = drillbench.latest_report(report_dir)
    fig.problem = drillbench.problem_of(run, report, timeout)
    if fig.problem:
        say(f"drill: {fig.problem}; log {run.log}\n{drillbench._tail(run.log)}")
    report = report or {}
    fig.verdict = report.get("verdict")
    fig.failures = [str(f) for f in report.get("failures") or []]
    probes = report.get("availability") or []
    if probes:
        probe = probes[0]
        fig.availability_ratio, fig.samples, fig.successes = probe.get("ratio"), probe.get("samples"), \
            probe.get("successes")
        fig.availability_objective = (probe.get("objective") or {}).get("min_success")
        fig.longest_outage = (probe.get("longest_outage") or {}).get("seconds")  # None: no outage
    fig.mttr = (report.get("timings") or {}).get("mttr_seconds")
    for e in report.get("expectations") or []:
        if e.get("kind") == "mttr":
            fig.mttr_objective = e.get("objective_seconds")
        elif e.get("kind") == "alert" and e.get("alert") == "FleetMemberDown" and fig.member_down is None:
            fig.member_down, fig.member_down_objective = e.get("measured_seconds"), e.get("objective_seconds")
        elif e.get("kind") == "alert" and e.get("alert") == "FleetCapacityLow" and fig.capacity_low is None:
            fig.capacity_low = e.get("measured_seconds")
    fig.phases = [{"name": p.get("name"), "seconds": p.get("seconds"), "status": p.get("status")}
                  for p in report.get("phases") or []]
    say(f"drill: {fig.verdict or 'no verdict'} in {fig.wall:.1f}s")
    return fig


# -- 3. the entry point when a member is lost ---------------------------------------------------
@dataclass(frozen=True)
class Answer:
    sent: float
    status: int | None
    served_by: str
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


class Users:
    """A request every ``every`` seconds on fixed ticks (a slow answer delays no other), fresh connections."""

    def __init__(self, url: str, every: float = EVERY, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url, self.every, self.timeout = url, every, timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, never a proxy
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=64)
        self._futures: list[Future[Answer]] = []
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def now(self) -> float:
        return time.monotonic() - self.started

    def _tick(self) -> None:
        n = 0
        while not self._stop.is_set():
            self._futures.append(self._pool.submit(self._ask, self.now()))
            n += 1
            self._stop.wait(max(0.0, self.started + n * self.every - time.monotonic()))

    def _ask(self, sent: float) -> Answer:
        start = time.monotonic()
        request = urllib.request.Request(self.url, headers={"Connection": "close"})
        try:
            with self._opener.open(request, timeout=self.timeout) as r:
                r.read()
                return Answer(sent, r.status, r.headers.get("X-Served-By", ""), time.monotonic() - start)
        except urllib.error.HTTPError as exc:
            return Answer(sent, exc.code, exc.headers.get("X-Served-By", "") if exc.headers else "",
                          time.monotonic() - start, f"HTTP {exc.code}")
        except (OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            return Answer(sent, None, "", time.monotonic() - start, type(reason).__name__)

    def finish(self) -> list[Answer]:
        self._stop.set()
        self._ticker.join(timeout=5)
        self._pool.shutdown(wait=True)  # every request has its own timeout
        return [f.result() for f in self._futures]


class StateWatch:
    """One member's state at the entry point, from its admin socket every ``POLL`` s: each change and when."""

    def __init__(self, entry: Any, name: str, clock: Callable[[], float]) -> None:
        self.entry, self.name, self.clock = entry, name, clock
        self.changes: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = None
        while not self._stop.wait(POLL):
            try:
                state = self.entry.server_states().get(self.name)
            except Exception:  # noqa: BLE001 - a missed poll, not a state
                continue
            if state is not None and state != last:
                self.changes.append((self.clock(), state))
                last = state

    def first(self, after: float, wanted: Callable[[str], bool]) -> float | None:
        return next((t for t, state in list(self.changes) if t >= after and wanted(state)), None)

    def wait_for(self, after: float, wanted: Callable[[str], bool], timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.first(after, wanted)
            if found is not None:
                return found
            time.sleep(POLL)
        return self.first(after, wanted)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def is_down(state: str) -> bool:
    return state not in NOT_DOWN


def in_rotation(state: str) -> bool:
    return state in IN_ROTATION


@dataclass
class EntryFigures:
    what: str
    requests: int = 0
    failed: int = 0
    slow: int = 0  # answered after more than 1 s
    max_seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    to_down: float | None = None  # from the kill (bare) / the start of the deletion (fleet)
    back_in_rotation: float | None = None  # from the restart (bare) / the start of the re-creation (fleet)
    states: list[str] = field(default_factory=list)  # what the lost member was seen as, in order
    steps: dict[str, float] = field(default_factory=dict)
    problem: str | None = None

    @property
    def failed_share(self) -> float:
        return self.failed / self.requests if self.requests else 0.0


def summarise(fig: EntryFigures, answers: list[Answer], watch: StateWatch) -> None:
    fig.requests = len(answers)
    failed = [a for a in answers if not a.ok]
    fig.failed = len(failed)
    fig.failures = dict(Counter(a.error or f"HTTP {a.status}" for a in failed))
    fig.slow = sum(1 for a in answers if a.seconds > 1.0)
    fig.max_seconds = max((a.seconds for a in answers), default=0.0)
    fig.states = [state for _, state in watch.changes]


def sleep_until(clock: Callable[[], float], t: float) -> None:
    time.sleep(max(0.0, t - clock()))


BACKEND_PAGE = "<!doctype html><title>shop</title><h1>The shop is open</h1>\n"


class Backend:
    """One bare member: ``python -m http.server`` on 127.0.0.1, started and stopped by its PID."""

    def __init__(self, folder: Path, name: str, port: int) -> None:
        self.folder, self.name, self.port = folder, name, port
        self.root = folder / name
        self.pid: int | None = None

    def start(self) -> None:
        from dirt.sandbox import process

        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "index.html").write_text(BACKEND_PAGE)
        (self.root / "healthz").write_text("ok\n")
        self.pid = process.start([sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                                  "--directory", str(self.root)],
                                 log=self.folder / f"{self.name}.log", pidfile=self.folder / f"{self.name}.pid")
        if not process.wait_port(self.port, timeout=10):
            raise RuntimeError(f"bare member {self.name} does not listen on {self.port} (see {self.folder})")

    def kill(self) -> None:
        from dirt.sandbox import process

        process.stop(self.pid, binary=sys.executable, sig=signal.SIGKILL)

    def stop(self) -> None:
        from dirt.sandbox import process

        process.stop(self.pid, binary=sys.executable, timeout=5)


def measure_bare(folder: Path, settings: Any) -> EntryFigures:
    """Three python http.servers behind an EntryPoint; b2 SIGKILLed at 3 s, started again at 6 s."""
    from dirt.sandbox import entry as entry_mod
    from dirt.sandbox import process

    fig = EntryFigures(what="bare: 3 http.server, one SIGKILLed")
    ports = process.free_ports(5)
    members = [Backend(folder, f"b{i + 1}", port) for i, port in enumerate(ports[:3])]
    entry = entry_mod.EntryPoint(folder / "entry", port=ports[3], metrics_port=ports[4],
                                 backends=[entry_mod.Backend(m.name, "127.0.0.1", m.port) for m in members],
                                 settings=settings)
    victim = members[1]
    say("entry, bare: 3 http.server behind HAProxy, b2 SIGKILLed at 3s, started again at 6s")
    try:
        for m in members:
            m.start()
        entry.start(timeout=15)
        entry.wait_in_rotation(timeout=10)
        users = Users(entry.url)
        watch = StateWatch(entry, victim.name, users.now)
        try:
            sleep_until(users.now, BARE_KILL_AT)
            killed = users.now()
            victim.kill()
            down_at = watch.wait_for(killed, is_down, BARE_RESTART_AT - killed)
            fig.to_down = None if down_at is None else down_at - killed
            sleep_until(users.now, BARE_RESTART_AT)
            restarted = users.now()
            victim.start()
            back_at = watch.wait_for(restarted, in_rotation, BARE_BACK_TIMEOUT)
            fig.back_in_rotation = None if back_at is None else back_at - restarted
            sleep_until(users.now, max(BARE_SECONDS, (back_at or restarted) + 1.0))
        finally:
            answers = users.finish()
            watch.stop()
        summarise(fig, answers, watch)
        if fig.to_down is None or fig.back_in_rotation is None:
            fig.problem = f"b2 seen as {' -> '.join(fig.states) or 'nothing'}: not DOWN and back within bounds"
    except Exception as exc:  # noqa: BLE001 - reported
        fig.problem = problem_text(exc)
    finally:
        entry.stop()
        for m in members:
            m.stop()
    say(f"entry, bare: {fig.failed} of {fig.requests} failed, DOWN after {_s(fig.to_down)}, "
        f"back after {_s(fig.back_in_rotation)}" + (f" ({fig.problem})" if fig.problem else ""))
    return fig


def kubectl(box: Any, *args: str, stdin: str | None = None, timeout: float = 60.0) -> str:
    argv = [str(box.binaries().kubectl), "--kubeconfig", str(box.kubeconfig), *args]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])} (member {box.name}): "
                           f"{(done.stderr or done.stdout).strip()[-400:]}")
    return done.stdout


def deploy_storefront(fleet: Any, member: str) -> None:
    """What fleet-cluster-loss's setup does on one member: its identity, then the storefront; until it is
    available (bounded)."""
    box = fleet.member(member)
    deadline = time.monotonic() + 90  # the drill's cleanup may have left it terminating
    while kubectl(box, "get", "namespace", NAMESPACE, "--ignore-not-found",
                  "-o", "jsonpath={.metadata.deletionTimestamp}").strip():
        if time.monotonic() > deadline:
            raise RuntimeError(f"namespace {NAMESPACE} of member {member} still terminating after 90s")
        time.sleep(0.5)
    identity = "\n".join([
        "apiVersion: v1", "kind: Namespace", f"metadata: {{name: {NAMESPACE}}}", "---",
        "apiVersion: v1", "kind: ConfigMap", f"metadata: {{name: cluster, namespace: {NAMESPACE}}}",
        f'data: {{name: "{member}", port: "{fleet.member_port(member)}"}}', ""])
    kubectl(box, "apply", "-f", "-", stdin=identity)
    kubectl(box, "apply", "-f", str(STOREFRONT))
    kubectl(box, "-n", NAMESPACE, "rollout", "status", "deployment/storefront", f"--timeout={DEPLOY_TIMEOUT:.0f}s",
            timeout=DEPLOY_TIMEOUT + 30)


def measure_fleet_entry(fleet: Any, log: Log) -> EntryFigures:
    """The same client at the fleet's entry point; member west's cluster deleted at 3 s, then rebuilt."""
    fig = EntryFigures(what=f"fleet: {len(fleet.member_names)} members, {VICTIM}'s cluster deleted")
    entry = fleet.entry
    box = fleet.member(VICTIM)
    try:
        say(f"entry, fleet: the storefront deployed on {', '.join(fleet.member_names)}")
        for member in fleet.member_names:
            deploy_storefront(fleet, member)
        entry.wait_in_rotation(timeout=FLEET_BACK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - reported
        fig.problem = f"the storefront is not served by every member: {problem_text(exc)}"
        say(f"entry, fleet: {fig.problem}")
        return fig
    say(f"entry, fleet: {VICTIM}'s cluster deleted at 3s, created again and the storefront redeployed")
    users = Users(entry.url)
    watch = StateWatch(entry, VICTIM, users.now)
    try:
        sleep_until(users.now, BARE_KILL_AT)
        deleting = users.now()
        box.delete_cluster()
        fig.steps["delete_cluster"] = users.now() - deleting
        down_at = watch.wait_for(deleting, is_down, DOWN_TIMEOUT - (users.now() - deleting))
        fig.to_down = None if down_at is None else down_at - deleting
        sleep_until(users.now, deleting + (BARE_RESTART_AT - BARE_KILL_AT))  # out at least as long as bare
        creating = users.now()
        box.create_cluster(log=log)
        fig.steps["create_cluster"] = users.now() - creating
        deploying = users.now()
        deploy_storefront(fleet, VICTIM)
        fig.steps["storefront applied, until rollout status says available"] = users.now() - deploying
        back_at = watch.wait_for(creating, in_rotation, FLEET_BACK_TIMEOUT)
        fig.back_in_rotation = None if back_at is None else back_at - creating
        if back_at is not None:  # HAProxy's checks (every 0.2 s) may see it before rollout status does
            fig.steps["in rotation, from the apply"] = back_at - deploying
        sleep_until(users.now, (back_at or users.now()) + 2.0)
    except Exception as exc:  # noqa: BLE001 - reported; the fleet is downed by the caller
        fig.problem = problem_text(exc)
    finally:
        answers = users.finish()
        watch.stop()
    summarise(fig, answers, watch)
    if not fig.problem and (fig.to_down is None or fig.back_in_rotation is None):
        fig.problem = f"{VICTIM} seen as {' -> '.join(fig.states) or 'nothing'}: not DOWN and back within bounds"
    say(f"entry, fleet: {fig.failed} of {fig.requests} failed, DOWN after {_s(fig.to_down)}, "
        f"back after {_s(fig.back_in_rotation)}" + (f" ({fig.problem})" if fig.problem else ""))
    return fig


# -- output ---------------------------------------------------------------------------------------
def _s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}s"


def mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.0f}M"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    if not b:
        return "-"  # x/0, and 0/0 too: no ratio
    return f"{a / b:.2f}x"


def print_up(sandbox: UpFigures | None, fleets: list[UpFigures]) -> None:
    print("Up (cold: a fresh DIRT_SANDBOX_HOME, the binary cache reused) and memory (VmRSS of every component's PID)")
    head = (f"{'what':30} {'members':>7} {'up s':>8} {'x sandbox':>9} {'down s':>7} {'procs':>5} {'RSS':>7} "
            f"{'x sandbox':>9} {'own parts':>9} {'per member':>10} {'x sandbox':>9}")
    print(head)
    base_up = sandbox.up_seconds if sandbox and not sandbox.problem else None
    base_rss = sandbox.rss_kib if sandbox and not sandbox.problem else None
    for fig in ([sandbox] if sandbox else []) + fleets:
        fleet = fig is not sandbox
        measured = fig.up_seconds is not None
        print(f"{fig.what:30} {fig.members:7} {_s(fig.up_seconds, 1).rstrip('s'):>8} "
              f"{ratio(fig.up_seconds, base_up):>9} {_s(fig.down_seconds, 1).rstrip('s'):>7} "
              f"{fig.processes if measured else '-':>5} {mib(fig.rss_kib) if measured else '-':>7} "
              f"{ratio(fig.rss_kib, base_rss) if measured else '-':>9} "
              f"{mib(fig.own_rss_kib) if fleet and measured else '-':>9} "
              f"{mib(fig.member_rss_kib) if measured else '-':>10} "
              f"{ratio(fig.member_rss_kib, base_rss) if fleet and measured else '-':>9}"
              + (f"  NOT MEASURED: {fig.problem}" if fig.problem else ""))
    print("(own parts: the shared bucket, the fleet's Prometheus and Alertmanager, HAProxy; per member: the rest "
          "over the member count. The pods' containers are not components and not counted.)")


def print_drill(d: DrillFigures, fleet_up: float | None) -> None:
    print()
    print(f"Drill {d.scenario} on the repository's fleet (child `dirt run`, as a user runs it)")
    verdict = d.verdict or "-"
    if d.problem:
        verdict += f" (NOT RUN: {d.problem})"
    print(f"  wall {_s(d.wall, 1)} ({ratio(d.wall, fleet_up)} the fleet's up time), dirt CPU {_s(d.dirt_cpu, 1)}, "
          f"exit {d.returncode}, verdict {verdict}")
    if d.samples is not None:
        failed = (d.samples or 0) - (d.successes or 0)
        objective = f" (objective {d.availability_objective:.3%})" if d.availability_objective is not None else ""
        print(f"  availability at the entry: {(d.availability_ratio or 0):.4%} of {d.samples} samples "
              f"({failed} failed){objective}, longest outage "
              f"{'none' if d.longest_outage is None else _s(d.longest_outage)}")
    print(f"  FleetMemberDown fired after {_s(d.member_down, 1)} (objective {_s(d.member_down_objective, 0)}), "
          f"FleetCapacityLow after {_s(d.capacity_low, 1)}; MTTR {_s(d.mttr, 1)} (objective {_s(d.mttr_objective, 0)})")
    if d.phases:
        print("  phases: " + ", ".join(f"{p['name']} {_s(p['seconds'], 1)}"
                                       + ("" if p["status"] == "passed" else f" ({p['status']})") for p in d.phases))
    for failure in d.failures[:5]:
        print(f"  failure: {failure}")


def print_entry(bare: EntryFigures | None, fleet: EntryFigures | None) -> None:
    print()
    print(f"Entry point (HAProxy) when a member is lost: a request every {EVERY * 1000:.0f} ms on a fresh connection "
          f"({REQUEST_TIMEOUT:.0f}s timeout), the member's state polled every {POLL * 1000:.0f} ms")
    print(f"{'what':40} {'requests':>8} {'failed':>6} {'failed %':>8} {'>1s':>4} {'max s':>6} {'to DOWN s':>9} "
          f"{'back s':>8}")
    rows = [r for r in (bare, fleet) if r is not None]
    for r in rows:
        print(f"{r.what:40} {r.requests:8} {r.failed:6} {r.failed_share:8.2%} {r.slow:4} {r.max_seconds:6.2f} "
              f"{_s(r.to_down, 3).rstrip('s'):>9} {_s(r.back_in_rotation, 2).rstrip('s'):>8}"
              + (f"  PROBLEM: {r.problem}" if r.problem else ""))
    if bare is not None and fleet is not None:
        print(f"{'fleet / bare':40} {ratio(fleet.requests, bare.requests):>8} {ratio(fleet.failed, bare.failed):>6} "
              f"{ratio(fleet.failed_share, bare.failed_share):>8} {'':4} "
              f"{ratio(fleet.max_seconds, bare.max_seconds):>6} {ratio(fleet.to_down, bare.to_down):>9} "
              f"{ratio(fleet.back_in_rotation, bare.back_in_rotation):>8}")
    for r in rows:
        if r.failures:
            print(f"  {r.what}: failures {', '.join(f'{k} x{v}' for k, v in sorted(r.failures.items()))}")
        print(f"  {r.what}: the lost member seen as {' -> '.join(r.states) or '-'}")
        if r.steps:
            print("    " + ", ".join(f"{k} {v:.1f}s" for k, v in r.steps.items()))
    print("(to DOWN: from the SIGKILL (bare) / the start of delete_cluster() (fleet); back: in rotation again, from "
          "the restart (bare) / the start of create_cluster(), the storefront then redeployed (fleet). Same HAProxy "
          "settings in both; the bare row runs while the fleet is up.)")


def as_json(sandbox: UpFigures | None, fleets: list[UpFigures], drill: DrillFigures | None,
            bare: EntryFigures | None, fleet_entry: EntryFigures | None) -> str:
    def up(fig: UpFigures) -> dict[str, Any]:
        return asdict(fig) | {"member_rss_kib": fig.member_rss_kib}

    def entry(fig: EntryFigures | None) -> dict[str, Any] | None:
        return None if fig is None else asdict(fig) | {"failed_share": fig.failed_share}

    return json.dumps({
        "cpus": os.cpu_count(),
        "sandbox": up(sandbox) if sandbox else None,
        "fleets": [up(f) for f in fleets],
        "drill": asdict(drill) if drill else None,
        "entry": {"bare": entry(bare), "fleet": entry(fleet_entry)},
    }, indent=2)


# -- main -----------------------------------------------------------------------------------------
PARTS = ("sandbox", "drill", "entry")


def member_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"member counts are numbers, like 2,3 (not {text!r})") from None
    if not counts or any(not 2 <= n <= len(MEMBER_NAMES) for n in counts):
        raise argparse.ArgumentTypeError(f"member counts are 2 to {len(MEMBER_NAMES)} (got {text!r})")
    return counts


def parts(text: str) -> set[str]:
    chosen = {x.strip() for x in text.split(",") if x.strip()}
    unknown = chosen - set(PARTS)
    if unknown:
        raise argparse.ArgumentTypeError(f"nothing called {', '.join(sorted(unknown))} to skip ({', '.join(PARTS)})")
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="What a fleet costs, and what its entry point does when a member "
                                                 "is lost.")
    parser.add_argument("--members", type=member_counts, default=[2, 3], metavar="N,N",
                        help="fleet sizes to bring up and measure (default 2,3)")
    parser.add_argument("--skip", type=parts, default=set(), metavar="PART,PART",
                        help=f"leave out some of: {', '.join(PARTS)}")
    parser.add_argument("--drill-timeout", type=float, default=DRILL_TIMEOUT, help="seconds (default 900)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work folder and its logs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON as well")
    return parser.parse_args(argv)


def leftovers(work: Path) -> list[str]:
    """Processes still running from the work folder (by their command line): there should be none."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(work) in cmdline:
            found.append(f"{entry.name} {cmdline[:160]}")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from dirt.sandbox.entry import EntrySettings, find_binary

    try:
        find_binary()
        if not SCENARIO.is_file() or not STOREFRONT.is_file():
            raise FileNotFoundError(f"{SCENARIO} or {STOREFRONT}")
    except Exception as exc:  # noqa: BLE001 - nothing to measure with
        print(f"fleet.py: cannot run: {problem_text(exc)}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="dirt-bench-fleet-"))
    say(f"work folder {work}")
    sandbox: UpFigures | None = None
    fleets: list[UpFigures] = []
    drill: DrillFigures | None = None
    bare: EntryFigures | None = None
    fleet_entry: EntryFigures | None = None
    downs_ok = finished = True
    try:
        finished = False
        repo_home = work / "fleet-repo"
        wanted_repo = not {"drill", "entry"} <= args.skip
        repo_count = len(repo_fleet(repo_home).member_names)  # dirt.yaml read before anything starts
        if "sandbox" not in args.skip:
            sandbox = measure_sandbox(work / "single", work)
            downs_ok &= sandbox.down_seconds is not None
        counts = sorted(set(args.members) | ({repo_count} if wanted_repo else set()))
        for count in counts:
            log = Log(work / f"fleet-{count}.log")
            if count == repo_count:
                home = repo_home
                fleet = repo_fleet(home)
                what = f"fleet (dirt.yaml '{FLEET_TARGET}')"
            else:
                home = work / f"fleet-{count}"
                from dirt.sandbox.fleet import Fleet

                fleet = Fleet(FLEET_NAME, list(MEMBER_NAMES[:count]), home=home)
                what = "fleet"
            fig = UpFigures(what=what, members=count, home=str(home))
            fleets.append(fig)
            try:
                if bring_up_fleet(fleet, fig, log) and count == repo_count:
                    if "drill" not in args.skip:
                        drill = run_drill(home, work, args.drill_timeout)
                    if "entry" not in args.skip:
                        bare = measure_bare(work / "bare", fleet.entry_settings or EntrySettings())
                        fleet_entry = measure_fleet_entry(fleet, log)
            finally:
                if fleet.exists() or fleet.root.exists():
                    say(f"fleet of {count}: down")
                    fig.down_seconds, problem = down(fleet, log)
                    fig.problem = fig.problem or problem
                    downs_ok &= fig.down_seconds is not None
        print_up(sandbox, fleets)
        if drill is not None:
            print_drill(drill, next((f.up_seconds for f in fleets if f.home == str(repo_home)), None))
        if bare is not None or fleet_entry is not None:
            print_entry(bare, fleet_entry)
        print(f"({os.cpu_count()} CPUs; total {time.monotonic() - START:.0f}s)")
        if args.json:
            print(as_json(sandbox, fleets, drill, bare, fleet_entry))
        problems = [x.problem for x in [sandbox, *fleets, drill, bare, fleet_entry] if x is not None and x.problem]
        finished = True
        return 1 if problems else 0
    finally:
        left = leftovers(work)
        if left:
            print("fleet.py: still running from the work folder:\n  " + "\n  ".join(left), file=sys.stderr)
        problems = [x.problem for x in [sandbox, *fleets, drill, bare, fleet_entry] if x is not None and x.problem]
        if args.keep_logs or problems or left or not downs_ok or not finished:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""One drill per target at a time: the drill lock's local file lock, its Lease, and the CLI around them.

The local lock is exercised for real (files, ``flock``, processes that live and die);
the Lease against a small in-memory stand-in for the Kubernetes API that enforces
``resourceVersion`` as the API server does.  The sandbox half runs in
tests/integration/test_drill_lock.py.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dirt.core.errors import APIConflictError, APIUnavailableError, DrillLocked
from dirt.engine.lock import (
    DrillLease,
    DrillLock,
    Holder,
    LocalLock,
    LockState,
    lease_expired,
    lease_holder,
)
from tests.conftest import DIRT, FILE_FAULT, basic_scenario, journal_lines


def holder(run_id: str = "run-1", **fields: Any) -> Holder:
    return Holder.here(run_id, "drill", "fake", **fields)


def lock(path: Path, run_id: str = "run-1", *, take_over: tuple[str, ...] = (), said: list[str] | None = None,
         hold_local: bool = True) -> DrillLock:
    return DrillLock("fake", holder(run_id), LocalLock(path), hold_local=hold_local, lease=None,
                     say_unreachable=False, take_over=take_over, say=(said.append if said is not None else None))


def dead_holder(tmp_path: Path, run_dir: Path | None = None) -> Holder:
    """The holder of a process that has ended (a real, finished child)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return Holder("run-dead", "killed-drill", "fake", int(child.stdout), socket.gethostname(), time.time() - 60,
                  str(run_dir or ""))


def leave_stale(path: Path, who: Holder) -> None:
    """What a SIGKILLed drill leaves: the file names it, no process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(who.to_json())


# -- the local lock -------------------------------------------------------------------------
def test_a_drill_takes_the_free_lock_and_writes_who_holds_it(tmp_path) -> None:
    path = tmp_path / "drill.lock"
    with lock(path) as held:
        state = LocalLock(path).inspect()
        assert state.live and state.holder == held.holder
        assert json.loads(path.read_text())["run_id"] == "run-1"
    assert path.read_text() == "", "a clean end leaves the file empty: free"
    assert LocalLock(path).inspect() == LockState(None, live=False)


def test_a_second_drill_is_refused_with_exit_2_naming_holder_run_id_and_start(tmp_path) -> None:
    path = tmp_path / "drill.lock"
    with lock(path, "run-1") as first:
        with pytest.raises(DrillLocked) as refused:
            lock(path, "run-2").acquire()
        assert refused.value.exit_code == 2
        message = str(refused.value)
        assert "run run-1" in message and first.holder.started_text in message
        assert f"pid {os.getpid()}" in message
        assert LocalLock(path).inspect().holder == first.holder, "the refused drill changed nothing"


def test_a_lock_held_by_another_process_refuses_until_that_process_lets_go(tmp_path) -> None:
    path = tmp_path / "drill.lock"
    code = ("import sys; from dirt.engine.lock import Holder, LocalLock; lock = LocalLock(__import__('pathlib')"
            f".Path({str(path)!r})); lock.take(); lock.write(Holder.here('other-run', 'x', 'fake')); "
            "print('held', flush=True); sys.stdin.read(); lock.release()")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(DrillLocked, match=f"run other-run .*pid {child.pid}"):
            lock(path).acquire()
    finally:
        child.communicate("", timeout=30)
    with lock(path):  # let go: free again
        pass


def test_a_killed_holder_leaves_a_stale_lock_that_is_told_apart_by_its_dead_pid(tmp_path) -> None:
    path = tmp_path / "drill.lock"
    code = ("import time; from pathlib import Path; from dirt.engine.lock import Holder, LocalLock; "
            f"lock = LocalLock(Path({str(path)!r})); lock.take(); lock.write(Holder.here('killed', 'x', 'fake')); "
            "print('held', flush=True); time.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    assert LocalLock(path).inspect().live
    child.kill()  # SIGKILL: no finally, no release
    child.wait(10)
    state = LocalLock(path).inspect()
    assert state.stale and state.holder is not None and state.holder.run_id == "killed"
    assert state.holder.alive() is False


def test_a_stale_lock_whose_run_never_started_is_taken_over_and_said(tmp_path) -> None:
    path = tmp_path / "drill.lock"
    leave_stale(path, dead_holder(tmp_path, tmp_path / "reports" / "never-written"))
    said: list[str] = []
    with lock(path, said=said):
        assert LocalLock(path).inspect().holder.run_id == "run-1"
    assert said and "took over the stale drill lock of run run-dead" in said[0]


def test_a_stale_lock_whose_run_left_a_fault_in_effect_blocks_and_says_how_to_clear_it(project) -> None:
    run_dir = killed_run(project)
    path = project.root / ".dirt" / "locks" / "fake" / "drill.lock"
    state = LocalLock(path).inspect()
    assert state.stale and state.holder.run_dir == str(run_dir.resolve())
    with pytest.raises(DrillLocked) as refused:
        lock(path, "run-2").acquire()
    message = str(refused.value)
    assert refused.value.stale and "may have left in effect: break-file" in message
    assert f"dirt rollback {run_dir.resolve()}" in message and "dirt unlock fake" in message
    with lock(path, state.holder.run_id, take_over=(state.holder.run_id,)):  # `dirt rollback` of that run
        pass


def test_checking_without_holding_creates_nothing_and_still_refuses_a_live_holder(tmp_path) -> None:
    path = tmp_path / "locks" / "drill.lock"
    with lock(path, hold_local=False):
        pass
    assert not path.exists()
    with lock(path, "run-1"), pytest.raises(DrillLocked):
        lock(path, "run-2", hold_local=False).acquire()


# -- the Lease, against an API that enforces resourceVersion ---------------------------------
class LeaseAPI:
    """Just enough of the API server for a Lease: find, create, merge-patch with a resourceVersion guard."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.interleave: list[Any] = []  # writes by "someone else" between our read and our write

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None, **_: Any) -> Any:
        return copy.deepcopy(self.lease)

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.lease = obj
        return copy.deepcopy(obj)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise APIConflictError("already exists", status=409)
        return self._bump(copy.deepcopy(obj))

    def patch(self, api_version: str, kind: str, name: str, body: dict[str, Any], namespace: str | None = None,
              **_: Any) -> dict[str, Any]:
        while self.interleave:
            self.interleave.pop(0)(self)
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise APIConflictError("the object has been modified", status=409)
        merged = copy.deepcopy(self.lease)
        for key in ("metadata", "spec"):
            for field, value in body.get(key, {}).items():
                if isinstance(value, dict) and isinstance(merged[key].get(field), dict):
                    merged[key][field].update(value)
                else:
                    merged[key][field] = value
        return self._bump(merged)

    def close(self) -> None:
        pass


def lease_for(api: LeaseAPI, run_id: str, **fields: Any) -> DrillLease:
    return DrillLease(lambda: api, Holder(run_id, "drill", "prod", 1, "elsewhere", time.time(), **fields))


def test_the_lease_is_created_and_shows_who_holds_it() -> None:
    api = LeaseAPI()
    lease_for(api, "run-1").hold()
    assert api.lease is not None
    spec, notes = api.lease["spec"], api.lease["metadata"]["annotations"]
    assert spec["holderIdentity"] == "run-1" and spec["leaseDurationSeconds"] == 60
    assert spec["acquireTime"] and spec["renewTime"]
    assert notes["dirt.drill/run-id"] == "run-1" and notes["dirt.drill/scenario"] == "drill"
    assert notes["dirt.drill/host"] == "elsewhere" and notes["dirt.drill/started-at"].endswith("UTC")
    assert lease_holder(api.lease).run_id == "run-1"


def test_a_fresh_lease_of_another_holder_refuses_and_an_expired_one_is_taken_over() -> None:
    api = LeaseAPI()
    lease_for(api, "run-1").hold()
    with pytest.raises(DrillLocked, match="locked by run run-1"):
        lease_for(api, "run-2").hold()
    assert api.lease["spec"]["renewTime"]
    api.lease["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"
    assert lease_expired(api.lease)
    lease_for(api, "run-2").hold()
    assert api.lease["spec"]["holderIdentity"] == "run-2" and api.lease["spec"]["leaseTransitions"] == 1


def test_taking_over_is_guarded_by_resource_version_so_a_racing_holder_wins() -> None:
    api = LeaseAPI()
    lease_for(api, "run-1").hold()
    api.lease["spec"]["renewTime"] = "2020-01-01T00:00:00.000000Z"

    def racer(server: LeaseAPI) -> None:  # another drill takes the expired Lease first
        body = lease_for(server, "run-3")._body(time.time(), time.time(), 1)
        body["metadata"]["resourceVersion"] = server.lease["metadata"]["resourceVersion"]
        server.interleave = []
        server.patch("coordination.k8s.io/v1", "Lease", "dirt-drill-lock", body, "kube-system")

    api.interleave = [racer]
    with pytest.raises(DrillLocked, match="locked by run run-3"):
        lease_for(api, "run-2").hold()
    assert api.lease["spec"]["holderIdentity"] == "run-3"


def test_release_clears_only_its_own_holder() -> None:
    api = LeaseAPI()
    mine = lease_for(api, "run-1")
    mine.hold()
    mine.release()
    assert api.lease["spec"]["holderIdentity"] is None
    assert lease_holder(api.lease) is None
    lease_for(api, "run-2").hold()
    mine.release()
    assert api.lease["spec"]["holderIdentity"] == "run-2"


def test_rollback_of_a_run_takes_over_its_own_lease() -> None:
    api = LeaseAPI()
    lease_for(api, "run-1").hold()
    with pytest.raises(DrillLocked):
        lease_for(api, "run-2").hold()
    lease_for(api, "run-1").hold()  # the same run: its rollback
    assert api.lease["spec"]["holderIdentity"] == "run-1" and api.lease["spec"]["leaseTransitions"] == 0


# -- the CLI, with real processes on the fake target -----------------------------------------
SLOW = "recover:\n  - step: fake.step\n    name: slow\n    takes: 60s\n"


def start_slow_drill(project) -> tuple[subprocess.Popen[str], Path]:
    path = project.scenario("drill", basic_scenario(inject=FILE_FAULT, expect="", recover=SLOW))
    before = set(project.reports.glob("*/journal.jsonl"))
    proc = subprocess.Popen([*DIRT, "run", str(path), "--display", "none"], cwd=project.root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for journal in set(project.reports.glob("*/journal.jsonl")) - before:
            if any(e["event"] == "step.start" and e["name"] == "slow" for e in journal_lines(journal)):
                return proc, journal.parent
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the drill never reached its recovery")


def killed_run(project) -> Path:
    proc, run_dir = start_slow_drill(project)
    proc.kill()  # SIGKILL
    proc.communicate(timeout=10)
    return run_dir


def dirt(project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=project.root, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_a_second_dirt_run_on_a_held_target_exits_2_and_touches_nothing(project) -> None:
    first, run_dir = start_slow_drill(project)
    try:
        second = project.scenario("second", basic_scenario())
        refused = dirt(project, "run", str(second), "--display", "none")
        assert refused.returncode == 2, refused.stderr
        assert f"locked by run {run_dir.name}" in refused.stderr and "started " in refused.stderr
        assert "Traceback" not in refused.stderr
        assert [p.name for p in project.reports.iterdir() if p.is_dir()] == [run_dir.name], "no run folder"
        assert (project.root / "broken.flag").exists(), "the first drill's fault was not rolled back by the second"
    finally:
        first.terminate()  # SIGTERM: it rolls back and unlocks by itself
        first.communicate(timeout=30)
    assert first.returncode == 3
    assert not LocalLock(project.root / ".dirt" / "locks" / "fake" / "drill.lock").inspect().holder


def test_a_killed_drill_blocks_the_next_until_rolled_back(project) -> None:
    run_dir = killed_run(project)
    again = project.scenario("again", basic_scenario())
    refused = dirt(project, "run", str(again), "--display", "none")
    assert refused.returncode == 2 and f"dirt rollback {run_dir.resolve()}" in refused.stderr, refused.stderr
    assert (project.root / "broken.flag").exists()
    rolled = dirt(project, "rollback", str(run_dir), "--yes")
    assert rolled.returncode == 0 and "reverted break-file" in rolled.stdout, rolled.stderr
    passed = dirt(project, "run", str(again), "--display", "none")
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_dirt_unlock_breaks_a_stale_lock_after_asking_and_never_a_live_one(project) -> None:
    run_dir = killed_run(project)
    unasked = dirt(project, "unlock", "fake")
    assert unasked.returncode == 2 and "needs --yes" in unasked.stderr
    assert f"run {run_dir.name}" in unasked.stdout and "stale" in unasked.stdout
    unlocked = dirt(project, "unlock", "fake", "--yes")
    assert unlocked.returncode == 0 and f"cleared the local lock of run {run_dir.name}" in unlocked.stdout
    assert dirt(project, "unlock", "fake").stdout.strip() == "target 'fake' is not locked"

    first, live_dir = start_slow_drill(project)
    try:
        live = dirt(project, "unlock", "fake", "--yes")
        assert live.returncode == 2 and "still running" in live.stderr, live.stderr
    finally:
        first.terminate()
        first.communicate(timeout=30)


def test_sandbox_up_and_down_by_hand_are_refused_while_a_drill_holds_the_sandbox(tmp_path, monkeypatch) -> None:
    from dirt.app.sandbox import refuse_while_drilling
    from dirt.config import TargetConfig
    from dirt.targets.sandbox import SandboxTarget

    monkeypatch.setenv("DIRT_SANDBOX_HOME", str(tmp_path / "sbx"))
    target = SandboxTarget("sandbox", TargetConfig(provider="sandbox", settings={"name": "locked"}), tmp_path)
    assert target.drill_lock_path() == tmp_path / "sbx" / "locked" / "drill.lock"
    refuse_while_drilling(target, "up")  # free: nothing to say
    with lock(target.drill_lock_path(), "control-plane-down-run"):
        with pytest.raises(DrillLocked, match="would restart the components it stopped"):
            refuse_while_drilling(target, "up")
        env = {**os.environ, "DIRT_SANDBOX_HOME": str(tmp_path / "sbx")}
        for action in ("up", "down"):
            done = subprocess.run([*DIRT, "sandbox", action, "--name", "locked"], cwd=tmp_path, capture_output=True,
                                  text=True, env=env, timeout=60)
            assert done.returncode == 2, done.stderr
            assert "held by run control-plane-down-run" in done.stderr
        assert not (tmp_path / "sbx" / "locked" / "kwok").exists(), "nothing was started"


def test_renewal_is_quiet_while_the_api_is_down_and_puts_back_a_lease_that_vanished() -> None:
    api = LeaseAPI()
    said: list[str] = []
    held = DrillLock("prod", Holder("run-1", "drill", "prod", 1, "elsewhere", time.time()),
                     LocalLock(Path("/nonexistent/never-created")), hold_local=False, lease=lease_for(api, "run-1"),
                     say_unreachable=True, say=said.append, renew_every=3600)
    held.acquire()
    try:
        real_find = api.find
        api.find = lambda *a, **k: (_ for _ in ()).throw(APIUnavailableError("API server unreachable"))
        held.renew()  # a drill stopped the API server: nothing to do, nothing said
        api.find = real_find
        api.lease = None  # an etcd restore or a recreated cluster lost it
        held.renew()
        assert api.lease is not None and api.lease["spec"]["holderIdentity"] == "run-1"
        lease_for(api, "run-9").hold(take_over=["run-1"])  # someone took it meanwhile
        held.renew()
        assert said and "taken while this drill could not renew it" in said[0] and "run-9" in said[0]
    finally:
        held.release()
    assert api.lease["spec"]["holderIdentity"] == "run-9", "release never clears another holder"


def test_a_lease_left_by_a_killed_run_with_a_fault_in_effect_blocks_like_the_local_lock(project) -> None:
    run_dir = killed_run(project)
    api = LeaseAPI()
    gone = dead_holder(project.root, run_dir.resolve())
    DrillLease(lambda: api, gone).hold()
    with pytest.raises(DrillLocked, match=f"dirt rollback {run_dir.resolve()}"):
        lease_for(api, "run-2").hold()
    lease_for(api, gone.run_id).hold(take_over=[gone.run_id])  # its own rollback may


def test_a_drill_refused_by_the_lease_leaves_the_local_lock_as_it_found_it(tmp_path) -> None:
    api = LeaseAPI()
    lease_for(api, "run-1").hold()
    path = tmp_path / "drill.lock"
    refused = DrillLock("prod", Holder.here("run-2", "drill", "prod"), LocalLock(path), hold_local=True,
                        lease=lease_for(api, "run-2"), say_unreachable=True)
    with pytest.raises(DrillLocked, match="locked by run run-1"):
        refused.acquire()
    assert LocalLock(path).inspect() == LockState(None, live=False), "no stale lock named after the refused run"

"""One drill per target at a time: the drill lock.

Two drills on one target corrupt each other: the second one's automatic
``sandbox up`` restarts the API server the first one stopped, both deploy and
delete the same namespace, and both report PASSED.  So a drill takes a lock in
preflight, before anything is touched, and holds it to the end of its rollback
and cleanup; a second drill on the same target is refused (``DrillLocked``,
exit 2) and touches nothing.  The lock has two halves, because a drill may take
the very API server a cluster-side lock lives in:

- a ``coordination.k8s.io/v1`` Lease (``kube-system/dirt-drill-lock``) in the
  target cluster, renewed in the background; ``kubectl get lease`` shows who
  holds it (holder, run id, scenario, host, pid, start).  It is taken with
  optimistic concurrency: created if absent, refused if another holder renewed
  it within its duration, taken over (a ``resourceVersion``-guarded update) if
  it expired or its holder's process is gone from this host.  While a fault
  keeps the API down it cannot be renewed, and a restored etcd may bring it back
  old or not at all: the renewal puts it back once the API answers (as it takes
  the Lease of a drill that starts while the API cannot be reached: a sandbox
  that its automatic ``up`` is about to start);
- a local file lock (``fcntl.flock``) with the holder as JSON: under the
  sandbox's own folder for the sandbox, else under a per-target folder of the
  user's state directory.  It is *held* by drills on the sandbox and by drills
  whose faults take the API away (``API_DOWN_FAMILIES``), and *checked* by every
  drill.  The kernel frees it when the process dies, however it dies.

A lock whose holder died (its file still names a run, but no process holds it;
a Lease whose holder's process is gone) is stale.  A stale lock whose run may
have left a fault in effect (no ``run.end``, a fault still in effect in its
journal) blocks, and the error says how to clear it: ``dirt rollback RUN``
(which takes over its own run's lock) or ``dirt unlock TARGET``.  Any other
stale lock is taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dirt.clients.commands import running_since
from dirt.core.errors import APIConflictError, APINotFoundError, DirtError, DrillLocked, TargetError
from dirt.journal import fold_faults, read_journal
from dirt.journal.events import RunEnded
from dirt.targets.base import Target

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "dirt-drill-lock"
#: A holder that has not renewed for this long is taken to be gone.
LEASE_SECONDS = 60
RENEW_SECONDS = 10.0
#: Families whose faults take the target's API away: the Lease cannot be renewed meanwhile,
#: so the local lock is what keeps a second drill out.
API_DOWN_FAMILIES = frozenset({"control-plane", "etcd", "cluster"})
ANNOTATION = "dirt.drill/"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Holder:
    """Who holds a target: the run, its scenario, and the process (pid on host) running it."""

    run_id: str
    scenario: str
    target: str
    pid: int
    host: str
    started: float  # unix seconds
    run_dir: str = ""
    by: str = "dirt run"

    @classmethod
    def here(cls, run_id: str, scenario: str, target: str, run_dir: Path | str = "", *,
             by: str = "dirt run") -> Holder:
        return cls(run_id=run_id, scenario=scenario, target=target, pid=os.getpid(), host=socket.gethostname(),
                   started=round(time.time(), 3), run_dir=str(Path(run_dir).resolve()) if run_dir else "", by=by)

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @property
    def started_text(self) -> str:
        return datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

    def describe(self) -> str:
        return (f"run {self.run_id} (scenario {self.scenario!r}, {self.by}, pid {self.pid} on {self.host}, "
                f"started {self.started_text})")

    def alive(self) -> bool | None:
        """Is the holder's process still running?  None when it runs on another host (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        since = running_since(self.pid)
        return since is not None and since <= self.started + 5


# -- the local half -------------------------------------------------------------------------
@dataclass(frozen=True)
class LockState:
    """What a lock file says: its holder (None when free), and whether a live process holds it."""

    holder: Holder | None
    live: bool

    @property
    def stale(self) -> bool:
        return self.holder is not None and not self.live


class LocalLock:
    """A file lock (``flock``) whose file names its holder; the kernel frees it when the holder dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def inspect(self) -> LockState:
        """Who holds it, without taking it (nothing is created)."""
        if self._fd is not None:
            return LockState(_read(self._fd), live=True)
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return LockState(None, live=False)
        try:
            live = not _try_flock(fd)
            return LockState(_read(fd), live=live)
        finally:
            os.close(fd)  # closing drops a lock this probe took

    def take(self) -> LockState:
        """Try to take it.  Returns what was there: ``live`` means another process holds it
        (not taken); otherwise it is now ours, and ``holder`` is a dead holder's leftover."""
        if self._fd is not None:
            return LockState(None, live=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_flock(fd):
            state = LockState(_read(fd), live=True)
            os.close(fd)
            return state
        self._fd = fd
        return LockState(_read(fd), live=False)

    def write(self, holder: Holder) -> None:
        assert self._fd is not None, "take the lock first"
        data = holder.to_json().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def release(self, *, clear: bool = True) -> None:
        """Let go; ``clear`` empties the file (a clean end), otherwise a dead holder's name stays."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if clear:
                os.ftruncate(fd, 0)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def clear_stale(self) -> LockState:
        """Forget a dead holder (``dirt unlock``); a live one is left alone and returned."""
        state = self.take()
        if not state.live:
            self.release()
        return state


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _read(fd: int) -> Holder | None:
    size = os.fstat(fd).st_size
    text = os.pread(fd, max(size, 1), 0).decode("utf-8", errors="replace").strip()
    return Holder.from_json(text) if text else None


def left_in_effect(holder: Holder) -> list[str] | None:
    """The faults a dead holder's run may have left in effect, from its journal; None if it ended
    (or never started: no journal), and ``["(unknown: …)"]`` when its journal cannot be read."""
    if not holder.run_dir:
        return ["(unknown: the lock names no run folder)"]
    run_dir = Path(holder.run_dir)
    if not (run_dir / "journal.jsonl").exists():
        return None
    try:
        contents = read_journal(run_dir)
    except (DirtError, OSError) as exc:
        return [f"(unknown: its journal cannot be read: {exc})"]
    if contents.last(RunEnded) is not None:
        return None
    names = [life.name for life in fold_faults(contents.events).in_effect()]
    return names or None


def refuse_if_left_in_effect(target_name: str, holder: Holder) -> None:
    """A dead holder's lock blocks while its run may have left a fault in effect: say how to clear it."""
    left = left_in_effect(holder)
    if left:
        raise DrillLocked(
            f"target {target_name!r} is locked by {holder.describe()}, whose process is gone and may have "
            f"left in effect: {', '.join(left)}.  Put it back with `dirt rollback {holder.run_dir}` (that also "
            f"frees the lock), or, if the target is known to be fine, `dirt unlock {target_name}`",
            holder=holder, stale=True)


# -- the cluster half -----------------------------------------------------------------------
def _micro_time(when: float) -> str:
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: Any) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def lease_holder(lease: dict[str, Any]) -> Holder | None:
    """The holder a Lease names (from its annotations), None when it is free."""
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return None
    notes = (lease.get("metadata") or {}).get("annotations") or {}

    def note(key: str, default: str = "?") -> str:
        return str(notes.get(f"{ANNOTATION}{key}") or default)

    try:
        return Holder(run_id=note("run-id", str(spec["holderIdentity"])), scenario=note("scenario"),
                      target=note("target"), pid=int(note("pid", "0")), host=note("host"),
                      started=float(note("started", "0")), run_dir=note("run-dir", ""), by=note("by", "dirt run"))
    except ValueError:
        return Holder(str(spec["holderIdentity"]), "?", "?", 0, "?", 0.0)


def lease_expired(lease: dict[str, Any], now: float | None = None) -> bool:
    spec = lease.get("spec") or {}
    renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or LEASE_SECONDS
    return renewed is None or renewed + float(duration) < (now or time.time())


class DrillLease:
    """The Lease half: taken, renewed and released through the target's Kubernetes API."""

    def __init__(self, kube: Callable[[], Any], holder: Holder, *, namespace: str = LEASE_NAMESPACE,
                 name: str = LEASE_NAME, seconds: int = LEASE_SECONDS) -> None:
        self.kube = kube  # () -> KubeClient, asked anew after a failure (a recreated cluster has a new CA)
        self.holder = holder
        self.namespace = namespace
        self.name = name
        self.seconds = seconds
        self._client: Any = None

    def _api(self) -> Any:
        if self._client is None:
            self._client = self.kube()
        return self._client

    def _forget_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None

    def get(self) -> dict[str, Any] | None:
        return self._call(lambda api: api.find("coordination.k8s.io/v1", "Lease", self.name, self.namespace,
                                               timeout=5.0))

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self._api())
        except (APIConflictError, APINotFoundError):
            raise
        except DirtError:
            self._forget_client()
            raise

    def _body(self, now: float, acquired: float, transitions: int) -> dict[str, Any]:
        h = self.holder
        notes = {"run-id": h.run_id, "scenario": h.scenario, "target": h.target, "pid": str(h.pid), "host": h.host,
                 "started": str(h.started), "started-at": h.started_text, "run-dir": h.run_dir, "by": h.by}
        return {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "dirt", f"{ANNOTATION}lock": "true"},
                         "annotations": {f"{ANNOTATION}{k}": v for k, v in notes.items()}},
            "spec": {"holderIdentity": h.run_id, "leaseDurationSeconds": self.seconds,
                     "acquireTime": _micro_time(acquired), "renewTime": _micro_time(now),
                     "leaseTransitions": transitions},
        }

    def hold(self, *, take_over: Iterable[str] = ()) -> None:
        """Make the Lease ours (create, renew or take over); ``DrillLocked`` if another live holder has it.

        ``take_over`` names run ids whose Lease may be taken whatever its age (``dirt rollback``
        of that run)."""
        for _ in range(3):  # a conflict means someone else wrote in between: look again
            lease = self.get()
            now = time.time()
            try:
                if lease is None:
                    self._call(lambda api: api.create(self._body(now, now, 0)))
                    return
                spec = lease.get("spec") or {}
                other = lease_holder(lease)
                ours = spec.get("holderIdentity") == self.holder.run_id
                if not ours and other is not None and other.run_id not in set(take_over) \
                        and not lease_expired(lease, now) and other.alive() is not False:
                    raise DrillLocked(f"target {self.holder.target!r} is locked by {other.describe()} "
                                      f"(Lease {self.namespace}/{self.name}, renewed "
                                      f"{spec.get('renewTime') or '?'})", holder=other)
                if not ours and other is not None and other.run_id not in set(take_over) \
                        and other.run_dir and Path(other.run_dir).is_dir():
                    refuse_if_left_in_effect(self.holder.target, other)  # gone, but its run may not be clean
                acquired = (_parse_time(spec.get("acquireTime")) or now) if ours else now
                transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
                body = self._body(now, acquired, transitions)
                body["metadata"]["resourceVersion"] = lease["metadata"]["resourceVersion"]
                self._call(lambda api: api.patch("coordination.k8s.io/v1", "Lease", self.name, body,
                                                 self.namespace))
                return
            except APIConflictError:
                continue
        raise DrillLocked(f"target {self.holder.target!r}: the Lease {self.namespace}/{self.name} kept changing "
                          "while it was being taken; another drill is starting: try again later")

    def release(self, *, holder_id: str | None = None) -> None:
        """Clear the holder if it is still ours, or ``holder_id`` (``dirt unlock``); guarded, so a
        holder that took over in between keeps it."""
        try:
            lease = self.get()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != (holder_id or self.holder.run_id):
                return
            body = {"metadata": {"resourceVersion": lease["metadata"]["resourceVersion"],
                                 "annotations": {f"{ANNOTATION}released-at": _micro_time(time.time())}},
                    "spec": {"holderIdentity": None}}
            self._call(lambda api: api.patch("coordination.k8s.io/v1", "Lease", self.name, body, self.namespace))
        except DirtError:
            pass  # the API is gone (a drill that left it down): the Lease expires by itself
        finally:
            self._forget_client()


# -- both halves, for one drill ---------------------------------------------------------------
class DrillLock:
    """The drill lock of one run on one target, taken in preflight and held to the end of cleanup.

    ``hold_local`` holds the file lock (the sandbox, faults that take the API away); otherwise
    it is only checked.  ``lease`` is None when the target has no Kubernetes API to hold one in.
    An API that cannot be reached yet (a sandbox that auto-up will start, a kind cluster whose
    kubeconfig ``prepare`` refreshes) does not stop the drill: its steady state will say if the
    API stays away, and the renewal takes the Lease as soon as it answers; ``say_unreachable``
    says so (off the sandbox, where the Lease is what keeps drills of other machines out)."""

    def __init__(self, target_name: str, holder: Holder, local: LocalLock, *, hold_local: bool,
                 lease: DrillLease | None, say_unreachable: bool, take_over: Iterable[str] = (),
                 say: Say | None = None, renew_every: float = RENEW_SECONDS) -> None:
        self.target_name = target_name
        self.holder = holder
        self.local = local
        self.hold_local = hold_local
        self.lease = lease
        self.say_unreachable = say_unreachable
        self.take_over = frozenset(take_over)
        self.say = say or (lambda text: None)
        self.renew_every = renew_every
        self._stop = threading.Event()
        self._mutex = threading.Lock()
        self._renewer: threading.Thread | None = None
        self._lost = False

    def __enter__(self) -> DrillLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take both halves or neither; ``DrillLocked`` (exit 2) naming the holder if refused."""
        state = self.local.take() if self.hold_local else self.local.inspect()
        wrote = False
        try:
            self._judge_local(state)
            if self.hold_local:
                self.local.write(self.holder)
                wrote = True
            if self.lease is not None:
                self._take_lease()
        except BaseException:
            self.local.release(clear=wrote)  # a blocking stale holder keeps its name; ours goes
            raise
        if self.lease is not None:
            self._renewer = threading.Thread(target=self._renew_loop, name="dirt-drill-lock", daemon=True)
            self._renewer.start()

    def _judge_local(self, state: LockState) -> None:
        holder = state.holder
        if state.live:
            if holder is None:
                raise DrillLocked(f"target {self.target_name!r} is locked by another drill that is starting "
                                  f"({self.local.path}); try again in a moment")
            raise DrillLocked(f"target {self.target_name!r} is locked by {holder.describe()}: one drill per "
                              "target at a time; wait for it to end (it rolls back and unlocks by itself)",
                              holder=holder)
        if holder is None or holder.run_id in self.take_over:
            return
        refuse_if_left_in_effect(self.target_name, holder)
        if self.hold_local:
            self.say(f"took over the stale drill lock of {holder.describe()}: its process is gone and it left "
                     "nothing in effect")

    def _take_lease(self) -> None:
        assert self.lease is not None
        try:
            self.lease.hold(take_over=self.take_over)
        except DrillLocked:
            raise
        except DirtError as exc:
            if self.say_unreachable:
                self.say(f"cannot take the Lease {self.lease.namespace}/{self.lease.name} of target "
                         f"{self.target_name!r} yet ({exc}); it is taken as soon as the API answers")

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_every):
            self.renew()

    def renew(self) -> None:
        """One renewal: quiet while the API is away (a drill may have taken it down)."""
        assert self.lease is not None
        with self._mutex:
            if self._stop.is_set():
                return
            try:
                self.lease.hold(take_over=self.take_over)
                self._lost = False
            except DrillLocked as exc:
                if not self._lost:
                    self._lost = True
                    self.say(f"the drill lock's Lease was taken while this drill could not renew it: {exc}")
            except DirtError:
                pass

    def release(self) -> None:
        self._stop.set()
        with self._mutex:  # waits for a renewal in flight, so none comes after the release
            if self.lease is not None:
                self.lease.release()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        self.local.release()


class FleetLock:
    """The drill locks of a fleet: its own and every member's, taken in one fixed order (the lock files'
    paths, sorted), so two drills on fleets that share a member can never each hold half; all or none."""

    def __init__(self, locks: list[DrillLock]) -> None:
        self.locks = sorted(locks, key=lambda lock: str(lock.local.path))
        self._held: list[DrillLock] = []

    def __enter__(self) -> FleetLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            for lock in self.locks:
                lock.acquire()
                self._held.append(lock)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self._held:
            self._held.pop().release()


def drill_lock(target: Target, holder: Holder, families: Iterable[str], *, take_over: Iterable[str] = (),
               say: Say | None = None) -> DrillLock | FleetLock:
    """The drill lock for a run of faults of ``families`` on ``target`` (not taken yet); on a fleet,
    the fleet's own and each member's (``FleetLock``)."""
    families = list(families)
    if target.members():
        return FleetLock([_one_lock(target, holder, families, take_over=take_over, say=say),
                          *(_one_lock(target.member_target(m), holder, families, take_over=take_over, say=say)
                            for m in target.members())])
    return _one_lock(target, holder, families, take_over=take_over, say=say)


def _one_lock(target: Target, holder: Holder, families: list[str], *, take_over: Iterable[str],
              say: Say | None) -> DrillLock:
    api_down = bool(set(families) & API_DOWN_FAMILIES)
    return DrillLock(target.name, holder, LocalLock(target.drill_lock_path()),
                     hold_local=target.is_sandbox or api_down, lease=_lease_for(target, holder),
                     say_unreachable=not target.is_sandbox, take_over=take_over, say=say)


def _lease_for(target: Target, holder: Holder) -> DrillLease | None:
    """The Lease half, None for a target without a Kubernetes API (the fake one)."""
    try:
        if target.kubeconfig_path() is None:
            return None
    except DirtError:
        pass  # a kind cluster not there yet: the client below fails the same way, and ``prepare`` says why
    from dirt.clients.kube import KubeClient

    def client() -> KubeClient:  # asked anew after a failure: the target may have rewritten its kubeconfig
        path = target.kubeconfig_path()
        if path is None:
            raise TargetError(f"target {target.name!r} has no kubeconfig")  # pragma: no cover - checked above
        return KubeClient.from_kubeconfig(path, target.kube_context())

    return DrillLease(client, holder)


# -- dirt unlock --------------------------------------------------------------------------------
@dataclass
class LockReport:
    """Who holds a target, as ``dirt unlock`` shows it before asking."""

    local: LockState
    lease: Holder | None
    lease_error: str = ""

    def lines(self, target_name: str, path: Path) -> list[str]:
        out = []
        if self.local.holder is not None:
            state = "held by a live process" if self.local.live else "stale: its process is gone"
            out.append(f"local lock {path}: {self.local.holder.describe()} ({state})")
        if self.lease is not None:
            out.append(f"Lease {LEASE_NAMESPACE}/{LEASE_NAME}: {self.lease.describe()}")
        if self.lease_error:
            out.append(f"Lease {LEASE_NAMESPACE}/{LEASE_NAME}: cannot be read ({self.lease_error})")
        return out or [f"target {target_name!r} is not locked"]


def inspect_lock(target: Target) -> LockReport:
    local = LocalLock(target.drill_lock_path()).inspect()
    lease = _lease_for(target, Holder.here("dirt-unlock", "-", target.name, by="dirt unlock"))
    if lease is None:
        return LockReport(local, None)
    try:
        found = lease.get()
        return LockReport(local, None if found is None else lease_holder(found))
    except DirtError as exc:
        return LockReport(local, None, str(exc))
    finally:
        lease._forget_client()


def unlock(target: Target) -> list[str]:
    """Break a target's drill lock (``dirt unlock``): a live local holder is refused, the rest cleared."""
    path = target.drill_lock_path()
    local = LocalLock(path)
    state = local.inspect()
    if state.live:
        who = state.holder.describe() if state.holder else "a drill that is starting"
        raise DrillLocked(f"target {target.name!r} is locked by {who}, which is still running: stop it "
                          "(Ctrl-C or SIGTERM rolls back and unlocks) instead of unlocking", holder=state.holder)
    done = []
    if state.holder is not None:
        local.clear_stale()
        done.append(f"cleared the local lock of {state.holder.describe()}")
    lease = _lease_for(target, Holder.here("dirt-unlock", "-", target.name, by="dirt unlock"))
    if lease is not None:
        try:
            found = lease.get()
            other = None if found is None else lease_holder(found)
            if found is not None and other is not None:
                if other.alive():
                    raise DrillLocked(f"target {target.name!r} is locked by {other.describe()}, which is still "
                                      "running: stop it instead of unlocking", holder=other)
                lease.release(holder_id=(found.get("spec") or {}).get("holderIdentity"))
                done.append(f"released the Lease {LEASE_NAMESPACE}/{LEASE_NAME} of {other.describe()}")
        except DirtError as exc:
            done.append(f"the Lease {LEASE_NAMESPACE}/{LEASE_NAME} cannot be reached ({exc}); it expires "
                        f"{LEASE_SECONDS}s after its last renewal")
        finally:
            lease._forget_client()
    return done or [f"target {target.name!r} was not locked"]


"""What a part of the sandbox is: something that starts, is healthy or not, stops, logs and says its status.

A sandbox is a composition of components (the control plane, monitoring, Velero, the real node), and
a fleet is a composition of sandboxes plus the components only a fleet has (the entry point, the
fleet's monitoring).  Each component owns one or more processes, all bound to 127.0.0.1, started
and stopped by PID (:mod:`dirt.sandbox.process`); what a component needs from its sandbox (ports,
the kubeconfig, the PKI, binaries) it is given when made, never fetched from a global.

The shape follows kwok's ``pkg/kwokctl/components`` (one small builder per component) and its
``Runtime`` interface (up, down, start/stop, logs): the sandbox iterates its components rather than
knowing each one's insides, so adding one (HAProxy as a fleet's entry point) touches no other.

What a sandbox's components share is here too: ``SandboxContext`` (what the sandbox gives each of
them: its folders, ``Ports``, binaries and state) and ``ProcessGroup``, the base of a component made
of processes dirt starts by their command lines (pid file, log file, binary, health check, the
command lines kept in ``sandbox.json`` to restart one as it was).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

from dirt.clients import http
from dirt.core.errors import TargetError
from dirt.sandbox import process
from dirt.sandbox.binaries import Binaries

Log = Callable[[str], None]


def quiet(message: str) -> None:
    """A ``Log`` that says nothing."""


@runtime_checkable
class Component(Protocol):
    """One part of a sandbox or fleet.

    * ``name``: what ``dirt sandbox status`` shows it as;
    * ``processes``: the names of the processes it runs, in start order (stopped in reverse);
      ``dirt sandbox logs NAME`` takes any of them;
    * ``start``: idempotent: starts what does not run, and returns once it is healthy (or raises a
      ``TargetError`` that names the process and what its log last said);
    * ``healthy``: the processes that run and answer their health check, by name;
    * ``stop``: stops its processes by the PIDs it recorded; its files stay (``down`` removes the folder);
    * ``logs``: each process's log file;
    * ``status``: facts for ``dirt sandbox status --json`` (URLs, folders), never credentials.
    """

    name: str

    @property
    def processes(self) -> tuple[str, ...]: ...

    def start(self, *, log: Log = quiet) -> None: ...

    def healthy(self) -> dict[str, bool]: ...

    def stop(self, *, log: Log = quiet) -> None: ...

    def logs(self) -> dict[str, Path]: ...

    def status(self) -> dict[str, Any]: ...


# -- what a sandbox gives its components ------------------------------------------------------------
@dataclass(frozen=True)
class Ports:
    """The 127.0.0.1 port of every server of one sandbox (kept in its ``sandbox.json``)."""

    kube_apiserver: int
    etcd: int
    etcd_peer: int
    kube_controller_manager: int
    kube_scheduler: int
    kwok_controller: int
    prometheus: int
    alertmanager: int
    kube_state_metrics: int
    kube_state_metrics_telemetry: int
    # Velero's (sandboxes with velero: true); 0 in the state of a sandbox created before they existed
    object_store: int = 0
    velero_metrics: int = 0
    # the real node's (sandboxes with real_nodes: 1)
    kubelet: int = 0
    kubelet_healthz: int = 0
    containerd_metrics: int = 0
    # the Pushgateway's (sandboxes with pushgateway: true)
    pushgateway: int = 0

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.__dataclass_fields__)


@dataclass(frozen=True)
class SandboxContext:
    """What a sandbox gives each of its components: its name, its folders, and (read when needed, as
    ``up`` may allocate or change them) its ports, binaries and state."""

    name: str
    root: Path
    #: kwokctl's folder for the cluster: its kubeconfig, PKI, etcd data, pids/ and logs/
    cluster_dir: Path
    ports: Callable[[], Ports]
    binaries: Callable[[], Binaries]
    state: Callable[[], dict[str, Any]]
    save_state: Callable[..., None]

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def pki(self) -> Path:
        return self.cluster_dir / "pki"


# -- a component made of processes dirt starts itself -----------------------------------------------
class ProcessGroup:
    """A component whose processes dirt starts by their command lines: each with a pid file and a
    log file under ``folder`` (``pids/<process>.pid``, ``logs/<process>.log``), a binary that
    ``process.alive`` checks (a recycled PID is never taken for ours) and a health check.

    A subclass names its processes (``PROCESSES``: every one it may run) and says, per process, its
    ``binary`` and whether it ``answers`` its health check; it starts them (``start``) with ``launch``
    and keeps their command lines in the sandbox's state (``record``) so that ``restart`` can start
    one again as it was.
    """

    name: str = ""
    PROCESSES: tuple[str, ...] = ()

    def __init__(self, ctx: SandboxContext, *, folder: Path | None = None) -> None:
        self.ctx = ctx
        self.folder = folder or ctx.root

    # -- what each component says --------------------------------------------------------------------
    @property
    def processes(self) -> tuple[str, ...]:
        return self.PROCESSES

    def binary(self, name: str) -> Path | None:
        raise NotImplementedError

    def answers(self, name: str) -> bool:
        """Does ``name`` answer its health check (asked only of a process that runs)?"""
        raise NotImplementedError

    def checked(self) -> tuple[str, ...]:
        """The processes health-checked and shown by ``dirt sandbox status``: all, unless said otherwise."""
        return self.processes

    def prepare(self, *, log: Log = quiet) -> dict[str, str]:
        """Before anything starts: find (or build) the binaries; their versions, for the sandbox's state."""
        return {}

    def start(self, *, log: Log = quiet) -> None:
        raise NotImplementedError

    def environment(self, name: str) -> Mapping[str, str] | None:
        """The environment ``name`` runs with (None: dirt's own)."""
        return None

    def status(self) -> dict[str, Any]:
        return {}

    # -- the processes, by their pid files -----------------------------------------------------------
    def pidfile(self, name: str) -> Path:
        return self.folder / "pids" / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        return process.read_pid(self.pidfile(name))

    def log_path(self, name: str) -> Path:
        return self.folder / "logs" / f"{name}.log"

    def logs(self) -> dict[str, Path]:
        return {name: self.log_path(name) for name in self.processes}

    def running(self, name: str) -> bool:
        return process.alive(self.pid(name), self.binary(name))

    def healthy(self) -> dict[str, bool]:
        return {name: self.running(name) and self.answers(name) for name in self.checked()}

    def process_status(self) -> list[dict[str, Any]]:
        """Each checked process as ``dirt sandbox status`` lists it: its name, its PID while it runs, its health."""
        shown = []
        for name in self.checked():
            running = self.running(name)
            shown.append({"name": name, "pid": self.pid(name) if running else None,
                          "healthy": running and self.answers(name)})
        return shown

    def wait_healthy(self, timeout: float = 60.0, names: tuple[str, ...] | None = None) -> None:
        wanted = names or self.checked()
        wait_until_healthy(self.ctx.name, lambda: {n: self.running(n) and self.answers(n) for n in wanted}, timeout)

    def launch(self, name: str, argv: list[str], *, env: Mapping[str, str] | None = None,
               cwd: Path | None = None) -> None:
        process.start(argv, log=self.log_path(name), pidfile=self.pidfile(name), cwd=cwd or self.ctx.root, env=env)

    def stop_process(self, name: str, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> bool:
        """Stop ``name`` by its PID; True when it ran."""
        return process.stop(self.pid(name), binary=self.binary(name), sig=sig, timeout=timeout)

    def stop(self, *, log: Log = quiet) -> None:
        for name in reversed(self.processes):
            if self.stop_process(name):
                log(f"stopped {name}")

    def down(self, *, log: Log = quiet) -> None:
        """The sandbox goes: stop, and remove what lives outside its folder (the sandbox removes the folder)."""
        self.stop(log=log)

    # -- command lines kept in the sandbox's state ------------------------------------------------------
    def record(self, commands: dict[str, list[str]]) -> None:
        """Keep this component's command lines (``monitors`` in ``sandbox.json``), replacing those it had."""
        kept = {k: v for k, v in self.ctx.state().get("monitors", {}).items() if k not in self.PROCESSES}
        self.ctx.save_state(monitors=kept | commands)

    def restart(self, name: str) -> None:
        """Stop ``name`` and start it again with its recorded command line."""
        argv = self.ctx.state().get("monitors", {}).get(name)
        self.stop_process(name)
        if argv:
            self.launch(name, argv, env=self.environment(name))


def answers(url: str, *, cert: tuple[str, str] | None = None, verify: bool | str = False) -> bool:
    """A health check: does ``url`` answer 200?"""
    response = http.probe(url, cert=cert, verify=verify, timeout=2.0)
    return response is not None and response.status == 200


def wait_until_healthy(sandbox: str, health: Callable[[], dict[str, bool]], timeout: float,
                       seen: dict[str, float] | None = None, since: float | None = None) -> None:
    """Every process ``health`` names healthy within ``timeout``; else a ``TargetError`` naming those that are not.

    ``seen`` gets, for each process, the seconds from ``since`` (a ``time.monotonic()``) to the first
    time it answered: where a start's time goes."""
    deadline = time.monotonic() + timeout
    bad: list[str] = []
    while time.monotonic() < deadline:
        answers = health()
        if seen is not None:
            now = time.monotonic() - (since or 0.0)
            for name, ok in answers.items():
                if ok:
                    seen.setdefault(name, round(now, 2))
        bad = [name for name, ok in answers.items() if not ok]
        if not bad:
            return
        time.sleep(0.25)
    raise TargetError(f"sandbox {sandbox!r}: not healthy after {timeout:.0f}s: {', '.join(bad)} "
                      f"(see `dirt sandbox logs {bad[0]}`)")


def read_state(path: Path) -> dict[str, Any]:
    """A sandbox's or fleet's JSON state file ({} when there is none, or it cannot be read)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def merge_state(path: Path, **fields: Any) -> None:
    """``fields`` written over the state file's, atomically (a reader never sees half a file)."""
    data = read_state(path) | fields
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

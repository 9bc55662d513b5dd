"""Starting and stopping the sandbox's own processes, by PID, never by name.

Every process is started in its own session with its output appended to a log
file and its PID written to a pid file.  Stopping checks that the PID still
belongs to the binary we started (``/proc/PID/exe``) before signalling it, so
a recycled PID is never killed by mistake.

A stopped process is waited for until it has *finished* exiting: a zombie, reaped,
or its PID taken by a process started later.  ``/proc/PID/exe`` disappears early in
an exit, when the process lets go of its memory and before it closes its files, so
a process that no longer looks alive may still hold its listening ports and file
locks; a replacement started at that moment (etcd after a wipe, under load) dies
with "address already in use".
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


def start(argv: list[str], *, log: Path, pidfile: Path, cwd: Path | None = None,
          env: Mapping[str, str] | None = None) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(cwd) if cwd else None, env=dict(env) if env is not None else None,
            start_new_session=True, close_fds=True,
        )
    pidfile.write_text(str(proc.pid))
    return proc.pid


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _zombie(pid: int) -> bool:
    fields = _stat(pid)
    return not fields or fields[0] == "Z"


def alive(pid: int | None, binary: Path | str | None = None) -> bool:
    """Is ``pid`` running (and, when given, running ``binary``)?"""
    if not pid:
        return False
    exe = _exe(pid)
    if exe is None or _zombie(pid):
        return False
    if binary is None:
        return True
    want = os.path.realpath(binary)
    return exe.removesuffix(" (deleted)") in (want, str(binary))


def stop(pid: int | None, *, binary: Path | str | None = None, timeout: float = 10.0,
         sig: int = signal.SIGTERM) -> bool:
    """Signal our process and wait until it has finished exiting (its ports and files released);
    SIGKILL after ``timeout``.

    Returns True when a process was stopped, False when there was none.
    """
    if not alive(pid, binary):
        return False
    assert pid is not None
    started = _start_time(pid)
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited(pid, started):
            _reap(pid)
            return True
        time.sleep(0.05)
    if alive(pid, binary) and not exited(pid, started):  # still ours: make it go
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return True
    deadline = time.monotonic() + timeout  # a SIGKILLed process in uninterruptible sleep: not forever
    while not exited(pid, started) and time.monotonic() < deadline:
        time.sleep(0.05)
    _reap(pid)
    return True


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or None when there is no PID."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None  # field 22 of stat: the start time, in ticks


def start_time(pid: int) -> str | None:
    """When ``pid`` started (kernel ticks since boot, as text): with the PID, what tells a process from a later
    one that got the same PID; None when there is no such process."""
    return _start_time(pid)


def send_signal(pid: int, sig: int) -> bool:
    """Send ``sig`` to ``pid`` (one the caller knows is its own) if it is there; False when it is gone."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def stopped(pid: int) -> bool:
    """Is ``pid`` stopped by a signal (state T: SIGSTOP), rather than running, sleeping or gone?"""
    fields = _stat(pid)
    return bool(fields) and fields[0] in ("T", "t")


def exited(pid: int, start_time: str | None) -> bool:
    """Has the process ``pid`` (started at ``start_time``) finished exiting: reaped, a zombie (its files
    closed), or its PID now another process's?"""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return True
    return start_time is not None and len(fields) > 19 and fields[19] != start_time


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> bool:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.1)
    return False


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int, *, start: int = 20000, host: str = "127.0.0.1") -> list[int]:
    """``count`` ports that are free now, below the kernel's ephemeral range.

    Servers that restart during a drill must get their port back: a port from
    the ephemeral range can meanwhile be taken by any outgoing connection (the
    API server's own connection to etcd, say), and the restart would fail.
    """
    import socket

    low, _high = ephemeral_range()
    ports: list[int] = []
    port = start
    while len(ports) < count:
        if port >= low:
            raise OSError(f"no {count} free ports between {start} and {low}")
        with socket.socket() as s:
            try:
                s.bind((host, port))
                ports.append(port)
            except OSError:
                pass
        port += 1
    return ports

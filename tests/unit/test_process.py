"""dirt.sandbox.process: a stopped process is waited for until it has finished exiting.

``/proc/PID/exe`` goes away early in an exit, before the process closes its files: a
replacement started then found etcd's port still taken ("address already in use").
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dirt.sandbox import process

#: Listens on a port, holding N MB: an exit spends a while giving the memory back before it closes the port.
BIG = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
blob = bytearray(int(sys.argv[2]) * 1024 * 1024)
for i in range(0, len(blob), 4096):
    blob[i] = 1
print("ready", flush=True)
time.sleep(60)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_stop_returns_once_the_port_is_free_for_a_replacement(tmp_path: Path) -> None:
    """As a killed etcd and the etcd started right after it (on two busy cores). Waiting only until
    /proc/PID/exe went away, the replacement's bind failed here with 1.2 GB (and passed with 600 MB)."""
    for _ in range(2):
        port = free_port()
        log = tmp_path / "big.log"
        log.write_text("")
        pid = process.start([sys.executable, "-c", BIG, str(port), "1200"], log=log, pidfile=tmp_path / "big.pid")
        deadline = time.monotonic() + 20
        while "ready" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.stop(pid, binary=sys.executable, sig=signal.SIGKILL, timeout=10)
        with socket.socket() as replacement:  # what a restarted etcd does first
            replacement.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            replacement.bind(("127.0.0.1", port))
            replacement.listen()


def test_a_zombie_and_a_reaped_process_have_exited_a_live_one_has_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        started = process._start_time(child.pid)
        assert started is not None and not process.exited(child.pid, started)
        child.kill()
        deadline = time.monotonic() + 10
        while not process._zombie(child.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.exited(child.pid, started), "a zombie has closed its files"
        child.wait()
        assert process.exited(child.pid, started), "reaped: no such PID"
    finally:
        child.kill()
        child.wait()


def test_a_pid_taken_by_a_later_process_counts_as_exited() -> None:
    me = process._start_time(1)
    assert me is not None
    assert process.exited(1, str(int(me) + 1)), "same PID, another start time: not the process we stopped"
    assert not process.exited(1, me)

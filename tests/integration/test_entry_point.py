"""The fleet's entry point for real: Debian's HAProxy in front of three real HTTP members.

Users are a steady probe (a request every 50 ms through the entry point, each on a fresh connection);
a member is SIGKILLed and started again.  With health checks the entry point takes it out within a
couple of checks and users barely notice; without them it stays "in rotation" while dead, and users
pay for it.  Every state is read from HAProxy itself (its admin socket); every process a test starts
is stopped by its PID.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from dirt.core.errors import TargetError
from dirt.sandbox import process
from dirt.sandbox.entry import Backend, EntryPoint, EntrySettings

pytestmark = pytest.mark.integration

FLEET_RULES = Path(__file__).resolve().parents[2] / "dirt" / "sandbox" / "fleet_rules" / "fleet.yaml"

#: A member's storefront: answers /healthz and / with its own name.
MEMBER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

name, port = sys.argv[1], int(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (name + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


class Member:
    """One storefront, a Python HTTP server on 127.0.0.1, started and stopped by PID."""

    def __init__(self, folder: Path, name: str, port: int) -> None:
        self.folder, self.name, self.port = folder, name, port
        self.pid: int | None = None

    @property
    def backend(self) -> Backend:
        return Backend(self.name, "127.0.0.1", self.port)

    def start(self) -> None:
        self.pid = process.start([sys.executable, "-c", MEMBER, self.name, str(self.port)],
                                 log=self.folder / f"{self.name}.log", pidfile=self.folder / f"{self.name}.pid")
        assert process.wait_port(self.port, timeout=10), f"member {self.name} does not listen on {self.port}"

    def kill(self) -> None:
        """SIGKILL: the member vanishes mid-flight, its connections reset, its port refusing."""
        process.stop(self.pid, binary=sys.executable, sig=signal.SIGKILL)

    def stop(self) -> None:
        process.stop(self.pid, binary=sys.executable, timeout=5)


@pytest.fixture
def members(tmp_path: Path) -> Iterator[list[Member]]:
    ports = process.free_ports(3)
    started = [Member(tmp_path, f"b{i + 1}", port) for i, port in enumerate(ports)]
    try:
        for member in started:
            member.start()
        yield started
    finally:
        for member in started:
            member.stop()


@pytest.fixture
def make_entry(tmp_path: Path, members: list[Member]) -> Iterator:
    made: list[EntryPoint] = []

    def make(settings: EntrySettings | None = None) -> EntryPoint:
        port, metrics_port = process.free_ports(2, start=21000)
        entry = EntryPoint(tmp_path / f"entry{len(made)}", port=port, metrics_port=metrics_port,
                           backends=[m.backend for m in members], settings=settings)
        made.append(entry)
        entry.start()
        return entry

    try:
        yield make
    finally:
        for entry in made:
            entry.stop()


@dataclass(frozen=True)
class Answer:
    sent: float  # seconds since the probe started
    status: int | None
    served_by: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == 200


class Users:
    """A request every ``every`` seconds on fixed ticks (a slow answer delays no other), fresh connections."""

    def __init__(self, url: str, every: float = 0.05, timeout: float = 5.0) -> None:
        self.url, self.every, self.timeout = url, every, timeout
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=32)
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
        try:
            r = requests.get(self.url, timeout=self.timeout, headers={"Connection": "close"})
            return Answer(sent, r.status_code, r.headers.get("X-Served-By", ""), time.monotonic() - start)
        except requests.RequestException:
            return Answer(sent, None, "", time.monotonic() - start)

    def finish(self) -> list[Answer]:
        self._stop.set()
        self._ticker.join()
        self._pool.shutdown(wait=True)
        return [f.result() for f in self._futures]


def lose_a_member(entry: EntryPoint, members: list[Member], *, rejoin: bool) -> dict:
    """Users for 1 s, SIGKILL b2, 2 s without it (its state polled every 10 ms), then (``rejoin``) start
    it again and 2 s more."""
    entry.wait_in_rotation(timeout=5)
    victim = members[1]
    users = Users(entry.url)
    seen_states: set[str] = set()
    figures: dict = {"marked_down_after": None}
    try:
        time.sleep(1.0)
        killed_at = users.now()
        victim.kill()
        while users.now() < killed_at + 2.0:
            state = entry.server_states()[victim.name]
            seen_states.add(state)
            if figures["marked_down_after"] is None and state not in ("UP", "UP 1/2", "no check"):
                figures["marked_down_after"] = users.now() - killed_at
            time.sleep(0.01)
        if rejoin:
            victim.start()
            restarted_at = users.now()
            figures["back_in_rotation_after"] = entry.wait_in_rotation([victim.name], timeout=5)
            figures["back_at"] = restarted_at + figures["back_in_rotation_after"]
            time.sleep(2.0)
    finally:
        answers = users.finish()
    figures.update(killed_at=killed_at, answers=answers, states=seen_states,
                   failed=[a for a in answers if not a.ok], slow=[a for a in answers if a.seconds > 1.0])
    return figures


def metric(entry: EntryPoint, name: str) -> float:
    text = requests.get(entry.metrics_url, timeout=5).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not exported"
    return float(found.group(1))


def test_a_killed_member_is_taken_out_of_rotation_and_rejoins_when_it_is_back(members, make_entry) -> None:
    entry = make_entry(EntrySettings())
    figures = lose_a_member(entry, members, rejoin=True)
    answers, killed_at = figures["answers"], figures["killed_at"]
    print(f"\nwith health checks: {len(answers)} requests, {len(figures['failed'])} failed, "
          f"{len(figures['slow'])} slower than 1s, marked DOWN after {figures['marked_down_after']:.2f}s, "
          f"back in rotation {figures['back_in_rotation_after']:.2f}s after its restart")

    assert figures["marked_down_after"] is not None and figures["marked_down_after"] < 2.0
    assert len(answers) >= 80
    assert len(figures["failed"]) <= 3, figures["failed"]
    served = [a for a in answers if a.ok]
    assert all(a.served_by in {"b1", "b2", "b3"} for a in served), {a.served_by for a in served}
    # out of rotation: nobody is sent to b2 from the moment it is DOWN until it is back
    out = killed_at + figures["marked_down_after"] + 0.1
    assert not [a for a in served if out < a.sent < figures["back_at"] - 0.1 and a.served_by == "b2"]
    # rejoined means serving again, not only UP
    assert len([a for a in served if a.sent > figures["back_at"] and a.served_by == "b2"]) >= 5
    assert entry.server_states() == {"b1": "UP", "b2": "UP", "b3": "UP"}
    assert "Server members/b2 is DOWN" in entry.log_path.read_text()


def test_without_health_checks_a_dead_member_stays_in_rotation_and_users_pay(members, make_entry) -> None:
    checked = lose_a_member(make_entry(EntrySettings()), members, rejoin=False)
    members[1].start()
    unchecked_entry = make_entry(EntrySettings(health_check=False, redispatch=False))
    unchecked = lose_a_member(unchecked_entry, members, rejoin=False)
    print(f"\nwith checks: {len(checked['failed'])} of {len(checked['answers'])} failed; without checks or "
          f"redispatch: {len(unchecked['failed'])} of {len(unchecked['answers'])} failed "
          f"(statuses {sorted({a.status for a in unchecked['failed']}, key=str)}, slowest "
          f"{max(a.seconds for a in unchecked['answers']):.1f}s); b2 seen as {sorted(unchecked['states'])}")

    assert unchecked["marked_down_after"] is None and unchecked["states"] == {"no check"}
    assert unchecked_entry.server_states()["b2"] == "no check"
    # every third user was sent to the dead member for as long as it was dead
    assert len(unchecked["failed"]) > len(checked["failed"]) + 5


def test_redispatch_hides_a_refusing_member_but_it_stays_in_rotation(members, make_entry) -> None:
    entry = make_entry(EntrySettings(health_check=False))
    figures = lose_a_member(entry, members, rejoin=False)
    redispatched = metric(entry, 'haproxy_server_redispatch_warnings_total{proxy="members",server="b2"}')
    print(f"\nwithout checks, with redispatch: {len(figures['failed'])} of {len(figures['answers'])} failed, "
          f"{redispatched:.0f} requests tried on the dead member first")

    assert figures["states"] == {"no check"}
    assert len(figures["failed"]) <= 3
    assert redispatched >= 5  # still in rotation: refused each time, then sent elsewhere


def test_the_exporter_and_the_admin_socket_say_the_same(members, make_entry) -> None:
    entry = make_entry(EntrySettings())
    entry.wait_in_rotation(timeout=5)
    entry.set_state("b3", "maint")
    assert entry.server_states()["b3"] == "MAINT"
    with pytest.raises(TargetError, match=r"not in rotation after .*b3 \(MAINT"):
        entry.wait_in_rotation(timeout=0.3)
    metrics = requests.get(entry.metrics_url, timeout=5).text
    assert re.search(r'^haproxy_backend_active_servers\{proxy="members"\} 2$', metrics, re.MULTILINE), metrics[:2000]
    assert re.search(r'^haproxy_server_status\{proxy="members",server="b3",state="MAINT"\} 1$', metrics, re.MULTILINE)
    entry.set_state("b3", "ready")
    entry.wait_in_rotation(timeout=5)
    # every metric the fleet's alert rules use is one this HAProxy exports
    used = set(re.findall(r"\bhaproxy_[a-z_]+\b", FLEET_RULES.read_text()))
    exported = set(re.findall(r"^(haproxy_[a-z_]+)", metrics, re.MULTILINE))
    assert used and used <= exported, used - exported
    status = entry.status()
    assert status["running"] and status["url"] == entry.url
    assert [b["state"] for b in status["backends"]] == ["UP", "UP", "UP"]
    assert status["settings"]["health_check"] and status["settings"]["fall"] == 2


def test_start_is_idempotent_and_reconfigure_reloads_without_dropping_users(members, make_entry) -> None:
    entry = make_entry(EntrySettings())
    pid = entry.pid
    entry.start()
    assert entry.pid == pid and entry.healthy() == {"haproxy": True}
    entry.wait_in_rotation(timeout=5)
    users = Users(entry.url)
    try:
        time.sleep(0.5)
        entry.reconfigure([m.backend for m in members[:2]])
        time.sleep(0.5)
    finally:
        answers = users.finish()
    assert entry.pid != pid and not process.alive(pid)
    assert set(entry.server_states()) == {"b1", "b2"}
    assert not [a for a in answers if not a.ok], [a for a in answers if not a.ok]
    assert {a.served_by for a in answers if a.sent > 0.7} <= {"b1", "b2"}


def test_a_taken_port_is_an_error_with_haproxys_words(tmp_path: Path, members) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        entry = EntryPoint(tmp_path / "taken", port=port, metrics_port=process.free_ports(1, start=22000)[0],
                           backends=[m.backend for m in members])
        try:
            with pytest.raises(TargetError, match=r"exited while starting.*cannot bind socket"):
                entry.start(timeout=10)
        finally:
            entry.stop()
    assert entry.pid is None

"""A fleet's entry point: one HAProxy on 127.0.0.1 in front of every member's storefront.

A fleet drill deletes a member and must prove that users, who only ever talk to the entry point,
never noticed.  That proof is only as good as the entry point is real, so this is Debian's HAProxy
(2.6, built with its Prometheus exporter), with active HTTP health checks on each member, not a
proxy written for the occasion.  Its settings decide what users see when a member goes away
(without health checks or redispatch a dead member keeps getting every n-th request), so they are
explicit here and reported by ``status()``, beside the availability verdict they explain; a fleet
*without* health checks is expressible on purpose, to prove a drill can fail.

Three ways to look at it, each the right one for a different question:

* the frontend, ``url``: what users get; every answer names the member that served it
  (``X-Served-By``);
* the admin socket: the exact state of each member now (``server_states``), and a member taken out
  of rotation by hand (``set_state``);
* the exporter, ``metrics_url``: what the fleet's Prometheus scrapes (job ``entry``) and alerts on
  (``dirt/sandbox/fleet_rules``).  Its counters move in whole scrapes and its downtime in whole
  seconds, so sub-second transitions are read from the admin socket or the log ("Server
  members/b2 is DOWN, reason: ...").

The config is a pure function of the settings (``haproxy_config``), checked with ``haproxy -c``
before every start.  Changing the members of a running entry point reloads it (``-sf``: the new
process takes the listeners and the old one finishes the requests it has).
"""

from __future__ import annotations

import csv
import ipaddress
import os
import re
import shutil
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from dirt.clients import http
from dirt.clients.commands import run
from dirt.core.errors import BinaryError, CommandError, ConfigError, TargetError
from dirt.sandbox import process
from dirt.sandbox.component import Log, quiet

#: The proxies in the config: users' frontend, the members' backend, the exporter's frontend.
FRONTEND = "entry"
BACKEND = "members"
METRICS = "metrics"
#: Where Debian installs it (``/usr/sbin`` is not on every user's PATH).
DEBIAN_BINARY = Path("/usr/sbin/haproxy")
#: The exporter's frontend answers this without asking anyone (``monitor-uri``): the entry's own health.
HEALTH_PATH = "/healthz"
#: A Unix socket's path must fit in ``sun_path`` (108 bytes with its final NUL).
MAX_SOCKET_PATH = 107
#: A state in which a member takes new requests: UP, or unchecked (nothing can say it is not).
IN_ROTATION = ("UP", "no check")

ServerAdminState = Literal["ready", "drain", "maint"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_PATH = re.compile(r"/[A-Za-z0-9._~/%-]*")
_ALERT = re.compile(r"^\[(?:ALERT|WARNING)\]\s*(?:\(\d+\)\s*)?:\s*")
_SUMMARY = re.compile(r"(Error\(s\) found in configuration file|Fatal errors found in configuration)")


def find_binary(search_path: str | None = None, *, debian: Path = DEBIAN_BINARY) -> Path:
    """HAProxy on ``search_path`` (PATH when None), else Debian's; a ``BinaryError`` saying how to get it."""
    found = shutil.which("haproxy", path=search_path)
    if found:
        return Path(found)
    if debian.is_file() and os.access(debian, os.X_OK):
        return debian
    raise BinaryError("haproxy not found: a fleet's entry point is Debian's haproxy, which "
                      "scripts/install-system-deps.sh (or `make deps`) installs")


@dataclass(frozen=True)
class Backend:
    """A fleet member as the entry point sees it: its name and its storefront's address."""

    name: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"entry point: member name {self.name!r} must be letters, digits, '.', '_' "
                              "or '-' (at most 63), starting with a letter or digit")
        try:
            loopback = ipaddress.IPv4Address(self.host) in ipaddress.IPv4Network("127.0.0.0/8")
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(f"entry point: member {self.name!r} is at {self.host!r}: members are loopback "
                              "addresses (127.0.0.0/8) on this machine")
        if not 0 < self.port < 65536:
            raise ConfigError(f"entry point: member {self.name!r} has port {self.port}, not 1-65535")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class EntrySettings:
    """What decides whether users notice a member's loss; recorded beside every availability verdict.

    * ``health_check``: active HTTP checks (``GET check_path`` every ``check_interval``; ``fall``
      failures take a member out, ``rise`` successes bring it back).  Off, a dead member stays in
      rotation for as long as it is dead;
    * ``redispatch``: a request whose member refused, reset or timed out is retried on *another*
      member (up to ``retries`` times); without it, it is retried on the same one and fails;
    * timeouts, in seconds.
    """

    health_check: bool = True
    check_path: str = "/healthz"
    check_interval: float = 0.2
    fall: int = 2
    rise: int = 2
    redispatch: bool = True
    retries: int = 3
    connect_timeout: float = 1.0
    server_timeout: float = 2.0
    check_timeout: float = 0.5
    client_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not _PATH.fullmatch(self.check_path):
            raise ConfigError(f"entry point: check_path {self.check_path!r} must be a plain URL path starting with '/'")
        for name in ("check_interval", "connect_timeout", "server_timeout", "check_timeout", "client_timeout"):
            if not getattr(self, name) >= 0.001:
                raise ConfigError(f"entry point: {name} must be at least 1ms, not {getattr(self, name)!r}")
        for name in ("fall", "rise"):
            if getattr(self, name) < 1:
                raise ConfigError(f"entry point: {name} must be at least 1, not {getattr(self, name)!r}")
        if self.retries < 0:
            raise ConfigError(f"entry point: retries must be 0 or more, not {self.retries!r}")

    @property
    def retry_on(self) -> tuple[str, ...]:
        """The failures a request is retried (elsewhere) after: those where the member sent nothing."""
        return ("conn-failure", "empty-response", "response-timeout") if self.redispatch else ()


def _ms(seconds: float) -> str:
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def haproxy_config(*, folder: Path, port: int, metrics_port: int, backends: Sequence[Backend],
                   settings: EntrySettings) -> str:
    """The whole ``haproxy.cfg``: every listener on 127.0.0.1, the admin socket in ``folder``."""
    s = settings
    lines = [
        "# Written by dirt (dirt/sandbox/entry.py): a fleet's entry point. Edits are overwritten.",
        "global",
        # a sandbox's users are a probe and a drill: a few connections, one thread, no daemon (-db)
        "    maxconn 256",
        "    nbthread 1",
        f"    stats socket '{folder / 'admin.sock'}' mode 600 level admin",  # quoted: literal, spaces and all
        "    log stdout format raw local0",
        "",
        "defaults",
        "    mode http",
        f"    timeout connect {_ms(s.connect_timeout)}",
        f"    timeout server {_ms(s.server_timeout)}",
        f"    timeout client {_ms(s.client_timeout)}",
        f"    timeout check {_ms(s.check_timeout)}",
        f"    retries {s.retries}",
    ]
    if s.redispatch:
        # Every retry to another member; GETs are what a storefront's users send, safe to retry.
        lines += ["    option redispatch 1", f"    retry-on {' '.join(s.retry_on)}"]
    lines += [
        "",
        f"frontend {FRONTEND}",
        f"    bind 127.0.0.1:{port}",
        "    log global",
        "    option httplog",
        "    option dontlognull",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        "    balance roundrobin",
    ]
    if s.health_check:
        lines.append(f"    option httpchk GET {s.check_path}")
    lines.append("    http-response set-header X-Served-By %s")  # %s: the server, i.e. the member
    check = f" check inter {_ms(s.check_interval)} fall {s.fall} rise {s.rise}" if s.health_check else ""
    lines += [f"    server {b.name} {b.address}{check}" for b in backends]
    lines += [
        "",
        f"frontend {METRICS}",
        f"    bind 127.0.0.1:{metrics_port}",
        f"    monitor-uri {HEALTH_PATH}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "",
    ]
    return "\n".join(lines)


def check_config(config: Path, *, binary: Path) -> None:
    """``haproxy -c``: a config it rejects is a ``TargetError`` with haproxy's own words."""
    try:
        result = run([str(binary), "-c", "-f", str(config)], timeout=30, what="haproxy -c")
    except CommandError as exc:
        raise TargetError(f"entry point: cannot check {config}: {exc}") from None
    if not result.ok:
        said = _alerts(result.stdout + "\n" + result.stderr) or result.last_line()
        raise TargetError(f"entry point: haproxy rejects {config}: {said}")


def _reap(pid: int) -> None:
    """Collect an exited haproxy this process started (no zombie left behind); nothing for another's."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _alerts(text: str, limit: int = 4) -> str:
    """haproxy's ALERT lines, prefixes cut, without the closing ones that only say there were errors."""
    found = [_ALERT.sub("", ln).strip() for ln in text.splitlines() if ln.startswith("[ALERT]")]
    found = [re.sub(r"^config\s*:\s*", "", ln) for ln in found]
    causes = [ln for ln in found if not _SUMMARY.match(ln)]
    return "; ".join((causes or found)[:limit])


@dataclass(frozen=True)
class ServerStat:
    """One member's row of ``show stat``."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, NOLB, "no check"; "UP 1/2": failing, "DOWN 1/2": recovering
    check_status: str = ""  # L7OK, L4CON (refused), L4TOUT, L7STS (bad status), INI...
    check_desc: str = ""  # "Layer4 connection problem"
    last_check: str = ""  # what the last check said: "Connection refused", "OK", "File not found"
    address: str = ""

    @property
    def in_rotation(self) -> bool:
        return self.status in IN_ROTATION

    def describe(self) -> str:
        said = ": ".join(p for p in (self.check_desc or self.check_status, self.last_check) if p)
        return f"{self.status}" + (f", check {said}" if said else "")


def parse_show_stat(text: str, backend: str = BACKEND) -> dict[str, ServerStat]:
    """The servers of ``backend`` in the CSV that ``show stat`` answers, by name, in config order."""
    lines = text.lstrip().splitlines()
    if not lines or not lines[0].startswith("# pxname,svname,"):
        first = lines[0][:200] if lines else "(nothing)"
        raise TargetError(f"entry point: `show stat` answered {first!r}, not its CSV")
    rows = csv.DictReader([lines[0].removeprefix("# "), *lines[1:]])
    return {
        row["svname"]: ServerStat(
            name=row["svname"], status=row.get("status") or "", check_status=row.get("check_status") or "",
            check_desc=row.get("check_desc") or "", last_check=row.get("last_chk") or "",
            address=row.get("addr") or "")
        for row in rows
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND")
    }


class EntryPoint:
    """The entry point's HAProxy: one process, its files in ``folder``, on 127.0.0.1 only.

    A ``Component`` (:mod:`dirt.sandbox.component`).  ``binary`` defaults to ``find_binary()``.
    """

    name = "entry"

    def __init__(self, folder: Path, *, port: int, metrics_port: int, backends: Iterable[Backend],
                 settings: EntrySettings | None = None, binary: Path | None = None) -> None:
        self.folder = Path(folder)
        self.port = port
        self.metrics_port = metrics_port
        self.settings = settings or EntrySettings()
        self._binary = binary
        if port == metrics_port:
            raise ConfigError(f"entry point: the frontend and the exporter need two ports, both are {port}")
        if "'" in str(self.folder) or not str(self.folder).isprintable():
            raise ConfigError(f"entry point: its folder {self.folder!r} cannot be written in haproxy's config "
                              "(a quote or a control character): use another folder")
        if len(os.fsencode(self.admin_socket)) > MAX_SOCKET_PATH:
            raise ConfigError(f"entry point: its admin socket {self.admin_socket} is longer than a Unix socket "
                              f"path may be ({MAX_SOCKET_PATH} bytes): use a shorter folder")
        self.backends = self._checked(backends)

    # -- files and addresses

    @property
    def processes(self) -> tuple[str, ...]:
        return ("haproxy",)

    @property
    def config_path(self) -> Path:
        return self.folder / "haproxy.cfg"

    @property
    def admin_socket(self) -> Path:
        return self.folder / "admin.sock"

    @property
    def pidfile(self) -> Path:
        return self.folder / "haproxy.pid"

    @property
    def log_path(self) -> Path:
        return self.folder / "haproxy.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def binary(self) -> Path:
        if self._binary is None:
            self._binary = find_binary()
        return self._binary

    def config(self) -> str:
        return haproxy_config(folder=self.folder, port=self.port, metrics_port=self.metrics_port,
                              backends=self.backends, settings=self.settings)

    def write_config(self) -> Path:
        """Write the config and check it with ``haproxy -c`` (``TargetError`` with haproxy's words if bad)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config(), encoding="utf-8")
        check_config(self.config_path, binary=self.binary)
        return self.config_path

    # -- the process

    @property
    def pid(self) -> int | None:
        """The PID of the haproxy this entry point started, while it runs."""
        pid = process.read_pid(self.pidfile)
        return pid if self._ours(pid) else None

    def _ours(self, pid: int | None) -> bool:
        if not pid:
            return False
        try:
            binary = self.binary
        except BinaryError:
            return False  # nothing started from a binary that is not there
        return process.alive(pid, binary)

    def start(self, *, log: Log = quiet, timeout: float = 15.0) -> None:
        """Start haproxy unless it runs; return once the frontend and the exporter answer."""
        if self.pid is None:
            self.write_config()
            log(f"entry: starting haproxy on {self.url} (metrics {self.metrics_url})")
            offset = self._log_size()
            pid = process.start([str(self.binary), "-db", "-f", str(self.config_path)],
                                log=self.log_path, pidfile=self.pidfile, cwd=self.folder)
        else:
            pid, offset = self.pid, self._log_size()
        self._wait_answering(pid, offset, timeout)

    def stop(self, *, log: Log = quiet) -> None:
        """Stop the haproxy this entry point started, by its PID; its folder stays."""
        pid = self.pid
        if pid is not None:
            log(f"entry: stopping haproxy (pid {pid})")
            process.stop(pid, binary=self.binary)

    def reconfigure(self, backends: Iterable[Backend], *, log: Log = quiet, timeout: float = 15.0) -> None:
        """Put these members behind the entry point; a running one reloads (its users keep being served).

        The new process takes the listeners over and tells the old one (``-sf``) to finish the requests it
        has and go; the old one is stopped by its PID if it has not gone within ``timeout``.
        """
        wanted = self._checked(backends)
        previous = self.backends
        self.backends = wanted
        try:
            self.write_config()
        except TargetError:
            self.backends = previous  # and the config file it runs from, as it was
            self.config_path.write_text(self.config(), encoding="utf-8")
            raise
        old = self.pid
        if old is None:
            return
        log(f"entry: reloading haproxy with {', '.join(b.name for b in wanted) or 'no members'}")
        offset = self._log_size()
        pid = process.start([str(self.binary), "-db", "-f", str(self.config_path), "-sf", str(old)],
                            log=self.log_path, pidfile=self.pidfile, cwd=self.folder)
        try:
            self._wait_answering(pid, offset, timeout)
        except TargetError:
            if process.alive(old, self.binary):  # the old one was never told to go: it stays the one we track
                self.pidfile.write_text(str(old))
            raise
        started = time.monotonic()
        while process.alive(old, self.binary) and time.monotonic() - started < timeout:
            time.sleep(0.05)
        process.stop(old, binary=self.binary)  # when it has not gone by itself
        _reap(old)
        self._wait_answering(pid, offset, timeout)  # the listeners are the new one's alone now

    def _wait_answering(self, pid: int, offset: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.alive(pid, self.binary):
                _reap(pid)
                raise TargetError(f"entry point: haproxy exited while starting; it said: {self._said(offset)} "
                                  f"(see {self.log_path})")
            if self._answers():
                return
            time.sleep(0.05)
        raise TargetError(f"entry point: haproxy (pid {pid}) runs but does not answer on {self.url} and "
                          f"{self.metrics_url} after {timeout:g}s; it said: {self._said(offset)}")

    def _answers(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", self.port)) != 0:
                return False
        answer = http.probe(f"http://127.0.0.1:{self.metrics_port}{HEALTH_PATH}", timeout=1.0)
        return answer is not None and answer.ok

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _said(self, offset: int) -> str:
        """What haproxy wrote since ``offset``: its alerts, else its last line."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                text = fh.read(65536).decode(errors="replace")
        except OSError:
            return "(no log)"
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return _alerts(text) or (lines[-1][:300] if lines else "(nothing)")

    # -- the Component protocol's views

    def healthy(self) -> dict[str, bool]:
        return {"haproxy": self.pid is not None and self._answers()}

    def logs(self) -> dict[str, Path]:
        return {"haproxy": self.log_path}

    def status(self) -> dict[str, Any]:
        """Where it answers, its members and their states (None when it does not run), and its settings."""
        states: dict[str, ServerStat] = {}
        pid = self.pid
        if pid is not None:
            try:
                states = self.server_stats()
            except TargetError:
                states = {}
        return {
            "name": self.name, "running": pid is not None, "pid": pid, "url": self.url,
            "metrics_url": self.metrics_url, "folder": str(self.folder), "config": str(self.config_path),
            "admin_socket": str(self.admin_socket),
            "backends": [{"name": b.name, "address": b.address,
                          "state": states[b.name].status if b.name in states else None} for b in self.backends],
            "settings": {**asdict(self.settings), "retry_on": list(self.settings.retry_on)},
        }

    # -- the admin socket

    def ask(self, command: str, *, timeout: float = 2.0) -> str:
        """One command on the admin socket, its whole answer (the socket closes after each)."""
        if not command.isprintable() or ";" in command:
            raise ValueError(f"one admin command per call: {command!r}")
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect(str(self.admin_socket))
                s.sendall(command.encode() + b"\n")
                while time.monotonic() < deadline:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                else:
                    raise TimeoutError
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise TargetError(f"entry point: its admin socket {self.admin_socket} did not answer "
                              f"{command.split()[0]!r} ({why}); is it running? (see {self.log_path})") from None
        return b"".join(chunks).decode(errors="replace")

    def server_stats(self) -> dict[str, ServerStat]:
        return parse_show_stat(self.ask("show stat"))

    def server_states(self) -> dict[str, str]:
        """Each member's state now, by name: UP, DOWN, MAINT, DRAIN, "no check", "UP 1/2"..."""
        return {name: stat.status for name, stat in self.server_stats().items()}

    def wait_in_rotation(self, names: Iterable[str] | None = None, *, timeout: float = 10.0) -> float:
        """Wait until every named member (all when None) is in rotation; the seconds it took.

        ``TargetError`` naming those that are not and what their health check said.
        """
        wanted = list(names) if names is not None else [b.name for b in self.backends]
        self._known(wanted)
        started = time.monotonic()
        while True:
            stats = self.server_stats()
            missing = [n for n in wanted if n not in stats or not stats[n].in_rotation]
            if not missing:
                return time.monotonic() - started
            if time.monotonic() - started >= timeout:
                said = "; ".join(f"{n} ({stats[n].describe() if n in stats else 'not configured'})" for n in missing)
                raise TargetError(f"entry point: not in rotation after {timeout:g}s: {said}")
            time.sleep(0.05)

    def set_state(self, name: str, state: ServerAdminState) -> None:
        """Take a member out by hand (``maint``: at once; ``drain``: no new users) or put it back (``ready``)."""
        if state not in ("ready", "drain", "maint"):
            raise ValueError(f"a member's state is ready, drain or maint, not {state!r}")
        self._known([name])
        answer = self.ask(f"set server {BACKEND}/{name} state {state}").strip()
        if answer:
            raise TargetError(f"entry point: `set server {BACKEND}/{name} state {state}` answered: {answer[:300]}")

    def _known(self, names: Iterable[str]) -> None:
        have = {b.name for b in self.backends}
        unknown = [n for n in names if n not in have]
        if unknown:
            raise TargetError(f"entry point: no member {', '.join(unknown)} behind it "
                              f"(it has: {', '.join(sorted(have)) or 'none'})")

    @staticmethod
    def _checked(backends: Iterable[Backend]) -> tuple[Backend, ...]:
        checked = tuple(backends)
        names = [b.name for b in checked]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"entry point: member names must be unique; twice: {', '.join(twice)}")
        return checked

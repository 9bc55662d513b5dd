"""A real Prometheus + Alertmanager + demo exporter on free 127.0.0.1 ports, for tests.

``PromStack`` writes the configuration (1 s scrape and evaluation intervals, the
exporter scraped as job ``demo``, alerts sent to the Alertmanager), starts the
Debian ``prometheus`` and ``prometheus-alertmanager`` binaries with their own
data folders, waits for ``/-/ready``, and stops exactly the processes it
started, by PID.  Each server runs under ``timeout``, so even a killed test
session cannot leave one running for long.

The rules::

    DemoDown        up{job="demo"} == 0        for: 2s
    DemoErrorsHigh  demo_errors_ratio > 0.5    for: 1s
    NeverFires      demo_up == 2
    Watchdog        vector(1)                  (always firing)

``AuthProxy`` sits in front of a server and demands credentials, recording
what it was sent: the tests' proof that dirt sends the configured token.

Fixtures: ``promstack`` (session scope; import it into a test module).
"""

from __future__ import annotations

import base64
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration import exporter

EVALUATION_INTERVAL = 1.0
LIFETIME = 600  # seconds any server started here may live, whatever happens to the tests

RULES = """\
groups:
  - name: demo
    rules:
      - alert: DemoDown
        expr: up{job="demo"} == 0
        for: 2s
        labels: {severity: critical}
        annotations: {summary: The demo exporter is down.}
      - alert: DemoErrorsHigh
        expr: demo_errors_ratio > 0.5
        for: 1s
        labels: {severity: warning}
      - alert: NeverFires
        expr: demo_up == 2
        labels: {severity: info}
  - name: meta
    rules:
      - alert: Watchdog
        expr: vector(1)
        labels: {severity: none}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until ``predicate`` returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except requests.RequestException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


class PromStack:
    """Prometheus, Alertmanager and the demo exporter, in one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.exporter_dir = root / "exporter"
        self.exporter_dir.mkdir(parents=True, exist_ok=True)
        self.exporter_port = free_port()
        self.prom_port = free_port()
        self.am_port = free_port()
        self.prometheus_url = f"http://127.0.0.1:{self.prom_port}"
        self.alertmanager_url = f"http://127.0.0.1:{self.am_port}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> PromStack:
        for binary in ("prometheus", "prometheus-alertmanager", "timeout"):
            if shutil.which(binary) is None:
                pytest.skip(f"{binary} is not installed")
        self.set_errors_ratio(0)
        self.start_exporter()
        (self.root / "rules.yml").write_text(RULES)
        (self.root / "prometheus.yml").write_text(f"""\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: {EVALUATION_INTERVAL:g}s
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{self.am_port}"]
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ["127.0.0.1:{self.exporter_port}"]
""")
        (self.root / "alertmanager.yml").write_text("""\
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: default
""")
        self._spawn("alertmanager", [
            "prometheus-alertmanager", f"--config.file={self.root / 'alertmanager.yml'}",
            f"--storage.path={self.root / 'am-data'}", f"--web.listen-address=127.0.0.1:{self.am_port}",
            "--cluster.listen-address=", "--log.level=warn",
        ])
        self._spawn("prometheus", [
            "prometheus", f"--config.file={self.root / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.root / 'prom-data'}", f"--web.listen-address=127.0.0.1:{self.prom_port}",
            # Resend firing alerts every second: the first evaluation can beat the
            # Alertmanager's discovery, and the default (1m) would keep it unaware.
            "--rules.alert.resend-delay=1s", "--log.level=warn",
        ])
        for name, url in (("alertmanager", self.alertmanager_url), ("prometheus", self.prometheus_url)):
            wait_for(lambda url=url, name=name: self._ready(name, url), 30, f"{name} /-/ready")
        # Settled: the demo target is up and the Watchdog reached the Alertmanager.
        self.wait_quiet(timeout=30)
        wait_for(lambda: self.am_alert("Watchdog"), 30, "Watchdog in the Alertmanager")
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self._procs[name] = subprocess.Popen(
            ["timeout", "--kill-after=5", str(LIFETIME), *argv], cwd=self.root,
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )

    def _ready(self, name: str, url: str) -> bool:
        proc = self._procs[name]
        if proc.poll() is not None:
            log = (self.root / f"{name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log}")
        return requests.get(f"{url}/-/ready", timeout=1).status_code == 200

    def stop(self) -> None:
        exporter.stop(self.exporter_dir)
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # `timeout` passes it on to the server
        for proc in self._procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in self._logs:
            log.close()

    # -- the demo service --------------------------------------------------------------
    def exporter_command(self, action: str) -> list[str]:
        """The argv a drill's ``exec`` step runs to start or stop the exporter."""
        import sys

        argv = [sys.executable, str(Path(exporter.__file__).resolve()), action, "--dir", str(self.exporter_dir)]
        return argv + (["--port", str(self.exporter_port), "--lifetime", str(LIFETIME)] if action == "start" else [])

    def start_exporter(self) -> int:
        return exporter.start(self.exporter_dir, self.exporter_port, LIFETIME)

    def stop_exporter(self) -> None:
        exporter.stop(self.exporter_dir)

    def exporter_pid(self) -> int | None:
        return exporter.read_pid(self.exporter_dir)

    @property
    def errors_ratio_file(self) -> Path:
        return self.exporter_dir / exporter.VALUE_FILE

    def set_errors_ratio(self, value: float) -> None:
        self.errors_ratio_file.write_text(f"{value}\n")

    # -- reading the servers directly ----------------------------------------------------
    def prom(self, path: str, **params: Any) -> Any:
        response = requests.get(f"{self.prometheus_url}{path}", params=params, timeout=5)
        response.raise_for_status()
        return response.json()["data"]

    def query(self, promql: str, **params: Any) -> list[dict[str, Any]]:
        return self.prom("/api/v1/query", query=promql, **params)["result"]

    def prom_alerts(self, name: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """``/api/v1/alerts``: firing and pending alerts with ``activeAt``."""
        return [a for a in self.prom("/api/v1/alerts")["alerts"]
                if (name is None or a["labels"].get("alertname") == name)
                and (state is None or a["state"] == state)]

    def rule(self, name: str) -> dict[str, Any]:
        groups = self.prom("/api/v1/rules", type="alert")["groups"]
        return next(r for g in groups for r in g["rules"] if r["name"] == name)

    def am_alerts(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.alertmanager_url}/api/v2/alerts", timeout=5)
        response.raise_for_status()
        return response.json()

    def am_alert(self, name: str) -> dict[str, Any] | None:
        return next((a for a in self.am_alerts() if a["labels"].get("alertname") == name), None)

    def wait_quiet(self, timeout: float = 20) -> None:
        """Back to normal: the exporter scraped as up, and no Demo* alert anywhere."""
        def quiet() -> bool:
            up = self.query('up{job="demo"}')
            if not up or up[0]["value"][1] != "1":
                return False
            names = {a["labels"]["alertname"] for a in self.prom_alerts()}
            names |= {a["labels"]["alertname"] for a in self.am_alerts()}
            return not (names & {"DemoDown", "DemoErrorsHigh", "NeverFires"})

        wait_for(quiet, timeout, "the demo service to be healthy with no Demo* alert", interval=0.2)

    def reset(self) -> None:
        """Put the demo service back to healthy (between tests)."""
        self.set_errors_ratio(0)
        self.start_exporter()
        self.wait_quiet()


class AlertWatcher:
    """Polls Prometheus' ``/api/v1/alerts`` and Alertmanager's ``/api/v2/alerts`` beside
    a drill, as an independent witness of what the servers said.

    ``prometheus[name]`` is the first firing alert seen (with its ``activeAt``);
    ``alertmanager[name]`` the first one seen in the Alertmanager (``startsAt``).
    """

    def __init__(self, stack: PromStack, interval: float = 0.2) -> None:
        self.stack = stack
        self.interval = interval
        self.prometheus: dict[str, dict[str, Any]] = {}
        self.alertmanager: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)

    def __enter__(self) -> AlertWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                for alert in self.stack.prom_alerts(state="firing"):
                    self.prometheus.setdefault(alert["labels"]["alertname"], alert)
                for alert in self.stack.am_alerts():
                    self.alertmanager.setdefault(alert["labels"]["alertname"], alert)
            except requests.RequestException:
                continue


class AuthProxy:
    """A reverse proxy that lets a request through only with the expected credentials.

    ``authorizations`` records every ``Authorization`` header it received, ``paths``
    every path asked for.
    """

    def __init__(self, upstream: str, *, bearer: str | None = None, basic: tuple[str, str] | None = None) -> None:
        expected = None
        if bearer is not None:
            expected = f"Bearer {bearer}"
        elif basic is not None:
            expected = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        self.authorizations: list[str | None] = []
        self.paths: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                got = self.headers.get("Authorization")
                proxy.authorizations.append(got)
                proxy.paths.append(self.path.split("?")[0])
                if got != expected:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = requests.get(f"{upstream}{self.path}", timeout=5)
                body = answer.content
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="auth-proxy", daemon=True)

    def __enter__(self) -> AuthProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture(scope="session")
def promstack() -> Iterator[PromStack]:
    """One Prometheus + Alertmanager + exporter for the whole session."""
    root = Path(tempfile.mkdtemp(prefix="dirt-promstack-"))
    stack = PromStack(root)
    try:
        yield stack.start()
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)

"""A tiny metrics exporter the alert tests stop and start, like a service going down.

It serves ``/metrics`` (Prometheus text format) on 127.0.0.1 with two series:
``demo_up 1`` and the gauge ``demo_errors_ratio``, whose value is read from a
file on every scrape, so a test (or a drill step) changes it by writing the file.

Commands, usable from a scenario's ``exec`` steps as well as from Python::

    python tests/integration/exporter.py start --dir D --port P   # returns once it serves
    python tests/integration/exporter.py stop --dir D             # returns once it is gone

``start`` launches the server detached (its own session) and records its PID in
``D/exporter.pid``; ``stop`` kills exactly that PID.  The server exits by itself
after ``--lifetime`` seconds, so a crashed test session never leaves it behind.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PID_FILE = "exporter.pid"
VALUE_FILE = "errors_ratio"
LOG_FILE = "exporter.log"


def _read_value(folder: Path) -> str:
    try:
        text = (folder / VALUE_FILE).read_text().strip()
        float(text)
        return text
    except (OSError, ValueError):
        return "0"


def serve(folder: Path, port: int, lifetime: float) -> None:
    """Run the exporter in this process until SIGTERM or ``lifetime`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = (
                "# HELP demo_up The demo service is up.\n# TYPE demo_up gauge\ndemo_up 1\n"
                "# HELP demo_errors_ratio Share of failing requests.\n# TYPE demo_errors_ratio gauge\n"
                f"demo_errors_ratio {_read_value(folder)}\n"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    (folder / PID_FILE).write_text(str(os.getpid()))

    def shutdown(*_: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    timer = threading.Timer(lifetime, shutdown)
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


def _serving(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def read_pid(folder: Path) -> int | None:
    try:
        return int((folder / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own child not yet reaped) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def start(folder: Path, port: int, lifetime: float = 600.0, timeout: float = 10.0) -> int:
    """Start the exporter detached; return its PID once it accepts connections."""
    folder.mkdir(parents=True, exist_ok=True)
    pid = read_pid(folder)
    if pid is not None and _alive(pid) and _serving(port):
        return pid
    (folder / PID_FILE).unlink(missing_ok=True)
    with open(folder / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--dir", str(folder),
             "--port", str(port), "--lifetime", str(lifetime)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exporter exited with {proc.returncode}; see {folder / LOG_FILE}")
        if read_pid(folder) == proc.pid and _serving(port):
            return proc.pid
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"exporter did not serve on 127.0.0.1:{port} within {timeout:g}s")


def stop(folder: Path, timeout: float = 10.0) -> None:
    """Stop the exporter whose PID is in the folder's pid file, and wait until it is gone."""
    pid = read_pid(folder)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    (folder / PID_FILE).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["serve", "start", "stop"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.dir, args.port, args.lifetime)
    elif args.command == "start":
        print(start(args.dir, args.port, args.lifetime))
    else:
        stop(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

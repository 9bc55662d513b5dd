"""Drivers that need no cluster: http and exec checks, exec steps and faults, wait, redeploy's helm guard."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from dirt.core.errors import DrillAborted, StepFailed
from dirt.drivers import Context
from dirt.drivers.registry import default_registry
from dirt.testing import FakeTarget


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/slow":
            time.sleep(0.3)
        status = 503 if self.path == "/down" else 200
        body = b"shop is open" if status == 200 else b"maintenance"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", "east" if self.path == "/east" else "west")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def driver(kind: str, name: str, tmp_path, **params):
    cls = default_registry().get(kind, name)
    return cls(cls.Params.model_validate(params), Context(target=FakeTarget(), run_dir=tmp_path, scenario_dir=tmp_path))


def test_http_check_passes_on_status_and_body(server, tmp_path) -> None:
    result = driver("check", "http", tmp_path, url=f"{server}/", body_contains="open").probe()
    assert result.ok and result.data["status"] == 200


def test_http_check_fails_on_status_body_or_latency(server, tmp_path) -> None:
    assert driver("check", "http", tmp_path, url=f"{server}/down").probe().detail == "status 503, expected 200"
    assert not driver("check", "http", tmp_path, url=f"{server}/", body_contains="closed").probe().ok
    slow = driver("check", "http", tmp_path, url=f"{server}/slow", max_latency="100ms").probe()
    assert not slow.ok and slow.detail.startswith("latency ")
    assert driver("check", "http", tmp_path, url="http://127.0.0.1:9/", timeout=1).probe().detail.endswith("ConnectionError")


def test_http_check_passes_only_on_an_answer_carrying_the_response_headers_asked_for(server, tmp_path) -> None:
    west = driver("check", "http", tmp_path, url=f"{server}/", response_headers={"x-served-by": "west"}).probe()
    assert west.ok and west.data["headers"] == {"x-served-by": "west"}
    east = driver("check", "http", tmp_path, url=f"{server}/east", response_headers={"X-Served-By": "west"}).probe()
    assert not east.ok and east.detail == "header X-Served-By is 'east', expected 'west'"
    assert east.data["headers"] == {"X-Served-By": "east"}
    absent = driver("check", "http", tmp_path, url=f"{server}/", response_headers={"X-Zone": "a"}).probe()
    assert absent.detail == "header X-Zone absent, expected 'a'" and absent.data["headers"] == {"X-Zone": None}
    assert "headers" not in driver("check", "http", tmp_path, url=f"{server}/").probe().data


def test_exec_check_compares_exit_status_and_output(tmp_path) -> None:
    assert driver("check", "exec", tmp_path, command="echo ready").probe().ok
    failing = driver("check", "exec", tmp_path, command="echo 'not yet' >&2; exit 4").probe()
    assert not failing.ok and failing.detail == "exited 4, expected 0: not yet"
    assert not driver("check", "exec", tmp_path, command="echo ready", stdout_contains="done").probe().ok


def test_exec_fault_runs_verifies_and_reverts_in_the_scenario_folder(tmp_path) -> None:
    fault = driver("fault", "exec", tmp_path, command="touch flag", verify="test -f flag", revert="rm flag")
    assert fault.reversible
    fault.inject()
    assert fault.verify_injected().ok and (tmp_path / "flag").exists()
    fault.revert()
    assert not (tmp_path / "flag").exists()


def test_exec_step_timeout_kills_the_command(tmp_path) -> None:
    step = driver("step", "exec", tmp_path, command="sleep 30", timeout="300ms")
    start = time.monotonic()
    with pytest.raises(StepFailed, match="timed out after 0.3s"):
        step.run()
    assert time.monotonic() - start < 5


def test_wait_is_interrupted_by_an_abort(tmp_path) -> None:
    step = driver("step", "wait", tmp_path, duration="30s")
    threading.Timer(0.2, lambda: step.ctx.cancel.cancel("abort condition breached")).start()
    with pytest.raises(DrillAborted, match="abort condition breached"):
        step.run()


def test_redeploy_with_helm_says_clearly_when_helm_is_missing(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    step = driver("step", "redeploy", tmp_path, helm={"release": "shop", "chart": "./chart", "namespace": "shop"})
    with pytest.raises(StepFailed, match="helm is not installed"):
        step.run()


def test_redeploy_needs_exactly_one_source(tmp_path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="exactly one of 'path', 'kustomize', 'helm' or 'command'"):
        driver("step", "redeploy", tmp_path, path="a", command="b")

"""``expect.availability`` in earnest: a real HTTP server, a real drill, the real engine and report.

The server below answers on 127.0.0.1 while ``down.flag`` is absent and 503 while it
exists; the drill's fault creates the flag and recovery removes it about two seconds
later, and it is watched for four more seconds.  No cluster and no mock: the probe asks the server over TCP through
``dirt.clients.http``, the engine journals what it saw, and the report is rendered
from the journal.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dirt.app.run import run_one
from dirt.engine.runner import RunOptions
from dirt.scenario import load_scenario
from dirt.testing import FakeTarget
from tests.conftest import journal_lines


class Shop:
    """An HTTP service whose health the test controls through a flag file."""

    def __init__(self, folder: Path) -> None:
        flag = folder / "down.flag"
        self.served: list[int] = []
        served = self.served

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                status = 503 if flag.exists() else 200
                served.append(status)
                body = b"down" if status == 503 else b"ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Shop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop(project) -> Iterator[Shop]:
    with Shop(project.root) as running:
        yield running


def drill(project, shop: Shop, objectives: str, *, recover: str | None = None):
    text = f"""\
apiVersion: dirt/v1
kind: Scenario
metadata:
  name: shop-outage
vars:
  shop: "{shop.url}"
inject:
  - fault: exec
    name: take-the-shop-down
    command: "touch down.flag"
    verify: "test -f down.flag"
    revert: "rm -f down.flag"
expect:
  availability:
    - name: shop front
      http: "{{{{ shop }}}}/health?user=<b>x</b>"
      interval: 100ms
{objectives}
recover:
{recover or '''  - step: wait
    duration: 2s
  - step: exec
    name: bring-the-shop-back
    command: "rm -f down.flag"
  - step: wait
    duration: 4s
'''}
verify:
  - check: http
    url: "{shop.url}/health"
    within: 10s
"""
    scenario = load_scenario(project.scenario("shop", text))
    name, config = project.loaded().target("fake")
    target = FakeTarget(name, config, project.root)
    result = run_one(scenario, target, RunOptions(report_dir=project.reports, handle_signals=False))
    return result, journal_lines(result.run_dir)


def probe_of(report: dict) -> dict:
    (probe,) = report["availability"]
    return probe


def test_an_outage_the_users_saw_fails_a_strict_objective_with_its_window(project, shop) -> None:
    result, journal = drill(project, shop, "      min_success: 99.9%\n      max_outage: 500ms")
    assert result.verdict == "failed"
    assert result.exit_code == 1
    assert any(f.startswith("availability shop front: success ") for f in result.failures), result.failures

    assert 503 in shop.served and shop.served[-1] == 200  # the server really was down, then back
    probe = probe_of(result.report)
    assert probe["verdict"] == "failed" and probe["complete"] and not probe["cut_short"]
    assert 0 < probe["ratio"] < 1
    assert probe["failures"].get("HTTP 503", 0) >= 5
    outage = probe["longest_outage"]
    assert 1.0 < outage["seconds"] < 10.0, outage  # recovery removed the flag ~2s after the fault
    assert not outage["ongoing"]
    fault_at = result.report["faults"][0]["offset"]
    assert outage["start_offset"] >= fault_at - 0.5
    assert probe["latency"]["p50"] is not None and probe["latency"]["max"] >= probe["latency"]["p50"]

    # The journal holds buckets and one result, not one event per sample.
    assert len([e for e in journal if e["event"] == "availability.result"]) == 1
    buckets = [b for e in journal if e["event"] == "availability.buckets" for b in e["buckets"]]
    assert sum(b["n"] for b in buckets) == probe["samples"] > 20
    probe_events = [e for e in journal if e["event"].startswith("availability.")]
    assert len(probe_events) * 3 < probe["samples"]
    failed_seconds = [b for b in buckets if b["failed"]]
    assert failed_seconds and all(b["failed"] <= b["n"] for b in buckets)

    expectation = next(e for e in journal if e["event"] == "expectation" and e["kind"] == "availability")
    assert expectation["passed"] is False
    assert expectation["data"]["objective"] == "success ≥ 99.9%, outage ≤ 0.5s"


def test_the_same_outage_meets_a_lenient_objective_and_every_report_shows_it(project, shop) -> None:
    result, _ = drill(project, shop, "      min_success: 50%")
    assert result.verdict == "passed", result.failures
    probe = probe_of(result.report)
    assert probe["verdict"] == "passed"
    assert 0.5 <= probe["ratio"] < 1

    run_dir = result.run_dir
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved["availability"][0]["ratio"] == probe["ratio"]
    md = (run_dir / "report.md").read_text()
    assert "## Availability" in md and "success ≥ 50%" in md
    html = (run_dir / "report.html").read_text()
    assert 'class="availability-row" data-verdict="passed"' in html
    assert 'class="availability-latency"' in html and 'class="availability-outage"' in html
    assert "<b>x</b>" not in html  # the URL's markup is escaped (and its query never shown)
    junit = (run_dir / "junit.xml").read_text()
    assert 'name="availability: shop front"' in junit


def test_a_drill_that_fails_mid_way_cuts_the_window_short_and_says_so(project, shop) -> None:
    result, _ = drill(project, shop, "      min_success: 50%", recover="""\
  - step: wait
    duration: 1s
  - step: exec
    name: a-recovery-that-fails
    command: "exit 3"
""")
    assert result.verdict == "failed"
    probe = probe_of(result.report)
    assert probe["cut_short"] is True
    assert probe["cut_reason"].startswith("the drill failed: ") and "exited with 3" in probe["cut_reason"]
    assert probe["longest_outage"]["ongoing"] is True  # still down when the window closed
    assert not (project.root / "down.flag").exists()  # rollback reverted the fault after the window

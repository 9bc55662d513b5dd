"""``expect.availability`` with ``promql``: success ratios read from a real Prometheus through a drill.

The drill kills the demo exporter (``exec`` fault) and starts it again (``exec``
recovery step); Prometheus scrapes it every second, so ``up{job="demo"}`` really
drops to 0 for a while.  Beside it: a constant ratio (``vector(0.5)``), and an
expression with no result at all, whose samples must be *unknown*, reported as
such and counted as failures.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from dirt.app.run import run_one
from dirt.clients.monitoring import Endpoint
from dirt.config import TargetConfig
from dirt.engine.runner import RunOptions
from dirt.scenario import load_scenario
from dirt.testing import FakeTarget
from tests.conftest import journal_lines
from tests.integration.promstack import PromStack, promstack  # noqa: F401 - promstack is a fixture

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def argv(stack: PromStack, action: str) -> str:
    return json.dumps(stack.exporter_command(action))


def test_promql_ratios_measure_the_outage_and_an_empty_result_is_unknown(project, promstack) -> None:  # noqa: F811
    promstack.reset()
    text = textwrap.dedent(f"""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata:
          name: demo-availability
        inject:
          - fault: exec
            name: kill-exporter
            command: {argv(promstack, "stop")}
            revert: {argv(promstack, "start")}
        expect:
          availability:
            - name: demo up
              promql: avg(up{{job="demo"}})
              min_success: 99%
            - name: half
              promql: vector(0.5)
            - name: nothing
              promql: no_such_series_anywhere
        recover:
          - step: wait
            duration: 4s
          - step: exec
            name: restart-exporter
            command: {argv(promstack, "start")}
        verify:
          - check: promql
            name: demo-up
            query: up{{job="demo"}}
            equals: 1
            within: 20s
        """)
    scenario = load_scenario(project.scenario("drill", text))
    config = TargetConfig(provider="fake", prometheus=Endpoint(url=promstack.prometheus_url))
    target = FakeTarget("stack", config, project.root)
    result = run_one(scenario, target, RunOptions(report_dir=project.reports, handle_signals=False))
    journal = journal_lines(result.run_dir)
    report = result.report
    assert report is not None
    probes: dict[str, Any] = {p["name"]: p for p in report["availability"]}

    demo = probes["demo up"]
    assert demo["verdict"] == "failed" and result.verdict == "failed"
    assert any(f.startswith("availability demo up: success ") for f in result.failures), result.failures
    assert demo["samples"] >= 4 and 0 < demo["ratio"] < 0.99
    assert demo["longest_outage"]["seconds"] >= 1.0  # Prometheus saw up == 0 for whole scrapes
    assert demo["unknown"] == 0

    half = probes["half"]
    assert half["ratio"] == pytest.approx(0.5)
    assert half["verdict"] == "passed"  # no objective: measured only
    assert half["successes"] == 0  # each sample is below 1, the default threshold

    nothing = probes["nothing"]
    assert nothing["samples"] >= 4 and nothing["unknown"] == nothing["samples"]
    assert nothing["ratio"] == 0 and nothing["failures"] == {"unknown: no value": nothing["samples"]}
    assert nothing["longest_outage"]["ongoing"] is True

    buckets = [b for e in journal if e["event"] == "availability.buckets" and e["name"] == "nothing"
               for b in e["buckets"]]
    assert sum(b["unknown"] for b in buckets) == nothing["samples"]
    md = (result.run_dir / "report.md").read_text()
    assert "unknown" in md and "## Availability" in md

"""Did we notice?  Drills against a real Prometheus and Alertmanager.

The engine runs for real against a target whose Prometheus and Alertmanager are
the ones ``promstack`` started; the outage is a demo exporter the drill kills by
PID (``exec`` fault) and starts again (``exec`` recovery step, or the fault's
revert during rollback).  Every timing claim is checked against what the
servers themselves say: Prometheus' ``activeAt`` and its ``ALERTS`` series,
Alertmanager's ``startsAt``.
"""

from __future__ import annotations

import base64
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dirt.app.run import run_one
from dirt.clients.monitoring import Endpoint, MonitoringClient, parse_time
from dirt.config import TargetConfig
from dirt.core.errors import MonitoringError
from dirt.engine.runner import RunOptions, RunResult
from dirt.scenario import load_scenario
from dirt.targets.base import Target
from dirt.testing import FakeTarget
from tests.conftest import journal_lines
from tests.integration.promstack import (  # noqa: F401 - promstack is a fixture
    EVALUATION_INTERVAL,
    AlertWatcher,
    AuthProxy,
    PromStack,
    free_port,
    promstack,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class StackTarget(FakeTarget):
    """The fake cluster, but alerts and PromQL from the real servers in its config."""

    def alert_sources(self) -> list[Any]:
        return Target.alert_sources(self)


@pytest.fixture
def stack(promstack: PromStack) -> Iterator[PromStack]:  # noqa: F811
    """The shared stack, healthy before the test and put back to healthy after it."""
    promstack.reset()
    yield promstack
    promstack.reset()


def drill(project: Any, stack: PromStack, *sections: str, prometheus: Endpoint | None = None,
          alertmanager: Endpoint | None = None) -> tuple[RunResult, list[dict[str, Any]]]:
    head = textwrap.dedent("""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata:
          name: demo-drill
          description: The demo exporter has an outage.
        """)
    body = "".join(textwrap.dedent(section) for section in sections)
    scenario = load_scenario(project.scenario("drill", head + body))
    config = TargetConfig(provider="fake",
                          prometheus=prometheus or Endpoint(url=stack.prometheus_url),
                          alertmanager=alertmanager or Endpoint(url=stack.alertmanager_url))
    target = StackTarget("stack", config, project.root)
    result = run_one(scenario, target, RunOptions(report_dir=project.reports, handle_signals=False))
    return result, journal_lines(result.run_dir)


def events(journal: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in journal if e["event"] == kind]


def argv(stack: PromStack, action: str) -> str:
    """A YAML flow list for an ``exec`` command that starts or stops the exporter."""
    return json.dumps(stack.exporter_command(action))


def kill_exporter(stack: PromStack) -> str:
    return f"""\
        inject:
          - fault: exec
            name: kill-exporter
            command: {argv(stack, "stop")}
            revert: {argv(stack, "start")}
        """


def firing_series_start(stack: PromStack, alert: str, after: float) -> float:
    """When Prometheus itself first evaluated the alert as firing (its ALERTS series)."""
    series = stack.query(f'ALERTS{{alertname="{alert}",alertstate="firing"}}[2m]')
    stamps = [float(ts) for s in series for ts, _ in s["values"] if float(ts) >= after]
    assert stamps, f"Prometheus has no firing sample of {alert} after the fault"
    return min(stamps)


# -- expected alerts ------------------------------------------------------------------------


def test_an_expected_alert_fires_is_routed_and_resolves_with_mttd_from_server_time(project, stack) -> None:
    pid_before = stack.exporter_pid()
    with AlertWatcher(stack) as watcher:
        result, journal = drill(project, stack, kill_exporter(stack), f"""\
            expect:
              alerts:
                - name: DemoDown
                  labels: {{job: demo}}
                  fires_within: 10s
                  resolves_within: 10s
              silent: [NeverFires]
            recover:
              - step: exec
                name: restart-exporter
                command: {argv(stack, "start")}
                within: 15s
            verify:
              - check: promql
                name: demo-up
                query: up{{job="demo"}}
                equals: 1
                within: 15s
            timing:
              poll_interval: 500ms
            """)
    assert result.verdict == "passed", result.failures
    assert stack.exporter_pid() != pid_before  # the drill really killed and restarted it

    t_inject = events(journal, "fault.injected")[0]["t_inject"]
    fired = next(e for e in events(journal, "expectation") if e["kind"] == "alert")
    prom, am = fired["sources"]["prometheus"], fired["sources"]["alertmanager"]
    assert prom["fired"] and am["fired"]

    # Prometheus' own word, read independently while the alert fired.
    seen = watcher.prometheus["DemoDown"]
    active_at = parse_time(seen["activeAt"])
    for_seconds = stack.rule("DemoDown")["duration"]
    assert for_seconds == 2
    assert prom["active_at"] == pytest.approx(active_at, abs=1e-6)
    assert prom["server_time"] == pytest.approx(active_at + for_seconds, abs=1e-6)
    server_mttd = active_at + for_seconds - t_inject
    assert abs(fired["measured_seconds"] - server_mttd) <= EVALUATION_INTERVAL
    assert fired["measured_seconds"] == pytest.approx(server_mttd, abs=0.002)
    # ... and not dirt's polling time: dirt saw it after Prometheus fired it.
    assert prom["observed_seconds"] >= prom["mttd_seconds"]

    # Prometheus really switched it to firing within one evaluation of activeAt + for.
    firing_at = firing_series_start(stack, "DemoDown", after=t_inject)
    assert -0.001 <= firing_at - (active_at + for_seconds) <= EVALUATION_INTERVAL + 0.001  # ms samples

    # Alertmanager received it: startsAt is when Prometheus fired it.
    starts_at = parse_time(watcher.alertmanager["DemoDown"]["startsAt"])
    assert am["server_time"] == pytest.approx(starts_at, abs=1e-6)
    assert starts_at == pytest.approx(firing_at, abs=0.002)
    assert -0.002 <= am["mttd_seconds"] - prom["mttd_seconds"] <= EVALUATION_INTERVAL + 0.002  # ms
    print(f"\nDemoDown: t_inject {t_inject:.3f}; Prometheus activeAt {active_at:.3f} + for {for_seconds}s "
          f"-> MTTD {server_mttd:.3f}s; dirt measured {fired['measured_seconds']:.3f}s "
          f"(observed after {prom['observed_seconds']:.3f}s); ALERTS firing at +{firing_at - t_inject:.3f}s; "
          f"Alertmanager startsAt +{starts_at - t_inject:.3f}s (dirt: {am['mttd_seconds']:.3f}s)")

    resolution = next(e for e in events(journal, "expectation") if e["kind"] == "alert_resolution")
    assert resolution["passed"] and resolution["measured_seconds"] <= 10
    resolved = {(e["name"], e["source"]) for e in events(journal, "alert.resolved")}
    assert {("DemoDown", "prometheus"), ("DemoDown", "alertmanager")} <= resolved

    # The always-firing Watchdog is baseline in both sources, never noise.
    baseline = {(a["name"], a["source"]) for a in events(journal, "alerts.baseline")[0]["alerts"]}
    assert {("Watchdog", "prometheus"), ("Watchdog", "alertmanager")} <= baseline
    assert events(journal, "alerts.noise")[0]["alerts"] == []
    assert all(e["name"] != "Watchdog" for e in events(journal, "alert.firing"))

    report = result.report
    assert report is not None and report["timings"]["mttd_seconds"]["DemoDown"] == fired["measured_seconds"]


def test_an_expected_alert_that_never_fires_fails_the_drill_naming_alert_and_deadline(project, stack) -> None:
    start = time.monotonic()
    result, journal = drill(project, stack, """\
        inject:
          - fault: exec
            name: nothing-breaks
            command: "true"
        expect:
          alerts:
            - name: NeverFires
              fires_within: 3s
        timing:
          poll_interval: 500ms
        """)
    assert result.verdict == "failed"
    assert result.exit_code == 1
    assert result.failures == ["alert NeverFires: NeverFires did not fire within 3s"]
    assert time.monotonic() - start < 15  # it waited for the deadline, not much longer
    detect = next(e for e in events(journal, "phase.end") if e["phase"] == "detect")
    assert detect["status"] == "failed"


def test_a_forbidden_alert_that_fires_fails_the_drill_and_rollback_restarts_the_service(project, stack) -> None:
    result, journal = drill(project, stack, kill_exporter(stack), """\
        expect:
          silent: [DemoDown]
        verify:
          - check: alert.firing
            name: wait-until-routed
            alert: DemoDown
            source: alertmanager
            within: 15s
            interval: 500ms
        timing:
          poll_interval: 500ms
        """)
    assert result.verdict == "failed"
    assert len(result.failures) == 1, result.failures
    failure = result.failures[0]
    assert failure.startswith("silent DemoDown stays silent: forbidden alert DemoDown fired (")
    assert failure.endswith("s after the fault)")
    forbidden = [e for e in events(journal, "alert.firing") if e["name"] == "DemoDown"]
    assert forbidden and all(e["forbidden"] for e in forbidden)
    # Rollback ran the fault's revert: the exporter is back.
    assert [(e["action"], e["status"]) for e in events(journal, "rollback.action")] == [("revert", "passed")]
    wait_for(lambda: stack.query('up{job="demo"}')[0]["value"][1] == "1", 10, "the exporter to be back")


# -- abort conditions -----------------------------------------------------------------------


def _write_when_step_starts(journal_dir: Path, step: str, action: Any) -> threading.Thread:
    """Run ``action`` once the drill's journal shows ``step`` started (during the step)."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for path in journal_dir.glob("*/journal.jsonl"):
                for line in path.read_text().splitlines():
                    if '"step.start"' in line and f'"name": "{step}"' in line:
                        action()
                        return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_promql_abort_condition_stops_the_drill_within_two_evaluations_and_rolls_back(project, stack) -> None:
    written: list[float] = []

    def breach() -> None:
        written.append(time.time())
        stack.set_errors_ratio(0.9)

    watcher = _write_when_step_starts(project.reports, "soak", breach)
    started = time.monotonic()
    result, journal = drill(project, stack, kill_exporter(stack), f"""\
        abort_when:
          - promql: demo_errors_ratio
            above: 0.5
        recover:
          - step: exec
            name: restart-exporter
            command: {argv(stack, "start")}
          - step: wait
            name: soak
            duration: 40s
        verify:
          - check: promql
            query: demo_errors_ratio
            max: 0.5
        timing:
          poll_interval: 1s
        """)
    watcher.join(1)
    assert written, "the breach was never written"
    assert time.monotonic() - started < 30  # the 40 s soak was cut short
    assert result.verdict == "aborted"
    assert result.exit_code == 3

    breach_event = events(journal, "abort.breach")[0]
    assert breach_event["value"] == 0.9
    assert breach_event["condition"] == "demo_errors_ratio > 0.5"
    # When the breach became visible in Prometheus: its first sample above 0.5.
    samples = stack.query("demo_errors_ratio[2m]")[0]["values"]
    visible = min(float(ts) for ts, v in samples if float(v) > 0.5 and float(ts) >= written[0] - 1)
    delay = breach_event["at"] - visible
    print(f"\nabort: file written +0, visible in Prometheus +{visible - written[0]:.3f}s, "
          f"dirt aborted +{breach_event['at'] - written[0]:.3f}s ({delay:.3f}s after visible)")
    assert 0 <= delay <= 2 * EVALUATION_INTERVAL

    soak = next(e for e in events(journal, "step.end") if e["name"] == "soak")
    assert soak["status"] == "aborted" and soak["seconds"] < 10
    assert not [e for e in events(journal, "phase.start") if e["phase"] == "verify"]
    assert [(e["action"], e["status"]) for e in events(journal, "rollback.action")] == [("revert", "passed")]
    abort = events(journal, "abort")[0]
    assert abort["t"] - breach_event["t"] < 1.0
    assert result.report is not None and result.report["abort"]["value"] == 0.9


def test_an_alert_abort_condition_aborts_and_rollback_revives_the_killed_service(project, stack) -> None:
    pid_before = stack.exporter_pid()
    result, journal = drill(project, stack, kill_exporter(stack), """\
        abort_when:
          - alert: DemoDown
        recover:
          - step: wait
            name: soak
            duration: 40s
        timing:
          poll_interval: 500ms
        """)
    assert result.verdict == "aborted", result.failures
    breach = events(journal, "abort.breach")[0]
    assert breach["alert"] == "DemoDown" and breach["condition"] == "alert DemoDown"
    fired = min(e["server_time"] for e in events(journal, "alert.firing") if e["name"] == "DemoDown")
    assert 0 <= breach["at"] - fired <= 2 * EVALUATION_INTERVAL
    # Neither expected nor forbidden: DemoDown is noise; the Watchdog is not.
    noise = {(a["name"], a["source"]) for a in events(journal, "alerts.noise")[0]["alerts"]}
    assert ("DemoDown", "prometheus") in noise and not any(name == "Watchdog" for name, _ in noise)
    # The exporter was down when the drill aborted; the revert started a new one.
    assert [(e["action"], e["status"]) for e in events(journal, "rollback.action")] == [("revert", "passed")]
    pid_after = stack.exporter_pid()
    assert pid_after is not None and pid_after != pid_before
    wait_for(lambda: stack.query('up{job="demo"}')[0]["value"][1] == "1", 10, "the exporter to be back")


# -- the promql check -----------------------------------------------------------------------


def test_promql_check_holds_for_its_duration_and_a_failing_bound_shows_the_value(project, stack) -> None:
    result, journal = drill(project, stack, f"""\
        steady_state:
          - check: promql
            name: demo-up-steadily
            query: up{{job="demo"}}
            equals: 1
            for: 2s
            within: 10s
            interval: 500ms
        inject:
          - fault: exec
            name: errors-rise
            command: "echo 0.8 > {stack.errors_ratio_file}"
            revert: "echo 0 > {stack.errors_ratio_file}"
        recover:
          - step: wait
            duration: 2500ms
            reason: let Prometheus scrape the new value
        verify:
          - check: promql
            name: errors-low
            query: demo_errors_ratio
            max: 0.5
            within: 3s
            interval: 500ms
        """)
    steady = next(e for e in events(journal, "step.end") if e["name"] == "demo-up-steadily")
    assert steady["status"] == "passed"
    assert steady["seconds"] >= 2.0  # it had to keep holding for 2 s
    assert steady["detail"] == "1 value(s) == 1"

    assert result.verdict == "failed"
    instance = f"127.0.0.1:{stack.exporter_port}"
    assert result.failures == [f'check errors-low: not passing after 3s: '
                               f'demo_errors_ratio{{instance="{instance}",job="demo"}} = 0.8, not <= 0.5']
    verify = next(e for e in events(journal, "step.end") if e["name"] == "errors-low")
    assert verify["data"]["samples"][0]["value"] == 0.8
    assert stack.errors_ratio_file.read_text().strip() == "0"  # rollback reverted it


def test_promql_errors_are_one_clean_line(stack) -> None:
    client = MonitoringClient(Endpoint(url=stack.prometheus_url))
    assert client.query("vector(3)") == [({}, 3.0)]
    assert client.query("scalar(vector(2))") == [({}, 2.0)]
    with pytest.raises(MonitoringError) as bad:
        client.query("demo_up[")
    assert str(bad.value).startswith("PromQL 'demo_up[' failed (HTTP 400): ")
    assert "parse error" in str(bad.value) and "b'" not in str(bad.value)
    with pytest.raises(MonitoringError, match="returned a range vector"):
        client.query("demo_up[1m]")
    with AuthProxy(stack.prometheus_url, bearer=TOKEN) as guarded:
        with pytest.raises(MonitoringError) as refused:
            MonitoringClient(Endpoint(url=guarded.url)).query("up")
    assert str(refused.value) == f"Prometheus at {guarded.url} refused the credentials (HTTP 401)"
    nobody = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(MonitoringError, match=f"^Prometheus at {nobody} unreachable \\(ConnectionError\\)$"):
        MonitoringClient(Endpoint(url=nobody, timeout=2)).query("up")
    assert time.monotonic() - start < 1  # no hidden retries with backoff


# -- credentials ----------------------------------------------------------------------------

TOKEN = "tok-3f9a1c77e2b94d0c"
PASSWORD = "pw-8d21be55c0aa"


def _run_files_text(run_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())


def test_credentials_reach_the_servers_and_never_the_journal_or_report(project, stack, monkeypatch,
                                                                       tmp_path) -> None:
    monkeypatch.setenv("DIRT_TEST_PROM_TOKEN", TOKEN)
    password_file = tmp_path / "am-password"
    password_file.write_text(PASSWORD + "\n")
    body = """\
        steady_state:
          - check: promql
            query: up{job="demo"}
            equals: 1
        inject:
          - fault: exec
            name: nothing-breaks
            command: "true"
        expect:
          silent: [DemoDown]
        verify:
          - check: alert.absent
            name: demo-quiet
            alert: DemoDown
            source: alertmanager
            within: 5s
        timing:
          poll_interval: 500ms
        """
    with AuthProxy(stack.prometheus_url, bearer=TOKEN) as prom, \
            AuthProxy(stack.alertmanager_url, basic=("drill", PASSWORD)) as am:
        result, journal = drill(
            project, stack, body,
            prometheus=Endpoint(url=prom.url, bearer_token_env="DIRT_TEST_PROM_TOKEN"),
            alertmanager=Endpoint(url=am.url, username="drill", password_file=str(password_file)),
        )
    assert result.verdict == "passed", result.failures
    # PromQL (prometheus-api-client) and the rules API both sent the token; every
    # Alertmanager request carried the basic-auth password.
    assert {"/api/v1/query", "/api/v1/rules"} <= set(prom.paths)
    assert set(prom.authorizations) == {f"Bearer {TOKEN}"}
    assert "/api/v2/alerts" in am.paths
    assert set(am.authorizations) == {"Basic " + base64.b64encode(f"drill:{PASSWORD}".encode()).decode()}
    text = _run_files_text(result.run_dir)
    assert "journal.jsonl" in {p.name for p in result.run_dir.iterdir()}
    assert TOKEN not in text and PASSWORD not in text


def test_refused_credentials_stop_the_drill_before_any_fault_with_one_clean_line(project, stack,
                                                                                  monkeypatch) -> None:
    monkeypatch.setenv("DIRT_TEST_PROM_TOKEN", "wrong-" + TOKEN)
    with AuthProxy(stack.prometheus_url, bearer=TOKEN) as prom:
        result, journal = drill(project, stack, kill_exporter(stack), """\
            expect:
              alerts:
                - name: DemoDown
                  fires_within: 10s
                  sources: [prometheus]
            """, prometheus=Endpoint(url=prom.url, bearer_token_env="DIRT_TEST_PROM_TOKEN"))
    assert result.verdict == "failed"
    assert result.failures == [f"cannot watch alerts, so no fault was injected: Prometheus at {prom.url} "
                               "refused the credentials (HTTP 401)"]
    assert not events(journal, "fault.injected")
    assert stack.exporter_pid() is not None  # nothing was broken
    assert TOKEN not in _run_files_text(result.run_dir)


def test_a_missing_token_variable_is_named_without_a_value(project, stack, monkeypatch) -> None:
    monkeypatch.delenv("DIRT_TEST_PROM_TOKEN", raising=False)
    result, _ = drill(project, stack, """\
        steady_state:
          - check: promql
            query: up{job="demo"}
            equals: 1
            within: 2s
        inject:
          - fault: exec
            command: "true"
        """, prometheus=Endpoint(url=stack.prometheus_url, bearer_token_env="DIRT_TEST_PROM_TOKEN"))
    assert result.verdict == "failed"
    assert len(result.failures) == 1
    assert "bearer token: environment variable DIRT_TEST_PROM_TOKEN is not set" in result.failures[0]

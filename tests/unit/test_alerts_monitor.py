"""AlertMonitor rules that need precise control of what the servers answer and when.

The sources here are scripted ``AlertSource`` subclasses (what the servers would
answer); the behaviour against the real Prometheus and Alertmanager is in
tests/integration/test_alerts.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dirt.clients.monitoring import ActiveAlert, AlertSource
from dirt.core.errors import MonitoringError
from dirt.drivers import CancelToken
from dirt.engine.detection import AlertMonitor
from dirt.journal.events import AlertFiring, AlertsNoise, Event
from dirt.scenario import load_scenario
from dirt.scenario.model import AlertMatch, Expect
from dirt.testing import FakeTarget


class ScriptedSource(AlertSource):
    def __init__(self, source: str) -> None:
        self.source = source  # type: ignore[assignment]
        self.alerts: list[ActiveAlert] = []
        self.error: str | None = None

    def active(self) -> list[ActiveAlert]:
        if self.error:
            raise MonitoringError(self.error)
        return list(self.alerts)


def alert(name: str, source: str, fired_at: float) -> ActiveAlert:
    return ActiveAlert(name=name, labels={"alertname": name}, source=source,  # type: ignore[arg-type]
                       state="firing" if source == "prometheus" else "active", fired_at=fired_at)


def monitor(*sources: ScriptedSource, interval: float = 0.05, expect: Expect | None = None
            ) -> tuple[AlertMonitor, list[Event], list[tuple[Any, ...]]]:
    events: list[Event] = []
    expectations: list[tuple[Any, ...]] = []
    m = AlertMonitor(target=FakeTarget(), expect=expect or Expect(), abort_when=[], interval=interval,
                     emit=events.append, cancel=CancelToken(),
                     wall=time.time, expectation=lambda *args, **kw: expectations.append(args),
                     sources=list(sources))
    return m, events, expectations


def noise(events: list[Event]) -> list[tuple[str, str]]:
    found = next(e for e in events if isinstance(e, AlertsNoise))
    return [(a["name"], a["source"]) for a in found.alerts]


def test_an_alert_that_fired_before_the_drill_is_baseline_even_when_it_reaches_alertmanager_late() -> None:
    prom, am = ScriptedSource("prometheus"), ScriptedSource("alertmanager")
    long_ago = time.time() - 600
    prom.alerts.append(alert("Watchdog", "prometheus", long_ago))
    m, events, _ = monitor(prom, am)
    m.start()
    m.mark_inject(time.time())
    am.alerts.append(alert("Watchdog", "alertmanager", long_ago))  # routed only now
    fresh = time.time()
    prom.alerts.append(alert("Fresh", "prometheus", fresh))
    time.sleep(0.3)
    m.stop()
    m.finish()
    assert noise(events) == [("Fresh", "prometheus")]
    assert [e.name for e in events if isinstance(e, AlertFiring)] == ["Fresh"]


def test_an_alert_firing_when_the_drill_ends_between_two_polls_is_still_judged() -> None:
    prom = ScriptedSource("prometheus")
    m, events, expectations = monitor(prom, interval=30, expect=Expect(silent=[AlertMatch(name="Forbidden")]))
    m.start()
    m.mark_inject(time.time())
    prom.alerts.append(alert("Forbidden", "prometheus", time.time()))
    m.stop()  # the 30 s loop never polled: the last look must see it
    m.finish()
    assert [(name, passed) for name, _kind, _o, _m, passed, _d in expectations] == [
        ("Forbidden stays silent", False)]


def test_a_source_that_cannot_be_read_at_the_start_stops_the_drill_before_any_fault() -> None:
    prom, am = ScriptedSource("prometheus"), ScriptedSource("alertmanager")
    am.error = "Alertmanager at http://127.0.0.1:9093 unreachable (ConnectionError)"
    m, events, _ = monitor(prom, am)
    with pytest.raises(MonitoringError, match="no fault was injected: Alertmanager at .* unreachable"):
        m.start()
    assert m._thread is None


def test_alert_checks_take_the_alert_name_from_alert_and_keep_name_as_the_label(tmp_path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("""\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: d}
inject:
  - fault: exec
    command: "true"
verify:
  - check: alert.absent
    name: api-quiet
    alert: KubeAPIDown
    labels: {cluster: dirt-sandbox}
    source: alertmanager
""")
    spec = load_scenario(path).verify[0]
    assert spec.name == "api-quiet"
    assert (spec.params.alert, spec.params.labels, spec.params.source) == (
        "KubeAPIDown", {"cluster": "dirt-sandbox"}, "alertmanager")


def test_a_source_that_dies_after_the_fault_makes_the_alert_unknown_not_missed() -> None:
    """Prometheus dies while dirt waits: "did not fire" would be a claim nobody could check."""
    from dirt.drivers import Context
    from dirt.scenario.model import AlertExpectation

    prom = ScriptedSource("prometheus")
    expected = AlertExpectation(name="KubeSchedulerDown", fires_within=0.4)
    m, _, expectations = monitor(prom, expect=Expect(alerts=[expected]))
    m.start()
    m.mark_inject(time.time())
    prom.error = "Prometheus at http://127.0.0.1:9090 unreachable (ConnectionError)"
    m.wait_fired(Context(target=FakeTarget(), run_dir=Path(".")))
    m.stop()
    (name, kind, objective, measured, passed, detail), = expectations
    assert (name, kind, passed, measured) == ("KubeSchedulerDown", "alert", False, None)
    assert detail.startswith("cannot tell whether KubeSchedulerDown fired within 0.4s: prometheus could not be "
                             "read from "), detail
    assert "failed reads; last: Prometheus at http://127.0.0.1:9090 unreachable (ConnectionError))" in detail


def test_a_source_that_stays_readable_still_says_the_alert_did_not_fire() -> None:
    from dirt.drivers import Context
    from dirt.scenario.model import AlertExpectation

    prom = ScriptedSource("prometheus")
    m, _, expectations = monitor(prom, expect=Expect(alerts=[AlertExpectation(name="Quiet", fires_within=0.2)]))
    m.start()
    m.mark_inject(time.time())
    m.wait_fired(Context(target=FakeTarget(), run_dir=Path(".")))
    m.stop()
    assert expectations[0][5] == "Quiet did not fire within 0.2s"

"""Chaos Toolkit probes that run dirt's checks and expectations (python provider).

Each returns ``True`` or ``False`` (the experiment gives them ``tolerance: true``), so a
failed check makes the hypothesis deviate rather than the run error out, and rollbacks
still run.  A check written under ``verify`` only (``after_fault``) passes before any
fault was injected by this process: it proves recovery, not the steady state.  After
the fault, checks share one clock, as dirt's verify phase does: each is retried until
``within`` seconds after the first check of the after-method hypothesis.
"""

from __future__ import annotations

import time
from typing import Any

from dirt.ctk import runtime
from dirt.drivers import Check, CheckResult


def run_check(driver: str, params: dict[str, Any], name: str = "", within: float = 60.0, interval: float = 1.0,
              after_fault: bool = False, playbook: dict[str, Any] | None = None,
              configuration: dict[str, Any] | None = None) -> bool:
    """Poll a dirt check until it passes or ``within`` runs out; True when it passed.
    ``playbook``: the check's link, for the reader of the experiment (and ``dirt import``)."""
    d = runtime.drill(configuration)
    label = name or driver
    after = d.t_inject is not None
    if after_fault and not after:
        return True  # a verify check: nothing to prove before the fault
    check = runtime.build(d, "check", driver, params)
    assert isinstance(check, Check)
    if after and d.t_after is None:
        d.t_after = time.monotonic()
    start = d.t_after if after and d.t_after is not None else time.monotonic()
    timeout = max(0.0, start + within - time.monotonic())
    result, _ = d.ctx.poll(check.probe, what=label, timeout=timeout, interval=interval)
    if result.ok and after:
        d.verify_passed[label] = time.monotonic()
    if not result.ok:
        d.failures.append(f"check {label}: {result.detail}")
    return result.ok


def alert_fires(name: str, within: float, labels: dict[str, str] | None = None,
                configuration: dict[str, Any] | None = None) -> bool:
    """Wait until the alert fires, at most ``within`` seconds after the first fault took effect
    (its time to detect, from the server's firing time, is remembered)."""
    d = runtime.drill(configuration)
    if d.t_inject is None or d.t_inject_wall is None:
        d.failures.append(f"alert {name}: no fault was injected")
        return False
    sources = d.target.alert_sources()
    wanted = dict(labels or {})

    def fired() -> CheckResult:
        found = [a for s in sources for a in s.active() if a.firing and a.matches(name, wanted)]
        return CheckResult(bool(found), "firing" if found else "not firing", {"alerts": [a.to_event() for a in found]})

    timeout = max(0.0, d.t_inject + within - time.monotonic())
    result, _ = d.ctx.poll(fired, what=f"alert {name}", timeout=timeout, interval=1.0)
    times = [a["server_time"] for a in result.data.get("alerts", []) if a.get("server_time")]
    mttd = round(min(times) - d.t_inject_wall, 3) if times else None
    d.alerts.append({"name": name, "fired": result.ok, "mttd_seconds": mttd, "objective_seconds": within})
    if not result.ok:
        d.failures.append(f"alert {name}: did not fire within {within:g}s")
    return result.ok


def alerts_resolve(names: list[str], within: float, configuration: dict[str, Any] | None = None) -> bool:
    """Wait until none of the alerts fires, at most ``within`` seconds after the last recovery step."""
    d = runtime.drill(configuration)
    sources = d.target.alert_sources()

    def resolved() -> CheckResult:
        firing = sorted({a.name for s in sources for a in s.active() if a.firing and a.name in names})
        return CheckResult(not firing, f"still firing: {', '.join(firing)}" if firing else "resolved")

    since = d.t_recovered or time.monotonic()
    result, _ = d.ctx.poll(resolved, what="alerts to resolve", timeout=max(0.0, since + within - time.monotonic()),
                           interval=1.0)
    if not result.ok:
        d.failures.append(f"alerts did not resolve within {within:g}s: {result.detail}")
    return result.ok


def expectations(mttr: float | None = None, silent: list[str] | None = None,
                 availability: list[dict[str, Any]] | None = None,
                 configuration: dict[str, Any] | None = None) -> bool:
    """The drill's verdict after the method: every dirt fault and step succeeded, every expected
    alert fired in time, no silent alert fired since the fault (Prometheus' ``ALERTS``), MTTR
    within its objective.  True before any fault (nothing to judge yet).

    ``availability`` (the scenario's continuous probes) is carried for ``dirt import`` only: a probe
    run once after the method cannot say what users saw during it, so it is not judged here."""
    d = runtime.drill(configuration)
    if d.t_inject is None:
        return not d.failures
    problems = list(d.failures)
    if mttr is not None:
        took = max(d.verify_passed.values(), default=time.monotonic()) - d.t_inject
        if took > mttr:
            problems.append(f"MTTR {took:.1f}s, objective {mttr:g}s")
    for alert in silent or []:
        if _fired_since(d, alert):
            problems.append(f"alert {alert} fired but must stay silent")
    return not problems


def _fired_since(d: runtime.Drill, alert: str) -> bool:
    from dirt.clients.monitoring import MonitoringClient

    if d.target.prometheus is None or d.t_inject is None:
        return False
    window = max(1, int(time.monotonic() - d.t_inject) + 1)
    query = f'max_over_time(ALERTS{{alertname="{alert}",alertstate="firing"}}[{window}s])'
    return bool(MonitoringClient(d.target.prometheus).query(query))

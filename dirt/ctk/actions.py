"""Chaos Toolkit actions that run dirt's own faults and recovery steps (python provider).

An exported experiment calls ``run_fault`` for each fault of ``inject``, ``run_step``
for each recovery step, and ``revert_fault`` in its rollbacks.  Each builds the driver
from the registry with the experiment's configuration (see ``dirt.ctk.runtime``), runs
it with the step's deadline, and raises Chaos Toolkit's ``ActivityFailed`` on failure:
the failure is also remembered, so the final ``expectations`` probe makes the run deviate.
"""

from __future__ import annotations

import time
from typing import Any

from dirt.core.errors import StepFailed
from dirt.ctk import runtime
from dirt.drivers import Fault, RecoveryStep


def run_fault(driver: str, params: dict[str, Any], key: str, name: str = "", within: float = 60.0,
              interval: float = 1.0, playbook: dict[str, Any] | None = None,
              configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inject a fault and wait until it is in effect; its driver is kept under ``key`` for rollback."""
    d = runtime.drill(configuration)
    label = name or driver
    try:
        fault = runtime.build(d, "fault", driver, params)
        assert isinstance(fault, Fault)
        d.ctx.step = runtime.step_spec("fault", driver, label, within, playbook)
        d.ctx.deadline = time.monotonic() + within
        d.faults[key] = fault
        fault.inject()
        effective = fault.effective_at or time.monotonic()
        if d.t_inject is None:
            d.t_inject, d.t_inject_wall = effective, time.time() - (time.monotonic() - effective)
        verified, _ = d.ctx.poll(fault.verify_injected, what=f"{label} in effect",
                                 timeout=d.ctx.remaining(within), interval=interval)
        if not verified.ok:
            raise StepFailed(f"fault {label} is not in effect: {verified.detail}")
        return {"detail": verified.detail, "state": fault.state}
    except Exception as exc:
        d.failures.append(f"fault {label}: {exc}")
        raise runtime.failed(exc) from None
    finally:
        d.ctx.step = d.ctx.deadline = None


def run_step(driver: str, params: dict[str, Any], name: str = "", within: float = 600.0,
             playbook: dict[str, Any] | None = None, objective: float | None = None, recovery: bool = True,
             only_on_failure: bool = False, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run one recovery (or setup/cleanup) step with its deadline; a step over its ``objective`` fails.
    ``only_on_failure``: a scenario's own rollback step, run only when something failed."""
    d = runtime.drill(configuration)
    if only_on_failure and not d.failures:
        return {"detail": "nothing failed: not run"}
    label = name or driver
    start = time.monotonic()
    try:
        step = runtime.build(d, "step", driver, params)
        assert isinstance(step, RecoveryStep)
        d.ctx.step = runtime.step_spec("step", driver, label, within, playbook)
        d.ctx.deadline = start + within
        outcome = step.run()
        seconds = time.monotonic() - start
        if recovery:
            d.t_recovered = time.monotonic()
        if objective is not None and seconds > objective:
            raise StepFailed(f"took {seconds:.1f}s, objective {objective:g}s")
        return {"detail": getattr(outcome, "detail", ""), "seconds": round(seconds, 3)}
    except Exception as exc:
        d.failures.append(f"step {label}: {exc}")
        raise runtime.failed(exc) from None
    finally:
        d.ctx.step = d.ctx.deadline = None


def revert_fault(key: str, configuration: dict[str, Any] | None = None) -> str:
    """Rollback: revert the fault injected under ``key`` if it is still in effect (never what a
    recovery already undid, never a fault this process did not inject)."""
    d = runtime.drill(configuration)
    fault = d.faults.get(key)
    if fault is None:
        return "not injected by this run: nothing to revert"
    try:
        still = fault.in_effect()
    except Exception:  # noqa: BLE001 - cannot tell: revert (reverts are safe when already undone)
        still = None
    if still is not None and not still.ok:
        return f"no longer in effect ({still.detail}): nothing to revert"
    try:
        if not fault.reversible:
            raise StepFailed(f"{fault.name} cannot be reverted automatically: follow the playbook")
        return fault.revert() or "reverted"
    except Exception as exc:
        raise runtime.failed(exc) from None

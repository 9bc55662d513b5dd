"""Recovery steps that need no cluster: run a command, wait, undo an injected fault."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dirt.drivers import Params, RecoveryStep, StepOutcome
from dirt.durations import Duration
from dirt.errors import StepFailed
from dirt.faults.generic import CommandParams, run


class ExecStep(RecoveryStep):
    """Run a command as a recovery (or setup/cleanup) step; non-zero exit fails it."""

    name = "exec"
    Params = CommandParams

    def run(self) -> StepOutcome:
        p = self.params
        result = run(self.ctx, p.command, timeout=min(p.timeout, self.ctx.remaining(p.timeout)),
                     env=p.env, cwd=p.cwd, what="step command")
        return StepOutcome(f"exited 0 in {result.seconds:.1f}s", {"output": result.tail(10)})


class WaitParams(Params):
    duration: Duration = Field(description="How long to wait.")
    reason: str = ""


class Wait(RecoveryStep):
    """Wait a fixed time (e.g. to let a controller act); aborts interrupt it."""

    name = "wait"
    Params = WaitParams

    def plan(self) -> list[str]:
        return [f"wait {self.params.duration:g}s" + (f" ({self.params.reason})" if self.params.reason else "")]

    def run(self) -> StepOutcome:
        import time

        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < self.params.duration:
            self.ctx.waiting(self.params.reason or "wait", elapsed, self.params.duration)
            self.ctx.sleep(min(0.5, self.params.duration - elapsed))
        return StepOutcome(f"waited {self.params.duration:g}s")


class RevertParams(Params):
    faults: list[str] = Field(default_factory=list, description="Names of the faults to undo (default: all).")


class FaultRevert(RecoveryStep):
    """Undo injected faults by their own revert (e.g. uncordon, start the component again)."""

    name = "fault.revert"
    Params = RevertParams

    def run(self) -> StepOutcome:
        done = []
        for fault in reversed(self.ctx.faults):
            label = fault.label
            known_as = {label, fault.name, getattr(fault.params, "name", None)}
            if self.params.faults and not known_as & set(self.params.faults):
                continue
            if not fault.reversible:
                raise StepFailed(f"fault {label} cannot be reverted")
            fault.revert()
            fault.reverted = True
            self.ctx.emit("fault.reverted", name=label, driver=fault.name, index=fault.index)
            done.append(label)
        if not done:
            raise StepFailed("no injected fault matched " + ", ".join(self.params.faults or ["(any)"]))
        return StepOutcome(f"reverted {', '.join(done)}")

    @classmethod
    def check_spec(cls, spec: Any, scenario: Any) -> list[tuple[str, str]]:
        injected = scenario.data.get("inject")
        names: set[str] = set()
        for item in injected if isinstance(injected, list) else []:
            if isinstance(item, dict):
                names.update(str(item[k]) for k in ("label", "name", "fault") if k in item)
                if "name" in item and "fault" in item:
                    names.add(f"{item['fault']} {item['name']}")  # the label of drivers owning 'name'
        unknown = [f for f in spec.params.faults if f not in names]
        if unknown:
            return [(f"no injected fault named {', '.join(map(repr, unknown))}",
                     f"faults in 'inject': {', '.join(sorted(names)) or 'none'}")]
        return []


DRIVERS = [ExecStep, Wait, FaultRevert]

"""Recovery steps that need no cluster: run a command, wait, undo an injected fault."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dirt.core.durations import Duration
from dirt.core.errors import StepFailed
from dirt.drivers import Params, RecoveryStep, StepOutcome
from dirt.drivers.commands import CommandParams, run


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
    each_member = False
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


def fault_matches(fault: Any, names: list[str]) -> bool:
    """A fault is named by its label, its driver, or the 'name' parameter some drivers own."""
    known_as = {fault.name, fault.driver, str(fault.params.get("name", ""))} - {""}
    return not names or bool(known_as & set(names))


class FaultRevert(RecoveryStep):
    """Undo injected faults by their own revert (e.g. uncordon, start the component again)."""

    name = "fault.revert"
    each_member = False  # each fault is reverted on the member it broke
    Params = RevertParams

    def plan(self) -> list[str]:
        return [f"undo {', '.join(self.params.faults) if self.params.faults else 'every fault in effect'} "
                "by its own revert"]

    def run(self) -> StepOutcome:
        done = []
        for fault in reversed(self.ctx.faults.in_effect()):
            if not fault_matches(fault, self.params.faults):
                continue
            if not fault.reversible:
                raise StepFailed(f"fault {fault.name} cannot be reverted")
            detail = self.ctx.faults.revert_by_step(fault.index)
            done.append(f"{fault.name}" + (f" ({detail})" if detail else ""))
        if not done:
            raise StepFailed("no fault in effect matched " + ", ".join(self.params.faults or ["(any)"]))
        return StepOutcome(f"reverted {'; '.join(done)}")

    def resolves(self, fault: Any) -> str | None:
        # what it undid, it recorded itself (revert_by_step); this covers a plan's preview
        return "its own revert" if fault.reversible and fault_matches(fault, self.params.faults) else None

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

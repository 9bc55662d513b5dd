"""Faults that need no cluster: run a command (and its undo)."""

from __future__ import annotations

from pydantic import Field

from dirt.drivers import CheckResult, Fault
from dirt.drivers.commands import Command, CommandParams, run, show


class ExecFaultParams(CommandParams):
    verify: Command | None = Field(None, description="Command that exits 0 once the fault is in effect.")
    revert: Command | None = Field(None, description="Command that undoes the fault (used by rollback).")


class ExecFault(Fault):
    """Run a command that breaks something (optionally with a verify and a revert command)."""

    name = "exec"
    family = "command"
    Params = ExecFaultParams

    @property
    def reversible(self) -> bool:  # type: ignore[override]
        return self.params.revert is not None

    def plan(self) -> list[str]:
        lines = [f"run: {show(self.params.command)}"]
        if self.params.revert is not None:
            lines.append(f"undo with: {show(self.params.revert)}")
        return lines

    def inject(self) -> None:
        result = run(self.ctx, self.params.command, timeout=self.params.timeout, env=self.params.env,
                     cwd=self.params.cwd, what="fault command")
        self.state = {"returncode": result.returncode, "output": result.tail(5)}

    def verify_injected(self) -> CheckResult:
        if self.params.verify is None:
            return CheckResult(True, "command exited 0")
        result = run(self.ctx, self.params.verify, timeout=self.params.timeout, env=self.params.env,
                     cwd=self.params.cwd, check=False, what="verify command")
        return CheckResult(result.returncode == 0, f"verify command exited {result.returncode}")

    def revert(self) -> str:
        if self.params.revert is None:
            return ""
        result = run(self.ctx, self.params.revert, timeout=self.params.timeout, env=self.params.env,
                     cwd=self.params.cwd, what="revert command")
        return f"revert command exited 0 in {result.seconds:.1f}s"


DRIVERS = [ExecFault]

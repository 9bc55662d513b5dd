"""Faults that need no cluster: run a command (and its undo)."""

from __future__ import annotations

from pydantic import Field

from dirt.drivers import CheckResult, Fault, Params
from dirt.durations import Duration

Command = str | list[str]


class CommandParams(Params):
    """How to run one command: a string runs in bash (pipes work), a list as argv."""

    command: Command = Field(description="A bash script (string) or an argv list.")
    timeout: Duration = Field(60.0, description="Kill the command after this long.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: str | None = Field(None, description="Working folder (default: the scenario's folder).")


def run(ctx, command: Command, *, timeout: float, env: dict[str, str], cwd: str | None, check: bool = True,
        what: str | None = None):
    from pathlib import Path

    shell = "bash" if isinstance(command, str) else None
    folder = Path(cwd) if cwd else None
    if folder is not None and not folder.is_absolute():
        folder = ctx.scenario_dir / folder
    return ctx.run_command(command, shell=shell, timeout=timeout, env=env, cwd=folder, check=check, what=what)


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
        lines = [f"run: {_show(self.params.command)}"]
        if self.params.revert is not None:
            lines.append(f"undo with: {_show(self.params.revert)}")
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

    def revert(self) -> None:
        if self.params.revert is not None:
            run(self.ctx, self.params.revert, timeout=self.params.timeout, env=self.params.env,
                cwd=self.params.cwd, what="revert command")


def _show(command: Command) -> str:
    import shlex

    text = command if isinstance(command, str) else shlex.join(command)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:100] + (" ..." if len(text.strip().splitlines()) > 1 or len(first) > 100 else "")


DRIVERS = [ExecFault]

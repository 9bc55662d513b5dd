"""Commands as driver parameters: the ``exec`` fault, check and step, and anything else
that runs a script or an argv the scenario gives."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pydantic import Field

from dirt.clients.commands import CommandResult
from dirt.core.durations import Duration
from dirt.drivers.base import Params

Command = str | list[str]


class CommandParams(Params):
    """How to run one command: a string runs in bash (pipes work), a list as argv."""

    command: Command = Field(description="A bash script (string) or an argv list.")
    timeout: Duration = Field(60.0, description="Kill the command after this long.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    cwd: str | None = Field(None, description="Working folder (default: the scenario's folder).")


def run(ctx: Any, command: Command, *, timeout: float, env: dict[str, str], cwd: str | None, check: bool = True,
        what: str | None = None) -> CommandResult:
    """Run a scenario's command through the context: a string in bash, a list as argv,
    ``cwd`` relative to the scenario's folder."""
    shell = "bash" if isinstance(command, str) else None
    folder = Path(cwd) if cwd else None
    if folder is not None and not folder.is_absolute():
        folder = ctx.scenario_dir / folder
    return ctx.run_command(command, shell=shell, timeout=timeout, env=env, cwd=folder, check=check, what=what)


def show(command: Command) -> str:
    text = command if isinstance(command, str) else shlex.join(command)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:100] + (" ..." if len(text.strip().splitlines()) > 1 or len(first) > 100 else "")

"""The one way dirt runs another program: a timeout, captured output, a process group
that is killed whole, and a hook to abort a wait.

Every CLI dirt drives goes through ``run``: kubectl and helm for redeploys,
kwokctl, etcdctl and etcdutl for the sandbox, kind and docker for the kind
target, the operator's commands for a kubeconfig target, promtool for rule
checks, and the commands and playbook steps a scenario runs.  Output goes to
temporary files (a chatty command cannot fill a pipe and hang), and only the
last megabyte of each stream is kept.  ``on_wait`` is called about ten times a
second while the command runs; if it raises (a drill aborted, Ctrl-C), the
command's whole process group is killed and the exception goes on.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dirt.core.errors import CommandError

#: The most of each stream kept (the tail: where errors are).
KEEP_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CommandResult:
    argv: str  # the command as shown to people (a script's text, or the argv joined)
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 12) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])

    def last_line(self) -> str:
        return self.tail(1) or "(no output)"

    def check(self, what: str) -> CommandResult:
        """Raise ``CommandError`` naming ``what`` and the last line of output unless it exited 0."""
        if self.returncode != 0:
            raise CommandError(f"{what} exited with {self.returncode}: {self.last_line()}")
        return self


def run(
    command: Sequence[str] | str,
    *,
    timeout: float,
    shell: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    stdin: str | None = None,
    on_wait: Callable[[float], None] | None = None,
    what: str = "",
) -> CommandResult:
    """Run ``command`` and wait for it (at most ``timeout`` seconds).

    ``shell`` (``"bash"`` or ``"sh"``) runs ``command`` as a script: bash with
    ``-euo pipefail``, sh with ``-eu``.  Otherwise a string is split as a shell
    would split it, and a list is the argv.  Raises ``CommandError`` when the
    program cannot be started or runs out of time; a non-zero exit is returned
    (``.check(what)`` turns it into an error).
    """
    if shell:
        flags = ["-euo", "pipefail"] if shell == "bash" else ["-eu"]
        argv = [shell, *flags, "-c", str(command)]
        shown = str(command)
    else:
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        shown = command if isinstance(command, str) else shlex.join(argv)
    label = what or f"command {shown.strip().splitlines()[0][:60] if shown.strip() else ''!r}"
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=err, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                env=dict(env) if env is not None else None, cwd=str(cwd) if cwd else None, start_new_session=True,
            )
        except OSError as exc:
            raise CommandError(f"cannot run {label}: {exc.strerror or exc}",
                               missing=isinstance(exc, FileNotFoundError)) from None
        try:
            if stdin is not None and proc.stdin is not None:
                try:
                    proc.stdin.write(stdin.encode())
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            while proc.poll() is None:
                elapsed = time.monotonic() - start
                if elapsed > timeout:
                    kill_group(proc)
                    raise CommandError(f"{label} timed out after {timeout:g}s", timed_out=True)
                if on_wait is not None:
                    on_wait(elapsed)
                try:
                    proc.wait(0.1)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:
            kill_group(proc)
            raise
        return CommandResult(argv=shown, returncode=proc.returncode, stdout=_tail(out), stderr=_tail(err),
                             seconds=time.monotonic() - start)


def _tail(fh: object) -> str:
    size = fh.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
    fh.seek(max(0, size - KEEP_BYTES))  # type: ignore[attr-defined]
    data = fh.read()  # type: ignore[attr-defined]
    text = data.decode(errors="replace")
    return text if size <= KEEP_BYTES else "…" + text


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after 5 s; reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    except (ProcessLookupError, PermissionError):
        pass


def running_since(pid: int) -> float | None:
    """When process ``pid`` started (unix seconds), or None if no such process runs here.

    Tells a live run from a recycled PID: a process that started after the run
    began is not the run's.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            return None
        ticks = int(fields[19])
        with open("/proc/uptime", encoding="utf-8") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")

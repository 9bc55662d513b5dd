"""What a driver may use during a run, and nothing else: the ``Context``.

The engine builds one per run.  Drivers reach the cluster only through
``ctx.target``; they report through ``ctx.emit`` (the journal) and
``ctx.waiting`` (the live display); they sleep with ``ctx.sleep`` and run
programs with ``ctx.run_command`` so that an abort interrupts them at once; and
they see the faults of the run through ``ctx.faults`` (the engine's one
rollback path, behind a small protocol).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dirt.clients.commands import CommandResult, run
from dirt.core.errors import CommandError, DirtError, DrillAborted, StepFailed
from dirt.drivers.results import BackupRecord, CheckResult
from dirt.journal.events import Event
from dirt.journal.faults import FaultLife

if TYPE_CHECKING:  # pragma: no cover
    from dirt.targets.base import Target


class CancelToken:
    """Set by an abort condition or a signal; every wait in a drill honours it."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise DrillAborted(self.reason)

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``; raise ``DrillAborted`` as soon as cancelled."""
        if self._event.wait(max(0.0, seconds)):
            raise DrillAborted(self.reason)


class FaultControl(Protocol):
    """The run's faults, as the engine keeps them (``fault.revert`` needs them)."""

    def in_effect(self) -> list[FaultLife]: ...

    def revert_by_step(self, index: int) -> str:
        """Revert fault ``index`` as the current recovery step; return what was done."""
        ...


class _NoFaults:
    def in_effect(self) -> list[FaultLife]:
        return []

    def revert_by_step(self, index: int) -> str:
        raise StepFailed("no faults in this context")


class WaitClock:
    """Where a run's waiting goes: seconds slept between polls, by what was being waited for.

    ``Context.waiting`` names the wait (the label a progress line shows), ``Context.sleep``
    adds what it slept to that name.  The engine reads the totals before and after each
    step and phase, so a report can split a phase into the steps' own work and dirt's waits."""

    def __init__(self) -> None:
        self.label = "sleep"
        self.totals: dict[str, float] = {}

    def add(self, seconds: float) -> None:
        self.totals[self.label] = self.totals.get(self.label, 0.0) + seconds

    def snapshot(self) -> dict[str, float]:
        return dict(self.totals)

    def since(self, before: Mapping[str, float]) -> dict[str, float]:
        """The waits added since ``before`` (a snapshot), rounded to the millisecond; none below one."""
        waits = {label: round(total - before.get(label, 0.0), 3) for label, total in self.totals.items()}
        return {label: seconds for label, seconds in waits.items() if seconds >= 0.001}


class Context:
    def __init__(
        self,
        *,
        target: Target,
        run_dir: Path,
        variables: Mapping[str, Any] | None = None,
        emit: Callable[[Event], Any] | None = None,
        waiting: Callable[[str, float, float | None], None] | None = None,
        cancel: CancelToken | None = None,
        scenario_dir: Path | None = None,
        faults: FaultControl | None = None,
    ) -> None:
        self.target = target
        self.run_dir = run_dir
        self.vars: dict[str, Any] = dict(variables or {})
        self._emit = emit or (lambda event: None)
        self._waiting = waiting or (lambda what, elapsed, limit: None)
        self.cancel = cancel or CancelToken()
        self.scenario_dir = scenario_dir or Path.cwd()
        self.faults: FaultControl = faults or _NoFaults()
        self.backups: dict[str, BackupRecord] = {}
        self.backup_drivers: dict[str, Any] = {}  # the Backup driver (dirt.drivers.base) that took each backup
        self.deadline: float | None = None  # monotonic time the current step must end by
        self.step: Any = None  # the StepSpec being run (its playbook link, its name)
        self.wait_clock = WaitClock()

    def for_member(self, member: str | None) -> Context:
        """The run as one member of a fleet target sees it (``member: NAME`` on a step): that member's
        target, its variables over the run's; the journal, deadline, cancellation, faults and backups
        stay the run's.  ``None``: this context."""
        if member is None:
            return self
        return MemberContext(self, member, self.target.member_target(member))

    # -- reporting -------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        self._emit(event)

    def waiting(self, what: str, elapsed: float, limit: float | None) -> None:
        self.wait_clock.label = what
        self._waiting(what, elapsed, limit)

    # -- time ------------------------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        """Wait (interruptibly), counted against what ``waiting`` last named."""
        start = time.monotonic()
        try:
            self.cancel.wait(seconds)
        finally:
            self.wait_clock.add(time.monotonic() - start)

    def remaining(self, default: float) -> float:
        """Seconds left before the current step's deadline (``default`` if none)."""
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - time.monotonic())

    def poll(
        self,
        probe: Callable[[], CheckResult],
        *,
        what: str,
        timeout: float,
        interval: float = 1.0,
    ) -> tuple[CheckResult, float]:
        """Call ``probe`` until it passes or ``timeout`` runs out.

        Returns the last result and the seconds it took.  Exceptions from the
        probe count as a failed attempt (their text becomes the detail), so a
        flapping API does not end the wait early.  Retrying is tenacity's job.
        """
        import tenacity

        start = time.monotonic()

        def attempt() -> CheckResult:
            self.cancel.raise_if_cancelled()
            self.waiting(what, time.monotonic() - start, timeout)
            return probe_once(probe)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda r: not r.ok),
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_fixed(interval),
            sleep=self.sleep,
            retry_error_callback=lambda state: state.outcome.result(),
            reraise=True,
        )
        result = retrying(attempt)
        return result, time.monotonic() - start

    # -- processes -------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.target.command_env())
        return env

    def run_command(
        self,
        command: str | list[str],
        *,
        timeout: float,
        shell: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
        what: str | None = None,
    ) -> CommandResult:
        """Run a command with the target's environment (``KUBECONFIG``...), a timeout
        and the drill's cancellation; a failure is a ``StepFailed`` naming ``what``."""
        shown = command if isinstance(command, str) else " ".join(command)
        label = what or f"command {shown.strip().splitlines()[0][:60] if shown.strip() else ''!r}"
        full_env = self.environment()
        full_env.update(env or {})

        def on_wait(elapsed: float) -> None:
            self.cancel.raise_if_cancelled()
            self.waiting(label, elapsed, timeout)

        try:
            result = run(command, timeout=timeout, shell=shell, env=full_env, cwd=cwd or self.scenario_dir,
                         on_wait=on_wait, what=label)
        except CommandError as exc:
            raise StepFailed(str(exc)) from None
        if check and result.returncode != 0:
            raise StepFailed(f"{label} exited with {result.returncode}: {result.last_line()}")
        return result


class MemberContext(Context):
    """A fleet member's view of the run's ``Context`` (see ``Context.for_member``).

    Only the target and the variables are its own; every other attribute (the deadline and step the
    engine sets as steps start, the backups taken so far) is read from the run's context when asked.
    """

    def __init__(self, parent: Context, member: str, target: Target) -> None:  # noqa: D107 - no super(): a view
        self._parent = parent
        self.member = member
        self.target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parent, name)

    @property
    def vars(self) -> dict[str, Any]:  # type: ignore[override]
        return {**self._parent.vars, **self.target.variables(), "member": self.member}

    def for_member(self, member: str | None) -> Context:
        return self._parent.for_member(member)


def probe_once(probe: Callable[[], CheckResult]) -> CheckResult:
    """One attempt of a probe: an exception is a failed attempt, its text the detail."""
    try:
        return probe()
    except DrillAborted:
        raise
    except Exception as exc:  # noqa: BLE001 - a probe error is a failed probe
        return CheckResult(False, one_line(exc))


def one_line(exc: BaseException) -> str:
    """An exception in one line: dirt's own errors as written for people, others with their type."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, DirtError) and first:
        return first
    return f"{type(exc).__name__}: {first}".rstrip(": ")

"""What a driver is: the four kinds of building block a scenario names.

A scenario never contains code; it names drivers (``fault: node.delete``,
``check: deployment.available``, ``step: backup.restore``, ``backup: resources``)
and gives them parameters.  Each driver is one small class here-shaped:

* it declares ``kind``, ``name`` and a pydantic ``Params`` model, so the loader can
  validate its parameters with file:line errors and ``dirt schema`` can describe it;
* it receives its validated ``params`` and a ``Context`` (the target, the clock,
  the journal, the backups taken so far) and does its one job.

The engine knows drivers only through the registry (``dirt.engine.registry``), by
name; third-party drivers register under the ``dirt.drivers`` entry-point group.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from dirt.errors import DrillAborted, StepFailed

if TYPE_CHECKING:  # pragma: no cover
    from dirt.targets.base import Target

Kind = Literal["fault", "check", "step", "backup"]

#: Fault families, the unit of a target's guardrails (``allow: [...]`` in dirt.yaml).
FAMILIES: dict[str, str] = {
    "pods": "delete pods",
    "workload": "scale or change Deployments/StatefulSets",
    "namespace": "delete a namespace and everything in it",
    "node": "delete, cordon or drain nodes",
    "network": "deny traffic with NetworkPolicies",
    "control-plane": "stop kube-apiserver, controller-manager or scheduler",
    "etcd": "stop etcd or lose its data",
    "cluster": "delete the whole cluster",
    "command": "run an arbitrary command as a fault",
    "none": "harmless (sleeps, test doubles)",
}


class Params(BaseModel):
    """Base for driver parameter models: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepOutcome:
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackupRecord:
    """A backup a scenario can restore: taken in preflight or found existing."""

    name: str
    type: str
    location: str
    created_at: float  # unix seconds, from the backup's own metadata where possible
    objects: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_event(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "location": self.location,
            "created_at": self.created_at,
            "objects": self.objects,
            "data": dict(self.data),
        }

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> BackupRecord:
        return cls(
            name=event["name"],
            type=event["type"],
            location=event["location"],
            created_at=event["created_at"],
            objects=event.get("objects"),
            data=event.get("data") or {},
        )


@dataclass(frozen=True)
class CommandResult:
    argv: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def tail(self, lines: int = 12) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


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


class Context:
    """Everything a driver may use during a run, and nothing else.

    The engine builds one per run.  Drivers reach the cluster only through
    ``ctx.target``; they report through ``ctx.emit`` (journal) and ``ctx.waiting``
    (the live display); they sleep with ``ctx.sleep`` so aborts interrupt them.
    """

    def __init__(
        self,
        *,
        target: Target,
        run_dir: Path,
        variables: Mapping[str, Any] | None = None,
        emit: Callable[..., None] | None = None,
        waiting: Callable[[str, float, float | None], None] | None = None,
        cancel: CancelToken | None = None,
        scenario_dir: Path | None = None,
    ) -> None:
        self.target = target
        self.run_dir = run_dir
        self.vars: dict[str, Any] = dict(variables or {})
        self._emit = emit or (lambda event, **fields: None)
        self._waiting = waiting or (lambda what, elapsed, limit: None)
        self.cancel = cancel or CancelToken()
        self.scenario_dir = scenario_dir or Path.cwd()
        self.backups: dict[str, BackupRecord] = {}
        self.backup_drivers: dict[str, Any] = {}  # the Backup driver that took each backup
        self.faults: list[Any] = []  # the Fault instances injected so far, in order
        self.deadline: float | None = None  # monotonic time the current step must end by
        self.step: Any = None  # the StepSpec being run (its playbook link, its name)

    # -- reporting -------------------------------------------------------------------
    def emit(self, event: str, **fields: Any) -> None:
        self._emit(event, **fields)

    def waiting(self, what: str, elapsed: float, limit: float | None) -> None:
        self._waiting(what, elapsed, limit)

    # -- time ------------------------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        self.cancel.wait(seconds)

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
        last: list[CheckResult] = []

        def attempt() -> CheckResult:
            self.cancel.raise_if_cancelled()
            self.waiting(what, time.monotonic() - start, timeout)
            try:
                result = probe()
            except DrillAborted:
                raise
            except Exception as exc:  # noqa: BLE001 - a probe error is a failed probe
                result = CheckResult(False, _one_line(exc))
            last.append(result)
            return result

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
        """Run a command with a timeout, capturing output; aborts kill it.

        ``shell`` (e.g. ``"bash"``) runs ``command`` as a script with ``-euo
        pipefail``; otherwise a string is split like a shell would.
        """
        if shell:
            # dash (sh) has no pipefail: errexit and nounset only
            flags = ["-euo", "pipefail"] if shell == "bash" else ["-eu"]
            argv = [shell, *flags, "-c", command]
            shown = command
        else:
            argv = shlex.split(command) if isinstance(command, str) else list(command)
            shown = command if isinstance(command, str) else shlex.join(argv)
        full_env = self.environment()
        if env:
            full_env.update(env)
        start = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=full_env,
                    cwd=str(cwd or self.scenario_dir),
                    start_new_session=True,
                )
            except OSError as exc:
                raise StepFailed(f"cannot run {shown!r}: {exc.strerror or exc}") from exc
            label = what or f"command {shown.splitlines()[0][:60]!r}"
            try:
                while proc.poll() is None:
                    elapsed = time.monotonic() - start
                    if elapsed > timeout:
                        _kill_group(proc)
                        raise StepFailed(f"{label} timed out after {timeout:.0f}s")
                    self.waiting(label, elapsed, timeout)
                    self.cancel.wait(0.1)
            except DrillAborted:
                _kill_group(proc)
                raise
            out.seek(0)
            err.seek(0)
            result = CommandResult(
                argv=shown,
                returncode=proc.returncode,
                stdout=out.read().decode(errors="replace"),
                stderr=err.read().decode(errors="replace"),
                seconds=time.monotonic() - start,
            )
        if check and result.returncode != 0:
            raise StepFailed(f"{label} exited with {result.returncode}: {_last_line(result)}")
        return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    except ProcessLookupError:
        pass


def _last_line(result: CommandResult) -> str:
    text = result.tail(1)
    return text or "(no output)"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class Driver:
    """Common shape of every driver; see the four kinds below."""

    kind: ClassVar[Kind]
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = NoParams

    def __init__(self, params: Params, ctx: Context) -> None:
        self.params = params
        self.ctx = ctx

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else cls.name

    @classmethod
    def check_spec(cls, spec: Any, scenario: Any) -> list[tuple[str, str]]:
        """Load-time checks across fields (``(message, hint)`` pairs; none by default).

        ``scenario`` offers ``backup_names`` and the document's other sections.
        """
        return []


class Fault(Driver):
    """Breaks something.  ``inject`` must return once the break is done."""

    kind: ClassVar[Kind] = "fault"
    #: guardrail family (see ``FAMILIES``)
    family: ClassVar[str] = "none"
    #: whether ``revert`` can undo it (rollback calls it on failure)
    reversible: ClassVar[bool] = False

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        #: JSON-safe facts recorded at injection (what was deleted, which PIDs...),
        #: journaled so a later ``dirt rollback`` can revert after a crash.
        self.state: dict[str, Any] = {}
        #: the step's name and position in the scenario (set by the engine when injecting)
        self.label: str = self.name
        self.index: int = 0
        #: set once reverted (by a fault.revert step), so rollback does not do it twice
        self.reverted = False
        #: ``time.monotonic()`` when the break happened, for faults whose ``inject``
        #: goes on afterwards (a restart, a wait); default: when ``inject`` returned.
        self.effective_at: float | None = None

    def plan(self) -> list[str]:
        """The blast radius, in words, without touching anything."""
        return [self.summary()]

    def inject(self) -> None:
        raise NotImplementedError

    def verify_injected(self) -> CheckResult:
        """Is the fault really in effect?  Polled until it is, or the deadline."""
        return CheckResult(True, "no verification for this fault")

    def revert(self) -> None:
        """Undo the fault; must be safe to call when already undone."""


class Check(Driver):
    """Observes the system; never changes it."""

    kind: ClassVar[Kind] = "check"

    def probe(self) -> CheckResult:
        raise NotImplementedError


class RecoveryStep(Driver):
    """Does one recovery action and returns when it is done (raising if it failed)."""

    kind: ClassVar[Kind] = "step"

    def plan(self) -> list[str]:
        return [self.summary()]

    def run(self) -> StepOutcome:
        raise NotImplementedError


class Backup(Driver):
    """Takes (or finds) a backup in preflight, and restores it on request."""

    kind: ClassVar[Kind] = "backup"

    def plan(self) -> list[str]:
        return [self.summary()]

    def take(self, name: str) -> BackupRecord:
        raise NotImplementedError

    def restore(self, record: BackupRecord) -> StepOutcome:
        raise NotImplementedError

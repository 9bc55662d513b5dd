"""Every error dirt raises on purpose, in one tree.

The CLI catches ``DirtError`` and prints ``str(error)``: one clean line (or one
line per problem for a scenario file), never a traceback.  Exit codes come from
here alone: each class carries the code the CLI exits with, so the code that
raises decides what the user sees, and a finished drill's verdict maps to its
code through ``VERDICT_EXIT``::

    DirtError                       exit 1 unless a subclass says otherwise
    ├── UsageError                  exit 2: the user asked for something malformed
    │   ├── ScenarioError           a scenario file has problems (all of them listed)
    │   ├── ConfigError             dirt.yaml has a problem, or names an unknown target
    │   ├── PlaybookError           a playbook file or section cannot be used
    │   ├── GuardrailError          a destructive fault the target does not allow
    │   └── DrillLocked             another drill holds the target (its holder named)
    ├── DrillFailed                 exit 1: the drill ran and an expectation failed
    │   ├── CheckFailed             a check did not pass within its deadline
    │   ├── StepFailed              a recovery step (or fault injection) failed
    │   └── DeadlineExceeded        something took longer than its objective
    ├── DrillAborted                exit 3: an abort condition, a signal, a refusal
    ├── RollbackFailed              exit 1: a revert failed; the faults still in effect are named
    ├── TargetError                 exit 1: the target could not do what was asked
    │   ├── BinaryError             a sandbox binary is missing or failed to build
    │   └── KubeError               the Kubernetes API refused or failed a request
    │       ├── APINotFoundError
    │       ├── APIConflictError
    │       ├── APIForbiddenError
    │       └── APIUnavailableError
    ├── CommandError                a program dirt runs could not start or ran out of time
    ├── HttpError                   an HTTP endpoint could not be reached
    ├── MonitoringError             Prometheus/Alertmanager unreachable or refused
    ├── ReportError                 a run folder cannot be read or rendered
    └── HistoryError                the run-history store cannot be opened, read or written
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class DirtError(Exception):
    """Base of every error dirt raises deliberately."""

    exit_code: int = 1

    def show(self) -> str:
        """The text the CLI prints for this error (no traceback)."""
        return str(self)


class UsageError(DirtError):
    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, located by line and column (both 1-based)."""

    path: str
    line: int
    column: int
    message: str
    hint: str = ""
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        # One line per problem, whatever the file held: text quoted from it may carry newlines.
        message, hint = (_one_line(t) for t in (self.message, self.hint))
        text = f"{self.path}:{self.line}:{self.column}: {message}"
        if self.severity == "warning":
            text = f"{self.path}:{self.line}:{self.column}: warning: {message}"
        if hint:
            text += f" ({hint})"
        return text


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class ScenarioError(UsageError):
    """A scenario file has one or more problems; all of them are listed."""

    def __init__(self, path: Path | str, problems: list[Problem]):
        self.path = str(path)
        self.problems = [p for p in problems if p.severity == "error"]
        self.warnings = [p for p in problems if p.severity != "error"]
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(UsageError):
    pass


class PlaybookError(UsageError):
    pass


class GuardrailError(UsageError):
    pass


class DrillLocked(UsageError):
    """Another drill holds the target's drill lock; nothing was touched.  ``holder`` is who
    (``dirt.engine.lock.Holder``); ``stale`` when its process is gone but it may have left a fault."""

    def __init__(self, message: str, *, holder: object = None, stale: bool = False) -> None:
        self.holder = holder
        self.stale = stale
        super().__init__(message)


class DrillFailed(DirtError):
    exit_code = 1


class CheckFailed(DrillFailed):
    pass


class StepFailed(DrillFailed):
    """A step did not do its job; ``data`` (what the tool said: its errors, its warnings) goes to the journal."""

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.data = dict(data or {})


class DeadlineExceeded(DrillFailed):
    def __init__(self, what: str, objective_seconds: float, measured_seconds: float):
        self.what = what
        self.objective_seconds = objective_seconds
        self.measured_seconds = measured_seconds
        super().__init__(
            f"{what}: took {measured_seconds:.1f}s, objective {objective_seconds:.0f}s"
        )


class DrillAborted(DirtError):
    exit_code = 3


class TargetError(DirtError):
    pass


class BinaryError(TargetError):
    pass


class KubeError(TargetError):
    """The Kubernetes API failed a request; the message never carries a body."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = ""):
        self.status = status
        self.reason = reason
        super().__init__(message)


class APINotFoundError(KubeError):
    pass


class APIConflictError(KubeError):
    pass


class APIForbiddenError(KubeError):
    pass


class APIUnavailableError(KubeError):
    pass


class CommandError(DirtError):
    """A program could not be run: ``missing`` (not found), ``timed_out``, or another reason."""

    def __init__(self, message: str, *, missing: bool = False, timed_out: bool = False) -> None:
        self.missing = missing
        self.timed_out = timed_out
        super().__init__(message)


class HttpError(DirtError):
    pass


class MonitoringError(DirtError):
    pass


class HistoryError(DirtError):
    """The run-history store (SQLite or PostgreSQL) cannot be opened, read or written."""


class ReportError(DirtError):
    pass


class JournalError(ReportError):
    """A journal that is missing, not a file, too big, or holds no readable event: exit 2,
    as for any other malformed input the user pointed dirt at."""

    exit_code = 2


class RollbackFailed(DirtError):
    """One or more reverts failed: the faults named are still in effect."""


class Verdict(StrEnum):
    """How a drill ended."""

    PASSED = "passed"
    FAILED = "failed"
    ABORTED = "aborted"


#: A finished drill's exit code, by verdict (the same as its error class's).
VERDICT_EXIT: dict[str, int] = {Verdict.PASSED: 0, Verdict.FAILED: DrillFailed.exit_code,
                                Verdict.ABORTED: DrillAborted.exit_code}


def exit_code_for(verdicts: Iterable[str]) -> int:
    """The exit code of several drills: aborted beats failed beats passed."""
    codes = {VERDICT_EXIT.get(v, 1) for v in verdicts}
    for code in (DrillAborted.exit_code, DrillFailed.exit_code):
        if code in codes:
            return code
    return 0

"""What drivers hand back: a check's result, a step's outcome, a backup's record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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

"""Durations as people write them in scenario files: ``90s``, ``2m``, ``1h30m``, ``500ms``.

Scenario fields typed ``Duration`` accept such strings (or a bare number of
seconds) and hold a float number of seconds, so the engine never parses text.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")


def parse_duration(value: Any) -> float:
    """Return seconds for ``value``; raise ``ValueError`` with a hint otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s or 2m, got a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 90s or 2m, got {type(value).__name__}")
    text = value.strip().replace(" ", "")
    if not text or not _WHOLE.match(text):
        raise ValueError(f"{value!r} is not a duration: write it like 500ms, 90s, 2m or 1h30m")
    return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))


def format_duration(seconds: float | None) -> str:
    """Human form used in reports and the live display: ``1m05s``, ``12.3s``."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda s: f"{s:g}s", return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 500ms, 90s, 2m, 1h30m, or a number of seconds.",
        }
    ),
]

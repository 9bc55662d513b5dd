"""Durations as people write them in scenario files: ``90s``, ``2m``, ``1h30m``, ``500ms``.

Scenario fields typed ``Duration`` accept such strings (or a bare number of
seconds) and hold a float number of seconds, so the engine never parses text.

Every duration is finite, not negative and at most ``MAX_DURATION`` (7 days: no
drill waits longer, and a typo such as ``99999999h`` would otherwise overflow
timers or hang a thread).  ``Interval`` (how often something polls) is at least
``MIN_INTERVAL`` (100 ms) so a ``0s`` cannot busy-loop.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

MAX_DURATION = 7 * 86400.0
MIN_INTERVAL = 0.1
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$")


def parse_duration(value: Any) -> float:
    """Return seconds for ``value``; raise ``ValueError`` with a hint otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s or 2m, got a boolean")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if not text or len(text) > 64 or not _WHOLE.match(text):
            raise ValueError(f"{_short(value)} is not a duration: write it like 500ms, 90s, 2m or 1h30m")
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    else:
        raise ValueError(f"expected a duration such as 90s or 2m, got {type(value).__name__}")
    if math.isnan(seconds):
        raise ValueError("a duration must be a number of seconds or 90s/2m, not NaN")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError(f"{_short(value)} is too long: at most 7d ({MAX_DURATION:g}s)")
    return seconds


def parse_interval(value: Any) -> float:
    """A polling interval: a duration of at least ``MIN_INTERVAL``."""
    seconds = parse_duration(value)
    if seconds < MIN_INTERVAL:
        raise ValueError(f"an interval must be at least 100ms (got {format_duration(seconds)}): "
                         "a shorter one busy-loops against the target")
    return seconds


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


def format_limit(seconds: float | None) -> str:
    """A configured duration as one would write it in a scenario: ``30s``, ``1m``, ``1m30s``,
    ``0.5s``, ``2h``.  ``format_duration`` is for measured times (``12.3s``, ``1m05s``)."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds):
        return "-"
    if seconds < 60:
        return f"{seconds:g}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{rest}s" if rest else ""]
    return "".join(parts)


def _schema(minimum: float, description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
                {"type": "number", "minimum": minimum, "maximum": MAX_DURATION},
            ],
            "description": description,
        }
    )


_AS_SECONDS = PlainSerializer(lambda s: f"{s:g}s", return_type=str)

Duration = Annotated[float, BeforeValidator(parse_duration), _AS_SECONDS,
                     _schema(0, "A duration: 500ms, 90s, 2m, 1h30m, or a number of seconds (at most 7d).")]
Interval = Annotated[float, BeforeValidator(parse_interval), _AS_SECONDS,
                     _schema(MIN_INTERVAL, "An interval: at least 100ms, at most 7d.")]

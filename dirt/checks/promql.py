"""``promql``: a steady-state or verify check on a PromQL query's value.

Every sample of the instant query must satisfy the bounds (``min``/``max``, or
``equals``); with ``for``, it must keep doing so for that long (the check is
retried meanwhile, so use ``within`` longer than ``for``).  An empty result
fails unless ``empty: pass`` — "no data" is rarely healthy.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

from pydantic import Field, model_validator

from dirt.core.durations import Duration
from dirt.drivers import Check, CheckResult, Context, Params


class PromQLParams(Params):
    query: str = Field(description="PromQL instant query.")
    min: float | None = Field(None, allow_inf_nan=False, description="Every value must be >= this.")
    max: float | None = Field(None, allow_inf_nan=False, description="Every value must be <= this.")
    equals: float | None = Field(None, allow_inf_nan=False, description="Every value must equal this.")
    for_: Duration = Field(0.0, alias="for", description="The condition must hold this long.")
    empty: Literal["fail", "pass"] = Field("fail", description="What an empty result means.")

    @model_validator(mode="after")
    def _bounds(self) -> PromQLParams:
        if self.min is None and self.max is None and self.equals is None:
            raise ValueError("give 'min', 'max' or 'equals'")
        if self.equals is not None and (self.min is not None or self.max is not None):
            raise ValueError("'equals' cannot be combined with 'min'/'max'")
        return self


class PromQLCheck(Check):
    """Query Prometheus; pass when every value is within bounds (for a while)."""

    name = "promql"
    each_member = False  # on a fleet without member: the fleet's Prometheus
    Params = PromQLParams

    def __init__(self, params: Params, ctx: Context) -> None:
        super().__init__(params, ctx)
        self._holding_since: float | None = None
        self._client: Any = None  # one HTTP session for all the attempts

    def _ok(self, value: float) -> bool:
        p = self.params
        if math.isnan(value):
            return False
        if p.equals is not None:
            return math.isclose(value, p.equals, rel_tol=1e-9, abs_tol=1e-12)
        return (p.min is None or value >= p.min) and (p.max is None or value <= p.max)

    def _bounds(self) -> str:
        p = self.params
        if p.equals is not None:
            return f"== {p.equals:g}"
        parts = []
        if p.min is not None:
            parts.append(f">= {p.min:g}")
        if p.max is not None:
            parts.append(f"<= {p.max:g}")
        return " and ".join(parts)

    def probe(self) -> CheckResult:
        if self._client is None:
            self._client = self.ctx.target.monitoring()
        samples = self._client.query(self.params.query)
        data: dict[str, Any] = {"samples": [{"labels": labels, "value": value} for labels, value in samples[:20]]}
        if not samples:
            ok, detail = self.params.empty == "pass", "query returned no data"
        else:
            bad = [(labels, v) for labels, v in samples if not self._ok(v)]
            ok = not bad
            if ok:
                detail = f"{len(samples)} value(s) {self._bounds()}"
            else:
                labels, value = bad[0]
                detail = f"{_series(labels)} = {value:g}, not {self._bounds()}"
                if len(bad) > 1:
                    detail += f" (and {len(bad) - 1} more of {len(samples)})"
        now = time.monotonic()
        if not ok:
            self._holding_since = None
            return CheckResult(False, detail, data)
        if self._holding_since is None:
            self._holding_since = now
        held = now - self._holding_since
        if held < self.params.for_:
            return CheckResult(False, f"{detail}, held {held:.0f}s of {self.params.for_:g}s", data)
        return CheckResult(True, detail, data)


def _series(labels: dict[str, str]) -> str:
    """A sample's series the way PromQL writes it: ``name{label="value",...}``; "value" if none."""
    name = labels.get("__name__", "")
    rest = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return (name + (f"{{{rest}}}" if rest else "")) or "value"


DRIVERS = [PromQLCheck]

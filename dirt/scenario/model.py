"""The scenario format, as typed models.

A scenario file is validated in two passes (see ``loader.py``): the document
shape (``ScenarioDocument``: sections, metadata, expectations, timing) by these
models, then each step by the parameter model of the driver it names.  The
result is a ``Scenario``: the same sections with every step resolved to a
``StepSpec`` holding its driver name and validated parameters.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializeAsAny,
    WithJsonSchema,
    model_validator,
)

from dirt.clients.monitoring import safe_url, url_problem
from dirt.core.durations import Duration, Interval
from dirt.documents.base import Model
from dirt.drivers import Kind, Params

API_VERSION = "dirt/v1"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
VarValue = str | int | float | bool


class Metadata(Model):
    name: Name = Field(description="Scenario name: lowercase letters, digits and '-'.")
    description: str = ""
    owner: str | None = Field(None, description="Team or person answerable for this drill.")
    tags: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")]] = Field(
        default_factory=list, description="Free labels; become pytest markers."
    )
    playbook: str | None = Field(
        None, description="Default playbook file for '#section' links, e.g. playbooks/x.md."
    )


class AlertMatch(Model):
    """An alert, by name and optional exact label values."""

    name: str = Field(description="Alert name (the rule's `alert:`).")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels that must match exactly.")


class AlertExpectation(AlertMatch):
    fires_within: Duration = Field(description="Deadline from the fault taking effect to the alert firing.")
    resolves_within: Duration | None = Field(
        None, description="Deadline from the end of recovery to the alert resolving."
    )
    sources: list[Literal["prometheus", "alertmanager"]] | None = Field(
        None, description="Where to look; default: every one the target has."
    )


#: Bounds of ``expect.availability`` sampling (see ``AvailabilityExpectation``).
HTTP_MIN_INTERVAL = 0.05
PROMQL_MIN_INTERVAL = 1.0
MAX_PROBE_TIMEOUT = 30.0
#: An HTTP header's name (RFC 9110's token).
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def parse_ratio(value: Any) -> float:
    """``min_success`` as people write it: ``"99.9%"`` or a number from 0 to 1."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage such as '99.9%' or a number from 0 to 1, got a boolean")
    if isinstance(value, str):
        text = value.strip()
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
        if match is None:
            raise ValueError(f"{text[:40]!r} is not a percentage: write it like '99.9%' (or 0.999)")
        ratio = float(match.group(1)) / 100
    elif isinstance(value, (int, float)):
        ratio = float(value)
        if ratio > 1 and math.isfinite(ratio):
            raise ValueError(f"{value:g} is more than 1: write a percentage as '{value:g}%', or a ratio such as 0.999")
    else:
        raise ValueError(f"expected a percentage such as '99.9%' or a number from 0 to 1, got {type(value).__name__}")
    if not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):
        raise ValueError("a success ratio lies between 0% and 100% (0 and 1)")
    return ratio


Ratio = Annotated[
    float, BeforeValidator(parse_ratio), PlainSerializer(lambda r: f"{r * 100:g}%", return_type=str),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?\s*%$"},
                              {"type": "number", "minimum": 0, "maximum": 1}],
                    "description": "A success ratio: a percentage such as '99.9%', or a number from 0 to 1."}),
]


class AvailabilityExpectation(Model):
    """User impact, measured continuously from just before the first fault to the end of verify.

    Exactly one of ``http`` (dirt asks the URL itself) or ``promql`` (a success-ratio
    expression on the target's Prometheus).  A sample fails when the user would have
    noticed: no answer within ``timeout``, a status outside ``expect_status``, an answer
    slower than ``max_latency``; for PromQL, a value below ``min_success`` (1 when not
    given), or no value at all (an empty result or Prometheus unreachable: "unknown").
    """

    name: str | None = Field(None, description="Name in the report; default: the URL or the expression.")
    http: str | None = Field(None, description="URL to GET every interval; {{ vars }} are substituted.")
    promql: str | None = Field(
        None, description="Expression whose value is the success ratio (0..1), e.g. "
        "sum(rate(ok_total[30s])) / sum(rate(requests_total[30s])).  The lowest series counts."
    )
    interval: Duration | None = Field(
        None, description="How often to sample: http default 200ms (at least 50ms), promql default 1s (at least 1s)."
    )
    timeout: Duration = Field(
        1.0, gt=0, le=MAX_PROBE_TIMEOUT,
        description="http: an answer later than this is a failed sample (the user gave up); default 1s, at most 30s.",
    )
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        None, min_length=1, description="http: status codes that count as success; default any 2xx or 3xx."
    )
    max_latency: Duration | None = Field(
        None, gt=0, description="http: a slower answer counts as a failure (the user waited too long)."
    )
    served_by: str | None = Field(
        None, max_length=64,
        description="http: a response header that names who served each answer (a fleet entry point's "
        "X-Served-By): the report then shows, second by second, which member served the users.",
    )
    min_success: Ratio | None = Field(
        None, description="Objective: share of successful samples, '99.9%' or 0.999.  None: measured only."
    )
    max_outage: Duration | None = Field(
        None, description="Objective: the longest run of failed samples (first failure to the next success)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> AvailabilityExpectation:
        if (self.http is None) == (self.promql is None):
            raise ValueError("give exactly one of 'http' (a URL to ask) or 'promql' (a success-ratio expression)")
        if self.http is not None:
            if "{{" not in self.http:
                problem = url_problem(self.http)
                if problem:
                    raise ValueError(f"'http': {problem}")
            if self.interval is not None and self.interval < HTTP_MIN_INTERVAL:
                raise ValueError("an http probe's 'interval' must be at least 50ms")
            if self.max_latency is not None and self.max_latency > self.timeout:
                raise ValueError(f"'max_latency' ({self.max_latency:g}s) is longer than 'timeout' "
                                 f"({self.timeout:g}s): no answer could be that slow; raise 'timeout'")
            if self.served_by is not None and not HEADER_NAME.fullmatch(self.served_by):
                raise ValueError(f"'served_by': {self.served_by!r} is not a header name "
                                 "(letters, digits and '-', e.g. X-Served-By)")
        else:
            if not (self.promql or "").strip():
                raise ValueError("'promql' must not be empty")
            if self.interval is not None and self.interval < PROMQL_MIN_INTERVAL:
                raise ValueError("a promql probe's 'interval' must be at least 1s (Prometheus evaluates no faster)")
            http_only = [k for k in ("expect_status", "max_latency", "served_by") if getattr(self, k) is not None]
            if http_only:
                raise ValueError(f"{', '.join(repr(k) for k in http_only)} apply only to 'http' probes")
        return self

    @property
    def kind(self) -> str:
        return "http" if self.http is not None else "promql"

    @property
    def every(self) -> float:
        """The sampling interval, with the kind's default."""
        if self.interval is not None:
            return self.interval
        return 0.2 if self.http is not None else 1.0

    def title(self) -> str:
        if self.name:
            return self.name
        if self.http is not None:
            return f"GET {self.http if '{{' in self.http else safe_url(self.http)}"
        text = " ".join((self.promql or "").split())
        return text if len(text) <= 60 else text[:57] + "..."


class Expect(Model):
    alerts: list[AlertExpectation] = Field(default_factory=list)
    silent: list[AlertMatch | str] = Field(
        default_factory=list, description="Alerts that must not fire during the drill."
    )
    mttr: Duration | None = Field(
        None, description="Objective for MTTR: fault taking effect to every verify check passing."
    )
    availability: list[AvailabilityExpectation] = Field(
        default_factory=list, max_length=20,
        description="User impact measured continuously from just before the first fault to the end of verify "
                    "(at most 20 probes: each samples on a thread of its own).",
    )

    @model_validator(mode="after")
    def _probe_names_unique(self) -> Expect:
        titles = [a.title() for a in self.availability]
        twice = sorted({t for t in titles if titles.count(t) > 1})
        if twice:
            raise ValueError(f"availability probes need different names; {', '.join(repr(t) for t in twice)} "
                             "is used twice (set 'name:')")
        return self


class AbortCondition(Model):
    """Stop the drill when a PromQL value crosses a threshold, or an alert fires."""

    name: str | None = None
    promql: str | None = None
    above: float | None = Field(None, allow_inf_nan=False)
    below: float | None = Field(None, allow_inf_nan=False)
    alert: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    for_: Duration = Field(0.0, alias="for", description="How long the breach must last.")

    @model_validator(mode="after")
    def _one_source(self) -> AbortCondition:
        if (self.promql is None) == (self.alert is None):
            raise ValueError("give exactly one of 'promql' or 'alert'")
        if self.promql is not None and self.above is None and self.below is None:
            raise ValueError("a 'promql' condition needs 'above' or 'below' (the threshold)")
        return self

    def title(self) -> str:
        if self.name:
            return self.name
        if self.alert:
            return f"alert {self.alert}"
        bound = f"> {self.above:g}" if self.above is not None else f"< {self.below:g}"
        return f"{self.promql} {bound}"


class Timing(Model):
    poll_interval: Interval = Field(1.0, description="How often alerts and abort conditions are evaluated (≥ 100ms).")
    steady_state_within: Duration = Field(60.0, description="Default deadline for steady-state checks.")
    inject_within: Duration = Field(60.0, description="Default deadline for a fault to take effect.")
    step_within: Duration = Field(600.0, description="Default deadline for a recovery or setup step.")
    verify_within: Duration = Field(300.0, description="Default deadline for verify checks.")


#: The steps sections as written: mappings whose driver-specific keys are checked
#: against the driver's own parameter model by the loader.
RawStep = dict[str, Any]


class ScenarioDocument(Model):
    """The shape of a scenario file before its steps are resolved."""

    api_version: Literal["dirt/v1"] = Field(alias="apiVersion")
    kind: Literal["Scenario"]
    metadata: Metadata
    target: str | None = Field(None, description="Target from dirt.yaml; default: its default target.")
    vars: dict[str, VarValue] = Field(
        default_factory=dict, description="Values substituted for {{ name }} in steps and playbook steps."
    )
    setup: list[RawStep] = Field(default_factory=list, description="Steps run first (e.g. deploy the app).")
    backups: list[RawStep] = Field(default_factory=list, description="Backups taken (or found) in preflight.")
    steady_state: list[RawStep] = Field(default_factory=list, description="Checks that must pass before injecting.")
    inject: list[RawStep] = Field(min_length=1, description="The faults, injected in order.")
    expect: Expect = Field(default_factory=Expect)
    abort_when: list[AbortCondition] = Field(default_factory=list)
    recover: list[RawStep] = Field(default_factory=list, description="Recovery steps, run in order.")
    verify: list[RawStep] = Field(default_factory=list, description="Checks that prove recovery.")
    rollback: list[RawStep] = Field(
        default_factory=list, description="Extra steps run on failure or abort, after faults are reverted."
    )
    cleanup: list[RawStep] = Field(default_factory=list, description="Steps always run at the end.")
    timing: Timing = Field(default_factory=Timing)


#: Which step kind each section holds, and the key that names the driver.
SECTIONS: dict[str, Kind] = {
    "setup": "step",
    "backups": "backup",
    "steady_state": "check",
    "inject": "fault",
    "recover": "step",
    "verify": "check",
    "rollback": "step",
    "cleanup": "step",
}


class PlaybookRef(Model):
    path: str  # as resolved on disk (absolute)
    display: str  # as the scenario wrote it, e.g. playbooks/x.md
    anchor: str | None = None
    title: str | None = None  # the section heading


class StepSpec(Model):
    """One resolved step: which driver, with which validated parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    section: str
    index: int
    kind: Kind
    driver: str
    name: str
    params: SerializeAsAny[Params]
    playbook: PlaybookRef | None = None
    within: float | None = None
    interval: float = 1.0
    rollback: bool = True  # faults: may rollback revert it?
    member: str | None = None  # on a fleet target: the member it acts on (None: the fleet, or every member)
    line: int = 0
    column: int = 0


class Scenario(Model):
    """A validated scenario, ready for the engine."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    path: Path
    metadata: Metadata
    target: str | None
    vars: dict[str, VarValue]
    setup: list[StepSpec]
    backups: list[StepSpec]
    steady_state: list[StepSpec]
    inject: list[StepSpec]
    expect: Expect
    abort_when: list[AbortCondition]
    recover: list[StepSpec]
    verify: list[StepSpec]
    rollback: list[StepSpec]
    cleanup: list[StepSpec]
    timing: Timing
    playbook: PlaybookRef | None = None
    line: int = 1  # where metadata.name is, for pytest locations
    digest: str = ""  # sha256 of the file text
    warnings: tuple[Any, ...] = ()  # Problems of severity "warning" found while loading

    @property
    def name(self) -> str:
        return self.metadata.name

    def steps(self) -> list[StepSpec]:
        return [s for section in SECTIONS for s in getattr(self, section)]

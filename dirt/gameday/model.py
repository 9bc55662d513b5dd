"""The game-day format, as typed models (``gamedays/*.yaml``, ``kind: GameDay``).

A game day is a plan of drills run together by people in roles, once or on a
schedule: which scenarios run in which order (``depends_on``, ``on_failure``),
on which target, with which variables; when it may run (cron in a time zone,
jitter, blackouts, alerts that must not be firing); whom to tell (webhooks); and
who must allow it first (an approval webhook, or a named person).

Secrets never sit in the file: a webhook whose URL is a secret (Slack's are) is
given as ``url_env``, the name of an environment variable, as in dirt.yaml.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from dirt.core.durations import Duration, parse_duration
from dirt.documents.base import Model
from dirt.scenario.model import NAME_PATTERN, AbortCondition, Name, VarValue

KIND = "GameDay"
ROLES = ("facilitator", "responder", "observer", "approver")
EVENTS = ("start", "drill", "failure", "finish")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
#: Longest ``every`` of a drill: drills proven yearly are common, ten years is a typo.
MAX_EVERY = 3650 * 86400.0
_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*d\s*$")


def _parse_every(value: Any) -> float:
    """A drill's ``every``: a duration (``12h``, ``90d``) that, unlike a step's, may exceed 7 days."""
    match = _DAYS.match(value) if isinstance(value, str) else None
    if match is None and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 7 * 86400:
        seconds = float(value)
    elif match is not None:
        seconds = float(match.group(1)) * 86400
    else:
        return parse_duration(value)
    if not 0 < seconds <= MAX_EVERY:
        raise ValueError(f"{value!r} is out of range: at most 3650d")
    return seconds


LongDuration = Annotated[
    float, BeforeValidator(_parse_every), PlainSerializer(lambda s: f"{s:g}s", return_type=str),
    WithJsonSchema({"anyOf": [{"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
                              {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_EVERY}],
                    "description": "A duration: 90s, 12h, 90d, or a number of seconds (at most 3650d)."})]


class GameDayMetadata(Model):
    name: Name = Field(description="Game-day name: lowercase letters, digits and '-'.")
    description: str = ""
    owner: str | None = Field(None, description="Team or person answerable for this game day.")


class Participant(Model):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["facilitator", "responder", "observer", "approver"]
    contact: str | None = Field(None, max_length=300, description="E-mail, chat handle or phone: how to reach them.")


class DrillEntry(Model):
    """One drill of the day: a scenario file (relative to the game-day file) and how it fits in."""

    scenario: str = Field(min_length=1, description="Scenario file, relative to the game-day file.")
    name: Name | None = Field(None, description="Id for depends_on and reports (default: the scenario's file name).")
    vars: dict[str, VarValue] = Field(default_factory=dict, description="Variables passed to the scenario.")
    target: str | None = Field(
        None, description="Target from dirt.yaml (default: the game day's, then the scenario's).")
    depends_on: list[Name] = Field(default_factory=list, description="Drills that must have passed first.")
    on_failure: Literal["stop", "continue"] = Field(
        "stop", description="stop: the day ends (later drills skipped); continue: go on with the next drill.")
    weight: float = Field(1.0, gt=0, le=1000, allow_inf_nan=False, description="Share in the game-day score.")
    every: LongDuration | None = Field(
        None, description="How often this drill must pass (e.g. 90d); later than that it is overdue "
                          "(default: the schedule's interval).")
    for_each_member: bool = Field(
        False, description="On a fleet target: run the drill once per member, in the fleet's order and never two "
                           "at once, with {{ drilled_member }} naming the member (write member: "
                           "\"{{ drilled_member }}\" in the scenario); an alert of another member (FleetMemberDown, "
                           "KubeAPIDown) aborts the run, and each member's run is reported and recorded as "
                           "DRILL-MEMBER.")

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        stem = Path(self.scenario).stem.lower()
        return re.sub(r"[^a-z0-9-]+", "-", stem).strip("-") or "drill"


class DateRange(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: date | datetime = Field(alias="from", description="First day (or moment) of the blackout.")
    to: date | datetime = Field(description="Last day (inclusive) or moment (exclusive) of the blackout.")

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _moment_text(cls, value: Any) -> Any:
        """A quoted '2027-12-20T00:00' is a moment, not a day (pydantic would take a midnight for a date)."""
        if isinstance(value, str) and len(value.strip()) > 10:
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                return value  # pydantic says what is wrong with it
        return value


class WeeklyWindow(Model):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    from_: str = Field("00:00", alias="from", description="HH:MM, in the schedule's time zone.")
    to: str = Field("24:00", description="HH:MM (24:00: end of day), in the schedule's time zone.")

    @field_validator("from_", "to")
    @classmethod
    def _clock(cls, value: str) -> str:
        if value != "24:00" and not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a time of day; write HH:MM, e.g. 08:30")
        return value

    def clock(self) -> tuple[time, time | None]:
        """(start, end); end None means midnight at the end of the day."""
        start = time.fromisoformat(self.from_)
        return start, (None if self.to == "24:00" else time.fromisoformat(self.to))


class Blackout(Model):
    """When a scheduled run must not start: a date range, a freeze, or a weekly window."""

    name: str | None = Field(None, description="Shown where a run is skipped, e.g. 'year-end freeze'.")
    dates: DateRange | None = None
    freeze: DateRange | None = Field(None, description="A change freeze: like dates, reported as a freeze.")
    weekly: WeeklyWindow | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Blackout:
        given = [k for k in ("dates", "freeze", "weekly") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'dates', 'freeze' or 'weekly'")
        return self


class Schedule(Model):
    cron: str = Field(min_length=1, description="Five-field cron expression, e.g. '0 10 * * 2' (10:00 on Tuesdays).")
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in, e.g. Europe/Berlin.")
    jitter: Duration = Field(0.0, description="Start up to this much later than the cron time (spreads load).")
    starting_deadline: Duration = Field(
        1800.0, description="How late after its cron time and jitter a scheduled run may still start (a busy "
                            "scheduler, a machine that was off); later, `dirt gameday run --trigger schedule` "
                            "says 'not a scheduled slot' and does nothing.")
    blackouts: list[Blackout] = Field(default_factory=list)
    skip_when_firing: list[str] = Field(
        default_factory=list, description="Alert names: a scheduled run is skipped while any of them fires.")


class Notify(Model):
    """A webhook told about the day: Slack-compatible (``text`` + blocks) or generic JSON."""

    name: str | None = None
    url: str | None = Field(None, description="Webhook URL (not a secret: a local receiver, an internal relay).")
    url_env: EnvName | None = Field(None, description="Environment variable holding the webhook URL (a secret).")
    format: Literal["slack", "json"] = "json"
    on: list[Literal["start", "drill", "failure", "finish"]] = Field(
        default_factory=lambda: list(EVENTS), description="Which moments are sent.")
    bearer_token_env: EnvName | None = Field(None, description="Environment variable holding a bearer token.")
    timeout: Duration = Field(10.0, description="How long one delivery may take.")

    @model_validator(mode="after")
    def _one_url(self) -> Notify:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of 'url' or 'url_env'")
        return self


class Approval(Model):
    """Who must allow the day before anything is touched."""

    webhook: str | None = Field(None, description="Preflight webhook: POSTed the plan, must answer {\"allow\": true}.")
    webhook_env: EnvName | None = Field(None, description="Environment variable holding the webhook URL.")
    bearer_token_env: EnvName | None = None
    timeout: Duration = Field(30.0, description="No answer in time is a veto.")
    approvers: list[str] = Field(
        default_factory=list,
        description="Who may approve with --approved-by (default: participants with role approver).")

    @model_validator(mode="after")
    def _at_most_one_url(self) -> Approval:
        if self.webhook is not None and self.webhook_env is not None:
            raise ValueError("give 'webhook' or 'webhook_env', not both")
        return self


class GameDayDocument(Model):
    api_version: Literal["dirt/v1"] = Field(alias="apiVersion")
    kind: Literal["GameDay"]
    metadata: GameDayMetadata
    participants: list[Participant] = Field(default_factory=list)
    target: str | None = Field(None, description="Target from dirt.yaml for every drill (a drill may override it).")
    vars: dict[str, VarValue] = Field(default_factory=dict, description="Variables passed to every drill.")
    drills: list[DrillEntry] = Field(min_length=1, max_length=100)
    abort_when: list[AbortCondition] = Field(
        default_factory=list, description="Guards for the whole day: added to every drill's own.")
    schedule: Schedule | None = None
    notify: list[Notify] = Field(default_factory=list, max_length=20)
    approval: Approval | None = None


class GameDay(Model):
    """A validated game day: drill files resolved to absolute paths, ids unique, dependencies known."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    path: Path
    document: GameDayDocument
    drill_paths: dict[str, Path]  # drill id -> scenario file (absolute)
    digest: str = ""
    warnings: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        return self.document.metadata.name

    @property
    def drills(self) -> list[DrillEntry]:
        return list(self.document.drills)

    @property
    def schedule(self) -> Schedule | None:
        return self.document.schedule

    def approvers(self) -> list[str]:
        """Who may approve with --approved-by: ``approval.approvers``, else the participants with role approver."""
        approval = self.document.approval
        if approval is not None and approval.approvers:
            return list(approval.approvers)
        return [p.name for p in self.document.participants if p.role == "approver"]

    def order(self) -> list[DrillEntry]:
        """The drills in run order: as written, each after the drills it depends on."""
        by_id = {d.id: d for d in self.document.drills}
        done: list[str] = []

        def visit(entry: DrillEntry) -> None:
            if entry.id in done:
                return
            for dep in entry.depends_on:
                visit(by_id[dep])
            done.append(entry.id)

        for entry in self.document.drills:
            visit(entry)
        return [by_id[i] for i in done]


def gameday_schema() -> dict[str, Any]:
    """The JSON Schema of game-day files, for editors (``dirt schema --kind gameday``)."""
    schema = GameDayDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dirt game day (apiVersion dirt/v1, kind GameDay)"
    return schema


__all__ = ["KIND", "ROLES", "EVENTS", "WEEKDAYS", "NAME_PATTERN", "GameDayMetadata", "Participant", "DrillEntry",
           "DateRange", "WeeklyWindow", "Blackout", "Schedule", "Notify", "Approval", "GameDayDocument", "GameDay",
           "LongDuration", "gameday_schema"]

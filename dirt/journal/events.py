"""Every event a journal can hold, one small model each: the journal's schema in one place.

A journal is JSON Lines.  Each line is one of the models below, with ``event``
(its literal name), ``seq`` (1, 2, ...), ``ts`` (wall clock, unix seconds) and
``t`` (seconds since the run started, from the monotonic clock).  The writer
fills in those three; the code that emits an event builds the model, so a
misspelt event name or field is a ``TypeError``/``ValidationError`` at the call
site, not a silent gap in a report.

Schema versions: ``run.start`` carries ``schema_version``.  2 is this one: a
fault is known by its ``index`` in ``inject`` and lives the recorded life of
``dirt.journal.faults``.  Journals written by dirt 0.1 (version 1, no
``schema_version``) are read by ``dirt.journal.reader``, which upgrades them.
The ``availability.*`` events were added within version 2: a journal without
them simply measured no availability, so nothing needs upgrading; likewise their
``served*`` fields (who served each answer), absent when no probe asked; and the
``waits`` of ``phase.end`` and ``step.end`` (where dirt waited), empty in older journals.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

SCHEMA_VERSION = 2

JSON = dict[str, Any]


class Event(BaseModel):
    """Base of every event; ``seq``, ``ts`` and ``t`` are set by the writer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The event's name on disk (each subclass sets ``event`` to the same literal).
    seq: int = 0
    ts: float = 0.0
    t: float = 0.0


# -- the run and its phases -------------------------------------------------------------


class PlannedFault(BaseModel):
    """One fault of ``inject`` as the run starts: its life begins here, as *planned*."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int
    name: str
    driver: str
    family: str = "none"
    reversible: bool = False
    rollback: bool = True  # the scenario allows rollback to revert it
    snapshot_revert: bool = False  # its revert restores a safety snapshot (loses later writes)
    plan: list[str] = Field(default_factory=list)
    member: str | None = None  # on a fleet target: the member cluster it breaks (rollback acts there)


class RunStarted(Event):
    event: Literal["run.start"] = "run.start"
    schema_version: int = SCHEMA_VERSION
    run_id: str
    dirt_version: str = ""
    host: str = ""
    pid: int = 0
    scenario: JSON = Field(default_factory=dict)
    target: JSON = Field(default_factory=dict)
    expect: JSON = Field(default_factory=dict)
    abort_when: list[JSON] = Field(default_factory=list)
    steps: list[JSON] = Field(default_factory=list)
    faults: list[PlannedFault] = Field(default_factory=list)
    playbook_sections: dict[str, dict[str, str]] = Field(default_factory=dict)


class RunEnded(Event):
    event: Literal["run.end"] = "run.end"
    verdict: Literal["passed", "failed", "aborted"]
    failures: list[str] = Field(default_factory=list)
    aborted: str | None = None
    #: set by ``dirt rollback`` when it ends a run whose process died
    interrupted: bool = False


class PhaseStarted(Event):
    event: Literal["phase.start"] = "phase.start"
    phase: str


#: Seconds dirt slept between polls, by what it waited for (the progress line's label).
Waits = Annotated[dict[str, float], Field(default_factory=dict)]


class PhaseEnded(Event):
    event: Literal["phase.end"] = "phase.end"
    phase: str
    status: str = "passed"
    error: str | None = None
    waits: Waits  # every wait of the phase, its steps' included


class StepFields(Event):
    """What every step event says about the step (its place in the scenario, its link)."""

    section: str
    index: int
    kind: str
    driver: str
    name: str
    line: int = 0
    objective_seconds: float | None = None
    playbook: JSON | None = None


class StepStarted(StepFields):
    event: Literal["step.start"] = "step.start"


class StepEnded(StepFields):
    event: Literal["step.end"] = "step.end"
    status: str = "passed"
    detail: str = ""
    data: JSON = Field(default_factory=dict)
    seconds: float | None = None
    waits: Waits  # of ``seconds``, what was spent waiting


class ExpectationResult(Event):
    """One expectation judged: an alert, its resolution, a silent alert, a check, a step, MTTR."""

    event: Literal["expectation"] = "expectation"
    name: str
    kind: str
    objective_seconds: float | None = None
    measured_seconds: float | None = None
    passed: bool
    detail: str = ""
    alert: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    sources: JSON = Field(default_factory=dict)
    section: str | None = None
    line: int | None = None
    data: JSON = Field(default_factory=dict)


class Recovered(Event):
    event: Literal["recovered"] = "recovered"
    seconds_since_inject: float | None = None


class Mttr(Event):
    event: Literal["mttr"] = "mttr"
    seconds: float | None = None


class DetectSkipped(Event):
    event: Literal["detect.skipped"] = "detect.skipped"
    reason: str


# -- faults: the recorded life (see dirt.journal.faults) ----------------------------------


class FaultInjecting(Event):
    """``inject`` is about to touch the target: from here the fault may be in effect.  ``params``
    (also on ``fault.injected``) let a run killed before ``inject`` returned be reverted."""

    event: Literal["fault.injecting"] = "fault.injecting"
    index: int
    name: str
    driver: str
    params: JSON = Field(default_factory=dict)


class FaultInjected(Event):
    """``inject`` returned (or failed half-way: ``error``); ``state`` is what revert needs."""

    event: Literal["fault.injected"] = "fault.injected"
    index: int
    name: str
    driver: str
    params: JSON = Field(default_factory=dict)
    state: JSON = Field(default_factory=dict)
    reversible: bool = False
    t_inject: float | None = None  # wall time the fault took effect
    error: str | None = None


class FaultVerified(Event):
    event: Literal["fault.verified"] = "fault.verified"
    index: int
    name: str
    ok: bool
    detail: str = ""
    seconds: float | None = None


class FaultRecovered(Event):
    """No longer in effect: undone by a recovery step (``step``), or found so (``step`` None)."""

    event: Literal["fault.recovered"] = "fault.recovered"
    index: int
    name: str
    step: JSON | None = None  # {section, index, name, driver} of the step that undid it
    detail: str = ""


class FaultReverted(Event):
    """Undone by rollback (the runner's, or ``dirt rollback``)."""

    event: Literal["fault.reverted"] = "fault.reverted"
    index: int
    name: str
    detail: str = ""
    by: str = "rollback"  # "rollback" (the run's own) or "dirt rollback"


class SafetySnapshot(Event):
    event: Literal["safety.snapshot"] = "safety.snapshot"
    fault: str
    path: str
    revision: int = 0
    total_keys: int = 0


# -- backups ------------------------------------------------------------------------------


class BackupTaken(Event):
    event: Literal["backup.taken"] = "backup.taken"
    name: str
    type: str
    location: str
    created_at: float
    objects: int | None = None
    data: JSON = Field(default_factory=dict)
    age_seconds: float | None = None


class BackupRestored(Event):
    event: Literal["backup.restored"] = "backup.restored"
    name: str
    type: str
    location: str
    detail: str = ""
    data: JSON = Field(default_factory=dict)


class PlaybookStepRun(Event):
    event: Literal["playbook.step"] = "playbook.step"
    id: str
    line: int
    section: str


# -- alerts -------------------------------------------------------------------------------


class AlertFields(Event):
    name: str
    labels: dict[str, str] = Field(default_factory=dict)
    source: str


class AlertFiring(AlertFields):
    event: Literal["alert.firing"] = "alert.firing"
    state: str = "firing"
    server_time: float | None = None
    active_at: float | None = None
    for_seconds: float | None = None
    value: str | None = None
    observed_at: float | None = None
    expected: bool = False
    forbidden: bool = False


class AlertResolved(AlertFields):
    event: Literal["alert.resolved"] = "alert.resolved"
    observed_at: float | None = None
    baseline: bool = False


class AlertsBaseline(Event):
    event: Literal["alerts.baseline"] = "alerts.baseline"
    alerts: list[JSON] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


class AlertsNoise(Event):
    event: Literal["alerts.noise"] = "alerts.noise"
    alerts: list[JSON] = Field(default_factory=list)
    polls: int = 0
    errors: dict[str, int] = Field(default_factory=dict)


class MonitorError(Event):
    event: Literal["monitor.error"] = "monitor.error"
    source: str
    message: str
    count: int = 1


class AbortBreach(Event):
    event: Literal["abort.breach"] = "abort.breach"
    condition: str
    value: float | None = None
    at: float | None = None
    since: float | None = None
    promql: str | None = None
    alert: str | None = None
    above: float | None = None
    below: float | None = None


# -- availability: user impact through the drill (dirt.engine.availability) ---------------


#: Who served an answer is a response header's value, i.e. whatever a server sends: a probe
#: keeps at most ``MAX_SERVERS`` distinct names (later ones count as ``OTHER_SERVER``), each
#: cut to ``MAX_SERVER_NAME`` printable characters.
MAX_SERVERS = 16
MAX_SERVER_NAME = 64
OTHER_SERVER = "other"


def server_name(value: str) -> str | None:
    """A server's name as recorded: printable characters only, cut short; None when nothing is left."""
    name = "".join(c if c.isprintable() else "?" for c in value[:MAX_SERVER_NAME]).strip()
    return name or None


class ServerNames:
    """The names of who served, in the order first seen: at most ``MAX_SERVERS``, then ``OTHER_SERVER``.

    ``index`` interns a name (a sample stores the small number, not the string); -1 is "nobody said".
    """

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def index(self, value: str | None) -> int:
        name = None if value is None else server_name(value)
        if name is None:
            return -1
        if name not in self._index and len(self._index) >= MAX_SERVERS:
            name = OTHER_SERVER
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)
        return self._index[name]

    def name(self, value: str | None) -> str | None:
        """The name ``value`` is recorded under (interning it)."""
        i = self.index(value)
        return None if i < 0 else self.names[i]


class AvailabilityBucket(BaseModel):
    """One second of one probe's samples (``at``: the wall-clock second they started in)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: int
    n: int
    failed: int = 0
    unknown: int = 0  # promql: no value (counted in ``failed`` too)
    score: float = 0.0  # sum of the samples' success (http: 1 or 0; promql: the ratio)
    p50: float | None = None  # latency of the answers, seconds (http)
    max: float | None = None
    served: dict[str, int] = Field(default_factory=dict)  # successful answers per server (probes with served_by)

    @model_serializer(mode="wrap")
    def _without_empty_served(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A probe without ``served_by`` writes its buckets as before (one line per second adds up)."""
        data: dict[str, Any] = handler(self)
        if not data.get("served"):
            data.pop("served", None)
        return data


class AvailabilityStarted(Event):
    """A probe starts sampling: what it asks and what it is held to (so a crashed run still says)."""

    event: Literal["availability.start"] = "availability.start"
    name: str
    kind: Literal["http", "promql"]
    url: str | None = None  # without credentials or query
    promql: str | None = None
    interval_seconds: float
    timeout_seconds: float | None = None
    max_latency_seconds: float | None = None
    expect_status: list[int] | None = None
    min_success: float | None = None
    max_outage_seconds: float | None = None
    served_by: str | None = None  # the response header naming who served each answer


class AvailabilityBuckets(Event):
    """Per-second summaries since the previous one (written every few seconds, not per sample)."""

    event: Literal["availability.buckets"] = "availability.buckets"
    name: str
    buckets: list[AvailabilityBucket] = Field(default_factory=list)


class AvailabilityOutage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float  # wall time of the first failed sample
    end: float  # wall time of the next successful one (or the end of the window)
    seconds: float
    ongoing: bool = False  # still failing when the window closed
    samples: int = 0


class AvailabilityResult(Event):
    """A probe's verdict over its whole window."""

    event: Literal["availability.result"] = "availability.result"
    name: str
    kind: Literal["http", "promql"]
    window_start: float
    window_end: float
    cut_short: bool = False
    cut_reason: str | None = None
    samples: int
    successes: int
    unknown: int = 0
    ratio: float | None = None
    longest_outage: AvailabilityOutage | None = None
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_max: float | None = None
    min_success: float | None = None
    max_outage_seconds: float | None = None
    passed: bool
    failures: dict[str, int] = Field(default_factory=dict)  # why samples failed: "HTTP 503", "ConnectionError"...
    # Probes with served_by: successful answers per server, and the wall-time spans [start, end]
    # during which each answered (short gaps merged: see ``dirt.engine.availability.served_spans``).
    served: dict[str, int] = Field(default_factory=dict)
    served_spans: dict[str, list[tuple[float, float]]] = Field(default_factory=dict)


# -- endings: aborts, signals, errors, rollback --------------------------------------------


class Aborted(Event):
    event: Literal["abort"] = "abort"
    reason: str


class SignalReceived(Event):
    event: Literal["signal"] = "signal"
    signal: str
    ignored: str | None = None


class ErrorRaised(Event):
    event: Literal["error"] = "error"
    message: str
    type: str | None = None
    phase: str | None = None


class RollbackStarted(Event):
    event: Literal["rollback.start"] = "rollback.start"
    reason: str = ""
    verdict: str | None = None
    by: str = "rollback"
    in_effect: list[int] = Field(default_factory=list)  # fault indexes in effect when it began


class RollbackAction(Event):
    event: Literal["rollback.action"] = "rollback.action"
    index: int | None = None  # the fault's; None for a scenario rollback step
    name: str
    action: Literal["revert", "skip", "recovered", "step"]
    status: str = "passed"
    detail: str = ""


class RollbackEnded(Event):
    event: Literal["rollback.end"] = "rollback.end"
    failed: list[str] = Field(default_factory=list)


class RollbackSkipped(Event):
    event: Literal["rollback.skipped"] = "rollback.skipped"
    reason: str


class JournalRepaired(Event):
    """A torn last line (a writer killed mid-line) was cut off before appending."""

    event: Literal["journal.repaired"] = "journal.repaired"
    dropped_bytes: int
    kept_in: str | None = None


EVENT_TYPES: tuple[type[Event], ...] = (
    RunStarted, RunEnded, PhaseStarted, PhaseEnded, StepStarted, StepEnded, ExpectationResult, Recovered, Mttr,
    DetectSkipped, FaultInjecting, FaultInjected, FaultVerified, FaultRecovered, FaultReverted, SafetySnapshot,
    BackupTaken, BackupRestored, PlaybookStepRun, AlertFiring, AlertResolved, AlertsBaseline, AlertsNoise,
    MonitorError, AbortBreach, AvailabilityStarted, AvailabilityBuckets, AvailabilityResult, Aborted,
    SignalReceived, ErrorRaised, RollbackStarted, RollbackAction, RollbackEnded, RollbackSkipped, JournalRepaired,
)

#: Event name on disk -> its model.
BY_NAME: dict[str, type[Event]] = {cls.model_fields["event"].default: cls for cls in EVENT_TYPES}

AnyEvent = Annotated[
    RunStarted | RunEnded | PhaseStarted | PhaseEnded | StepStarted | StepEnded | ExpectationResult | Recovered
    | Mttr | DetectSkipped | FaultInjecting | FaultInjected | FaultVerified | FaultRecovered | FaultReverted
    | SafetySnapshot | BackupTaken | BackupRestored | PlaybookStepRun | AlertFiring | AlertResolved
    | AlertsBaseline | AlertsNoise | MonitorError | AbortBreach | AvailabilityStarted | AvailabilityBuckets
    | AvailabilityResult | Aborted | SignalReceived | ErrorRaised
    | RollbackStarted | RollbackAction | RollbackEnded | RollbackSkipped | JournalRepaired,
    Field(discriminator="event"),
]

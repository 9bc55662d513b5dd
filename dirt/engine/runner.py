"""One drill, phase by phase: preflight, inject, detect, recover, verify, rollback, cleanup.

The runner is the only place that knows the order of things.  It calls drivers
by registered name, keeps the clock (``t_inject``, MTTD, MTTR), writes every
event to the journal as it happens, and guarantees two things whatever goes
wrong: what is still in effect is rolled back on failure, abort or signal
(SIGINT/SIGTERM), and the journal says how every fault's life ended.  It has no
Kubernetes imports, and it renders nothing: drivers and targets do the
touching, ``dirt.report`` the rendering.

Where each fault stands is the ``FaultLedger``'s answer, folded from the very
events this runner journals; a recovery step that undoes a fault says so
(``RecoveryStep.resolves``), and rollback (``dirt.engine.rollback``) only acts
on what is still in effect.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dirt import __version__
from dirt.core.errors import (
    VERDICT_EXIT,
    CheckFailed,
    DirtError,
    DrillAborted,
    DrillFailed,
    MonitoringError,
    StepFailed,
    Verdict,
)
from dirt.core.redact import redact_text
from dirt.core.templating import substitute_value
from dirt.documents.playbooks import link_url, load_playbook
from dirt.drivers import (
    Backup,
    CancelToken,
    Check,
    CheckResult,
    Context,
    Driver,
    Fault,
    RecoveryStep,
    StepOutcome,
    fault_family,
)
from dirt.drivers.context import one_line, probe_once
from dirt.drivers.members import EachMemberCheck, EachMemberStep
from dirt.drivers.registry import Registry, default_registry
from dirt.engine.guardrails import Confirm, check_guardrails
from dirt.engine.lock import Holder, drill_lock
from dirt.engine.rollback import Rollback, RollbackResult, by_hand
from dirt.engine.room import RoomWatch, shown
from dirt.journal import JOURNAL_NAME, FaultLedger, FaultLife, Journal
from dirt.journal.events import (
    Aborted,
    BackupTaken,
    DetectSkipped,
    ErrorRaised,
    Event,
    ExpectationResult,
    FaultInjected,
    FaultInjecting,
    FaultRecovered,
    FaultVerified,
    Mttr,
    PhaseEnded,
    PhaseStarted,
    PlannedFault,
    Recovered,
    RollbackAction,
    RollbackSkipped,
    RunEnded,
    RunStarted,
    SignalReceived,
    StepEnded,
    StepStarted,
)
from dirt.scenario.model import Scenario, StepSpec
from dirt.targets.base import Target

PHASES = ("preflight", "inject", "detect", "recover", "verify", "rollback", "cleanup")


@dataclass
class RunOptions:
    report_dir: Path = Path("reports")
    assume_yes: bool = False
    #: asked for destructive faults on non-sandbox targets; returns True to go on
    confirm: Confirm | None = None
    display: Any = None  # dirt.app.display.Display: start, event, waiting, stop
    playbook_base_url: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    handle_signals: bool = True
    run_id: str | None = None
    #: dirt.app.history.Recording: where run_one records the run and what started it (None: SQLite beside the reports)
    history: Any = None


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    verdict: str
    failures: list[str]
    report: dict[str, Any] | None = None  # set by whoever renders it (dirt.app)
    still_in_effect: list[str] = field(default_factory=list)  # faults the drill left, by name
    #: why the journal (or, set by dirt.app, the reports) could not be written in full, in words
    not_written: list[str] = field(default_factory=list)
    aborted: str | None = None  # why the drill was stopped, when it was

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    @property
    def passed(self) -> bool:
        return self.verdict == Verdict.PASSED


def new_run_id(scenario: Scenario) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{scenario.name}-{secrets.token_hex(2)}"


class _RunFaults:
    """The run's faults as drivers see them (``ctx.faults``): the ledger and the one rollback path."""

    def __init__(self, drill: Drill) -> None:
        self.drill = drill

    def in_effect(self) -> list[FaultLife]:
        return self.drill.ledger.in_effect()

    def revert_by_step(self, index: int) -> str:
        life = self.drill.ledger.get(index)
        if life is None or not life.in_effect:
            raise StepFailed(f"fault #{index} is not in effect")
        spec = self.drill.ctx.step
        step = None if spec is None else _step_ref(spec)
        return self.drill.rollback_path().revert_by_step(life, step or {})


class Drill:
    """Runs one scenario against one target.  Use ``run_scenario`` for the whole job."""

    def __init__(self, scenario: Scenario, target: Target, options: RunOptions,
                 registry: Registry | None = None) -> None:
        self.scenario = scenario
        self.target = target
        self.options = options
        self.registry = registry or default_registry()
        self.run_id = options.run_id or new_run_id(scenario)
        self.run_dir = options.report_dir / self.run_id
        self.journal = Journal(self.run_dir / JOURNAL_NAME)
        self.journal.on_write_error.append(self._journal_failed)
        self.ledger = FaultLedger()
        self.journal.subscribe(self.ledger)
        self.display = options.display
        self.cancel = CancelToken()
        self.ctx = Context(
            target=target, run_dir=self.run_dir, emit=self._emit, waiting=self._waiting,
            cancel=self.cancel, scenario_dir=scenario.path.parent, faults=_RunFaults(self),
        )
        self.failures: list[str] = []
        self.aborted: str | None = None
        self.t_inject: float | None = None  # monotonic
        self.t_recovered: float | None = None
        self.faults: dict[int, Fault] = {}  # the live fault drivers, by index in inject
        self.monitor: Any = None
        self.availability: Any = None  # dirt.engine.availability.AvailabilityWatch, while sampling
        self.rolling_back = False
        self._by_hand: str | None = None  # what rollback tells a person for a fault no revert undoes
        if self.display is not None:
            self.journal.subscribe(self.display.event)

    @property
    def verdict(self) -> str:
        return Verdict.ABORTED if self.aborted else (Verdict.FAILED if self.failures else Verdict.PASSED)

    # -- plumbing -----------------------------------------------------------------------
    def _emit(self, event: Event) -> Event:
        return self.journal.emit(event)

    def _no_room(self, free: int) -> None:
        if not self.rolling_back:
            self.cancel.cancel(f"the reports folder's disk is full ({shown(free)} free at {self.run_dir.parent}); "
                               "a drill that cannot be recorded is stopped and rolled back")

    def _journal_failed(self, error: OSError) -> None:
        """The journal cannot be written: stop the drill (it rolls back from the fault ledger, which
        still sees every event).  A rollback already under way goes on."""
        if not self.rolling_back:
            self.cancel.cancel(f"the journal cannot be written ({error.strerror or error}: {self.journal.path}); "
                               "a drill that cannot be recorded is stopped and rolled back")

    def _waiting(self, what: str, elapsed: float, limit: float | None) -> None:
        if self.display is not None:
            self.display.waiting(what, elapsed, limit)

    def _variables(self) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.scenario.vars)
        values.update(self.options.variables)
        values.update(self.target.variables())
        values.update(run_id=self.run_id, run_dir=str(self.run_dir.resolve()),
                      scenario_dir=str(self.scenario.path.parent))
        values.setdefault("project_dir", str(self.target.root))
        return values

    def _driver(self, spec: StepSpec) -> Driver:
        """The step's driver, with its member's context; on a fleet target, a check or step without
        ``member:`` is the same driver on every member (``dirt.drivers.members``)."""
        cls = self.registry.get(spec.kind, spec.driver)
        if cls is None:  # validated at load time; only a plugin vanishing gets here
            raise StepFailed(f"{spec.kind} driver {spec.driver!r} is no longer registered")
        members = self.target.members()
        if spec.member is None and members and spec.kind in ("check", "step") and cls.each_member:
            drivers = {m: self._driver(spec.model_copy(update={"member": m})) for m in members}
            if spec.kind == "check":
                return EachMemberCheck(drivers)  # type: ignore[arg-type]
            return EachMemberStep(drivers)  # type: ignore[arg-type]
        ctx = self.ctx.for_member(spec.member)
        params = spec.params
        dumped = params.model_dump(mode="python", by_alias=True)
        if "{{" in repr(dumped):
            try:
                params = cls.Params.model_validate(substitute_value(dumped, ctx.vars))
            except ValidationError as exc:
                raise StepFailed(f"{spec.name}: parameters invalid after substitution: "
                                 f"{exc.errors()[0]['msg']}") from None
        return cls(params, ctx)

    def _fault_for(self, life: FaultLife) -> Fault:
        """The live driver of a fault (rollback reverts through it)."""
        driver = self.faults.get(life.index)
        if driver is None:
            raise StepFailed(f"fault #{life.index} {life.name} was never instantiated")
        return driver

    def rollback_path(self) -> Rollback:
        if self._by_hand is None:  # the same for every rollback of the run
            self._by_hand = by_hand([self._step_fields(s) for s in self.scenario.recover])
        return Rollback(self.ledger, self._emit, self._fault_for, by="rollback", by_hand=self._by_hand)

    def _step_fields(self, spec: StepSpec, **extra: Any) -> dict[str, Any]:
        book = spec.playbook
        fields = {
            "section": spec.section, "index": spec.index, "kind": spec.kind, "driver": spec.driver,
            "name": spec.name, "line": spec.line, "objective_seconds": spec.within,
            "playbook": None if book is None else {
                "path": book.display, "anchor": book.anchor, "title": book.title,
                "url": link_url(book.display, book.anchor, self.options.playbook_base_url,
                                local=Path(book.path), relative_to=self.run_dir),
            },
        }
        return fields | extra

    def _playbook_sections(self) -> dict[str, dict[str, str]]:
        """The text of every playbook section a step links to, so the report can show it."""
        sections: dict[str, dict[str, str]] = {}
        for spec in self.scenario.steps():
            book = spec.playbook
            if book is None or not book.anchor:
                continue
            key = f"{book.display}#{book.anchor}"
            if key in sections:
                continue
            try:
                section = load_playbook(Path(book.path)).section(book.anchor)
            except DirtError:
                continue
            if section is not None:
                sections[key] = {"title": section.title, "text": section.text}
        return sections

    def _planned_faults(self) -> list[PlannedFault]:
        """Each fault of ``inject`` as planned: what it will touch, and whether rollback can undo it."""
        planned = []
        for spec in self.scenario.inject:
            cls = self.registry.get("fault", spec.driver)
            lines: list[str] = []
            reversible = bool(getattr(cls, "reversible", False))
            try:
                driver = self._driver(spec)
                lines = driver.plan()  # type: ignore[attr-defined]
                reversible = bool(driver.reversible)  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - a plan that cannot be described is still planned
                lines = [f"(cannot describe: {one_line(exc)})"]
            planned.append(PlannedFault(
                index=spec.index, name=spec.name, driver=spec.driver, family=fault_family(cls, spec.params),
                reversible=reversible, rollback=spec.rollback,
                snapshot_revert=bool(getattr(cls, "snapshot_revert", False)), plan=lines, member=spec.member))
        return planned

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._emit(PhaseStarted(phase=name))
        status = "passed"
        error = None
        failures_before = len(self.failures)
        waits_before = self.ctx.wait_clock.snapshot()
        self.ctx.wait_clock.label = name
        try:
            yield
        except DrillAborted as exc:
            status, error = "aborted", str(exc)
            raise
        except DirtError as exc:
            status, error = "failed", str(exc)
            raise
        except BaseException as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if status == "passed" and len(self.failures) > failures_before:
                status = "failed"
            self._emit(PhaseEnded(phase=name, status=status, error=error,
                                  waits=self.ctx.wait_clock.since(waits_before)))

    def _fail(self, message: str) -> None:
        self.failures.append(message)

    def _expectation(self, name: str, kind: str, objective: float | None, measured: float | None,
                     passed: bool, detail: str = "", **extra: Any) -> None:
        self._emit(ExpectationResult(name=name, kind=kind, objective_seconds=objective,
                                     measured_seconds=None if measured is None else round(measured, 3),
                                     passed=passed, detail=detail, **extra))
        if not passed:
            self._fail(f"{kind} {name}: {detail}" if detail else f"{kind} {name} failed")

    # -- signals ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if not self.options.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            name = signal.Signals(signum).name
            if self.rolling_back:
                # Rollback must finish: a second Ctrl-C is noted, not obeyed (SIGKILL still works).
                self._emit(SignalReceived(signal=name, ignored="rollback in progress"))
                return
            self._emit(SignalReceived(signal=name))
            self.cancel.cancel(f"received {name}")

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> RunResult:
        scenario = self.scenario
        self.target.secret_values()  # registered for redaction before anything runs or is written
        with contextlib.suppress(Exception):  # the target's values may need it up; the run itself says so
            self.ctx.vars = self._variables()
        self._emit(RunStarted(
            run_id=self.run_id, dirt_version=__version__, host=socket.gethostname(), pid=os.getpid(),
            scenario={"name": scenario.name, "path": str(scenario.path), "line": scenario.line,
                      "digest": scenario.digest, "description": scenario.metadata.description,
                      "owner": scenario.metadata.owner, "tags": scenario.metadata.tags,
                      "playbook": scenario.playbook.display if scenario.playbook else None},
            target=self.target.describe(),
            expect=scenario.expect.model_dump(mode="json"),
            abort_when=[c.model_dump(mode="json", by_alias=True) | {"title": c.title()} for c in scenario.abort_when],
            steps=[self._step_fields(s) for s in scenario.steps()],
            faults=self._planned_faults(),
            playbook_sections=self._playbook_sections(),
        ))
        if self.display is not None:
            self.display.start(scenario.name, self.target.name)
        room = RoomWatch(self.run_dir, self._no_room)
        room.start()
        try:
            with self._signals():
                try:
                    self.ctx.vars = self._variables()
                    self._main_phases()
                except DrillAborted as exc:
                    self.aborted = str(exc)
                    self._emit(Aborted(reason=str(exc)))
                except DrillFailed as exc:
                    self._fail(str(exc))
                except DirtError as exc:
                    self._fail(str(exc))
                    self._emit(ErrorRaised(message=str(exc), type=type(exc).__name__))
                except Exception as exc:  # noqa: BLE001 - a driver bug still ends in rollback + report
                    self._fail(f"internal error: {type(exc).__name__}: {exc}")
                    self._emit(ErrorRaised(message=f"{type(exc).__name__}: {exc}", type="internal"))
                finally:
                    self._stop_monitor()
                    self._stop_availability(self._cut_short_reason())
                self._end_faults()
                self._cleanup()
        finally:
            room.stop()
            verdict = self.verdict
            self._emit(RunEnded(verdict=verdict, failures=self.failures, aborted=self.aborted))
            self.journal.close()
            if self.display is not None:
                self.display.stop(verdict, self.run_dir)
            self.target.close()
        left = [f.name for f in self.ledger.in_effect()]
        failures = [redact_text(f) for f in self.failures]  # shown on terminals and in pytest failures
        result = RunResult(self.run_id, self.run_dir, verdict, failures, still_in_effect=left,
                           aborted=redact_text(self.aborted) if self.aborted else None)
        if self.journal.unwritten or self.journal.write_error is not None:
            error = self.journal.write_error
            result.not_written.append(
                f"{self.journal.unwritten} event(s) could not be written to {self.journal.path}"
                + (f" ({error.strerror or error})" if error is not None else "")
                + "; the journal there is valid but ends early")
        return result

    def _main_phases(self) -> None:
        scenario = self.scenario
        with self.phase("preflight"):
            self.target.prepare()
            self.target.secret_values()  # a sandbox or kind cluster has (re)written its kubeconfig
            self.ctx.vars = self._variables()  # the target may know more once prepared
            for spec in scenario.setup:
                self._run_step(spec)
            for spec in scenario.steady_state:
                self._steady_state(spec, scenario.timing.steady_state_within)
            for spec in scenario.backups:
                self._take_backup(spec)
            self._expected_alerts_silent()
        self._start_monitor()
        self._start_availability()
        with self.phase("inject"):
            for spec in scenario.inject:
                self._inject(spec)
        with self.phase("detect"):
            self._detect()
        with self.phase("recover"):
            for spec in scenario.recover:
                self._run_step(spec, recovery=True)
            self.t_recovered = time.monotonic()
            self._emit(Recovered(seconds_since_inject=self._since_inject(self.t_recovered)))
        with self.phase("verify"):
            self._verify()

    def _since_inject(self, when: float) -> float | None:
        return None if self.t_inject is None else round(when - self.t_inject, 3)

    # -- steps --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _step(self, spec: StepSpec, default_within: float) -> Iterator[dict[str, Any]]:
        within = spec.within if spec.within is not None else default_within
        self.ctx.step = spec
        self.ctx.deadline = time.monotonic() + within
        fields = self._step_fields(spec, objective_seconds=within)
        self._emit(StepStarted(**fields))
        start = time.monotonic()
        waits_before = self.ctx.wait_clock.snapshot()
        self.ctx.wait_clock.label = spec.name  # a step that sleeps without saying for what waits for itself
        result: dict[str, Any] = {"status": "passed", "detail": "", "data": {}}
        try:
            yield result
        except DrillAborted as exc:
            result.update(status="aborted", detail=str(exc))
            raise
        except DirtError as exc:
            result.update(status="failed", detail=str(exc))
            if isinstance(exc, StepFailed) and exc.data:
                result["data"] = {**result.get("data", {}), **exc.data}
            raise
        except Exception as exc:
            result.update(status="failed", detail=f"{type(exc).__name__}: {exc}")
            raise StepFailed(f"{spec.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            seconds = time.monotonic() - start
            result["seconds"] = round(seconds, 3)
            result["waits"] = self.ctx.wait_clock.since(waits_before)
            self._emit(StepEnded(**fields, **result))
            self.ctx.step = None
            self.ctx.deadline = None

    def _run_step(self, spec: StepSpec, *, recovery: bool = False) -> None:
        driver = self._driver(spec)
        assert isinstance(driver, RecoveryStep)
        with self._step(spec, self.scenario.timing.step_within) as result:
            outcome: StepOutcome = driver.run() or StepOutcome()
            result.update(detail=outcome.detail, data=dict(outcome.data))
        if recovery:
            self._resolve(spec, driver)
        seconds = result["seconds"]
        if recovery and spec.within is not None:
            passed = seconds <= spec.within
            self._expectation(spec.name, "step", spec.within, seconds, passed,
                              "" if passed else f"took {seconds:.1f}s, objective {spec.within:g}s",
                              section=spec.section, line=spec.line)

    def _resolve(self, spec: StepSpec, driver: RecoveryStep) -> None:
        """A recovery step succeeded: record the faults it undid, by its own account."""
        for life in self.ledger.in_effect():
            if spec.member is not None and life.member != spec.member:
                continue  # a step on one member undoes nothing on another
            try:
                how = driver.resolves(life)
            except Exception as exc:  # noqa: BLE001 - a driver's bad answer must not fail the drill
                self._emit(ErrorRaised(phase="recover", type="internal",
                                       message=f"{spec.name}: cannot tell whether it undid {life.name}: {exc}"))
                continue
            if how:
                self._emit(FaultRecovered(index=life.index, name=life.name, step=_step_ref(spec), detail=how))

    def _steady_state(self, spec: StepSpec, default_within: float) -> None:
        """A steady-state check: retried until it passes; if it never does, nothing is injected."""
        driver = self._driver(spec)
        assert isinstance(driver, Check)
        within = spec.within if spec.within is not None else default_within
        with self._step(spec, default_within) as result:
            outcome, _ = self.ctx.poll(driver.probe, what=spec.name, timeout=within, interval=spec.interval)
            result.update(detail=outcome.detail, data=dict(outcome.data),
                          status="passed" if outcome.ok else "failed")
        if not outcome.ok:
            raise CheckFailed(f"steady_state check {spec.name} did not pass within {within:g}s: {outcome.detail}")

    def _expected_alerts_silent(self) -> None:
        """Detection is proven from silence: an expected alert already firing before the fault
        (left by the previous drill, or a real incident) is waited out, within the
        steady-state deadline; if it never clears, nothing is injected."""
        expected = self.scenario.expect.alerts
        if not expected:
            return
        sources = self.target.alert_sources()
        within = self.scenario.timing.steady_state_within

        def probe() -> CheckResult:
            firing = sorted({f"{a.name} in {a.source}" for source in sources for a in source.active()
                             if a.firing and any(a.matches(e.name, e.labels) for e in expected)})
            return CheckResult(not firing, "no expected alert is firing yet" if not firing
                               else f"already firing: {', '.join(firing)}")

        fields = {"section": "steady_state", "index": len(self.scenario.steady_state), "kind": "check",
                  "driver": "alerts.silent", "name": "expected alerts silent before the fault",
                  "objective_seconds": within}
        self._emit(StepStarted(**fields))
        try:
            first = probe()  # a source that cannot be read stops the drill here, not after a long wait
        except DirtError as exc:
            self._emit(StepEnded(**fields, status="failed", detail=str(exc), seconds=0.0))
            raise MonitoringError(f"cannot watch alerts, so no fault was injected: {exc}") from None
        outcome, seconds = first, 0.0
        waits_before = self.ctx.wait_clock.snapshot()
        if not first.ok:
            outcome, seconds = self.ctx.poll(probe, what="expected alerts to be silent", timeout=within,
                                             interval=min(self.scenario.timing.poll_interval, 1.0))
        self._emit(StepEnded(**fields, status="passed" if outcome.ok else "failed", detail=outcome.detail,
                             seconds=round(seconds, 3), waits=self.ctx.wait_clock.since(waits_before)))
        if not outcome.ok:
            raise CheckFailed(f"expected alerts did not clear within {within:g}s before the fault "
                              f"({outcome.detail}): detection cannot be proven; wait until they resolve, "
                              "or find out why they fire, and run the drill again")

    def _take_backup(self, spec: StepSpec) -> None:
        driver = self._driver(spec)
        assert isinstance(driver, Backup)
        with self._step(spec, self.scenario.timing.step_within) as result:
            record = driver.take(spec.name)
            self.ctx.backups[spec.name] = record
            self.ctx.backup_drivers[spec.name] = driver
            age = max(0.0, self.journal.wall() - record.created_at)
            self._emit(BackupTaken(name=record.name, type=record.type, location=record.location,
                                   created_at=record.created_at, objects=record.objects, data=dict(record.data),
                                   age_seconds=round(age, 3)))
            objects = record.objects if record.objects is not None else "?"
            result.update(detail=f"{record.type} backup {record.name!r}: {objects} objects, {age:.0f}s old",
                          data={"location": record.location})

    def _inject(self, spec: StepSpec) -> None:
        driver = self._driver(spec)
        assert isinstance(driver, Fault)
        self.faults[spec.index] = driver
        with self._step(spec, self.scenario.timing.inject_within) as result:
            params = spec.params.model_dump(mode="json", by_alias=True)
            self._emit(FaultInjecting(index=spec.index, name=spec.name, driver=spec.driver, params=params))
            try:
                driver.inject()
            except BaseException as exc:
                # half-done is in effect too: rollback needs what it recorded so far
                self._emit(FaultInjected(index=spec.index, name=spec.name, driver=spec.driver, params=params,
                                         state=driver.state, reversible=driver.reversible, error=one_line(exc)))
                raise
            now = driver.effective_at or time.monotonic()
            if self.t_inject is None:
                self.t_inject = now
                if self.monitor is not None:
                    self.monitor.mark_inject(self.journal.wall(now))
            self._emit(FaultInjected(index=spec.index, name=spec.name, driver=spec.driver, params=params,
                                     state=driver.state, reversible=driver.reversible,
                                     t_inject=self.journal.wall(now)))
            within = self.ctx.remaining(spec.within or self.scenario.timing.inject_within)
            verified, seconds = self.ctx.poll(driver.verify_injected, what=f"{spec.name} in effect",
                                              timeout=within, interval=spec.interval)
            self._emit(FaultVerified(index=spec.index, name=spec.name, ok=verified.ok, detail=verified.detail,
                                     seconds=round(seconds, 3)))
            result.update(detail=verified.detail, data={"state": driver.state})
            if not verified.ok:
                raise StepFailed(f"fault {spec.name} is not in effect: {verified.detail}")

    # -- detection and verification -------------------------------------------------------
    def _start_monitor(self) -> None:
        expect = self.scenario.expect
        if not (expect.alerts or expect.silent or self.scenario.abort_when):
            return
        from dirt.engine.detection import AlertMonitor

        self.monitor = AlertMonitor(
            target=self.target, expect=expect, abort_when=self.scenario.abort_when,
            interval=self.scenario.timing.poll_interval, emit=self._emit, cancel=self.cancel,
            wall=self.journal.wall, expectation=self._expectation,
        )
        self.monitor.start()

    def _stop_monitor(self) -> None:
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor.finish()
            self.monitor = None

    def _start_availability(self) -> None:
        """Availability probes sample from just before the first fault to the end of verify."""
        probes = self.scenario.expect.availability
        if not probes:
            return
        from dirt.engine.availability import AvailabilityWatch, window_limit

        self.availability = AvailabilityWatch(
            probes, target=self.target, variables=self.ctx.vars, emit=self._emit, wall=self.journal.wall,
            cancel=self.cancel, expectation=self._expectation, limit=window_limit(self.scenario),
        )
        self.availability.start()

    def _stop_availability(self, cut_short: str | None) -> None:
        """Close the probes' window and judge them; ``cut_short`` says why it closed before verify ended."""
        watch, self.availability = self.availability, None
        if watch is None:
            return
        try:
            watch.finish(cut_short)
        except Exception as exc:  # noqa: BLE001 - a probe's bug must not hide the drill's own outcome
            self._fail(f"availability: internal error: {type(exc).__name__}: {exc}")
            self._emit(ErrorRaised(message=f"availability: {type(exc).__name__}: {exc}", type="internal"))

    def _cut_short_reason(self) -> str:
        if self.aborted:
            return f"the drill was aborted: {self.aborted}"
        if self.failures:
            return f"the drill failed: {self.failures[0]}"
        return "the drill ended before verify did"

    def _detect(self) -> None:
        if self.monitor is None or not self.scenario.expect.alerts:
            self._emit(DetectSkipped(reason="no expected alerts"))
            return
        self.monitor.wait_fired(self.ctx)

    def _verify(self) -> None:
        timing = self.scenario.timing
        specs = self.scenario.verify
        drivers = [(s, self._driver(s)) for s in specs]
        start = time.monotonic()
        pending = {s.index: (s, d) for s, d in drivers}
        results: dict[int, CheckResult] = {}
        passed_at: dict[int, float] = {}
        limit = max([s.within or timing.verify_within for s in specs], default=0.0)
        for s in specs:
            self._emit(StepStarted(**self._step_fields(s, objective_seconds=s.within or timing.verify_within)))
        while pending:
            now = time.monotonic()
            for index, (spec, driver) in list(pending.items()):
                within = spec.within or timing.verify_within
                outcome = probe_once(driver.probe)  # type: ignore[attr-defined]
                results[index] = outcome
                if outcome.ok:
                    passed_at[index] = time.monotonic()
                    del pending[index]
                elif now - start > within:
                    del pending[index]
            if not pending:
                break
            names = ", ".join(s.name for s, _ in pending.values())
            self.ctx.waiting(f"verify: {names}", time.monotonic() - start, limit)
            self.ctx.sleep(min(s.interval for s, _ in pending.values()))
        for spec in specs:
            outcome = results.get(spec.index, CheckResult(False, "not run"))
            within = spec.within or timing.verify_within
            seconds = (passed_at.get(spec.index) or time.monotonic()) - start
            self._emit(StepEnded(**self._step_fields(spec, objective_seconds=within),
                                 status="passed" if outcome.ok else "failed", detail=outcome.detail,
                                 data=dict(outcome.data), seconds=round(seconds, 3)))
            self._expectation(spec.name, "check", within, seconds, outcome.ok,
                              "" if outcome.ok else f"not passing after {within:g}s: {outcome.detail}",
                              section="verify", line=spec.line, data=dict(outcome.data))
        all_ok = all(results.get(s.index, CheckResult(False)).ok for s in specs)
        mttr = None
        if self.t_inject is not None and all_ok:
            mttr = max(passed_at.values(), default=time.monotonic()) - self.t_inject
        self._emit(Mttr(seconds=None if mttr is None else round(mttr, 3)))
        objective = self.scenario.expect.mttr
        if objective is not None:
            ok = mttr is not None and mttr <= objective
            self._expectation("MTTR", "mttr", objective, mttr, ok,
                              "" if ok else ("never recovered" if mttr is None else
                                             f"took {mttr:.1f}s, objective {objective:g}s"))
        if self.monitor is not None and self.t_recovered is not None:
            self.monitor.wait_resolved(self.ctx, self.t_recovered)
        self._stop_availability(None)  # the window ends with verify
        if self.verdict == Verdict.PASSED:
            self._settle()

    def _settle(self) -> None:
        """A passed drill: faults no recovery step claimed are asked whether they are still in
        effect; those that are not were undone some other way (a playbook step, a controller)."""
        for life in self.ledger.in_effect():
            driver = self.faults.get(life.index)
            if driver is None:
                continue
            still = probe_once(driver.in_effect)
            if not still.ok:
                self._emit(FaultRecovered(index=life.index, name=life.name, step=None,
                                          detail=f"no longer in effect after recovery: {still.detail}"))

    # -- rollback and cleanup -------------------------------------------------------------
    def _fresh_cancel(self) -> None:
        # A fresh token: the old one is cancelled when we got here by abort or signal.
        self.cancel = CancelToken()
        self.ctx.cancel = self.cancel
        self.rolling_back = True  # rollback and cleanup run to the end

    def _end_faults(self) -> None:
        """Roll back what is still in effect: everything on failure, abort or signal; after a
        passed drill, the leftovers a revert can undo without restoring a snapshot."""
        passed = self.verdict == Verdict.PASSED
        path = self.rollback_path()
        if passed:
            if not path.candidates(leftovers_only=True):
                return  # what is left (a snapshot revert) stays, and the report says so
        elif not self.faults:
            self._emit(RollbackSkipped(reason="no fault was injected"))
            return
        elif not self.ledger.in_effect() and not self.scenario.rollback:
            self._emit(RollbackSkipped(reason="every fault was undone already"))
            return
        self._fresh_cancel()
        reason = ("faults still in effect after the drill passed" if passed
                  else self.aborted or "; ".join(self.failures))
        result: RollbackResult | None = None
        with contextlib.suppress(DirtError), self.phase("rollback"):
            result = path.run(reason, verdict=self.verdict, leftovers_only=passed)
            if not passed:
                for spec in self.scenario.rollback:
                    try:
                        self._run_step(spec)
                        self._emit(RollbackAction(name=spec.name, action="step", detail="scenario rollback step"))
                    except Exception as exc:  # noqa: BLE001 - the rest still runs
                        self._emit(RollbackAction(name=spec.name, action="step", status="failed",
                                                  detail=one_line(exc)))
                        self._emit(ErrorRaised(phase="rollback", message=f"{spec.name}: {exc}"))
        if result is not None and result.failed:
            self._fail("rollback left faults in effect: " + "; ".join(result.failed))

    def _cleanup(self) -> None:
        if not self.scenario.cleanup:
            return
        self._fresh_cancel()
        with contextlib.suppress(DirtError), self.phase("cleanup"):
            for spec in self.scenario.cleanup:
                try:
                    self._run_step(spec)
                except Exception as exc:  # noqa: BLE001 - every cleanup step runs, whatever one did
                    # The drill's promise is a clean cluster for the next one: a cleanup that failed breaks it.
                    self._fail(f"cleanup {spec.name}: {one_line(exc)}")
                    self._emit(ErrorRaised(phase="cleanup", message=f"{spec.name}: {exc}"))


def _step_ref(spec: StepSpec) -> dict[str, Any]:
    return {"section": spec.section, "index": spec.index, "name": spec.name, "driver": spec.driver}


def run_scenario(scenario: Scenario, target: Target, options: RunOptions,
                 registry: Registry | None = None) -> RunResult:
    """Check guardrails, take the drill lock, then run the drill; the engine's entry point
    (``dirt.app`` renders).  A refusal (``GuardrailError``, ``DrillLocked``) comes before the
    target is touched, the sandbox's automatic ``up`` included, and before any journal is written."""
    registry = registry or default_registry()
    check_guardrails(scenario, target, registry, assume_yes=options.assume_yes, confirm=options.confirm)
    options = dataclasses.replace(options, run_id=options.run_id or new_run_id(scenario))
    assert options.run_id is not None
    families = [fault_family(registry.get("fault", s.driver), s.params) for s in scenario.inject]
    holder = Holder.here(options.run_id, scenario.name, target.name, options.report_dir / options.run_id)
    with drill_lock(target, holder, families, say=_say_lock):  # held to the end of rollback and cleanup
        return Drill(scenario, target, options, registry).run()


def _say_lock(text: str) -> None:
    print(f"dirt: drill lock: {text}", file=sys.stderr, flush=True)

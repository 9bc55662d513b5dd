"""One drill, phase by phase: preflight, inject, detect, recover, verify, rollback, cleanup.

The runner is the only place that knows the order of things.  It calls drivers
by registered name, keeps the clock (``t_inject``, MTTD, MTTR), writes every
event to the journal as it happens, and guarantees two things whatever goes
wrong: rollback runs on failure, abort or signal (SIGINT/SIGTERM), and a report
is rendered from the journal.  It has no Kubernetes imports: drivers and
targets do the touching.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dirt import __version__
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
)
from dirt.engine.journal import JOURNAL_NAME, Journal
from dirt.engine.registry import Registry, default_registry
from dirt.errors import (
    CheckFailed,
    DirtError,
    DrillAborted,
    DrillFailed,
    GuardrailError,
    StepFailed,
)
from dirt.playbooks import link_url
from dirt.scenario.model import Scenario, StepSpec
from dirt.targets.base import Target
from dirt.templating import substitute_value

PHASES = ("preflight", "inject", "detect", "recover", "verify", "rollback", "cleanup")
VERDICT_EXIT = {"passed": 0, "failed": 1, "aborted": 3}


@dataclass
class RunOptions:
    report_dir: Path = Path("reports")
    assume_yes: bool = False
    #: asked for destructive faults on non-sandbox targets; returns True to go on
    confirm: Callable[[Target, list[str]], bool] | None = None
    display: Any = None  # dirt.engine.display.Display
    playbook_base_url: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    handle_signals: bool = True
    run_id: str | None = None
    render: bool = True


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    verdict: str
    failures: list[str]
    report: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"


def new_run_id(scenario: Scenario) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    return f"{stamp}-{scenario.name}-{secrets.token_hex(2)}"


def check_guardrails(scenario: Scenario, target: Target, registry: Registry, options: RunOptions) -> None:
    """Refuse faults the target does not allow; ask before destructive ones off-sandbox."""
    destructive = []
    for spec in scenario.inject:
        cls = registry.get("fault", spec.driver)
        family = getattr(cls, "family", "none")
        if not target.allows(family):
            raise GuardrailError(
                f"target {target.name!r} does not allow {family!r} faults ({spec.driver} at "
                f"{scenario.path.name}:{spec.line}); add '{family}' to targets.{target.name}.allow "
                "in dirt.yaml if this is intended"
            )
        if family != "none":
            destructive.append(f"{spec.driver} ({family})")
    if destructive and not target.is_sandbox and target.config.confirm and not options.assume_yes:
        if options.confirm is None or not options.confirm(target, destructive):
            raise DrillAborted(
                f"not confirmed: destructive faults on target {target.name!r} need --yes or typing "
                f"the cluster name {target.cluster_name()!r}"
            )


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
        self.display = options.display
        self.cancel = CancelToken()
        self.ctx = Context(
            target=target, run_dir=self.run_dir, emit=self._emit, waiting=self._waiting,
            cancel=self.cancel, scenario_dir=scenario.path.parent,
        )
        self.failures: list[str] = []
        self.aborted: str | None = None
        self.t_inject: float | None = None  # monotonic
        self.t_recovered: float | None = None
        self.injected: list[tuple[StepSpec, Fault]] = []
        self.monitor: Any = None
        self.rolling_back = False
        if self.display is not None:
            self.journal.subscribe(self.display.event)

    @property
    def verdict(self) -> str:
        return "aborted" if self.aborted else ("failed" if self.failures else "passed")

    # -- plumbing -----------------------------------------------------------------------
    def _emit(self, event: str, **fields: Any) -> None:
        self.journal.emit(event, **fields)

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
        cls = self.registry.get(spec.kind, spec.driver)
        if cls is None:  # validated at load time; only a plugin vanishing gets here
            raise StepFailed(f"{spec.kind} driver {spec.driver!r} is no longer registered")
        params = spec.params
        dumped = params.model_dump(mode="python", by_alias=True)
        if "{{" in repr(dumped):
            try:
                params = cls.Params.model_validate(substitute_value(dumped, self.ctx.vars))
            except ValidationError as exc:
                raise StepFailed(f"{spec.name}: parameters invalid after substitution: {exc.errors()[0]['msg']}") from None
        return cls(params, self.ctx)

    def _step_fields(self, spec: StepSpec) -> dict[str, Any]:
        book = spec.playbook
        return {
            "section": spec.section, "index": spec.index, "kind": spec.kind, "driver": spec.driver,
            "name": spec.name, "line": spec.line,
            "objective_seconds": spec.within,
            "playbook": None if book is None else {
                "path": book.display, "anchor": book.anchor, "title": book.title,
                "url": link_url(book.display, book.anchor, self.options.playbook_base_url,
                                local=Path(book.path), relative_to=self.run_dir),
            },
        }

    def _playbook_sections(self) -> dict[str, dict[str, str]]:
        """The text of every playbook section a step links to, so the report can show it."""
        from dirt.playbooks import load_playbook

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

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._emit("phase.start", phase=name)
        status = "passed"
        error = None
        failures_before = len(self.failures)
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
            self._emit("phase.end", phase=name, status=status, error=error)

    def _fail(self, message: str) -> None:
        self.failures.append(message)

    def _expectation(self, name: str, kind: str, objective: float | None, measured: float | None,
                     passed: bool, detail: str = "", **extra: Any) -> None:
        self._emit("expectation", name=name, kind=kind, objective_seconds=objective,
                   measured_seconds=None if measured is None else round(measured, 3),
                   passed=passed, detail=detail, **extra)
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
                self._emit("signal", signal=name, ignored="rollback in progress")
                return
            self._emit("signal", signal=name)
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
        self._emit(
            "run.start", run_id=self.run_id, dirt_version=__version__, host=socket.gethostname(),
            pid=os.getpid(),
            scenario={"name": scenario.name, "path": str(scenario.path), "line": scenario.line,
                      "digest": scenario.digest, "description": scenario.metadata.description,
                      "owner": scenario.metadata.owner, "tags": scenario.metadata.tags,
                      "playbook": scenario.playbook.display if scenario.playbook else None},
            target=self.target.describe(),
            expect=scenario.expect.model_dump(mode="json"),
            abort_when=[c.model_dump(mode="json", by_alias=True) | {"title": c.title()} for c in scenario.abort_when],
            steps=[self._step_fields(s) for s in scenario.steps()],
            playbook_sections=self._playbook_sections(),
        )
        if self.display is not None:
            self.display.start(scenario.name, self.target.name)
        try:
            with self._signals():
                try:
                    self.ctx.vars = self._variables()
                    self._main_phases()
                except DrillAborted as exc:
                    self.aborted = str(exc)
                    self._emit("abort", reason=str(exc))
                except DrillFailed as exc:
                    self._fail(str(exc))
                except DirtError as exc:
                    self._fail(str(exc))
                    self._emit("error", message=str(exc), type=type(exc).__name__)
                except Exception as exc:  # noqa: BLE001 - a driver bug still ends in rollback + report
                    self._fail(f"internal error: {type(exc).__name__}: {exc}")
                    self._emit("error", message=f"{type(exc).__name__}: {exc}", type="internal")
                finally:
                    self._stop_monitor()
                if self.verdict != "passed":
                    if self.injected:
                        self._rollback(self.verdict)
                    else:
                        self._emit("rollback.skipped", reason="no fault was injected")
                self._cleanup()
        finally:
            verdict = self.verdict
            self._emit("run.end", verdict=verdict, failures=self.failures, aborted=self.aborted)
            self.journal.close()
            if self.display is not None:
                self.display.stop(verdict, self.run_dir)
            self.target.close()
        report = None
        if self.options.render:
            from dirt.report import render_run, update_index

            report = render_run(self.run_dir)
            update_index(self.options.report_dir)
        return RunResult(self.run_id, self.run_dir, verdict, self.failures, report)

    def _main_phases(self) -> None:
        scenario = self.scenario
        with self.phase("preflight"):
            self.target.prepare()
            self.ctx.vars = self._variables()  # the target may know more once prepared
            for spec in scenario.setup:
                self._run_step(spec)
            for spec in scenario.steady_state:
                self._steady_state(spec, scenario.timing.steady_state_within)
            for spec in scenario.backups:
                self._take_backup(spec)
        self._start_monitor()
        with self.phase("inject"):
            for spec in scenario.inject:
                self._inject(spec)
        with self.phase("detect"):
            self._detect()
        with self.phase("recover"):
            for spec in scenario.recover:
                self._run_step(spec, expectation=True)
            self.t_recovered = time.monotonic()
            self._emit("recovered", seconds_since_inject=self._since_inject(self.t_recovered))
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
        fields = self._step_fields(spec) | {"objective_seconds": within}
        self._emit("step.start", **fields)
        start = time.monotonic()
        result: dict[str, Any] = {"status": "passed", "detail": "", "data": {}}
        try:
            yield result
        except DrillAborted as exc:
            result.update(status="aborted", detail=str(exc))
            raise
        except DirtError as exc:
            result.update(status="failed", detail=str(exc))
            raise
        except Exception as exc:
            result.update(status="failed", detail=f"{type(exc).__name__}: {exc}")
            raise StepFailed(f"{spec.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            seconds = time.monotonic() - start
            result["seconds"] = round(seconds, 3)
            self._emit("step.end", **fields, **result)
            self.ctx.step = None
            self.ctx.deadline = None

    def _run_step(self, spec: StepSpec, *, expectation: bool = False) -> None:
        driver = self._driver(spec)
        assert isinstance(driver, RecoveryStep)
        with self._step(spec, self.scenario.timing.step_within) as result:
            outcome: StepOutcome = driver.run() or StepOutcome()
            result.update(detail=outcome.detail, data=dict(outcome.data))
        seconds = result["seconds"]
        if expectation and spec.within is not None:
            passed = seconds <= spec.within
            self._expectation(spec.name, "step", spec.within, seconds, passed,
                              "" if passed else f"took {seconds:.1f}s, objective {spec.within:g}s",
                              section=spec.section, line=spec.line)

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

    def _take_backup(self, spec: StepSpec) -> None:
        driver = self._driver(spec)
        assert isinstance(driver, Backup)
        with self._step(spec, self.scenario.timing.step_within) as result:
            record = driver.take(spec.name)
            self.ctx.backups[spec.name] = record
            self.ctx.backup_drivers[spec.name] = driver
            age = max(0.0, self.journal.wall() - record.created_at)
            self._emit("backup.taken", **record.to_event(), age_seconds=round(age, 3))
            result.update(detail=f"{record.type} backup {record.name!r}: {record.objects if record.objects is not None else '?'} objects, "
                                 f"{age:.0f}s old", data={"location": record.location})

    def _inject(self, spec: StepSpec) -> None:
        driver = self._driver(spec)
        assert isinstance(driver, Fault)
        with self._step(spec, self.scenario.timing.inject_within) as result:
            self._emit("fault.plan", name=spec.name, driver=spec.driver, plan=driver.plan())
            driver.label, driver.index = spec.name, spec.index  # what fault.revert and the report call it
            self.injected.append((spec, driver))
            self.ctx.faults.append(driver)
            driver.inject()
            now = driver.effective_at or time.monotonic()
            if self.t_inject is None:
                self.t_inject = now
                if self.monitor is not None:
                    self.monitor.mark_inject(self.journal.wall(now))
            self._emit("fault.injected", name=spec.name, driver=spec.driver, index=spec.index,
                       params=spec.params.model_dump(mode="json", by_alias=True), state=driver.state,
                       reversible=driver.reversible and spec.rollback, t_inject=self.journal.wall(now))
            within = self.ctx.remaining(spec.within or self.scenario.timing.inject_within)
            verified, seconds = self.ctx.poll(driver.verify_injected, what=f"{spec.name} in effect",
                                              timeout=within, interval=spec.interval)
            self._emit("fault.verified", name=spec.name, ok=verified.ok, detail=verified.detail,
                       seconds=round(seconds, 3))
            result.update(detail=verified.detail, data={"state": driver.state})
            if not verified.ok:
                raise StepFailed(f"fault {spec.name} is not in effect: {verified.detail}")

    # -- detection and verification -------------------------------------------------------
    def _start_monitor(self) -> None:
        expect = self.scenario.expect
        if not (expect.alerts or expect.silent or self.scenario.abort_when):
            return
        from dirt.checks.alerts import AlertMonitor

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

    def _detect(self) -> None:
        if self.monitor is None or not self.scenario.expect.alerts:
            self._emit("detect.skipped", reason="no expected alerts")
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
            self._emit("step.start", **self._step_fields(s) | {"objective_seconds": s.within or timing.verify_within})
        while pending:
            now = time.monotonic()
            for index, (spec, driver) in list(pending.items()):
                within = spec.within or timing.verify_within
                try:
                    outcome = driver.probe()  # type: ignore[attr-defined]
                except DrillAborted:
                    raise
                except Exception as exc:  # noqa: BLE001 - a failing probe is a failed attempt
                    outcome = CheckResult(False, f"{type(exc).__name__}: {exc}")
                results[index] = outcome
                if outcome.ok:
                    passed_at[index] = time.monotonic()
                    del pending[index]
                elif now - start > within:
                    del pending[index]
            if not pending:
                break
            names = ", ".join(s.name for s, _ in pending.values())
            self._waiting(f"verify: {names}", time.monotonic() - start, limit)
            self.ctx.sleep(min(s.interval for s, _ in pending.values()))
        for spec in specs:
            outcome = results.get(spec.index, CheckResult(False, "not run"))
            within = spec.within or timing.verify_within
            seconds = (passed_at.get(spec.index) or time.monotonic()) - start
            self._emit("step.end", **self._step_fields(spec) | {
                "objective_seconds": within, "status": "passed" if outcome.ok else "failed",
                "detail": outcome.detail, "data": dict(outcome.data), "seconds": round(seconds, 3)})
            self._expectation(spec.name, "check", within, seconds, outcome.ok,
                              "" if outcome.ok else f"not passing after {within:g}s: {outcome.detail}",
                              section="verify", line=spec.line, data=dict(outcome.data))
        all_ok = all(results.get(s.index, CheckResult(False)).ok for s in specs)
        mttr = None
        if self.t_inject is not None and all_ok:
            mttr = max(passed_at.values(), default=time.monotonic()) - self.t_inject
        self._emit("mttr", seconds=None if mttr is None else round(mttr, 3))
        objective = self.scenario.expect.mttr
        if objective is not None:
            ok = mttr is not None and mttr <= objective
            self._expectation("MTTR", "mttr", objective, mttr, ok,
                              "" if ok else ("never recovered" if mttr is None else
                                             f"took {mttr:.1f}s, objective {objective:g}s"))
        if self.monitor is not None and self.t_recovered is not None:
            self.monitor.wait_resolved(self.ctx, self.t_recovered)

    # -- rollback and cleanup -------------------------------------------------------------
    def _rollback(self, verdict: str) -> None:
        # A fresh token: the old one is cancelled when we got here by abort or signal.
        self.cancel = CancelToken()
        self.ctx.cancel = self.cancel
        self.rolling_back = True
        with contextlib.suppress(DirtError), self.phase("rollback"):
            self._emit("rollback.start", reason=self.aborted or "; ".join(self.failures)[:500], verdict=verdict)
            for spec, driver in reversed(self.injected):
                if driver.reverted:
                    self._emit("rollback.action", name=spec.name, action="skip", detail="already reverted")
                    continue
                if not (driver.reversible and spec.rollback):
                    self._emit("rollback.action", name=spec.name, action="skip",
                               detail="not reversible" if not driver.reversible else "rollback: false")
                    continue
                try:
                    driver.revert()
                    self._emit("fault.reverted", name=spec.name, driver=spec.driver, index=spec.index)
                    self._emit("rollback.action", name=spec.name, action="revert", status="passed")
                except Exception as exc:  # noqa: BLE001 - keep rolling back the rest
                    self._emit("rollback.action", name=spec.name, action="revert", status="failed",
                               detail=f"{type(exc).__name__}: {exc}")
                    self._emit("error", phase="rollback", message=f"revert {spec.name}: {exc}")
            for spec in self.scenario.rollback:
                try:
                    self._run_step(spec)
                except Exception as exc:  # noqa: BLE001
                    self._emit("error", phase="rollback", message=f"{spec.name}: {exc}")
            self._emit("rollback.end")

    def _cleanup(self) -> None:
        if not self.scenario.cleanup:
            return
        self.cancel = CancelToken()
        self.ctx.cancel = self.cancel
        self.rolling_back = True  # cleanup, too, runs to the end
        with contextlib.suppress(DirtError), self.phase("cleanup"):
            for spec in self.scenario.cleanup:
                try:
                    self._run_step(spec)
                except Exception as exc:  # noqa: BLE001 - cleanup problems are reported, not fatal
                    self._emit("error", phase="cleanup", message=f"{spec.name}: {exc}")


def run_scenario(scenario: Scenario, target: Target, options: RunOptions,
                 registry: Registry | None = None) -> RunResult:
    """Check guardrails, then run the drill; the usual entry point."""
    registry = registry or default_registry()
    check_guardrails(scenario, target, registry, options)
    return Drill(scenario, target, options, registry).run()

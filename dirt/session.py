"""Running scenario files end to end, as the CLI and the pytest plugin do.

Glue between the parts: load every file first (so a typo in the third file is
reported before the first drill breaks anything), resolve each scenario's
target from dirt.yaml, run it, and collect the results.  Also ``rollback_run``:
revert what a killed run left behind, from its journal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dirt.config import LoadedConfig
from dirt.engine.runner import RunOptions, RunResult, run_scenario
from dirt.errors import Problem, ReportError, ScenarioError
from dirt.scenario import LoadOptions, Scenario, load_scenario
from dirt.targets.base import Target, make_target


def load_all(paths: list[Path], options: LoadOptions) -> list[Scenario]:
    scenarios: list[Scenario] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            scenarios.append(load_scenario(path, options))
        except ScenarioError as exc:
            problems.extend(exc.problems + exc.warnings)
    if problems:
        raise ScenarioError(str(paths[0]) if len(paths) == 1 else "scenarios", problems)
    return scenarios


def target_for(scenario: Scenario, loaded: LoadedConfig, target_name: str | None) -> Target:
    name, config = loaded.target(target_name or scenario.target)
    return make_target(name, config, loaded.root)


def run_options(loaded: LoadedConfig, *, report_dir: Path | None = None, **kwargs: Any) -> RunOptions:
    return RunOptions(
        report_dir=(report_dir or loaded.root / loaded.config.reports_dir),
        playbook_base_url=loaded.config.playbook_base_url,
        **kwargs,
    )


def run_files(
    paths: list[Path],
    loaded: LoadedConfig,
    *,
    target_name: str | None = None,
    report_dir: Path | None = None,
    assume_yes: bool = False,
    variables: dict[str, str] | None = None,
    display: str = "auto",
    confirm: Callable[[Target, list[str]], bool] | None = None,
) -> list[RunResult]:
    from dirt.engine.display import make_display

    options = LoadOptions(known_targets=list(loaded.config.targets), variables=dict(variables or {}))
    scenarios = load_all(paths, options)
    results = []
    for scenario in scenarios:
        target = target_for(scenario, loaded, target_name)
        run = run_options(loaded, report_dir=report_dir, assume_yes=assume_yes, confirm=confirm,
                          display=make_display(display), variables=dict(variables or {}))
        results.append(run_scenario(scenario, target, run))
    return results


def rollback_run(run_dir: Path, loaded: LoadedConfig, target_name: str | None, *, assume_yes: bool = False,
                 confirm: Callable[[Target, list[str]], bool] | None = None) -> list[str]:
    """Revert the reversible faults a run injected and never reverted; re-render its report."""
    from dirt.drivers import Context
    from dirt.engine.journal import JOURNAL_NAME, Journal, read_journal
    from dirt.engine.registry import default_registry
    from dirt.errors import DrillAborted
    from dirt.report import render_run, update_index

    events = read_journal(run_dir)
    start = next((e for e in events if e["event"] == "run.start"), None)
    if start is None:
        raise ReportError(f"{run_dir}: journal has no run.start event")
    name = target_name or start.get("target", {}).get("name")
    tname, tconfig = loaded.target(name)
    target = make_target(tname, tconfig, loaded.root)
    reverted = {(e.get("name"), e.get("index")) for e in events if e["event"] == "fault.reverted"}
    pending = [e for e in events if e["event"] == "fault.injected" and e.get("reversible")
               and (e.get("name"), e.get("index")) not in reverted]
    if not pending:
        return [f"nothing to roll back in {run_dir}"]
    if not target.is_sandbox and tconfig.confirm and not assume_yes:
        if confirm is None or not confirm(target, [f"revert {e.get('name')}" for e in pending]):
            raise DrillAborted("rollback not confirmed")
    registry = default_registry()
    journal = Journal.resume(run_dir / JOURNAL_NAME)
    ctx = Context(target=target, run_dir=run_dir, emit=journal.emit)
    ctx.vars = target.variables()
    lines = []
    journal.emit("rollback.start", reason="dirt rollback after an interrupted run", verdict="aborted")
    for event in reversed(pending):
        cls = registry.get("fault", event.get("driver", ""))
        label = event.get("name")
        if cls is None:
            lines.append(f"cannot revert {label}: driver {event.get('driver')!r} is not registered")
            continue
        try:
            fault = cls(cls.Params.model_validate(event.get("params") or {}), ctx)
            fault.state = dict(event.get("state") or {})  # type: ignore[attr-defined]
            fault.revert()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - report and go on with the others
            journal.emit("rollback.action", name=label, action="revert", status="failed", detail=str(exc))
            lines.append(f"FAILED to revert {label}: {exc}")
            continue
        journal.emit("fault.reverted", name=label, driver=event.get("driver"), index=event.get("index"))
        journal.emit("rollback.action", name=label, action="revert", status="passed")
        lines.append(f"reverted {label}")
    journal.emit("rollback.end")
    if not any(e["event"] == "run.end" for e in events):
        journal.emit("run.end", verdict="aborted", failures=["the run was interrupted; rolled back by 'dirt rollback'"],
                     aborted="interrupted", at=time.time())
    journal.close()
    render_run(run_dir)
    update_index(run_dir.resolve().parent)
    return lines

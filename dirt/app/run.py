"""Running scenario files end to end, as the CLI and the pytest plugin do.

Glue between the parts: load every file first (so a typo in the third file is
reported before the first drill breaks anything), resolve each scenario's
target from dirt.yaml, run it through the engine, and render its reports from
the journal it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dirt.app.history import overdue_marks, record_run, recording
from dirt.config import LoadedConfig
from dirt.core.errors import Problem, ScenarioError
from dirt.engine.guardrails import Confirm
from dirt.engine.runner import RunOptions, RunResult, run_scenario
from dirt.report import render_run, update_index
from dirt.scenario import LoadOptions, Scenario, load_options, load_scenario
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
    """The target a drill runs on; what dirt.yaml only warned about (an unset variable) is an error now."""
    name, config = loaded.target(target_name or scenario.target, running=True)
    return make_target(name, config, loaded.root)


def run_options(loaded: LoadedConfig, *, report_dir: Path | None = None, **kwargs: Any) -> RunOptions:
    kwargs.setdefault("history", recording(loaded))
    return RunOptions(
        report_dir=(report_dir or loaded.root / loaded.config.reports_dir),
        playbook_base_url=loaded.config.playbook_base_url,
        **kwargs,
    )


def run_one(scenario: Scenario, target: Target, options: RunOptions) -> RunResult:
    """Run one drill, render its reports (and the index of runs beside it) and record it in the
    run history (``options.history``; a store that cannot be written is only a warning)."""
    result = run_scenario(scenario, target, options)
    try:
        result.report = render_run(result.run_dir)
        record_run(result.report, options.report_dir, options.history)
        refresh_dashboard(options)
    except OSError as exc:  # the reports folder's disk is full, or gone: the drill itself is over
        result.not_written.append(f"reports not written ({exc.strerror or exc}: {exc.filename or result.run_dir}); "
                                  f"once there is room, `dirt report {result.run_dir}` renders what the journal kept")
    return result


def refresh_dashboard(options: RunOptions) -> None:
    """Rewrite ``reports/index.html``, with overdue marks when the history and game days say so."""
    rec = options.history
    overdue = overdue_marks(rec, options.report_dir, rec.root) if rec is not None and rec.root is not None else {}
    update_index(options.report_dir, overdue=overdue)


def run_files(
    paths: list[Path],
    loaded: LoadedConfig,
    *,
    target_name: str | None = None,
    report_dir: Path | None = None,
    assume_yes: bool = False,
    variables: dict[str, str] | None = None,
    display: str = "auto",
    confirm: Confirm | None = None,
) -> list[RunResult]:
    from dirt.app.display import make_display

    options = load_options(loaded, target=target_name, variables=variables)
    scenarios = load_all(paths, options)
    results = []
    for scenario in scenarios:
        target = target_for(scenario, loaded, target_name)
        run = run_options(loaded, report_dir=report_dir, assume_yes=assume_yes, confirm=confirm,
                          display=make_display(display), variables=dict(variables or {}))
        results.append(run_one(scenario, target, run))
    return results

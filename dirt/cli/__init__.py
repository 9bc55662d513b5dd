"""The ``dirt`` command line: parse, call ``dirt.app``, show the result.

Exit codes: 0 passed / valid, 1 drill failed (or a target/runtime error),
2 usage or validation error, 3 aborted.  They come from one place: a command
either returns a verdict's code (``dirt.core.errors.exit_code_for``) or raises
a ``DirtError``, whose class carries its code; ``main`` exits with it.  Every
``DirtError`` is printed as one clean line per problem; tracebacks are for
dirt's own bugs only.  Imports of heavy modules happen inside the commands so
``dirt --help`` starts fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dirt import __version__
from dirt.core.errors import DirtError, DrillAborted, ScenarioError, UsageError
from dirt.core.redact import redact_text


class _State:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._loaded: Any = None

    @property
    def loaded(self) -> Any:
        if self._loaded is None:
            from dirt.config import load_config

            self._loaded = load_config(self.config_path)
            for warning in self._loaded.warnings:  # e.g. a token's variable not set here (CI may set it)
                click.echo(str(warning), err=True)
        return self._loaded


def _load_options(state: _State, variables: dict[str, str] | None = None, with_rules: bool = True,
                  target: str | None = None) -> Any:
    from dirt.scenario import load_options

    rules = None
    if with_rules and state.loaded.config.rules:
        from dirt.app.coverage import alert_names_in_rules

        rules = alert_names_in_rules(state.loaded.rule_paths())
    return load_options(state.loaded, target=target, variables=variables, alert_rules=rules)


def _parse_vars(values: tuple[str, ...]) -> dict[str, str]:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--var {item!r}: write it as NAME=VALUE")
        result[key] = value
    return result


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dirt")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="DIRT_CONFIG",
              help="dirt.yaml to use (default: the nearest one from the current folder up).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Disaster-recovery drills for Kubernetes: break a cluster on purpose, prove you noticed,
    prove you recovered, and report it against the playbook."""
    ctx.obj = _State(config_path)


@cli.command()
@click.argument("folder", required=False, default=".", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite the starter's files where they already exist.")
def init(folder: str, force: bool) -> None:
    """Write a starter project into FOLDER (default: here) that passes on the sandbox out of the box.

    dirt.yaml (the sandbox, a kind target for CI, a commented kubeconfig target), a tiny app with its
    alert rule, scenarios/first-drill.yaml and its playbook, a game day, a GitHub Actions workflow and a
    .gitignore.  Never overwrites a file: exit 2 naming the first that exists (unless --force).
    """
    from dirt.app.init import init_project

    where = Path(folder)
    written = init_project(where, force=force)
    for path in written:
        click.echo(f"wrote {path}")
    hint = "" if where.resolve() == Path.cwd().resolve() else f"cd {folder}\n  "
    click.echo(f"\nNext:\n  {hint}dirt sandbox up                      # the local cluster (builds it the first time)"
               "\n  dirt run scenarios/first-drill.yaml  # your first drill; its report's path is printed")


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--quiet", "-q", is_flag=True, help="Print problems only.")
@click.option("--verbose", "-v", is_flag=True, help="Also list the YAML files skipped as not scenarios, and why.")
@click.pass_obj
def validate(state: _State, paths: tuple[str, ...], quiet: bool, verbose: bool) -> None:
    """Check scenario files (and the playbook links in them); exit 2 on any problem.

    Folders are searched for YAML files of any case (.yaml, .yml, .YAML); each is
    parsed to decide whether it is a scenario.  Files that cannot be read, and dirt
    documents of an unknown kind (``kind: Scenaro``), are errors, never skipped.
    """
    from dirt.scenario import discover, load_scenario

    options = _load_options(state)
    found = discover(paths)
    bad = 0
    for path in found.files:
        try:
            scenario = load_scenario(path, options)
        except ScenarioError as exc:
            bad += 1
            click.echo(exc.show(), err=True)
            continue
        for warning in scenario.warnings:
            click.echo(str(warning), err=True)
        if not quiet:
            click.echo(f"ok  {path}  ({scenario.name}: {len(scenario.inject)} fault(s), "
                       f"{len(scenario.recover)} recovery step(s), {len(scenario.verify)} check(s))")
    if verbose:
        for path, why in found.skipped:
            click.echo(f"skipped  {path}  (not a scenario: {why})")
    good = len(found.files) - bad
    summary = f"{good} valid, {bad} invalid, {len(found.skipped)} not scenarios"
    if bad:
        raise UsageError(summary)
    if not quiet:
        click.echo(summary)


@cli.command()
@click.option("--kind", type=click.Choice(["scenario", "gameday"]), default="scenario", show_default=True,
              help="Which dirt document: scenario files or game-day files.")
def schema(kind: str) -> None:
    """Print the JSON Schema of scenario (or game-day) files, for editor completion."""
    import json

    if kind == "gameday":
        from dirt.gameday import gameday_schema

        click.echo(json.dumps(gameday_schema(), indent=2))
        return
    from dirt.scenario.schema import scenario_schema

    click.echo(json.dumps(scenario_schema(), indent=2))


@cli.command()
@click.argument("scenario_paths", nargs=-1, required=True)
@click.option("--target", "-t", "target_name", help="Target from dirt.yaml (default: the scenario's, then the default).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Override a scenario variable.")
@click.pass_obj
def plan(state: _State, scenario_paths: tuple[str, ...], target_name: str | None, variables: tuple[str, ...]) -> None:
    """Show every step of a drill and its blast radius; touches nothing."""
    from dirt.app.plan import PlanRefused, render_plan
    from dirt.scenario import scenario_files

    options = _load_options(state, _parse_vars(variables), with_rules=False, target=target_name)
    refused: list[PlanRefused] = []
    for path in scenario_files(scenario_paths):
        try:
            click.echo(redact_text(render_plan(path, state.loaded, options, target_name)))
        except PlanRefused as exc:  # shown in full; `dirt run` would refuse it, so exit 2 after every plan
            click.echo(redact_text(exc.plan))
            refused.append(exc)
    if refused:
        raise refused[0] if len(refused) == 1 else UsageError(f"the target refuses steps of {len(refused)} drills")


@cli.command()
@click.argument("scenario_paths", nargs=-1, required=True)
@click.option("--target", "-t", "target_name", help="Target from dirt.yaml (default: the scenario's, then the default).")
@click.option("--report-dir", type=click.Path(file_okay=False), help="Where run folders go (default: reports/).")
@click.option("--yes", "-y", is_flag=True, help="Confirm destructive faults on non-sandbox targets.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Override a scenario variable.")
@click.option("--display", type=click.Choice(["auto", "rich", "plain", "none"]), default="auto", show_default=True)
@click.option("--timings", is_flag=True, help="After each drill, print where its time went: each phase's work and "
              "waits (by what dirt waited for), and the steps that waited longest.")
@click.pass_obj
def run(state: _State, scenario_paths: tuple[str, ...], target_name: str | None, report_dir: str | None,
        yes: bool, variables: tuple[str, ...], display: str, timings: bool) -> int:
    """Run drills: inject, detect, recover, verify, and write the report.

    One drill per target at a time: a drill takes the target's drill lock (a Lease
    kube-system/dirt-drill-lock, and a local lock file) before it touches anything and
    holds it to the end of its cleanup; a drill on a locked target is refused with exit 2,
    naming the holder (see `dirt unlock`).

    Exit status: 0 all passed, 1 a drill failed (or its journal or reports could not be written in full),
    2 bad input or target locked, 3 aborted.
    """
    from dirt.app.run import run_files
    from dirt.core.errors import exit_code_for
    from dirt.scenario import scenario_files

    results = run_files(
        [*scenario_files(scenario_paths)], state.loaded, target_name=target_name,
        report_dir=Path(report_dir) if report_dir else None, assume_yes=yes,
        variables=_parse_vars(variables), display=display, confirm=_confirm,
    )
    for result in results:
        click.echo(f"{result.verdict.upper():8} {result.run_dir / 'report.html'}")
        if result.aborted:
            click.echo(f"         - stopped: {result.aborted}")
        for failure in result.failures:
            click.echo(f"         - {failure}")
        for fault in result.still_in_effect:
            click.echo(f"         ! still in effect: {fault} — `dirt rollback {result.run_dir}` undoes it")
        for problem in result.not_written:
            click.echo(f"         ! {problem}")
        if timings and result.report:
            from dirt.report.render import timings_text

            click.echo(timings_text(result.report))
    code = exit_code_for(r.verdict for r in results)
    # a drill whose record was not written in full is not a pass a pipeline may trust
    return code or (1 if any(r.not_written for r in results) else 0)


def _confirm(target: Any, faults: list[str]) -> bool:
    if not sys.stdin.isatty():
        return False
    click.echo(f"Target {target.name!r} is not the sandbox. Destructive faults: {', '.join(faults)}", err=True)
    typed = click.prompt(f"Type the cluster name ({target.cluster_name()}) to go on", default="", show_default=False,
                         err=True)
    return typed.strip() == target.cluster_name()


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True))
def report(run_dirs: tuple[str, ...]) -> None:
    """Re-render a run's reports from its journal."""
    from dirt.report import render_run, update_index

    damaged = 0
    for run_dir in run_dirs:
        data = render_run(Path(run_dir))
        update_index(Path(run_dir).resolve().parent)
        click.echo(f"{data['verdict'].upper():8} {Path(run_dir) / 'report.html'}")
        problems = data.get("journal_problems", [])
        for problem in problems[:10]:
            click.echo(f"warning: {problem}", err=True)
        if len(problems) > 10:
            click.echo(f"warning: ... and {len(problems) - 10} more (listed in the report)", err=True)
        damaged += bool(problems)
    if damaged:
        # Rendered anyway, with every unreadable line listed in the report; the exit says the input was bad.
        raise UsageError(f"{damaged} of {len(run_dirs)} journal(s) damaged: the reports show what could be read")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--target", "-t", "target_name", help="Target the run used (default: from the journal).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.option("--restore-safety-snapshot", is_flag=True,
              help="Also put back the pre-drill etcd snapshot of destructive faults a recovery already undid "
                   "(every write since the drill is lost).")
@click.pass_obj
def rollback(state: _State, run_dir: str, target_name: str | None, yes: bool, restore_safety_snapshot: bool) -> None:
    """Revert what a run left in effect (read from its journal alone); nothing else."""
    from dirt.app.rollback import rollback_run
    from dirt.core.errors import RollbackFailed

    outcome = rollback_run(Path(run_dir), state.loaded, target_name, assume_yes=yes, confirm=_confirm,
                           restore_snapshots=restore_safety_snapshot,
                           say=lambda text: click.echo(redact_text(f"warning: {text}"), err=True))
    for line in outcome.lines:
        click.echo(redact_text(line))
    if outcome.failed:
        raise RollbackFailed(f"{len(outcome.failed)} revert(s) failed, still in effect: "
                             + "; ".join(outcome.failed))


@cli.command()
@click.argument("target_name", metavar="TARGET")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.pass_obj
def unlock(state: _State, target_name: str, yes: bool) -> None:
    """Break a target's drill lock left by a killed drill (its Lease and its local lock file).

    One drill per target at a time: a drill holds the lock from preflight to the end of its
    cleanup, and a second one is refused (exit 2).  A killed drill's lock blocks while its run
    may have left a fault in effect: `dirt rollback RUN_DIR` reverts what it left and frees the
    lock; unlock only frees it (use it when the target is known to be fine).  A lock held by a
    drill that is still running is never broken: stop that drill instead.
    """
    from dirt.engine.lock import inspect_lock
    from dirt.engine.lock import unlock as break_lock
    from dirt.targets.base import make_target

    name, config = state.loaded.target(target_name)
    target = make_target(name, config, state.loaded.root)
    found = inspect_lock(target)
    for line in found.lines(name, target.drill_lock_path()):
        click.echo(line)
    if found.local.holder is None and found.lease is None:
        return
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"unlocking target {name!r} needs --yes when not run from a terminal")
        if not click.confirm(f"Break the drill lock of target {name!r}?", default=False, err=True):
            raise DrillAborted("not confirmed: nothing unlocked")
    for line in break_lock(target):
        click.echo(line)


@cli.command()
@click.pass_obj
def drivers(state: _State) -> None:
    """List the faults, checks, recovery steps and backups available."""
    from dirt.drivers.registry import default_registry

    registry = default_registry()
    for kind, name, cls in registry.all():
        family = f" [{cls.family}]" if kind == "fault" else ""  # type: ignore[attr-defined]
        click.echo(f"{kind:6} {name:24} {cls.summary()}{family}")
    for error in registry.load_errors:
        click.echo(f"warning: {error}", err=True)


@cli.command()
@click.pass_obj
def targets(state: _State) -> None:
    """List the targets of dirt.yaml, what each allows and what it can do beyond the Kubernetes API.

    Only a dirt.yaml without problems is listed (its problems otherwise, located; exit 2).
    """
    from dirt.targets.base import make_target

    loaded = state.loaded
    click.echo(f"config: {loaded.path or '(built-in defaults)'}")
    for name, target in loaded.config.targets.items():
        default = " (default)" if name == loaded.config.default_target else ""
        made = make_target(name, target, loaded.root)
        if made.members():  # a fleet: what it allows and can do is each member's
            click.echo(f"{name}{default}: provider {target.provider}; members {', '.join(made.members())} "
                       "(each judged by its own allow list and capabilities)")
            continue
        allowed = ", ".join(sorted(target.allowed_families() - {"none"})) or "non-destructive only"
        can = ", ".join(sorted(made.capabilities)) or "API-level faults only"
        click.echo(f"{name}{default}: provider {target.provider}; allows {allowed}; can do {can}")


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--rules", "rule_paths", multiple=True, type=click.Path(exists=True),
              help="Rule files or folders (default: 'rules' in dirt.yaml, else the sandbox rules).")
@click.pass_obj
def coverage(state: _State, paths: tuple[str, ...], rule_paths: tuple[str, ...]) -> None:
    """Which expected alerts have rules, and which rules no scenario exercises."""
    from dirt.app.coverage import run_coverage

    run_coverage(state.loaded, list(paths) or ["scenarios"], [Path(p) for p in rule_paths])


@cli.command(name="export")
@click.argument("scenario_path", metavar="SCENARIO", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["chaostoolkit"]), default="chaostoolkit", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="File to write (.json, or .yaml/.yml for YAML).")
@click.option("--target", "-t", "target_name", help="Target the experiment runs on (default: the scenario's).")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Override a scenario variable.")
@click.pass_obj
def export_(state: _State, scenario_path: str, fmt: str, output: str | None, target_name: str | None,
            variables: tuple[str, ...]) -> None:
    """Write a drill as a Chaos Toolkit experiment that `chaos run` executes against the same target."""
    from dirt.ctk import require_chaoslib

    require_chaoslib()
    from dirt.ctk.export import dump_experiment, export_scenario

    out = Path(output) if output else None
    experiment = export_scenario(Path(scenario_path), state.loaded, _load_options(state, _parse_vars(variables)),
                                 target_name)
    text = dump_experiment(experiment, out)
    _write_output(text, out)


@cli.command(name="import")
@click.argument("experiment_path", metavar="EXPERIMENT", type=click.Path(dir_okay=False, exists=True))
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Scenario file to write (default: stdout).")
@click.pass_obj
def import_(state: _State, experiment_path: str, output: str | None) -> None:
    """Turn a Chaos Toolkit experiment (JSON or YAML) into a dirt scenario of `ctk` steps.

    What did not map is listed in the scenario's header comment and on stderr.
    """
    from dirt.ctk import require_chaoslib

    require_chaoslib()
    from dirt.ctk.importer import import_experiment

    text, unmapped = import_experiment(Path(experiment_path))
    for line in unmapped:
        click.echo(f"not mapped: {line}", err=True)
    _write_output(text, Path(output) if output else None)


def _write_output(text: str, out: Path | None) -> None:
    """Print ``text``, or write it to ``out`` (a file that cannot be written is a usage error)."""
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{out}: cannot write: {exc.strerror or exc}") from None
    click.echo(f"wrote {out}", err=True)


def register_subcommands() -> None:
    """Attach the command groups kept in their own modules (``dirt sandbox``, ``dirt gameday``...).

    Done when the CLI runs, not at import, so ``import dirt.cli`` stays light; the docs' command
    reference calls it before it reads the group."""
    from dirt.cli.gameday import gameday
    from dirt.cli.history import history
    from dirt.cli.image import image
    from dirt.cli.kind import kind
    from dirt.cli.sandbox import sandbox

    cli.add_command(sandbox)
    cli.add_command(gameday)
    cli.add_command(history)
    cli.add_command(image)
    cli.add_command(kind)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning dirt's errors into one-line messages and exit codes."""
    sys.exit(exit_code(argv))


def exit_code(argv: list[str] | None = None) -> int:
    """Run the CLI; the exit code comes from the command's verdict or from the error's class."""
    register_subcommands()
    try:
        code = cli.main(args=argv, prog_name="dirt", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:  # click's usage errors: exit 2, like ours
        exc.show()
        return exc.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return DrillAborted.exit_code
    except DirtError as exc:
        prefix = "" if isinstance(exc, ScenarioError) else "dirt: error: "
        click.echo(redact_text(f"{prefix}{exc.show()}"), err=True)
        return exc.exit_code
    except BrokenPipeError:
        return DirtError.exit_code


if __name__ == "__main__":  # pragma: no cover
    main()

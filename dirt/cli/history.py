"""``dirt history [SCENARIO] [--since] [--json]`` and ``dirt history export``: what the run history says.

The view: the runs, each scenario's MTTR and MTTD trend, regressions, resilience
scores, overdue drills and backups never proven by a restore (the rules and the
score formula are in ``dirt.history.analysis``).  ``export --format
openmetrics`` writes the metrics for node-exporter's textfile collector, or
pushes them to a Pushgateway.  ``history`` is a group whose bare form is the
view, so both ``dirt history etcd-loss`` and ``dirt history export`` work.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from dirt.core.durations import format_duration


class _ViewByDefault(click.Group):
    """A group whose arguments, when they do not name a subcommand, go to the ``show`` command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["show", *args]
        return super().parse_args(ctx, args)


def _reports(state: Any, report_dir: str | None) -> Path:
    loaded = state.loaded
    return Path(report_dir) if report_dir else loaded.root / loaded.config.reports_dir


def _load(state: Any, report_dir: str | None, scenario: str | None, since: str | None,
          limit: int | None) -> tuple[Any, ...]:
    """The history's summary (``limit``: newest runs shown and trend points per scenario; None: all),
    the scenarios' expected intervals and now."""
    from dirt.app.history import open_history, parse_since, scheduled_intervals
    from dirt.history.analysis import WINDOW

    now = datetime.now(timezone.utc)
    start = parse_since(since, now) if since else None
    # scores and regressions always see the runs they compare, however few are shown
    per_scenario = None if limit is None else max(limit, WINDOW + 1)
    with open_history(state.loaded, _reports(state, report_dir)) as store:
        summary = store.summary(scenario, start, limit=limit, per_scenario=per_scenario)
    intervals = scheduled_intervals(state.loaded.root)
    if scenario is not None:
        intervals = {k: v for k, v in intervals.items() if k == scenario}
    return summary, intervals, now


#: Runs listed (and trend points per scenario) by default: a screenful, however long the history.
DEFAULT_LIMIT = 20
#: More than any history holds (and than a database's LIMIT takes): 0 already means all.
MAX_LIMIT = 1_000_000_000

_report_dir = click.option("--report-dir", type=click.Path(file_okay=False),
                           help="Reports folder whose SQLite history to read (default: dirt.yaml's reports_dir).")


@click.group(cls=_ViewByDefault)
def history() -> None:
    """Recorded runs: trends, regressions, scores, overdue drills, unproven backups; metrics export."""


@history.command("show")
@click.argument("scenario", required=False)
@click.option("--since", help="Only runs started since: an age (30d, 12h, 2w) or an ISO date.")
@click.option("--limit", type=click.IntRange(min=0, max=MAX_LIMIT), default=DEFAULT_LIMIT, show_default=True,
              help="The newest N runs and game days, and each scenario's newest N (at least the 6 its score and "
                   "regressions compare) in its trend; 0: all. Overdue drills and unproven backups always count "
                   "every run.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@_report_dir
@click.pass_obj
def show(state: Any, scenario: str | None, since: str | None, limit: int, as_json: bool,
         report_dir: str | None) -> None:
    """The history of every scenario (or of SCENARIO): the default of `dirt history`."""
    from dirt.app.history import history_view

    view = history_view(*_load(state, report_dir, scenario, since, limit or None))
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    _print_view(view)


def _seconds(value: float | None) -> str:
    return "never" if value is None else format_duration(value)


def _print_view(view: dict[str, Any]) -> None:
    if not view["runs"]:
        click.echo("no runs recorded yet (every `dirt run` and game day is recorded)")
    else:
        click.echo(f"{'started (UTC)':<20} {'scenario':<28} {'verdict':<8} {'MTTR':>8} {'score':>6}  run")
        for run in view["runs"]:
            when = (run["started_at"] or "-")[:19].replace("T", " ")
            score = "-" if run["score"] is None else f"{run['score']:.0f}"
            click.echo(f"{when:<20} {run['scenario']:<28} {run['verdict']:<8} {_seconds(run['mttr']):>8} "
                       f"{score:>6}  {run['run_id']}")
        if view["runs_total"] > len(view["runs"]):
            click.echo(f"(the newest {len(view['runs']):,} of {view['runs_total']:,} runs; --limit N for more, "
                       "--limit 0 for all)")
    if view["trends"]:
        click.echo("\ntrends (oldest → newest)")
        for trend in view["trends"]:
            click.echo(f"  {trend['scenario']}: MTTR " + " ".join(_seconds(p["seconds"]) for p in trend["mttr"]))
            for alert, points in trend["mttd"].items():
                click.echo(f"    MTTD {alert}: " + " ".join(_seconds(p["seconds"]) for p in points))
    scores = view["scores"]
    if scores["scenarios"] or scores["gamedays"]:
        click.echo("\nresilience scores (0..100)")
        for name, value in sorted(scores["scenarios"].items()):
            click.echo(f"  scenario {name}: {value:.1f}")
        for name, value in sorted(scores["gamedays"].items()):
            click.echo(f"  game day {name}: {'-' if value is None else f'{value:.1f}'}")
    _section("regressions", [f"{r['scenario']} {r['metric']}: {r['reason']} (run {r['run_id']})"
                             for r in view["regressions"]])
    _section("overdue drills", [
        f"{o['scenario']}: " + ("never passed" if o["last_passed"] is None else
                                f"last passed {o['last_passed']}, {format_duration(o['overdue_seconds'])} late")
        + f" (expected every {format_duration(o['interval_seconds'])})" for o in view["overdue"]])
    _section("backups never proven by a restore", [
        f"{u['scenario']}: {u['backup']} (taken {u['taken']} time(s), last {u['last_taken']})"
        for u in view["unproven_backups"]])


def _section(title: str, lines: list[str]) -> None:
    click.echo(f"\n{title}: {'none' if not lines else ''}".rstrip())
    for line in lines:
        click.echo(f"  {line}")


@history.command("export")
@click.option("--format", "fmt", type=click.Choice(["openmetrics"]), default="openmetrics", show_default=True,
              help="Exposition format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write to this file (atomically, for node-exporter's textfile collector); default: stdout.")
@click.option("--pushgateway", help="Push to this Prometheus Pushgateway (http://HOST:PORT) as job 'dirt'.")
@_report_dir
@click.pass_obj
def export(state: Any, fmt: str, output: str | None, pushgateway: str | None, report_dir: str | None) -> None:
    """The history's metrics: last run, verdict, MTTD, MTTR, backups, scores, overdue drills."""
    from dirt.app.history import metrics_registry, openmetrics_text, push

    registry = metrics_registry(*_load(state, report_dir, None, None, 1))
    if pushgateway:
        push(registry, pushgateway)
        click.echo(f"pushed to {pushgateway.rstrip('/')}/metrics/job/dirt", err=True)
        if not output:
            return
    text = openmetrics_text(registry)
    if output:
        _write_atomically(Path(output), text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def _write_atomically(path: Path, text: str) -> None:
    """node-exporter must never read half a file: write beside it, then rename."""
    from dirt.core.errors import UsageError

    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None

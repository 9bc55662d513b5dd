"""``dirt gameday``: game days (plans of drills, scheduled or run by hand) — validate, plan, run, next, due, export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


@click.group(name="gameday")
def gameday() -> None:
    """Game days: several drills run together, on a schedule, with notifications and approvals."""


@gameday.command(name="validate")
@click.argument("paths", nargs=-1, required=True)
@click.option("--quiet", "-q", is_flag=True, help="Print problems only.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Override a variable of every drill.")
@click.pass_obj
def validate_(state: Any, paths: tuple[str, ...], quiet: bool, variables: tuple[str, ...]) -> None:
    """Check game-day files and the scenario of every drill in them; exit 2 on any problem.

    Folders are searched for YAML files of kind GameDay.
    """
    from dirt.cli import _parse_vars
    from dirt.core.errors import ScenarioError, UsageError
    from dirt.gameday import gameday_files, load_gameday

    targets = list(state.loaded.config.targets)
    overrides = _parse_vars(variables)
    files = gameday_files(paths)
    bad = 0
    for path in files:
        try:
            day = load_gameday(path, known_targets=targets, variables=overrides)
        except ScenarioError as exc:
            bad += 1
            click.echo(exc.show(), err=True)
            continue
        for warning in day.warnings:
            click.echo(str(warning), err=True)
        if not quiet:
            when = (f"cron '{day.schedule.cron}' in {day.schedule.timezone}" if day.schedule else "no schedule")
            click.echo(f"ok  {path}  ({day.name}: {len(day.drills)} drill(s), {when})")
    summary = f"{len(files) - bad} valid, {bad} invalid"
    if bad:
        raise UsageError(summary)
    if not quiet:
        click.echo(summary)


@gameday.command(name="next")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--count", "-n", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="How many runs to list (blacked-out cron times are shown between them).")
@click.option("--after", metavar="ISO-8601",
              help="List runs after this moment (default: now); without an offset it is read in the schedule's zone.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def next_(state: Any, path: str, count: int, after: str | None, as_json: bool) -> None:
    """List a scheduled game day's next runs: local time, UTC, and the cron times blackouts skip.

    Jitter is applied as `dirt gameday run` will apply it (a hash of the game day's name and the cron
    time).  skip_when_firing cannot be known in advance: it is checked when the run starts.
    Exit 2 when blackouts leave (nearly) no cron time free.
    """
    import json

    from dirt.core.errors import UsageError
    from dirt.gameday import load_gameday
    from dirt.gameday.schedule import MAX_SCAN, gameday_scan

    day = load_gameday(Path(path), known_targets=list(state.loaded.config.targets))
    schedule = day.schedule
    if schedule is None:
        raise UsageError(f"{path}: game day {day.name!r} has no schedule: it runs only when started by hand")
    start = _moment(after, "--after", schedule)
    found = gameday_scan(day, start, count)
    note = (f"checked when a run starts, not known in advance: a run is skipped while "
            f"{', '.join(schedule.skip_when_firing)} fires") if schedule.skip_when_firing else None
    if as_json:
        click.echo(json.dumps(_next_json(day, start, found, note), indent=2))
    else:
        for line in _next_lines(day, start, found, note):
            click.echo(line)
    if found.gave_up:
        raise UsageError(f"{path}: found {len(found.runs)} of {count} run(s) in {found.scanned:,} cron times "
                         f"(the search stops at {MAX_SCAN:,} or ten years): the blackouts cover (nearly) every one")


def _moment(text: str | None, option: str, schedule: Any) -> Any:
    """Now, or the moment given as ``option`` (without an offset it is read in the schedule's zone)."""
    from datetime import datetime, timezone

    from dirt.core.errors import UsageError
    from dirt.gameday.schedule import wall_to_instant, zone_of

    if not text:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO-8601 date-time (e.g. 2027-03-27T12:00 or "
                         "2027-03-27T12:00+01:00)") from None
    return wall_to_instant(moment, zone_of(schedule)) if moment.tzinfo is None else moment


@gameday.command(name="due")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--at", metavar="ISO-8601",
              help="Ask about this moment (default: now); without an offset it is read in the schedule's zone.")
@click.pass_obj
def due_(state: Any, path: str, at: str | None) -> int:
    """Is a scheduled run due: does a run started now belong to a real slot of the schedule?

    Exit 0 and the slot when it does; exit 1 and "not a scheduled slot" (with the last and next cron
    times) when it does not.  `dirt gameday run --trigger schedule` asks the same first; the exported
    GitHub workflow asks it before it makes a kind cluster, since GitHub's cron cannot say 2#1 or L.
    """
    from dirt.app.gameday import not_due_reason
    from dirt.core.errors import UsageError
    from dirt.gameday import load_gameday
    from dirt.gameday.schedule import due

    day = load_gameday(Path(path), known_targets=list(state.loaded.config.targets))
    if day.schedule is None:
        raise UsageError(f"{path}: game day {day.name!r} has no schedule: it runs only when started by hand")
    moment = _moment(at, "--at", day.schedule)
    slot = due(day.schedule, moment, day.name)
    if slot is None:
        click.echo(f"game day {day.name}: {not_due_reason(day, moment)}")
        return 1
    click.echo(f"game day {day.name}: due for the slot of {slot.cron_at.isoformat()} (starts "
               f"{slot.start.isoformat()}, may start until {slot.deadline.isoformat()})")
    return 0


def _next_json(day: Any, start: Any, found: Any, note: str | None) -> dict[str, Any]:
    from datetime import timezone

    schedule = day.schedule
    return {
        "gameday": day.name, "path": str(day.path), "seed": day.name, "after": start.isoformat(),
        "schedule": {"cron": schedule.cron, "timezone": schedule.timezone, "jitter_seconds": schedule.jitter,
                     "skip_when_firing": list(schedule.skip_when_firing)},
        "skip_when_firing_note": note,
        "occurrences": [{"at": o.at.isoformat(), "at_utc": o.at.astimezone(timezone.utc).isoformat(),
                         "cron_at": o.cron_at.isoformat(), "status": o.status, "kind": o.kind, "reason": o.reason}
                        for o in found.occurrences],
        "runs": len(found.runs), "scanned": found.scanned, "gave_up": found.gave_up,
    }


def _next_lines(day: Any, start: Any, found: Any, note: str | None) -> list[str]:
    """One line per occurrence; a long stretch skipped by one blackout shows its first and last only."""
    from dirt.core.durations import format_duration

    schedule = day.schedule
    jitter = f", jitter up to {format_duration(schedule.jitter)}" if schedule.jitter else ""
    lines = [f"game day {day.name}: cron '{schedule.cron}' in {schedule.timezone}{jitter}",
             f"after {_when(start)}"]
    groups: list[list[Any]] = []
    for o in found.occurrences:
        same = groups and o.status == "blackout" and groups[-1][0].status == "blackout" \
            and (groups[-1][0].kind, groups[-1][0].reason) == (o.kind, o.reason)
        if same:
            groups[-1].append(o)
        else:
            groups.append([o])
    for group in groups:
        shown = group if len(group) <= 3 else [group[0], None, group[-1]]
        for o in shown:
            lines.append(f"  ... {len(group) - 2} more skipped by the same blackout" if o is None else _occurrence(o))
    if note:
        lines.append(f"skip_when_firing: {note}")
    return lines


def _occurrence(o: Any) -> str:
    from datetime import timezone

    from dirt.core.durations import format_duration

    text = f"  {'RUN' if o.status == 'run' else 'SKIPPED':8} {_when(o.at)}   {_when(o.at.astimezone(timezone.utc))}"
    delay = (o.at - o.cron_at).total_seconds()
    if delay:
        text += f"   (cron {o.cron_at.strftime('%H:%M')} + {format_duration(delay)} jitter)"
    if o.status != "run":
        word = {"dates": "blackout", "freeze": "freeze", "weekly": "weekly blackout"}.get(o.kind or "", "blackout")
        reason = o.reason or ""
        text += f"   {reason}" if reason.startswith(word) else f"   {word} '{reason}'"
    return text


def _when(moment: Any) -> str:
    return f"{moment.strftime('%Y-%m-%d %a %H:%M:%S')} {moment.tzname()}"


@gameday.command(name="plan")
@click.argument("path", type=click.Path(dir_okay=False))
@click.pass_obj
def plan_(state: Any, path: str) -> None:
    """Show a game day as it would run: drills in order, targets, each drill's blast radius,
    approval and notifications (secrets hidden); touches nothing."""
    from dirt.app.gameday import render_gameday_plan
    from dirt.core.errors import UsageError
    from dirt.core.redact import redact_text
    from dirt.gameday import load_gameday

    loaded = state.loaded
    day = load_gameday(Path(path), known_targets=list(loaded.config.targets))
    text, refused = render_gameday_plan(day, loaded)
    click.echo(redact_text(text))
    if refused:
        raise refused[0] if len(refused) == 1 else UsageError(f"the targets refuse steps of {len(refused)} drills")


@gameday.command(name="run")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--approved-by", metavar="NAME", help="Approve the day as NAME (an approver of the game day).")
@click.option("--yes", "-y", is_flag=True, help="Confirm destructive faults on non-sandbox targets.")
@click.option("--report-dir", type=click.Path(file_okay=False), help="Where run folders go (default: reports/).")
@click.option("--display", type=click.Choice(["auto", "rich", "plain", "none"]), default="auto", show_default=True)
@click.option("--trigger", type=click.Choice(["manual", "schedule"]), default="manual", show_default=True,
              help="What started the run (a scheduler passes 'schedule').")
@click.option("--started-at", metavar="ISO-8601",
              help="With --trigger schedule: when the scheduler started the run, if not now (a workflow that "
                   "asked `dirt gameday due` before a slow setup passes the moment it asked).")
@click.option("--force", is_flag=True, help="Run even while a skip_when_firing alert fires.")
@click.pass_obj
def run_(state: Any, path: str, approved_by: str | None, yes: bool, report_dir: str | None, display: str,
         trigger: str, started_at: str | None, force: bool) -> int:
    """Run a game day: approval, then its drills in order, notifications, and the game-day report.

    With --trigger schedule (what the exported CronJob, workflow and timer pass) it runs only for a
    real slot of the schedule: between a cron time and its jittered start plus schedule.starting_deadline.
    Started at any other time (a scheduler's superset of the cron, a late catch-up) it says
    "not a scheduled slot", touches nothing and exits 0.

    Exit status: 0 passed (or skipped while an alert fired, or not a scheduled slot), 1 a drill failed,
    2 bad input, 3 aborted or vetoed.
    """
    from datetime import datetime, timedelta, timezone

    from dirt.app.gameday import run_gameday
    from dirt.cli import _confirm
    from dirt.core.errors import UsageError
    from dirt.core.redact import redact_text
    from dirt.gameday import load_gameday

    loaded = state.loaded
    day = load_gameday(Path(path), known_targets=list(loaded.config.targets))
    if started_at and trigger != "schedule":
        raise UsageError("--started-at is for --trigger schedule: a run started by hand runs now")
    asked = _moment(started_at, "--started-at", day.schedule) if started_at and day.schedule else None
    if asked is not None and asked > datetime.now(timezone.utc) + timedelta(seconds=60):
        raise UsageError(f"--started-at {started_at!r} is in the future: give the moment the scheduler started the run")
    result = run_gameday(day, loaded, approved_by=approved_by, trigger=trigger, started_at=asked, force=force,
                         assume_yes=yes,
                         confirm=_confirm, display=display, report_dir=Path(report_dir) if report_dir else None,
                         say=lambda text: click.echo(redact_text(text), err=True))
    if result.verdict == "not-due":
        click.echo(f"game day {day.name}: {result.reason}")
        return result.exit_code
    for drill in result.drills:
        where = f" {drill.result.run_dir / 'report.html'}" if drill.result else ""
        click.echo(f"{drill.verdict.upper():8} {drill.id}{where}")
        if drill.verdict != "passed" and drill.reason:
            click.echo(redact_text(f"         - {drill.reason}"))
    for warning in result.warnings:
        click.echo(redact_text(f"warning: {warning}"), err=True)
    click.echo(f"{result.verdict.upper():8} game day {day.name}: {result.report_path}")
    if result.reason:
        click.echo(redact_text(f"         {result.reason}"))
    return result.exit_code


@gameday.command(name="export")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--cronjob", "kind", flag_value="cronjob", help="A Kubernetes CronJob with its ConfigMap, RBAC.")
@click.option("--github-actions", "kind", flag_value="github-actions", help="A scheduled GitHub Actions workflow.")
@click.option("--systemd", "kind", flag_value="systemd", help="A systemd service and timer (written to --output DIR).")
@click.option("--output", "-o", type=click.Path(), help="File to write (a folder for --systemd; default: stdout).")
@click.option("--image", help="Container image with dirt installed (--cronjob).")
@click.option("--namespace", default="dirt", show_default=True, help="Namespace of the CronJob (must exist).")
@click.option("--management-cluster", is_flag=True,
              help="The CronJob runs in a separate cluster: control-plane, etcd and cluster drills are allowed.")
@click.option("--kubeconfig-secret", metavar="NAME", help="Secret with the drilled cluster's kubeconfig "
              "(key 'kubeconfig'): the job acts as that identity instead of its ServiceAccount (needed with "
              "--management-cluster).")
@click.option("--reports-pvc", metavar="NAME", help="PersistentVolumeClaim for reports and the run history "
              "(default: an emptyDir).")
@click.option("--reports-host-path", metavar="PATH", help="A folder on the node for reports and the run history "
              "(hostPath; writable by uid 65532).")
@click.option("--host-network", is_flag=True, help="Run the job's pod in the node's network (it reaches the API "
              "server, Prometheus and Alertmanager at the node's addresses, e.g. 127.0.0.1).")
@click.option("--node-selector", "node_selectors", multiple=True, metavar="KEY=VALUE",
              help="Run the job only on nodes with this label (repeatable).")
@click.option("--toleration", "tolerations", multiple=True, metavar="KEY[=VALUE][:EFFECT]",
              help="Let the job run on nodes with this taint (repeatable), e.g. dirt.dev/real-node=true:NoSchedule.")
@click.option("--env-secret", metavar="NAME", help="Secret whose keys become the job's environment "
              "(webhook URLs, tokens named by *_env).")
@click.option("--target", "-t", "target_name", help="A kubeconfig target of dirt.yaml to copy (commands, "
              "Prometheus, allow list) into the job's dirt.yaml (--cronjob).")
@click.option("--prometheus", "prometheus_url", metavar="URL", help="Prometheus as the job reaches it (--cronjob).")
@click.option("--alertmanager", "alertmanager_url", metavar="URL", help="Alertmanager as the job reaches it.")
@click.pass_obj
def export_(state: Any, path: str, kind: str | None, output: str | None, image: str | None, namespace: str,
            management_cluster: bool, kubeconfig_secret: str | None, reports_pvc: str | None,
            reports_host_path: str | None, host_network: bool, node_selectors: tuple[str, ...],
            tolerations: tuple[str, ...], env_secret: str | None, target_name: str | None,
            prometheus_url: str | None, alertmanager_url: str | None) -> None:
    """Hand a scheduled game day to a real scheduler: a Kubernetes CronJob, a GitHub Actions
    workflow, or a systemd timer.  Blackouts are checked by the run itself at start.

    A cron the scheduler cannot read (2#1, L, 15W) is exported as a superset the scheduler
    accepts, and the run itself lets only the real slots through (`dirt gameday due`).

    A CronJob in the cluster its drills destroy would die with it: plans with control-plane,
    etcd or cluster drills are refused (exit 2) unless --management-cluster says it runs
    elsewhere and --kubeconfig-secret names how it reaches the drilled cluster.  A plan whose
    drills watch alerts is refused unless the job can reach a Prometheus or Alertmanager
    (--prometheus, --alertmanager, or a --target that names them).
    """
    from dirt.app import gameday_export
    from dirt.core.errors import UsageError
    from dirt.gameday import load_gameday

    if kind is None:
        raise UsageError("say which scheduler: --cronjob, --github-actions or --systemd")
    if kind != "cronjob" and (image or management_cluster or kubeconfig_secret or reports_pvc or reports_host_path
                              or host_network or node_selectors or tolerations or env_secret or target_name
                              or prometheus_url or alertmanager_url):
        raise UsageError("--image, --management-cluster, --kubeconfig-secret, --reports-pvc, --reports-host-path, "
                         "--host-network, --node-selector, --toleration, --env-secret, --target, --prometheus and "
                         "--alertmanager are for --cronjob")
    loaded = state.loaded
    day = load_gameday(Path(path), known_targets=list(loaded.config.targets))
    out = Path(output) if output else None
    if kind == "systemd":
        units = gameday_export.systemd(day, config=loaded.path if loaded.path else None)
        _write_units(units, out)
        return
    if kind == "github-actions":
        text = gameday_export.github_actions(day)
    else:
        if not image:
            raise UsageError("--cronjob needs --image IMAGE: a container image with dirt installed")
        target = loaded.target(target_name)[1] if target_name else None
        history = loaded.config.history if (loaded.config.history or "").startswith("postgresql") else None
        placement = gameday_export.Placement(node_selector=_labels(node_selectors),
                                             tolerations=tuple(_toleration(t) for t in tolerations),
                                             host_network=host_network)
        text = gameday_export.cronjob(
            day, image=image, namespace=namespace, management_cluster=management_cluster,
            kubeconfig_secret=kubeconfig_secret, reports_pvc=reports_pvc, reports_host_path=reports_host_path,
            env_secret=env_secret, target_config=target, prometheus_url=prometheus_url,
            alertmanager_url=alertmanager_url, history=history,
            history_password_env=loaded.config.history_password_env if history else None, placement=placement)
    from dirt.cli import _write_output

    _write_output(text, out)


_LABEL_KEY = r"([A-Za-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    """--node-selector KEY=VALUE, each checked as Kubernetes checks label keys and values."""
    import re

    from dirt.core.errors import UsageError

    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(_LABEL_KEY, key) or not re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*"
                                                                           r"[A-Za-z0-9])?)?", value):
            raise UsageError(f"--node-selector {pair!r}: write KEY=VALUE with a label key and value, "
                             "e.g. dirt.dev/node=real")
        labels[key] = value
    return labels


def _toleration(text: str) -> dict[str, str]:
    """--toleration KEY[=VALUE][:EFFECT] as a pod toleration (Equal with a value, Exists without)."""
    import re

    from dirt.core.errors import UsageError

    match = re.fullmatch(rf"(?P<key>{_LABEL_KEY})(=(?P<value>[^:]*))?(:(?P<effect>NoSchedule|PreferNoSchedule|"
                         r"NoExecute))?", text)
    if match is None:
        raise UsageError(f"--toleration {text!r}: write KEY[=VALUE][:EFFECT] with EFFECT NoSchedule, "
                         "PreferNoSchedule or NoExecute, e.g. dirt.dev/real-node=true:NoSchedule")
    toleration = {"key": match["key"]}
    if match["value"] is not None:
        toleration |= {"operator": "Equal", "value": match["value"]}
    else:
        toleration["operator"] = "Exists"
    if match["effect"]:
        toleration["effect"] = match["effect"]
    return toleration


def _write_units(units: dict[str, str], folder: Path | None) -> None:
    """systemd units: into a folder (one file each), or printed one after the other."""
    from dirt.core.errors import UsageError

    if folder is None:
        for name, text in units.items():
            click.echo(f"# {name}\n{text}")
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            (folder / name).write_text(text, encoding="utf-8")
            click.echo(f"wrote {folder / name}", err=True)
    except OSError as exc:
        raise UsageError(f"{folder}: cannot write: {exc.strerror or exc}") from None

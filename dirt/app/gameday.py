"""Running a game day: approval, the alerts that must not be firing, the drills in order, notifications, report.

``run_gameday`` does, in this order, and journals every step in
``<reports>/gamedays/<run_id>/journal.jsonl`` (``dirt.journal.gameday``):

1. load every drill's scenario and resolve its target (a broken file is exit 2
   before anything is asked or touched).  A run a scheduler started (``--trigger schedule``) goes on only for a real
   slot of the schedule (``dirt.gameday.schedule.due``), else it ends at once as
   ``not-due`` (exit 0), writing and telling nothing; within a slot it waits out
   the jitter, then skips the day inside a blackout;
2. approval: ``--approved-by NAME`` (one of the approvers, when any are listed),
   else the approval webhook is POSTed the plan and must answer 2xx with
   ``{"allow": true}`` (optionally ``"by"`` and ``"reason"``).  Anything else — no
   answer in time, another status, ``allow`` not true, no approval given where one
   is required — is a veto: nothing runs, the veto is notified and recorded;
3. ``schedule.skip_when_firing``: while one of those alerts fires on a drill's
   target the day is skipped (notified, recorded); ``force`` overrides;
4. the drills in ``GameDay.order()``, each through ``dirt.app.run.run_one`` (so
   each writes its own run folder and is recorded like any ``dirt run``), with the
   day's variables and then the drill's, and the day's ``abort_when`` added to
   the scenario's.  A drill whose ``depends_on`` did not pass is skipped; a failed
   drill with ``on_failure: stop`` stops the day, and an aborted drill always does;
5. the game-day report (``dirt.report.gameday``) and the run history.

Notifications (``notify``) never fail the day: each is bounded by its timeout,
and a delivery that fails is journaled and shown as a warning.  Webhook URLs
given by ``url_env`` are secrets: they are masked everywhere, and a notify is
named by its ``name``, its variable, or the scheme and host of its URL.

The JSON notification (``format: json``), stable and versioned::

    {"schema_version": 1, "event": "start" | "drill" | "failure" | "finish",
     "gameday": name, "run_id": game-day run id, "trigger": "manual" | "schedule",
     "at": ISO time, "text": one line for people,
     "drill": drill id or null, "scenario": its file or null, "drill_run_id": its run id or null,
     "verdict": the drill's (drill, failure) or the day's (finish), null at start,
     "reason": why (a veto, a skip, a stop), "mttd": {alert: seconds}, "mttr": seconds or null,
     "report": the drill's report.html (drill, failure) or the day's (finish): a URL under
               dirt.yaml's report_base_url when set, else its path on the runner,
     "score": 0..100 or null, "stopped_after": drill id or null,
     "drills": [{"id", "verdict", "score", "report"}]}

The Slack format (``format: slack``) is ``{"text": ..., "blocks": [...]}`` with
mrkdwn sections, for Slack-compatible incoming webhooks (Mattermost, Rocket.Chat...).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dirt import __version__
from dirt.app.run import refresh_dashboard, run_one, run_options, target_for
from dirt.clients.http import post_json, safe_origin
from dirt.config import LoadedConfig
from dirt.core.durations import format_duration
from dirt.core.errors import DirtError, DrillAborted, HttpError, MonitoringError, Problem, ScenarioError, UsageError
from dirt.core.redact import redact_text, register_secret
from dirt.drivers import fault_family
from dirt.drivers.registry import default_registry
from dirt.engine.guardrails import Confirm
from dirt.engine.runner import RunResult
from dirt.gameday.loader import environment_problems
from dirt.gameday.model import DrillEntry, GameDay, Notify, Schedule
from dirt.gameday.schedule import Slot, due
from dirt.journal import Journal
from dirt.journal import gameday as gd
from dirt.report.gameday import day_score, drill_score, render_gameday
from dirt.scenario import Scenario, load_options, load_scenario
from dirt.scenario.model import AbortCondition
from dirt.targets.base import Target

#: Sends one notification: (url, payload, timeout seconds, headers); raises DirtError when it was not delivered.
NotifySender = Callable[[str, dict[str, Any], float, dict[str, str]], None]
#: Says one line of progress to the person running the day.
Say = Callable[[str], None]
DAY_EXIT = {"passed": 0, "failed": 1, "aborted": 3, "skipped": 0, "not-due": 0}


@dataclass
class DrillOutcome:
    id: str
    scenario: str
    verdict: str  # passed | failed | aborted | skipped | not-run
    weight: float = 1.0
    reason: str = ""
    target: str | None = None
    result: RunResult | None = None

    @property
    def run_id(self) -> str | None:
        return self.result.run_id if self.result else None

    @property
    def report(self) -> dict[str, Any] | None:
        return self.result.report if self.result else None


@dataclass
class GameDayResult:
    run_id: str
    day_dir: Path
    verdict: str  # passed | failed | aborted | skipped | not-due (a scheduler's start outside a real slot)
    reason: str = ""
    drills: list[DrillOutcome] = field(default_factory=list)
    approved_by: str | None = None
    stopped_after: str | None = None
    warnings: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None

    @property
    def exit_code(self) -> int:
        return DAY_EXIT.get(self.verdict, 1)

    @property
    def report_path(self) -> Path:
        return self.day_dir / "report.html"


@dataclass(frozen=True)
class _Planned:
    """One drill ready to run: its scenario (the day's guards added), target and variables."""

    entry: DrillEntry
    scenario: Scenario
    target: Target
    variables: dict[str, Any]
    #: one member's run of a ``for_each_member`` drill: the drill's own id (its runs are ``ID-MEMBER``)
    group: str | None = None


def new_gameday_run_id(gameday: GameDay) -> str:
    """Like a drill's: ``<UTC timestamp>-<name>-<4 hex>``."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{gameday.name}-{secrets.token_hex(2)}"


def post_notification(url: str, payload: dict[str, Any], timeout: float, headers: dict[str, str]) -> None:
    response = post_json(url, payload, timeout=timeout, headers=headers)
    if not response.ok:
        raise HttpError(f"POST {safe_origin(url)}: HTTP {response.status}")


def run_gameday(
    gameday: GameDay,
    loaded: LoadedConfig,
    *,
    approved_by: str | None = None,
    trigger: str = "manual",
    started_at: datetime | None = None,
    report_dir: Path | None = None,
    notify_sender: NotifySender | None = None,
    force: bool = False,
    assume_yes: bool = False,
    confirm: Confirm | None = None,
    display: str = "none",
    handle_signals: bool = True,
    say: Say | None = None,
    make_target: Callable[[Scenario, str | None], Target] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> GameDayResult:
    """Run ``gameday`` (see the module docstring); the day's report folder is ``<reports>/gamedays/<run_id>/``.

    Raises ``UsageError`` (exit 2) before anything is touched for a broken drill file, an unknown target,
    an ``approved_by`` who is not an approver, or a webhook variable (``url_env``, ``webhook_env``) that is
    unset or holds no URL.  ``started_at``: when the scheduler started the run, if
    not now (a workflow that asked ``dirt gameday due`` before a slow setup passes the moment it asked).
    """
    say = say or (lambda text: None)
    reports = Path(report_dir or loaded.root / loaded.config.reports_dir)
    planned = _plan(gameday, loaded, make_target)
    _check_approver(gameday, approved_by)
    approved_by = approved_by.strip() if approved_by else None
    schedule = gameday.document.schedule
    slot = None
    if trigger == "schedule" and schedule is not None:
        asked = started_at or datetime.now(timezone.utc)
        slot = due(schedule, asked, gameday.name)
        if slot is None:  # a scheduler's superset time, a catch-up too late, a wrong season's cron
            return GameDayResult(run_id="", day_dir=reports, verdict="not-due",
                                 reason=not_due_reason(gameday, asked) + "; nothing was touched")
    missing = environment_problems(gameday)  # a webhook variable unset or not a URL: say so before anything
    if missing:
        raise ScenarioError(str(missing[0].path), missing)
    run_id = new_gameday_run_id(gameday)
    day = _Day(gameday, loaded, run_id, reports, trigger, notify_sender or post_notification, say)
    try:
        day.start(planned)
        if slot is not None and schedule is not None:
            blackout = _wait_for_scheduled_start(day, schedule, slot, sleep=sleep)
            if blackout:
                return day.skip(f"skipped: inside a blackout: {blackout}", approved_by=approved_by)
        allowed, by, reason = _approve(day, planned, approved_by)
        if not allowed:
            return day.finish("aborted", f"vetoed: {reason}", approved_by=None, failure=True)
        firing = [] if force else _firing(day, planned)
        if firing:
            return day.skip(f"skipped: alert(s) firing: {', '.join(firing)}", alerts=firing, approved_by=by)
        day.notify("start")
        _run_drills(day, planned, loaded, reports, assume_yes=assume_yes, confirm=confirm, display=display,
                    handle_signals=handle_signals)
        return day.finish(day.verdict(), day.reason(), approved_by=by)
    except KeyboardInterrupt:
        day.not_run_rest("not run: the game day was interrupted")
        return day.finish("aborted", "interrupted", approved_by=approved_by, failure=True)
    finally:
        day.journal.close()


def not_due_reason(gameday: GameDay, now: datetime | None = None) -> str:
    """Why a run started by a scheduler now is not for a real slot: the last and the next cron times."""
    from dirt.gameday.schedule import cron_times, scheduled_start, slot_of

    schedule = gameday.document.schedule
    assert schedule is not None
    now = now or datetime.now(timezone.utc)
    parts = [f"not a scheduled slot of {schedule.cron!r} in {schedule.timezone}"]
    latest = scheduled_start(schedule, now, gameday.name)
    if latest is not None:
        slot = slot_of(schedule, latest[0], gameday.name)
        parts.append(f"the last was {slot.cron_at.isoformat()} (it could start until {slot.deadline.isoformat()})")
    upcoming = next(cron_times(schedule, now), None)
    if upcoming is not None:
        parts.append(f"the next is {upcoming.isoformat()}")
    return "; ".join(parts)


def _wait_for_scheduled_start(day: _Day, schedule: Schedule, slot: Slot, *,
                              sleep: Callable[[float], None]) -> str | None:
    """A run a scheduler started for ``slot``: wait out the jitter ``next`` showed, then check the blackouts
    (cron cannot express them).  Returns the blackout's description when the day must be skipped."""
    from dirt.gameday.schedule import describe, in_blackout

    wait = (slot.start - datetime.now(timezone.utc)).total_seconds()
    if wait > 0:
        day.say(f"scheduled for {slot.cron_at.isoformat()}: waiting {wait:.0f}s of jitter")
        sleep(wait)
    blackout = in_blackout(schedule, datetime.now(timezone.utc))
    if blackout is None:
        return None
    kind, what = describe(blackout)
    return f"{what} ({kind})"


def _plan(gameday: GameDay, loaded: LoadedConfig,
          make_target: Callable[[Scenario, str | None], Target] | None) -> list[_Planned]:
    """Every drill loaded and its target resolved, or every problem of every drill at once."""
    doc = gameday.document
    problems: list[Problem] = []
    planned: list[_Planned] = []
    for entry in gameday.order():
        variables = {**doc.vars, **entry.vars}
        path = gameday.drill_paths[entry.id]
        # a rolling drill is loaded once per member below; here only to learn its target
        first = {**variables, "drilled_member": "each"} if entry.for_each_member else variables
        try:
            scenario = load_scenario(path, load_options(loaded, target=entry.target or doc.target,
                                                        variables=first))
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        if doc.abort_when:
            scenario = scenario.model_copy(update={"abort_when": [*scenario.abort_when, *doc.abort_when]})
        name = entry.target or doc.target
        try:
            target = make_target(scenario, name) if make_target else target_for(scenario, loaded, name)
        except UsageError as exc:
            problems.append(Problem(str(gameday.path), 1, 1, f"drill {entry.id}: {exc}"))
            continue
        if not entry.for_each_member:
            planned.append(_Planned(entry, scenario, target, variables))
            continue
        members = target.members()
        if not members:
            problems.append(Problem(str(gameday.path), 1, 1, f"drill {entry.id}: for_each_member needs a fleet "
                                                             f"target; {target.name!r} is a single cluster"))
            continue
        for member in members:
            try:
                one = load_scenario(path, load_options(loaded, target=entry.target or doc.target,
                                                       variables={**variables, "drilled_member": member}))
            except ScenarioError as exc:
                problems.extend(exc.problems)
                break
            guards = [AbortCondition(name=f"member {other} {why}", alert=alert, labels={"member": other})
                      for other in members if other != member
                      for alert, why in (("FleetMemberDown", "out of rotation"), ("KubeAPIDown", "API down"))]
            one = one.model_copy(update={"abort_when": [*one.abort_when, *doc.abort_when, *guards]})
            run = entry.model_copy(update={"name": f"{entry.id}-{member}", "weight": entry.weight / len(members)})
            planned.append(_Planned(run, one, target, {**variables, "drilled_member": member}, group=entry.id))
    if problems:
        raise ScenarioError(gameday.path, problems)
    return planned


def _check_approver(gameday: GameDay, approved_by: str | None) -> None:
    from dirt.gameday import approved_by_problem

    problem = None if approved_by is None else approved_by_problem(gameday, approved_by)
    if problem:
        raise UsageError(f"--approved-by: {problem}")


def approvers(gameday: GameDay) -> list[str]:
    """Who may approve with --approved-by (``GameDay.approvers``)."""
    return gameday.approvers()


# -- the day's state, journal and notifications ----------------------------------------------

class _Day:
    def __init__(self, gameday: GameDay, loaded: LoadedConfig, run_id: str, reports: Path, trigger: str,
                 sender: NotifySender, say: Say) -> None:
        self.gameday = gameday
        self.loaded = loaded
        self.run_id = run_id
        self.reports = reports
        self.dir = reports / "gamedays" / run_id
        self.trigger = trigger
        self.sender = sender
        self.say = say
        self.journal = Journal(self.dir / gd.JOURNAL_NAME)
        self.outcomes: list[DrillOutcome] = []
        self.pending: list[_Planned] = []
        self.stopped_after: str | None = None
        self.warnings: list[str] = []

    # -- journal ---
    def start(self, planned: list[_Planned]) -> None:
        doc = self.gameday.document
        schedule = doc.schedule
        self.pending = list(planned)
        for notify in doc.notify:  # a secret URL (and token) is masked from here on, wherever it appears
            register_secret(os.environ.get(notify.url_env or "") if notify.url_env else None)
            register_secret(os.environ.get(notify.bearer_token_env or "") if notify.bearer_token_env else None)
        self.journal.emit(gd.GameDayStarted(
            run_id=self.run_id, name=self.gameday.name, path=str(self.gameday.path), digest=self.gameday.digest,
            description=doc.metadata.description, owner=doc.metadata.owner, dirt_version=__version__,
            trigger="schedule" if self.trigger == "schedule" else "manual",
            schedule=f"{schedule.cron} ({schedule.timezone})" if schedule else None,
            participants=[p.model_dump(mode="json") for p in doc.participants],
            drills=[_plan_entry(p) for p in planned],
            abort_when=[c.model_dump(mode="json", by_alias=True) | {"title": c.title()} for c in doc.abort_when],
            notify=[sink_name(n) for n in doc.notify],
        ))
        self.say(f"game day {self.gameday.name}: run {self.run_id}, {len(planned)} drill(s)")

    def warn(self, message: str) -> None:
        message = redact_text(message)
        self.warnings.append(message)
        self.journal.emit(gd.GameDayWarning(message=message))
        self.say(f"warning: {message}")

    def drill_started(self, planned: _Planned) -> None:
        self.journal.emit(gd.DrillStarted(drill=planned.entry.id, scenario=planned.entry.scenario,
                                          target=planned.target.name))
        self.say(f"drill {planned.entry.id} ({planned.scenario.name} on {planned.target.name}): started")

    def drill_ended(self, planned: _Planned, outcome: DrillOutcome) -> None:
        self.outcomes.append(outcome)
        self.pending = [p for p in self.pending if p.entry.id != planned.entry.id]
        report = outcome.report or {}
        timings = report.get("timings") or {}
        run_dir = None
        if outcome.result is not None:
            run_dir = os.path.relpath(outcome.result.run_dir.resolve(), self.reports.resolve())
        self.journal.emit(gd.DrillEnded(
            drill=outcome.id, scenario=outcome.scenario, verdict=outcome.verdict,  # type: ignore[arg-type]
            reason=outcome.reason, run_id=outcome.run_id, run_dir=run_dir,
            mttd=dict(timings.get("mttd_seconds") or {}), mttr=timings.get("mttr_seconds"),
            failures=list(outcome.result.failures) if outcome.result else []))
        self.say(f"drill {outcome.id}: {outcome.verdict.upper()}" + (f" — {outcome.reason}" if outcome.reason else ""))
        if outcome.result is not None or outcome.verdict != "not-run":
            self.notify("drill", outcome)
        if outcome.verdict in ("failed", "aborted"):
            self.notify("failure", outcome)

    def not_run_rest(self, reason: str) -> None:
        for planned in list(self.pending):
            self.drill_ended(planned, DrillOutcome(planned.entry.id, planned.entry.scenario, "not-run",
                                                   planned.entry.weight, reason, planned.target.name))

    def skip(self, reason: str, *, alerts: list[str] | None = None, approved_by: str | None) -> GameDayResult:
        self.journal.emit(gd.DaySkipped(reason=reason, alerts=list(alerts or [])))
        self.not_run_rest("not run: the game day was skipped")
        return self.finish("skipped", reason, approved_by=approved_by)

    def verdict(self) -> str:
        verdicts = {o.verdict for o in self.outcomes}
        if "aborted" in verdicts:
            return "aborted"
        return "failed" if verdicts & {"failed", "skipped", "not-run"} else "passed"

    def reason(self) -> str:
        if self.stopped_after:
            return f"stopped after {self.stopped_after} failed"
        bad = [o.id for o in self.outcomes if o.verdict != "passed"]
        return f"not passed: {', '.join(bad)}" if bad else ""

    def finish(self, verdict: str, reason: str, *, approved_by: str | None, failure: bool = False) -> GameDayResult:
        if failure:
            self.notify("failure", None, verdict=verdict, reason=reason)
        self.journal.emit(gd.GameDayEnded(verdict=verdict, reason=reason,  # type: ignore[arg-type]
                                          stopped_after=self.stopped_after, approved_by=approved_by))
        self.notify("finish", None, verdict=verdict, reason=reason)
        self.journal.close()
        report = render_gameday(self.dir)
        _record_history(self, verdict, report, approved_by)
        refresh_dashboard(run_options(self.loaded, report_dir=self.reports))  # the day joins the dashboard
        self.say(f"game day {self.gameday.name}: {verdict.upper()}{f' — {reason}' if reason else ''}")
        return GameDayResult(self.run_id, self.dir, verdict, reason, self.outcomes, approved_by, self.stopped_after,
                             self.warnings, report)

    # -- notifications ---
    def link(self, report: Path) -> str:
        """A report as its reader reaches it: under ``report_base_url`` when set, else its path here."""
        base = self.loaded.config.report_base_url
        if not base:
            return str(report)
        relative = Path(os.path.relpath(report.resolve(), self.reports.resolve())).as_posix()
        return base.rstrip("/") + "/" + quote(relative)

    def notify(self, moment: str, outcome: DrillOutcome | None = None, **day: Any) -> None:
        payload = self.payload(moment, outcome, **day)
        for notify in self.gameday.document.notify:
            if moment in notify.on:
                self._send(notify, moment, payload, outcome.id if outcome else None)

    def payload(self, moment: str, outcome: DrillOutcome | None, *, verdict: str | None = None,
                reason: str = "", score: float | None = None) -> dict[str, Any]:
        drills = [{"id": o.id, "verdict": o.verdict, "score": drill_score(o.report),
                   "report": self.link(o.result.run_dir / "report.html") if o.result else None}
                  for o in self.outcomes]
        drills += [{"id": p.entry.id, "verdict": None, "score": None, "report": None} for p in self.pending]
        payload: dict[str, Any] = {
            "schema_version": 1, "event": moment, "gameday": self.gameday.name, "run_id": self.run_id,
            "trigger": self.trigger, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "drill": None, "scenario": None, "drill_run_id": None, "verdict": verdict, "reason": reason,
            "mttd": {}, "mttr": None, "report": self.link(self.dir / "report.html"), "score": score,
            "stopped_after": self.stopped_after, "drills": drills,
        }
        if outcome is not None:
            timings = (outcome.report or {}).get("timings") or {}
            payload.update(drill=outcome.id, scenario=outcome.scenario, drill_run_id=outcome.run_id,
                           verdict=outcome.verdict, reason=outcome.reason,
                           mttd=dict(timings.get("mttd_seconds") or {}), mttr=timings.get("mttr_seconds"),
                           report=self.link(outcome.result.run_dir / "report.html") if outcome.result else None,
                           score=drill_score(outcome.report))
        elif moment == "finish" and score is None and verdict != "skipped":
            payload["score"] = day_score([{"run_id": o.run_id, "weight": o.weight, "score": drill_score(o.report)}
                                          for o in self.outcomes])
        payload["text"] = _headline(payload)
        return payload

    def _send(self, notify: Notify, moment: str, payload: dict[str, Any], drill: str | None) -> None:
        sink = sink_name(notify)
        url = notify.url or os.environ.get(notify.url_env or "", "")
        ok, detail = False, ""
        if not url:
            detail = f"${notify.url_env} is not set"
        else:
            headers = {}
            if notify.bearer_token_env:
                token = os.environ.get(notify.bearer_token_env, "")
                if token:
                    headers["Authorization"] = f"Bearer {token}"
            body = slack_message(payload) if notify.format == "slack" else payload
            try:
                self.sender(url, body, float(notify.timeout), headers)
                ok = True
            except DirtError as exc:
                detail = str(exc)
        detail = redact_text(detail.replace(url, safe_origin(url)) if url else detail)
        self.journal.emit(gd.NotifySent(notification=moment, sink=sink, ok=ok, detail=detail,  # type: ignore[arg-type]
                                        drill=drill))
        if not ok:
            self.warnings.append(f"notification {moment} to {sink} not delivered: {detail}")
            self.say(f"warning: notification {moment} to {sink} not delivered: {detail}")


def sink_name(notify: Notify) -> str:
    """How a notify is shown: its name, else its variable, else its URL's scheme and host (never the URL)."""
    if notify.name:
        return notify.name
    if notify.url_env:
        return f"${notify.url_env}"
    return safe_origin(notify.url or "")


def _headline(payload: dict[str, Any]) -> str:
    day = f"Game day {payload['gameday']}"
    moment = payload["event"]
    if moment == "start":
        return f"{day} started ({len(payload['drills'])} drills, {payload['trigger']})"
    if payload.get("drill"):
        text = f"{day}: drill {payload['drill']} {str(payload['verdict']).upper()}"
    else:
        text = f"{day} {str(payload['verdict']).upper()}"
    if payload.get("reason"):
        text += f" — {payload['reason']}"
    if payload.get("stopped_after") and moment == "finish":
        text += "; later drills were not run"
    return text


def slack_message(payload: dict[str, Any]) -> dict[str, Any]:
    """The Slack incoming-webhook form: a fallback ``text`` and mrkdwn blocks."""
    lines = []
    if payload.get("mttd"):
        lines.append("*MTTD*: " + ", ".join(f"{k} {_seconds(v)}" for k, v in payload["mttd"].items()))
    if payload.get("mttr") is not None:
        lines.append(f"*MTTR*: {_seconds(payload['mttr'])}")
    if payload.get("score") is not None:
        lines.append(f"*Score*: {payload['score']:.0f}/100")
    if payload["event"] in ("start", "finish") and payload.get("drills"):
        lines.append("*Drills*: " + ", ".join(f"{d['id']} ({d['verdict'] or 'planned'})" for d in payload["drills"]))
    report = payload.get("report")
    if report:
        web = str(report).startswith(("https://", "http://"))
        lines.append(f"*Report*: <{report}|{Path(str(report)).name}>" if web else f"*Report*: `{report}`")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{payload['text']}*"}}]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn",
                                                    "text": f"dirt · run `{payload['run_id']}` · {payload['at']}"}]})
    return {"text": payload["text"], "blocks": blocks}


def _seconds(value: Any) -> str:
    return f"{value:.1f}s" if isinstance(value, (int, float)) else "-"


# -- approval and preflight -------------------------------------------------------------------

def _plan_entry(planned: _Planned) -> dict[str, Any]:
    entry = planned.entry
    return {"id": entry.id, "scenario": entry.scenario, "name": planned.scenario.name,
            "target": planned.target.name, "depends_on": list(entry.depends_on), "on_failure": entry.on_failure,
            "weight": entry.weight, "blast_radius": blast_radius(planned.scenario)}


def blast_radius(scenario: Scenario) -> list[dict[str, str]]:
    """What each fault of the drill breaks, by family (``none`` for API-level, harmless ones)."""
    registry = default_registry()
    out = []
    for spec in scenario.inject:
        cls = registry.get("fault", spec.driver)
        out.append({"fault": spec.name, "driver": spec.driver,
                    "family": fault_family(cls, spec.params) if cls is not None else "unknown"})
    return out


def _approve(day: _Day, planned: list[_Planned], approved_by: str | None) -> tuple[bool, str | None, str]:
    """(allowed, by whom, why): --approved-by, else the webhook's answer; no approval where one is required is a veto."""
    approval = day.gameday.document.approval
    if approved_by is not None:
        return _approved(day, True, "approved-by", approved_by, "approved on the command line")
    if approval is None:
        return True, None, ""
    url = approval.webhook or os.environ.get(approval.webhook_env or "", "")
    if approval.webhook_env:
        register_secret(url)
    if not (approval.webhook or approval.webhook_env):
        return _approved(day, False, "none", None,
                         f"approval required: pass --approved-by NAME ({', '.join(approvers(day.gameday)) or 'anyone'})")
    if not url:
        return _approved(day, False, "webhook", None, f"approval webhook variable ${approval.webhook_env} is not set")
    headers = {}
    if approval.bearer_token_env and os.environ.get(approval.bearer_token_env):
        register_secret(os.environ[approval.bearer_token_env])
        headers["Authorization"] = f"Bearer {os.environ[approval.bearer_token_env]}"
    plan = {"schema_version": 1, "gameday": day.gameday.name, "run_id": day.run_id, "path": str(day.gameday.path),
            "trigger": day.trigger, "participants": [p.model_dump(mode="json") for p in day.gameday.document.participants],
            "drills": [_plan_entry(p) for p in planned],
            "targets": sorted({p.target.name for p in planned}),
            "blast_radius": sorted({f["family"] for p in planned for f in blast_radius(p.scenario)})}
    try:
        response = post_json(url, plan, timeout=float(approval.timeout), headers=headers)
    except HttpError as exc:
        return _approved(day, False, "webhook", None, f"no answer from the approval webhook: {exc}", url)
    if not response.ok:
        return _approved(day, False, "webhook", None, f"the approval webhook answered HTTP {response.status}", url)
    try:
        answer = response.json()
    except HttpError:
        answer = None
    if not isinstance(answer, dict):
        return _approved(day, False, "webhook", None, "the approval webhook's answer is not a JSON object", url)
    by = str(answer["by"])[:200] if answer.get("by") is not None else None
    why = str(answer.get("reason") or "")[:300]
    if answer.get("allow") is not True:
        return _approved(day, False, "webhook", by, f"the approval webhook said no{f': {why}' if why else ''}", url)
    return _approved(day, True, "webhook", by, why or "allowed by the approval webhook", url)


def _approved(day: _Day, allowed: bool, via: str, by: str | None, reason: str,
              url: str | None = None) -> tuple[bool, str | None, str]:
    reason = redact_text(reason)
    day.journal.emit(gd.ApprovalResult(allowed=allowed, via=via, by=by, reason=reason,  # type: ignore[arg-type]
                                       webhook=safe_origin(url) if url else None))
    day.say(f"approval: {'allowed' if allowed else 'VETO'} ({via}{f', by {by}' if by else ''}): {reason}")
    if not allowed:
        day.not_run_rest("not run: the game day was vetoed")
    return allowed, by, reason


def _firing(day: _Day, planned: list[_Planned]) -> list[str]:
    """Which ``skip_when_firing`` alerts fire now on the drills' targets (a target that cannot say is a warning)."""
    schedule = day.gameday.document.schedule
    names = set(schedule.skip_when_firing) if schedule else set()
    if not names:
        return []
    firing: set[str] = set()
    seen: set[str] = set()
    for p in planned:
        if p.target.name in seen:
            continue
        seen.add(p.target.name)
        for source in p.target.alert_sources():
            try:
                firing.update(a.name for a in source.active() if a.firing and a.name in names)
            except (MonitoringError, DirtError) as exc:
                day.warn(f"cannot tell whether {', '.join(sorted(names))} fire on {p.target.name}: {exc}")
    return sorted(firing)


# -- the drills ---------------------------------------------------------------------------------

def _run_drills(day: _Day, planned: list[_Planned], loaded: LoadedConfig, reports: Path, *, assume_yes: bool,
                confirm: Confirm | None, display: str, handle_signals: bool) -> None:
    from dirt.app.display import make_display

    verdicts: dict[str, str] = {}
    for p in planned:
        entry = p.entry
        unmet = [d for d in entry.depends_on if verdicts.get(d) != "passed"]
        if unmet:
            why = ", ".join(f"{d} ({verdicts.get(d, 'not run')})" for d in unmet)
            outcome = DrillOutcome(entry.id, entry.scenario, "skipped", entry.weight,
                                   f"skipped: depends on {why}", p.target.name)
            verdicts[entry.id] = outcome.verdict
            day.drill_ended(p, outcome)
            continue
        day.drill_started(p)
        options = run_options(loaded, report_dir=reports, assume_yes=assume_yes, confirm=confirm,
                              display=make_display(display), variables=dict(p.variables),
                              handle_signals=handle_signals, history=drill_recording(day))
        try:
            result = run_one(p.scenario, p.target, options)
            outcome = DrillOutcome(entry.id, entry.scenario, result.verdict, entry.weight,
                                   "; ".join(result.failures[:3]), p.target.name, result)
        except DrillAborted as exc:
            outcome = DrillOutcome(entry.id, entry.scenario, "aborted", entry.weight, str(exc), p.target.name)
        except DirtError as exc:
            outcome = DrillOutcome(entry.id, entry.scenario, "failed", entry.weight, str(exc), p.target.name)
        verdicts[entry.id] = outcome.verdict
        if p.group is not None:  # a rolling drill passed only when it passed on every member
            verdicts[p.group] = outcome.verdict if verdicts.get(p.group, "passed") == "passed" else verdicts[p.group]
        if outcome.verdict == "aborted" or (outcome.verdict == "failed" and entry.on_failure == "stop"):
            day.stopped_after = entry.id
        day.drill_ended(p, outcome)
        if day.stopped_after:
            how = "was aborted" if outcome.verdict == "aborted" else "failed"
            day.not_run_rest(f"not run: stopped after {entry.id} {how}")
            return


# -- history --------------------------------------------------------------------------------------

def _record_history(day: _Day, verdict: str, report: dict[str, Any], approved_by: str | None) -> None:
    """Record the day in the run history (its drills recorded themselves, linked to it); a failure is a warning."""
    from dirt.app.history import open_history, recording

    schedule = day.gameday.document.schedule
    try:
        with open_history(recording(day.loaded), day.reports) as store:
            store.record_gameday({
                "run_id": day.run_id, "name": day.gameday.name, "path": str(day.gameday.path),
                "digest": day.gameday.digest, "started_at": report.get("started_at"),
                "ended_at": report.get("ended_at"), "verdict": verdict, "score": report.get("score"),
                "trigger": day.trigger, "schedule": schedule.cron if schedule else None, "approved_by": approved_by,
                "drills": [{"id": d["id"], "scenario": d["scenario"], "run_id": d["run_id"], "verdict": d["verdict"],
                            "weight": d["weight"], "score": d["score"]} for d in report.get("drills") or []],
            })
    except Exception as exc:  # noqa: BLE001 - the day happened; a history that cannot say so is only a warning
        day.warnings.append(f"game day not recorded in the run history: {exc}")
        day.say(f"warning: game day not recorded in the run history: {exc}")


def drill_recording(day: _Day) -> Any:
    """Where each drill of the day is recorded: dirt.yaml's history, linked to this game day and its schedule."""
    from dirt.app.history import recording

    schedule = day.gameday.document.schedule
    return recording(day.loaded).started_by(gameday=day.gameday.name, gameday_run_id=day.run_id,
                                            schedule=schedule.cron if schedule else None,
                                            trigger="schedule" if day.trigger == "schedule" else "manual")


# -- the plan (`dirt gameday plan`) ----------------------------------------------------------------

def render_gameday_plan(gameday: GameDay, loaded: LoadedConfig) -> tuple[str, list[Exception]]:
    """The day as it would run: order, targets, each drill's plan (``dirt plan``), approval and notifications
    with secrets hidden; touches nothing.  Also returns the drills' refusals (``PlanRefused``)."""
    from dirt.app.plan import PlanRefused, render_plan

    doc = gameday.document
    planned = _plan(gameday, loaded, None)
    out = [f"Game day {gameday.name} ({gameday.path})"]
    if doc.metadata.description:
        out.append(f"  {doc.metadata.description}")
    if doc.metadata.owner:
        out.append(f"Owner: {doc.metadata.owner}")
    for p in doc.participants:
        out.append(f"  {p.role:11} {p.name}" + (f" ({p.contact})" if p.contact else ""))
    if doc.schedule:
        s = doc.schedule
        out.append(f"Schedule: {s.cron} ({s.timezone})" + (f", jitter up to {format_duration(s.jitter)}" if s.jitter else ""))
        for b in s.blackouts:
            kind = "freeze" if b.freeze else ("weekly" if b.weekly else "dates")
            out.append(f"  blackout ({kind}): {b.name or '-'}")
        if s.skip_when_firing:
            out.append(f"  skipped while firing: {', '.join(s.skip_when_firing)}")
    out.append(_approval_line(gameday))
    for n in doc.notify:
        out.append(f"Notify {sink_name(n)} ({n.format}) on {', '.join(n.on)}")
    out.append("\nDrills, in order:")
    for i, p in enumerate(planned, 1):
        e = p.entry
        deps = f"; after {', '.join(e.depends_on)}" if e.depends_on else ""
        radius = ", ".join(sorted({f["family"] for f in blast_radius(p.scenario)})) or "none"
        out.append(f"  {i}. {e.id}: {e.scenario} on {p.target.name}{deps}; on failure {e.on_failure}; "
                   f"weight {e.weight:g}; blast radius {radius}")
    if doc.abort_when:
        out.append("Abort every drill when: " + "; ".join(c.title() for c in doc.abort_when))
    refused: list[Exception] = []
    for p in planned:
        options = load_options(loaded, target=p.target.name, variables=p.variables)
        try:
            text = render_plan(p.scenario.path, loaded, options, p.target.name)
        except PlanRefused as exc:
            text = exc.plan
            refused.append(exc)
        out.append(f"\n--- drill {p.entry.id} ---")
        out.append(text)
    return "\n".join(out), refused


def _approval_line(gameday: GameDay) -> str:
    approval = gameday.document.approval
    names = approvers(gameday)
    if approval is None:
        return "Approval: not required" + (f" (--approved-by one of: {', '.join(names)})" if names else "")
    how = []
    if approval.webhook:
        how.append(f"webhook {safe_origin(approval.webhook)} (timeout {approval.timeout:g}s)")
    elif approval.webhook_env:
        how.append(f"webhook ${approval.webhook_env} (timeout {approval.timeout:g}s)")
    how.append(f"--approved-by {' | '.join(names) if names else 'NAME'}")
    return "Approval: " + " or ".join(how)

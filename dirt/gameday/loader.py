"""Load a game-day file: YAML -> ``GameDayDocument`` -> a checked ``GameDay``, every problem at once.

Like the scenario loader it never stops at the first mistake.  Beyond the shape
pydantic checks, a game day is only worth scheduling if it can run, so the loader
also loads every drill's scenario (with the day's and the drill's variables) and
reports that scenario's problems, as they are, under the drill's line; checks that
drill ids are unique, that ``depends_on`` names known drills without a cycle,
that targets exist, that the cron expression, the time zone, the jitter and the
blackouts make sense, and that webhook URLs are URLs.  Everything is raised as one
``ScenarioError`` listing each problem as ``path:line:col: what is wrong (hint)``;
warnings (nobody facilitates, nobody may approve) come back on ``GameDay.warnings``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterError, croniter
from pydantic import ValidationError

from dirt.clients.monitoring import url_problem
from dirt.core.durations import format_duration, parse_duration
from dirt.core.errors import Problem, ScenarioError, UsageError
from dirt.documents import yamlpos
from dirt.documents.problems import did_you_mean, problems_from_validation
from dirt.gameday.cron import NICKNAMES
from dirt.gameday.model import KIND, DateRange, DrillEntry, GameDay, GameDayDocument, WeeklyWindow
from dirt.gameday.schedule import start_of, wall_gaps
from dirt.scenario import LoadOptions, classify, load_scenario

API_VERSION = "dirt/v1"
#: croniter's nicknames that Kubernetes CronJobs understand too.
CRON_NICKNAMES = tuple(NICKNAMES)
_MAX_CRON = 200
_Where = tuple[str | int, ...]


@dataclass
class _State:
    path: Path
    display: str
    positions: yamlpos.Positions
    # (line, column, sequence, problem): a drill's scenario problems sort right after the drill's own line.
    entries: list[tuple[int, int, int, Problem]] = field(default_factory=list)

    def add(self, where: _Where, message: str, hint: str = "", *, key: bool = False,
            severity: str = "error") -> yamlpos.Mark:
        mark = self.positions.of_key(where) if key else self.positions.of_value(where)
        self.put(mark, Problem(self.display, mark.line, mark.column, message, hint, severity))
        return mark

    def put(self, mark: yamlpos.Mark, problem: Problem) -> None:
        self.entries.append((mark.line, mark.column, len(self.entries), problem))

    def problems(self) -> list[Problem]:
        return [p for *_, p in sorted(self.entries, key=lambda e: e[:3])]

    def line_of(self, where: _Where) -> int:
        return self.positions.of_value(where).line


def load_gameday(path: Path | str, *, known_targets: Iterable[str] | None = None,
                 variables: dict[str, Any] | None = None) -> GameDay:
    """Load and check one game-day file, or raise ``ScenarioError`` with every problem.

    ``known_targets``: the targets of dirt.yaml (None: not checked); ``variables``: --var
    overrides, applied over the day's and each drill's ``vars``.
    """
    path = Path(path)
    read = yamlpos.read_document(path)
    display, raw, data, positions, issues = read.display, read.raw, read.data, read.positions, read.issues
    state = _State(path, display, positions)
    for issue in issues:
        state.put(issue.mark, Problem(display, issue.mark.line, issue.mark.column, issue.message, issue.hint))
    if not isinstance(data, dict):
        state.add((), "a game day must be a YAML mapping (apiVersion, kind, metadata, drills, ...)",
                  "start from an example in gamedays/")
        raise ScenarioError(display, state.problems())

    document: GameDayDocument | None = None
    shaped = _check_kind(state, data)
    try:
        document = GameDayDocument.model_validate(shaped)
    except ValidationError as exc:
        for problem in problems_from_validation(exc, path=display, positions=positions, model=GameDayDocument,
                                                data=shaped, document="the game day"):
            state.put(yamlpos.Mark(problem.line, problem.column), problem)

    targets = list(known_targets) if known_targets is not None else None
    drill_paths = _check_drills(state, data, targets, variables or {})
    _check_dependencies(state, data)
    _check_targets(state, data, targets)
    _check_schedule(state, data)
    _check_urls(state, data)
    _check_people(state, data)

    problems = state.problems()
    if document is None or any(p.severity == "error" for p in problems):
        raise ScenarioError(display, problems)
    return GameDay(path=path.resolve(), document=document, drill_paths=drill_paths,
                   digest=hashlib.sha256(raw).hexdigest(), warnings=tuple(problems))


def approved_by_problem(gameday: GameDay, name: str) -> str | None:
    """What is wrong with ``--approved-by NAME`` for this game day (None: it may approve).

    With approvers named (``approval.approvers``, else participants with role approver)
    only they may approve; with none named any name is taken and recorded.
    """
    cleaned = name.strip()
    if not cleaned:
        return "--approved-by needs a name"
    if len(cleaned) > 200 or any(ord(ch) < 32 or ch == "\x7f" for ch in cleaned):
        return "--approved-by takes a person's name (at most 200 characters, no control characters)"
    approvers = gameday.approvers()
    if approvers and cleaned not in approvers:
        hint = did_you_mean(cleaned, approvers) or f"approvers: {', '.join(approvers)}"
        return f"{cleaned!r} is not an approver of game day {gameday.name!r} ({hint})"
    return None


def gameday_files(paths: Iterable[str | Path]) -> list[Path]:
    """The game-day files named: files as given, folders searched for YAML files of ``kind: GameDay``."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = [p for p in sorted(path.rglob("*"))
                      if p.suffix.lower() in (".yaml", ".yml") and not p.is_dir() and _mentions_gameday(p)]
            if not inside:
                raise UsageError(f"{path}: no game-day files (YAML with 'apiVersion: dirt/v1', 'kind: GameDay')")
            found += inside
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return found


def _mentions_gameday(path: Path) -> bool:
    """A file to load from a folder: a game day, or something that tried to be one (``kind: Gameday``)."""
    try:
        data, _, _ = yamlpos.load_file(path)
    except yamlpos.YamlSyntaxError:
        return False
    kind = data.get("kind") if isinstance(data, dict) else None
    return isinstance(kind, str) and (kind.lower().replace("-", "") == "gameday" or bool(did_you_mean(kind, [KIND])))


# -- pieces ----------------------------------------------------------------------------


def _check_kind(state: _State, data: dict[str, Any]) -> dict[str, Any]:
    """Say plainly what a wrong kind or apiVersion is; return the data to validate the rest with."""
    shaped = dict(data)
    kind, api = data.get("kind"), data.get("apiVersion")
    if isinstance(kind, str) and kind != KIND:
        if kind == "Scenario":
            state.add(("kind",), "this is a scenario, not a game day",
                      "check it with `dirt validate`, or list it under 'drills:' of a game day")
        else:
            state.add(("kind",), f"kind must be {KIND!r}, got {kind!r}",
                      did_you_mean(kind, [KIND]) or "a game day starts with 'apiVersion: dirt/v1' and 'kind: GameDay'")
        shaped["kind"] = KIND
    if isinstance(api, str) and api != API_VERSION:
        state.add(("apiVersion",), f"apiVersion {api!r} is not supported", f"write 'apiVersion: {API_VERSION}'")
        shaped["apiVersion"] = API_VERSION
    return shaped


def _drill_id(item: dict[str, Any]) -> str:
    scenario = item.get("scenario")
    name = item.get("name")
    return DrillEntry.model_construct(scenario=scenario if isinstance(scenario, str) else "",
                                      name=name if isinstance(name, str) and name else None).id


def _drill_items(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    items = data.get("drills")
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]


def _check_drills(state: _State, data: dict[str, Any], targets: list[str] | None,
                  variables: dict[str, Any]) -> dict[str, Path]:
    """Ids unique; each scenario file there, a scenario, and loading cleanly with the drill's variables."""
    day_vars = data.get("vars") if isinstance(data.get("vars"), dict) else {}
    seen: dict[str, int] = {}
    paths: dict[str, Path] = {}
    for i, item in _drill_items(data):
        ident = _drill_id(item)
        where: _Where = ("drills", i, "name" if isinstance(item.get("name"), str) else "scenario")
        # A drill without a name or a scenario has no id of its own (the document pass reported it).
        named = isinstance(item.get("name"), str) or (isinstance(item.get("scenario"), str) and item["scenario"])
        if named and ident in seen:
            state.add(where, f"drill id '{ident}' is used twice (first on line {seen[ident]})",
                      "give each drill its own 'name:'")
        elif named:
            seen[ident] = state.line_of(where)
        drill_vars = item.get("vars") if isinstance(item.get("vars"), dict) else {}
        found = _check_scenario(state, i, item, ident, targets, {**day_vars, **drill_vars, **variables})
        if found is not None and ident not in paths:
            paths[ident] = found
    return paths


def _check_scenario(state: _State, index: int, item: dict[str, Any], ident: str, targets: list[str] | None,
                    variables: dict[str, Any]) -> Path | None:
    scenario = item.get("scenario")
    if not isinstance(scenario, str) or not scenario.strip():
        return None  # the document pass reported it
    where: _Where = ("drills", index, "scenario")
    folder = state.path.parent
    file = Path(scenario) if Path(scenario).is_absolute() else folder / scenario
    if not file.exists():
        near = [str(p.relative_to(folder)) for p in sorted(folder.glob("**/*.y*ml"))[:500]
                if p.resolve() != state.path.resolve()]
        state.add(where, f"scenario file {scenario!r} not found",
                  did_you_mean(scenario, near) or f"paths are relative to the game day's folder, {folder}")
        return None
    if file.is_dir():
        state.add(where, f"{scenario!r} is a folder, not a scenario file", "name one scenario file per drill")
        return None
    verdict, why = classify(file)
    if verdict == "other":
        state.add(where, f"{scenario!r} is not a scenario ({why})", "a drill runs a file with 'kind: Scenario'")
        return None
    try:
        loaded = load_scenario(file, LoadOptions(known_targets=targets, variables=variables))
    except ScenarioError as exc:
        found = exc.problems + exc.warnings
        mark = state.add(where, f"drill '{ident}': scenario {scenario!r} has {len(exc.problems)} problem(s)",
                         "listed below")
        for problem in found:
            state.put(mark, problem)
        return None
    mark = state.positions.of_value(where)
    for warning in loaded.warnings:
        state.put(mark, warning)
    return file.resolve()


def _check_dependencies(state: _State, data: dict[str, Any]) -> None:
    """Each ``depends_on`` names another drill of the day, and no chain leads back to where it started."""
    items = _drill_items(data)
    ids = [_drill_id(item) for _, item in items]
    edges: dict[str, list[str]] = {}
    first_index: dict[str, int] = {}
    for (i, item), ident in zip(items, ids):
        first_index.setdefault(ident, i)
        deps = item.get("depends_on")
        if not isinstance(deps, list):
            continue
        for j, dep in enumerate(deps):
            if not isinstance(dep, str):
                continue
            if dep == ident:
                state.add(("drills", i, "depends_on", j), f"drill '{ident}' depends on itself")
            elif dep not in ids:
                state.add(("drills", i, "depends_on", j), f"depends_on names no drill of this day: '{dep}'",
                          did_you_mean(dep, ids) or f"drills: {', '.join(dict.fromkeys(ids))}")
            else:
                edges.setdefault(ident, []).append(dep)
    for cycle in _cycles(edges):
        start = min(cycle, key=lambda d: first_index[d])
        at = cycle.index(start)
        ordered = cycle[at:] + cycle[:at]
        state.add(("drills", first_index[start], "depends_on"),
                  f"depends_on goes round in a circle: {' -> '.join(ordered + [start])}",
                  "a drill can only wait for drills that do not wait for it")


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of drills that wait for each other (found by depth-first search)."""
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the current path, "done" after
    in_cycle: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        trail.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == "open":
                cycle = trail[trail.index(nxt):]
                if not in_cycle.intersection(cycle):
                    cycles.append(list(cycle))
                    in_cycle.update(cycle)
            elif nxt not in state:
                visit(nxt, trail)
        trail.pop()
        state[node] = "done"

    for node in list(edges):
        if node not in state:
            visit(node, [])
    return cycles


def _check_targets(state: _State, data: dict[str, Any], targets: list[str] | None) -> None:
    if targets is None:
        return
    named: list[tuple[_Where, Any]] = [(("target",), data.get("target"))]
    named += [(("drills", i, "target"), item.get("target")) for i, item in _drill_items(data)]
    for where, target in named:
        if isinstance(target, str) and target not in targets:
            state.add(where, f"unknown target '{target}'",
                      did_you_mean(target, targets) or f"targets in dirt.yaml: {', '.join(targets)}")


def _check_schedule(state: _State, data: dict[str, Any]) -> None:
    schedule = data.get("schedule")
    if not isinstance(schedule, dict):
        return
    gaps = _check_cron(state, schedule.get("cron"))
    zone = _check_zone(state, schedule.get("timezone", "UTC"))
    jitter = schedule.get("jitter")
    if gaps and jitter is not None:
        try:
            seconds = parse_duration(jitter)
        except ValueError:
            seconds = 0.0  # the document pass reported it
        if seconds and seconds >= min(gaps):
            state.add(("schedule", "jitter"),
                      f"jitter {format_duration(seconds)} is not shorter than the time between two cron times "
                      f"({format_duration(min(gaps))})", "a delayed run would meet the next one; shorten the jitter")
    blackouts = schedule.get("blackouts")
    if isinstance(blackouts, list):
        for i, blackout in enumerate(blackouts):
            if isinstance(blackout, dict):
                _check_blackout(state, ("schedule", "blackouts", i), blackout, zone or timezone.utc)


def _check_cron(state: _State, cron: Any) -> list[float]:
    """The wall-clock gaps of a usable cron expression (empty when it is not usable)."""
    if not isinstance(cron, str) or not cron.strip():
        return []
    where: _Where = ("schedule", "cron")
    example = "e.g. '0 10 * * 2' is 10:00 on Tuesdays"
    text = cron.strip()
    if len(text) > _MAX_CRON:
        state.add(where, f"the cron expression is longer than {_MAX_CRON} characters", example)
        return []
    fields = text.split()
    if text.startswith("@"):
        if text.lower() not in CRON_NICKNAMES:
            state.add(where, f"unknown cron nickname {text!r}",
                      did_you_mean(text.lower(), CRON_NICKNAMES) or f"known: {', '.join(CRON_NICKNAMES)}")
            return []
    elif len(fields) != 5:
        state.add(where, f"cron {text!r} has {len(fields)} field(s); dirt reads five: "
                         "minute hour day-of-month month day-of-week", example)
        return []
    if not croniter.is_valid(text):
        state.add(where, f"{text!r} is not a valid cron expression", example)
        return []
    try:
        return wall_gaps(text)
    except (CroniterError, ValueError, OverflowError):
        state.add(where, f"cron {text!r} never matches a date", "check the day of month against the month")
        return []


def _check_zone(state: _State, name: Any) -> tzinfo | None:
    if not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        state.add(("schedule", "timezone"), f"unknown time zone {name!r}",
                  did_you_mean(name, sorted(available_timezones()))
                  or "give an IANA name such as Europe/Berlin, America/New_York or UTC")
        return None


def _check_blackout(state: _State, where: _Where, blackout: dict[str, Any], zone: tzinfo) -> None:
    for key in ("dates", "freeze"):
        span = blackout.get(key)
        if not isinstance(span, dict):
            continue
        try:
            checked = DateRange.model_validate(span)
        except ValidationError:
            continue  # the document pass reported it
        if start_of(checked.to, zone) < start_of(checked.from_, zone):
            state.add(where + (key, "to"), f"{key}: 'to' ({checked.to.isoformat()}) is before 'from' "
                                           f"({checked.from_.isoformat()})", "swap them")
    weekly = blackout.get("weekly")
    if isinstance(weekly, dict):
        try:
            window = WeeklyWindow.model_validate(weekly)
        except ValidationError:
            return
        begin, end = window.clock()
        if end is not None and end <= begin:
            state.add(where + ("weekly", "to"), f"weekly: 'to' ({window.to}) is not after 'from' ({window.from_})",
                      "a window over midnight is two: one 'to: \"24:00\"', one 'from: \"00:00\"' the next day")


def _check_urls(state: _State, data: dict[str, Any], *, unset: str = "warning") -> None:
    """Webhook URLs, written in the file or held by the environment variables it names.

    A variable's value gets the same rules as a literal URL (its value is never printed: it
    is a secret), located at the ``url_env`` line.  An unset variable is a warning when the
    file is validated (the scheduler's environment may have it) and, with ``unset="error"``,
    an error when the day runs.
    """
    notify = data.get("notify")
    if isinstance(notify, list):
        for i, hook in enumerate(notify):
            if not isinstance(hook, dict):
                continue
            url = hook.get("url")
            if isinstance(url, str) and (problem := url_problem(url)):
                state.add(("notify", i, "url"), f"notify.{i}.url: {problem}")
            _check_env_url(state, ("notify", i, "url_env"), hook.get("url_env"), f"notify.{i}.url_env", unset,
                           "the notification")
            if hook.get("on") == []:
                state.add(("notify", i, "on"), f"notify.{i}.on is empty: this notify never sends anything",
                          "list the moments to send (start, drill, failure, finish), or remove the notify",
                          severity="warning")
    approval = data.get("approval")
    if isinstance(approval, dict):
        url = approval.get("webhook")
        if isinstance(url, str) and (problem := url_problem(url)):
            state.add(("approval", "webhook"), f"approval.webhook: {problem}")
        _check_env_url(state, ("approval", "webhook_env"), approval.get("webhook_env"), "approval.webhook_env",
                       unset, "the approval (no answer is a veto)")


def _check_env_url(state: _State, where: _Where, name: Any, field: str, unset: str, what: str) -> None:
    if not isinstance(name, str) or not name:
        return
    value = os.environ.get(name)
    if value is None or not value.strip():
        state.add(where, f"{field}: ${name} is {'empty' if value is not None else 'not set'}",
                  f"set it where the day runs, or {what} cannot be sent" if unset != "error"
                  else f"set it before the day runs: without it {what} cannot be sent",
                  severity=unset)
    elif problem := url_problem(value.strip(), shown=f"the value of ${name}"):
        state.add(where, f"{field}: {problem}", f"fix the variable ${name}: it must hold an http(s) URL")


def environment_problems(gameday: GameDay) -> list[Problem]:
    """What the environment lacks for ``gameday`` to run: webhook variables unset or not URLs
    (every one an error, located in the file); checked by ``dirt gameday run`` before anything."""
    data = gameday.document.model_dump(mode="json", by_alias=True, exclude_none=True)
    try:  # located in the file when it is still there (it may have moved since it was loaded)
        read = yamlpos.read_document(gameday.path)
        display, positions = read.display, read.positions
    except ScenarioError:
        display, positions = str(gameday.path), yamlpos.Positions()
    state = _State(gameday.path, display, positions)
    _check_urls(state, data, unset="error")
    return [p for p in state.problems() if p.severity == "error"]


def _check_people(state: _State, data: dict[str, Any]) -> None:
    """Approvers named once each; warnings for a day nobody facilitates or nobody may approve."""
    people = [p for p in data.get("participants") or [] if isinstance(p, dict)] \
        if isinstance(data.get("participants"), list) else []
    names = [p.get("name") for p in people if isinstance(p.get("name"), str)]
    if not any(p.get("role") == "facilitator" for p in people):
        state.add(("participants",) if "participants" in data else (),
                  "no participant has role facilitator", "name who runs the day: a participant with "
                  "'role: facilitator'", key="participants" in data, severity="warning")
    approval = data.get("approval")
    if not isinstance(approval, dict):
        return
    approvers = approval.get("approvers")
    listed = [a for a in approvers if isinstance(a, str)] if isinstance(approvers, list) else []
    for j, name in enumerate(approvers if isinstance(approvers, list) else []):
        if not isinstance(name, str):
            continue
        if not name.strip():
            state.add(("approval", "approvers", j), "an approver's name is empty")
        elif listed.index(name) != j:
            state.add(("approval", "approvers", j), f"approver '{name}' is listed twice")
        elif names and name not in names:
            state.add(("approval", "approvers", j), f"approver '{name}' is not among the participants",
                      did_you_mean(name, names) or "add them to 'participants:'", severity="warning")
    by_role = [p for p in people if p.get("role") == "approver"]
    if not listed and not by_role:
        state.add(("approval",), "the approval names no approver: any --approved-by NAME is accepted",
                  "list 'approvers:', or give a participant 'role: approver'", key=True, severity="warning")


__all__ = ["API_VERSION", "CRON_NICKNAMES", "load_gameday", "approved_by_problem", "gameday_files"]

"""Load a scenario file: YAML -> document model -> resolved steps, every problem at once.

The loader never stops at the first mistake: it collects YAML issues, document
shape errors, unknown drivers, bad driver parameters, unknown variables, dangling
playbook links and unknown targets, then raises one ``ScenarioError`` listing each
as ``path:line:col: what is wrong (hint)``.  Warnings (e.g. an expected alert no
rule defines) are returned on the scenario's ``warnings``, not raised.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dirt.clients.monitoring import url_problem
from dirt.core import safefile
from dirt.core.durations import parse_duration, parse_interval
from dirt.core.errors import PlaybookError, Problem, ScenarioError, UsageError
from dirt.core.templating import RUNTIME_VARS, names_in, substitute_value, template_problems_in, unknown_names
from dirt.documents import yamlpos
from dirt.documents.playbooks import find_file, load_playbook
from dirt.documents.problems import did_you_mean, problems_from_validation
from dirt.drivers import COMMON_KEYS, DRIVER_KEY, Kind
from dirt.drivers.registry import Registry, default_registry
from dirt.scenario.model import (
    SECTIONS,
    AlertMatch,
    Expect,
    PlaybookRef,
    Scenario,
    ScenarioDocument,
    StepSpec,
)

#: Kinds of other dirt documents: valid YAML with ``apiVersion: dirt/...`` that is not a scenario.
OTHER_DIRT_KINDS = ("GameDay", "Config")
_MENTIONS_DIRT = re.compile(r"apiVersion:\s*['\"]?dirt/|kind:\s*['\"]?scen", re.IGNORECASE)


def _is_yaml_name(path: Path) -> bool:
    return path.suffix.lower() in (".yaml", ".yml")


def classify(path: Path) -> tuple[str, str]:
    """Is ``path`` a scenario?  ``("scenario"|"broken"|"other", why)``, decided by parsing.

    "broken" means the file must be loaded so its problem is reported: it cannot be
    read (permissions, a FIFO, not UTF-8, too large), it is a dirt document that is
    not a known kind (``kind: Scenaro``), or it mentions dirt but is not valid YAML.
    "other" is YAML that is not a scenario (a manifest, a kustomization...).
    """
    try:
        text = safefile.read_text(path)
    except safefile.UnreadableFile as exc:
        return "broken", exc.message
    try:
        data, _, _ = yamlpos.load(text)
    except yamlpos.YamlSyntaxError as exc:
        if _MENTIONS_DIRT.search(text):
            return "broken", exc.issue.message
        return "other", f"not valid YAML ({exc.issue.message})"
    if not isinstance(data, dict):
        if _MENTIONS_DIRT.search(text):
            return "broken", "a dirt document that is not a YAML mapping"
        return "other", "not a YAML mapping"
    kind, api = data.get("kind"), data.get("apiVersion")
    if kind == "Scenario":
        return "scenario", ""
    dirt_api = isinstance(api, str) and api.strip().lower().startswith("dirt/")
    if dirt_api and kind in OTHER_DIRT_KINDS:
        return "other", f"a dirt {kind}"
    if dirt_api:
        return "broken", f"apiVersion {api} with kind {kind!r}"
    if isinstance(kind, str) and (kind.lower() == "scenario" or did_you_mean(kind, ["Scenario"])):
        return "broken", f"kind {kind!r} looks like a misspelt 'Scenario'"
    return "other", f"kind {kind}" if isinstance(kind, str) else "no 'kind'"


def looks_like_scenario(path: Path) -> bool:
    """True for files a run or a collection must load: scenarios and broken ones."""
    return classify(path)[0] != "other"


@dataclass
class Discovery:
    """What a walk over paths found: files to load, and files skipped with why."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def discover(paths: Iterable[str | Path]) -> Discovery:
    """Files named are taken as given; folders are searched for ``*.yaml``/``*.yml`` (any case)."""
    found = Discovery()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if _is_yaml_name(p) and not p.is_dir())
            before = len(found.files)
            for candidate in candidates:
                verdict, why = classify(candidate)
                if verdict == "other":
                    found.skipped.append((candidate, why))
                else:
                    found.files.append(candidate)
            if len(found.files) == before:
                others = f"; {len(candidates)} other YAML file(s) skipped" if candidates else ""
                raise UsageError(f"{path}: no scenario files (YAML with 'apiVersion: dirt/v1', 'kind: Scenario')"
                                 + others)
        elif path.exists() or path.is_symlink():
            found.files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return found


def scenario_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """The scenario files named: files as given, folders searched (see ``discover``)."""
    yield from discover(paths).files


@dataclass
class LoadOptions:
    registry: Registry | None = None
    known_targets: Iterable[str] | None = None  # None: do not check
    variables: dict[str, Any] = field(default_factory=dict)  # --var overrides
    alert_rules: set[str] | None = None  # alert names defined by rule files, for warnings
    root: Path | None = None  # the repository playbook links must stay in (default: found from the file)
    #: each target's ``vars`` (dirt.yaml), and which target the scenario runs on: ``target`` (--target), else
    #: the scenario's ``target:``, else ``default_target``; that target's vars override the scenario's own
    target_vars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    target: str | None = None
    default_target: str | None = None


def load_options(loaded: Any, *, target: str | None = None, variables: Mapping[str, Any] | None = None,
                 **more: Any) -> LoadOptions:
    """Options for scenarios of dirt.yaml ``loaded``: its targets known, their vars applied, ``--var`` last."""
    targets = loaded.config.targets
    return LoadOptions(known_targets=list(targets), variables=dict(variables or {}), target=target,
                       default_target=loaded.config.default_target,
                       target_vars={name: dict(t.vars) for name, t in targets.items() if t.vars}, **more)


@dataclass
class _State:
    path: Path
    display: str
    positions: yamlpos.Positions
    root: Path
    problems: list[Problem] = field(default_factory=list)

    def add(self, where: tuple[str | int, ...], message: str, hint: str = "", *, key: bool = False,
            severity: str = "error") -> None:
        mark = self.positions.of_key(where) if key else self.positions.of_value(where)
        self.problems.append(Problem(self.display, mark.line, mark.column, message, hint, severity))


def load_scenario(path: Path | str, options: LoadOptions | None = None) -> Scenario:
    """Load and validate one scenario file, or raise ``ScenarioError`` with every problem."""
    options = options or LoadOptions()
    path = Path(path)
    read = yamlpos.read_document(path)
    display, raw, data, positions, issues = read.display, read.raw, read.data, read.positions, read.issues
    state = _State(path, display, positions, options.root or project_root(path.parent))
    for i in issues:
        state.problems.append(Problem(display, i.mark.line, i.mark.column, i.message, i.hint))
    if not isinstance(data, dict):
        state.add((), "a scenario must be a YAML mapping (apiVersion, kind, metadata, inject, ...)",
                  "start from an example in scenarios/")
        raise ScenarioError(display, state.problems)

    registry = options.registry or default_registry()
    document: ScenarioDocument | None = None
    try:
        document = ScenarioDocument.model_validate(data)
    except ValidationError as exc:
        state.problems += problems_from_validation(
            exc, path=display, positions=positions, model=ScenarioDocument, data=data
        )

    variables = _variables(data, options)
    default_book = _default_playbook(state, data)
    backup_names = _backup_names(data)
    resolved: dict[str, list[StepSpec]] = {}
    for section, kind in SECTIONS.items():
        items = data.get(section)
        if not isinstance(items, list):
            resolved[section] = []
            continue  # the document pass reported the wrong type already
        resolved[section] = [
            spec
            for index, item in enumerate(items)
            if (spec := _resolve_step(state, registry, section, kind, index, item, variables,
                                      default_book, backup_names, data)) is not None
        ]
    _check_vars_used(state, data, variables)
    _check_availability(state, data, variables)
    _check_target(state, data, options)
    expect = _render_expect(state, document.expect, variables) if document is not None else None
    _check_alerts(state, expect, options)

    errors = [p for p in state.problems if p.severity == "error"]
    if errors or document is None or expect is None:
        raise ScenarioError(display, sorted(state.problems, key=lambda p: (p.line, p.column)))
    name_mark = positions.of_value(("metadata", "name"))
    scenario = Scenario(
        path=path.resolve(),
        metadata=document.metadata,
        target=document.target,
        vars=variables,
        expect=expect,
        abort_when=document.abort_when,
        timing=document.timing,
        playbook=default_book,
        line=name_mark.line,
        digest=hashlib.sha256(raw).hexdigest(),
        warnings=tuple(p for p in state.problems if p.severity != "error"),
        **resolved,
    )
    return scenario


# -- pieces ----------------------------------------------------------------------------


def _variables(data: dict[str, Any], options: LoadOptions) -> dict[str, Any]:
    declared = data.get("vars")
    variables = dict(declared) if isinstance(declared, dict) else {}
    chosen = options.target or data.get("target") or options.default_target
    if isinstance(chosen, str):
        variables.update(options.target_vars.get(chosen, {}))
    variables.update(options.variables)
    return variables


def _default_playbook(state: _State, data: dict[str, Any]) -> PlaybookRef | None:
    meta = data.get("metadata")
    ref = meta.get("playbook") if isinstance(meta, dict) else None
    if not isinstance(ref, str):
        return None
    file_part, _, anchor = ref.partition("#")
    found = _find_playbook(state, ("metadata", "playbook"), file_part)
    if found is None:
        return None
    return _checked_ref(state, ("metadata", "playbook"), found, file_part, anchor or None)


def project_root(start: Path) -> Path:
    """The repository a scenario belongs to: the nearest folder up with dirt.yaml or .git."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "dirt.yaml").is_file() or (folder / ".git").exists():
            return folder
    return start


def _find_playbook(state: _State, where: tuple[str | int, ...], file_part: str) -> Path | None:
    """A playbook link's file: Markdown, found from the scenario's folder up, inside the repository."""
    if Path(file_part).suffix.lower() not in (".md", ".markdown"):
        state.add(where, f"playbook {file_part!r} is not a Markdown file", "link a playbooks/*.md file")
        return None
    root = state.root
    found = find_file(file_part, state.path.parent.resolve(), root=root)
    if found is None:
        outside = find_file(file_part, state.path.parent.resolve())
        if outside is not None:
            state.add(where, f"playbook {file_part!r} is outside the repository ({root})",
                      "keep playbooks in the repository, e.g. playbooks/x.md")
        else:
            state.add(where, f"playbook file {file_part!r} not found",
                      "paths are relative to the scenario's folder or any folder above it")
    return found


def _checked_ref(state: _State, where: tuple[str | int, ...], found: Path, display: str,
                 anchor: str | None) -> PlaybookRef | None:
    try:
        book = load_playbook(found)
    except PlaybookError as exc:
        state.add(where, str(exc))
        return None
    for line, message in book.problems:
        state.problems.append(Problem(str(found), line, 1, message))
    title = None
    if anchor:
        section = book.section(anchor)
        if section is None:
            state.add(where, f"no section '#{anchor}' in {display}",
                      did_you_mean(anchor, book.sections) or
                      f"sections: {', '.join('#' + a for a in list(book.sections)[:8])}")
            return None
        title = section.title
    return PlaybookRef(path=str(found), display=display, anchor=anchor, title=title)


def _backup_names(data: dict[str, Any]) -> list[str]:
    items = data.get("backups")
    if not isinstance(items, list):
        return []
    return [b["name"] for b in items if isinstance(b, dict) and isinstance(b.get("name"), str)]


def _resolve_step(
    state: _State,
    registry: Registry,
    section: str,
    kind: Kind,
    index: int,
    item: Any,
    variables: dict[str, Any],
    default_book: PlaybookRef | None,
    backup_names: list[str],
    data: dict[str, Any],
) -> StepSpec | None:
    where: tuple[str | int, ...] = (section, index)
    key = DRIVER_KEY[kind]
    if not isinstance(item, dict):
        state.add(where, f"{section}[{index}]: expected a mapping with '{key}:'",
                  f"write '- {key}: <driver>' followed by its parameters")
        return None
    driver_name = item.get(key)
    if driver_name is None:
        other = next((k for k in DRIVER_KEY.values() if k in item), None)
        if other:
            state.add(where + (other,), f"{section} holds {kind}s, not {other}s",
                      _wrong_section_hint(other), key=True)
        else:
            state.add(where, f"{section}[{index}]: missing '{key}:' naming the {kind} driver",
                      f"known: {', '.join(registry.names(kind)[:12])}")
        return None
    if not isinstance(driver_name, str):
        state.add(where + (key,), f"'{key}' must be a driver name, got {type(driver_name).__name__}")
        return None
    cls = registry.get(kind, driver_name)
    if cls is None:
        hint = did_you_mean(driver_name, registry.names(kind)) or f"known {kind}s: {', '.join(registry.names(kind))}"
        state.add(where + (key,), f"unknown {kind} '{driver_name}'", hint)
        return None

    common = dict(COMMON_KEYS[kind])
    driver_names = {f.alias or n for n, f in cls.Params.model_fields.items()}
    if kind != "backup" and "name" in driver_names:
        common.pop("name")  # the driver's own parameter (e.g. the Deployment's name)
    params = {k: v for k, v in item.items() if k != key and k not in common}
    for sub, message in template_problems_in(params):
        state.add(where + sub, message)
    unknown = unknown_names(params, variables)
    for name in dict.fromkeys(unknown):
        state.add(where, f"unknown variable '{{{{ {name} }}}}'",
                  did_you_mean(name, list(variables) + list(RUNTIME_VARS)) or "declare it under 'vars:'")
    params = substitute_value(params, variables, keep_unknown=True)
    validated = None
    try:
        validated = cls.Params.model_validate(params)
    except ValidationError as exc:
        state.problems += problems_from_validation(
            exc, path=state.display, positions=state.positions, base=where, model=cls.Params,
            extra_candidates=list(common) + [key], data=params,
        )

    label = item.get("label", item.get("name") if "name" in common else None)
    if label is None and "name" not in common and isinstance(item.get("name"), str):
        label = f"{driver_name} {item['name']}"
    if kind == "backup":
        if not isinstance(label, str) or not label:
            state.add(where, "a backup needs 'name:' (backup.restore refers to it)", "add name: <backup-name>")
            return None
        if backup_names.count(label) > 1:
            state.add(where + ("name",), f"backup name '{label}' is used twice")
    elif label is not None and not isinstance(label, str):
        state.add(where + ("label" if "label" in item else "name",), "a step's label must be a string", "quote it")
        label = None

    within = _duration(state, where, item, "within")
    interval = _duration(state, where, item, "interval")
    rollback = item.get("rollback", True)
    if "rollback" in item and not isinstance(rollback, bool):
        state.add(where + ("rollback",), "'rollback' must be true or false")
        rollback = True
    member = item.get("member")
    if isinstance(member, str) and "{{" in member:  # e.g. "{{ drilled_member }}" from a rolling game day
        member = substitute_value(member, variables, keep_unknown=True)
        if "{{" in member:
            state.add(where + ("member",), f"'member: {item['member']}' names a variable that is not set",
                      "declare it under 'vars:', or pass it (a rolling game day sets drilled_member)")
            member = None
    if member is not None and not (isinstance(member, str) and member.strip()):
        state.add(where + ("member",), "'member' must name one member cluster of the fleet target",
                  "write member: <name>, a name from the fleet's members in dirt.yaml")
        member = None

    playbook = default_book if default_book and not default_book.anchor else None
    ref = item.get("playbook")
    if ref is not None:
        playbook = _step_playbook(state, where + ("playbook",), ref, default_book)
        if playbook is None:
            return None
    if validated is None:
        return None
    mark = state.positions.of_value(where)
    spec = StepSpec(
        section=section, index=index, kind=kind, driver=driver_name,
        name=label or driver_name, params=validated, playbook=playbook,
        within=within, interval=interval if interval is not None else 1.0,
        rollback=rollback, member=member, line=mark.line, column=mark.column,
    )
    context = _SpecContext(backup_names=backup_names, data=data)
    try:
        extra = cls.check_spec(spec, context)
    except PlaybookError as exc:
        extra = [(str(exc), "")]
    for message, hint in extra:
        state.add(where, message, hint)
    return spec


@dataclass(frozen=True)
class _SpecContext:
    backup_names: list[str]
    data: dict[str, Any]


def _wrong_section_hint(other: str) -> str:
    return {
        "fault": "faults belong in 'inject'",
        "check": "checks belong in 'steady_state' or 'verify'",
        "step": "steps belong in 'setup', 'recover', 'rollback' or 'cleanup'",
        "backup": "backups belong in 'backups'",
    }[other]


def _duration(state: _State, where: tuple[str | int, ...], item: dict[str, Any], key: str) -> float | None:
    if key not in item:
        return None
    try:
        return (parse_interval if key == "interval" else parse_duration)(item[key])
    except ValueError as exc:
        state.add(where + (key,), f"'{key}': {exc}")
        return None


def _step_playbook(state: _State, where: tuple[str | int, ...], ref: Any,
                   default_book: PlaybookRef | None) -> PlaybookRef | None:
    if not isinstance(ref, str) or not ref:
        state.add(where, "'playbook' must be a link such as '#section' or 'playbooks/x.md#section'")
        return None
    file_part, _, anchor = ref.partition("#")
    if not file_part:
        if default_book is None:
            state.add(where, f"'{ref}' links into the scenario's playbook, but metadata.playbook is not set",
                      "set metadata.playbook, or write 'playbooks/x.md#section'")
            return None
        return _checked_ref(state, where, Path(default_book.path), default_book.display, anchor or None)
    found = _find_playbook(state, where, file_part)
    if found is None:
        return None
    return _checked_ref(state, where, found, file_part, anchor or None)


def _check_vars_used(state: _State, data: dict[str, Any], variables: dict[str, Any]) -> None:
    declared = data.get("vars")
    if isinstance(declared, dict):
        for name in declared:
            if name in RUNTIME_VARS:
                state.add(("vars", name), f"variable '{name}' is set by dirt at run time", "rename it", key=True)


def _check_availability(state: _State, data: dict[str, Any], variables: dict[str, Any]) -> None:
    """Templates in ``expect.availability`` (``http``, ``promql``): their grammar, their names,
    and the URL once the scenario's own variables are in (runtime ones are checked by the run)."""
    expect = data.get("expect")
    probes = expect.get("availability") if isinstance(expect, dict) else None
    if not isinstance(probes, list):
        return
    for i, probe in enumerate(probes):
        if not isinstance(probe, dict):
            continue
        for key in ("http", "promql"):
            text = probe.get(key)
            if not isinstance(text, str) or "{{" not in text:
                continue
            where: tuple[str | int, ...] = ("expect", "availability", i, key)
            problems = template_problems_in(text)
            for _, message in problems:
                state.add(where, message)
            for name in dict.fromkeys(unknown_names(text, variables)):
                state.add(where, f"unknown variable '{{{{ {name} }}}}'",
                          did_you_mean(name, list(variables) + list(RUNTIME_VARS)) or "declare it under 'vars:'")
            if key == "http" and not problems:
                url = substitute_value(text, variables, keep_unknown=True)
                problem = None if "{{" in str(url) else url_problem(str(url))
                if problem:
                    state.add(where, f"expect.availability.{i}.http: {problem}")


def _check_target(state: _State, data: dict[str, Any], options: LoadOptions) -> None:
    target = data.get("target")
    if options.known_targets is None or not isinstance(target, str):
        return
    known = list(options.known_targets)
    if target not in known:
        state.add(("target",), f"unknown target '{target}'",
                  did_you_mean(target, known) or f"targets in dirt.yaml: {', '.join(known)}")


def _render_expect(state: _State, expect: Expect, variables: dict[str, Any]) -> Expect:
    """``expect.alerts`` and ``expect.silent`` with the scenario's variables in their names and labels
    (``{{ alert }}``, ``{{ drilled_member }}``): they are matched against alerts as written, so a
    variable must have its value when the file is loaded; a runtime one, or an unknown one, is an error."""
    def render(value: str, where: tuple[str | int, ...]) -> str:
        if "{{" not in value:
            return value
        for _, message in template_problems_in(value):
            state.add(where, message)
        for name in dict.fromkeys(n for n in names_in(value) if n not in variables):
            hint = (f"{{{{ {name} }}}} is known only when the drill runs ({RUNTIME_VARS[name]}); an alert is "
                    "matched as written: give its name and labels plain values or scenario variables"
                    if name in RUNTIME_VARS else did_you_mean(name, list(variables)) or "declare it under 'vars:'")
            state.add(where, f"unknown variable '{{{{ {name} }}}}'" if name not in RUNTIME_VARS
                      else f"'{{{{ {name} }}}}' has no value when the scenario is loaded", hint)
        return str(substitute_value(value, variables, keep_unknown=True))

    def match(item: AlertMatch, where: tuple[str | int, ...]) -> AlertMatch:
        return item.model_copy(update={
            "name": render(item.name, where + ("name",)),
            "labels": {k: render(v, where + ("labels", k)) for k, v in item.labels.items()}})

    alerts = [match(a, ("expect", "alerts", i)) for i, a in enumerate(expect.alerts)]
    silent = [render(s, ("expect", "silent", i)) if isinstance(s, str) else match(s, ("expect", "silent", i))
              for i, s in enumerate(expect.silent)]
    return expect.model_copy(update={"alerts": alerts, "silent": silent})


def _check_alerts(state: _State, expect: Expect | None, options: LoadOptions) -> None:
    if options.alert_rules is None or expect is None:
        return
    for i, alert in enumerate(expect.alerts):
        if "{{" not in alert.name and alert.name not in options.alert_rules:
            state.add(("expect", "alerts", i, "name"),
                      f"no alerting rule defines '{alert.name}'",
                      did_you_mean(alert.name, options.alert_rules) or "add a rule, or fix the name",
                      severity="warning")



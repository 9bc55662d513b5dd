"""The reference pages of the docs site, generated from the code at build time.

MkDocs runs this hook (``hooks:`` in ``mkdocs.yml``); ``on_files`` adds one page per
reference topic.  Nothing under ``docs/reference/`` is written by hand, so a driver's
new parameter, a new journal event or a new alert rule reaches the site with no edit
under ``docs/``:

* faults, checks, recovery steps and backups: the driver registry (the same one
  ``dirt drivers`` lists), each driver's docstring, its pydantic ``Params`` model
  (types, defaults, descriptions), family, revertibility and the target capabilities it needs;
* scenario, game-day and ``dirt.yaml`` files: the JSON Schemas of their pydantic models;
* commands: mkdocs-click, from the click group itself;
* the journal: ``dirt.journal.events``; exit codes: ``dirt.core.errors``;
* metrics: ``dirt.app.history.METRICS``; alert rules: the rule files dirt ships.

``pages()`` is plain Python (no MkDocs needed), so the unit tests call it directly.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

KIND_PAGES = {
    "fault": ("faults", "Faults", "break something: the `inject` section of a scenario"),
    "check": ("checks", "Checks", "observe and never change: `detect`, `verify`, `preflight` and `abort` sections"),
    "step": ("steps", "Recovery steps", "act: the `recover` section (and `setup`/`cleanup`)"),
    "backup": ("backups", "Backups", "taken in preflight, restored by `backup.restore`: the `backups` section"),
}


# -- small renderers -------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """Text safe in one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    return f"`{json.dumps(value)}`".replace("|", "\\|")


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "").strip()


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_text(schema: dict[str, Any], link: bool = True) -> str:
    """A JSON Schema fragment as a short type: ``string``, ``list of string``, ``integer ≥ 1``, ``Selector``."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#{name.lower()})" if link else name
    if "const" in schema:
        return _code(schema["const"])
    if "enum" in schema:
        return " \\| ".join(_code(v) for v in schema["enum"])
    if any("(ms|s|m|h|d)" in s.get("pattern", "") for s in [schema, *schema.get("anyOf", [])]):
        return "duration (`90s`, `1m30s`, or seconds)"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            parts = [type_text(s, link) for s in schema[key] if s.get("type") != "null"]
            text = " or ".join(dict.fromkeys(parts))
            return text + (" or null" if any(s.get("type") == "null" for s in schema[key]) else "")
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"list of {type_text(schema.get('items', {}), link)}"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map of {type_text(extra, link)}"
        return "object"
    if kind is None:
        return "any"
    bounds = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
                      ("minLength", "length ≥"), ("maxLength", "length ≤")):
        if key in schema:
            bounds.append(f"{sign} {schema[key]}")
    if "pattern" in schema:
        bounds.append(f"matching `{schema['pattern']}`")
    return kind + (f" ({', '.join(bounds)})" if bounds else "")


def fields_table(schema: dict[str, Any], link: bool = True) -> list[str]:
    """A model's properties as a table: field, type, default (or *required*), description."""
    properties = schema.get("properties", {})
    if not properties:
        return ["*No parameters.*"]
    required = set(schema.get("required", []))
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name, prop in properties.items():
        default = "*required*" if name in required else (_code(prop["default"]) if "default" in prop else "")
        rows.append(f"| `{name}` | {type_text(prop, link)} | {default} | {_cell(prop.get('description', ''))} |")
    return rows


def model_sections(schema: dict[str, Any], title: str) -> list[str]:
    """A document's schema: its top-level fields, then every model it names (``$defs``), one table each."""
    out = [f"## {title}", "", *fields_table(schema), ""]
    for name, definition in sorted(schema.get("$defs", {}).items()):
        out += [f"## {name}", ""]
        if definition.get("description"):
            out += [definition["description"], ""]
        if "properties" in definition:
            out += fields_table(definition)
        elif "enum" in definition:
            out += ["One of: " + ", ".join(_code(v) for v in definition["enum"])]
        else:
            out += [f"Type: {type_text(definition)}"]
        out.append("")
    return out


def _generated_note(source: str) -> str:
    return f"*Generated from {source} when the site is built; do not edit.*"


# -- drivers ------------------------------------------------------------------------------------


def driver_registry() -> Any:
    """The drivers a user has: built-in modules and entry points, never the test doubles."""
    from dirt.drivers.registry import BUILTIN_MODULES, Registry

    registry = Registry()
    for module_name in BUILTIN_MODULES:
        registry.load_module(module_name)
    registry.load_entry_points()
    return registry


def driver_page(kind: str, registry: Any) -> str:
    from dirt.core.families import FAMILIES
    from dirt.drivers.base import COMMON_KEYS
    from dirt.targets.base import CAPABILITIES

    slug, title, what = KIND_PAGES[kind]
    names = registry.names(kind)
    out = [f"# {title}", "", f"{title} {what}. `dirt drivers` lists the same {len(names)}.", "",
           _generated_note("the driver registry and each driver's parameter model"), "",
           "## Keys every step of this kind accepts", "", "| key | meaning |", "|---|---|"]
    out += [f"| `{key}` | {_cell(text)} |" for key, text in COMMON_KEYS[kind].items()]  # type: ignore[index]
    out += ["", "| driver | what it does |", "|---|---|"]
    out += [f"| [`{n}`](#{_anchor(n)}) | {_cell(registry.get(kind, n).summary())} |" for n in names]
    out.append("")
    for name in names:
        cls = registry.get(kind, name)
        out += [f"## `{name}` {{ #{_anchor(name)} }}", ""]
        doc = _doc(cls)
        out += [doc if doc else cls.summary(), ""]
        facts = []
        origin = registry.origins.get((kind, name), "")
        if not origin.startswith("dirt."):
            facts.append(f"**From**: {origin}")
        if kind == "fault":
            family = cls.family
            facts.append(f"**Family**: `{family}` ({FAMILIES.get(family, 'unknown family')}); off the sandbox a "
                         f"target needs `allow: [{family}]`" if family != "none" else
                         "**Family**: `none` (harmless: every target allows it)")
            facts.append("**Rollback**: " + ("reverted by `revert` when a drill fails or `dirt rollback` runs"
                                             + (" — by putting back a safety snapshot, so only when asked for"
                                                if cls.snapshot_revert else "")
                                             if cls.reversible else
                                             f"none needed: it heals by itself ({cls.heals}); after a passed drill "
                                             "dirt checks that it did" if cls.heals else
                                             "cannot be reverted by dirt: a recovery step must undo it"))
        needs = sorted(cls.requires)
        if needs:
            facts.append("**Needs the target to**: " + "; ".join(f"{CAPABILITIES.get(c, c)} (`{c}`)" for c in needs))
        if kind in ("check", "step") and not cls.each_member:
            facts.append("**On a fleet**: runs once, where its backup or fault is (not on every member)")
        out += [f"- {fact}" for fact in facts]
        if facts:
            out.append("")
        schema = cls.Params.model_json_schema(ref_template="#/$defs/{model}")
        out += ["**Parameters**", "", *fields_table(schema, link=False), ""]
        for sub, definition in sorted(schema.get("$defs", {}).items()):
            if "properties" in definition:
                out += [f"`{sub}`: {_cell(definition.get('description', ''))}", "", *fields_table(definition, False),
                        ""]
    return "\n".join(out)


def _anchor(name: str) -> str:
    return name.replace(".", "-").replace("_", "-").lower()


# -- documents -----------------------------------------------------------------------------------


def scenario_page(registry: Any) -> str:
    from dirt.scenario.model import SECTIONS, ScenarioDocument

    schema = ScenarioDocument.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    out = ["# Scenario files", "",
           "A scenario is a YAML file with `apiVersion: dirt/v1` and `kind: Scenario`. `dirt schema` prints the "
           "same schema as JSON Schema, for editor completion; `dirt validate` checks files against it and "
           "names the file, line and fix of every problem.", "",
           _generated_note("`dirt.scenario.model`"), "",
           "## Steps", "",
           "Each steps section holds a list of steps; a step names one driver and gives its parameters.", "",
           "| section | steps of kind | drivers |", "|---|---|---|"]
    for section, kind in SECTIONS.items():
        slug, title, _ = KIND_PAGES[kind]
        out.append(f"| `{section}` | {kind} | [{title}]({slug}.md) ({len(registry.names(kind))}) |")
    out.append("")
    out += model_sections(schema, "The document")
    return "\n".join(out)


def gameday_page() -> str:
    from dirt.gameday import gameday_schema

    schema = gameday_schema()
    out = ["# Game-day files", "",
           "A game day is a YAML file with `apiVersion: dirt/v1` and `kind: GameDay`: several drills, a schedule, "
           "blackouts, approvals and notifications. `dirt schema --kind gameday` prints this schema as JSON Schema; "
           "`dirt gameday validate` checks files against it.", "",
           _generated_note("`dirt.gameday`'s models"), ""]
    out += model_sections(schema, "The document")
    return "\n".join(out)


def config_page() -> str:
    from dirt.config import DirtConfig
    from dirt.core.families import FAMILIES
    from dirt.targets.base import CAPABILITIES

    schema = DirtConfig.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    out = ["# dirt.yaml", "",
           "`dirt.yaml` names the targets drills run on and where reports and history go. dirt reads the nearest "
           "one from the current folder up (or `--config`, `DIRT_CONFIG`); `dirt targets` lists what it holds.", "",
           _generated_note("`dirt.config.DirtConfig`"), ""]
    out += model_sections(schema, "The file")
    out += ["## Fault families", "", "What a target's `allow` names.", "", "| family | faults that |", "|---|---|"]
    out += [f"| `{name}` | {_cell(text)} |" for name, text in FAMILIES.items()]
    out += ["", "## Capabilities", "", "What a target can do beyond the Kubernetes API; drivers that need one are "
            "refused on a target without it.", "", "| capability | the target can |", "|---|---|"]
    out += [f"| `{name}` | {_cell(text)} |" for name, text in CAPABILITIES.items()]
    return "\n".join(out)


# -- journal, exit codes, metrics ---------------------------------------------------------------------


def journal_page() -> str:
    from dirt.journal import events

    out = ["# The journal", "", inspect.cleandoc(events.__doc__ or ""), "",
           _generated_note("`dirt.journal.events`"), "",
           f"Schema version: **{events.SCHEMA_VERSION}**. Every event also has `seq`, `ts` and `t`.", "",
           "| event | what it records |", "|---|---|"]
    common = set(events.Event.model_fields)
    for cls in events.EVENT_TYPES:
        name = cls.model_fields["event"].default
        out.append(f"| [`{name}`](#{_anchor(name)}) | {_cell(_doc(cls).split(chr(10))[0] if _doc(cls) else '')} |")
    out.append("")
    for cls in events.EVENT_TYPES:
        name = cls.model_fields["event"].default
        schema = cls.model_json_schema(ref_template="#/$defs/{model}")
        for key in [*common, "event"]:
            schema.get("properties", {}).pop(key, None)
        schema["required"] = [r for r in schema.get("required", []) if r not in common | {"event"}]
        out += [f"## `{name}` {{ #{_anchor(name)} }}", "", _doc(cls) or "", "", *fields_table(schema, link=False), ""]
        for sub, definition in sorted(schema.get("$defs", {}).items()):
            if "properties" in definition:
                out += [f"`{sub}`: {_cell(definition.get('description', ''))}", "",
                        *fields_table(definition, link=False), ""]
    return "\n".join(out)


def exit_codes_page() -> str:
    from dirt.core import errors

    out = ["# Exit codes", "", _generated_note("`dirt.core.errors`"), "",
           "| code | when |", "|---|---|",
           "| 0 | every drill passed (or the command did what it was asked) |"]
    verdicts = {code: verdict for verdict, code in errors.VERDICT_EXIT.items() if code}
    by_code: dict[int, list[type]] = {}
    for cls in _subclasses(errors.DirtError):
        by_code.setdefault(cls.exit_code, []).append(cls)
    for code in sorted(by_code):
        verdict = f"a drill's verdict is *{verdicts[code]}*; " if code in verdicts else ""
        names = ", ".join(f"`{c.__name__}`" for c in by_code[code])
        out.append(f"| {code} | {verdict}errors: {names} |")
    out += ["", "Several drills in one run exit with the worst: aborted (3) beats failed (1) beats passed (0). "
            "Bad input (2) is reported before anything runs.", "", "## Every error", "",
            "| error | exit | meaning |", "|---|---|---|"]
    tree = _error_tree(errors.__doc__ or "")
    for cls in _subclasses(errors.DirtError):
        meaning = tree.get(cls.__name__) or _doc(cls).split("\n\n")[0]
        out.append(f"| `{cls.__name__}` | {cls.exit_code} | {_cell(meaning)} |")
    return "\n".join(out)


def _error_tree(doc: str) -> dict[str, str]:
    """The meanings the error module's docstring gives each class in its tree (``├── Name   exit 2: text``)."""
    meanings = {}
    for line in doc.splitlines():
        match = re.match(r"^[\s│├└─]*([A-Z]\w+)\s{2,}(?:exit \d+(?: unless a subclass says otherwise)?:?\s*)?(.*)$",
                         line)
        if match and match.group(2):
            meanings[match.group(1)] = match.group(2)
    return meanings


def _subclasses(root: type) -> list[type]:
    seen: list[type] = [root]
    for cls in root.__subclasses__():
        seen += _subclasses(cls)
    return seen


def rule_files() -> list[tuple[Path, str]]:
    """The rule files dirt ships, where dirt itself reads them: the sandbox's and the fleet's from the
    package, the alerts on dirt's own metrics beside this site in the repository."""
    from dirt.sandbox.fleet import FLEET_RULES
    from dirt.sandbox.monitoring import RULES_DIR

    sandbox = [(path, "The sandbox's rules (and kind's, with `monitoring: true`)")
               for path in sorted(RULES_DIR.glob("*.yaml"))]
    return [*sandbox, (FLEET_RULES, "A fleet's rules"), (REPO / "monitoring" / "dirt-alerts.yaml",
                                                         "Alerts on dirt's own metrics")]


def metrics_page() -> str:
    from dirt.app.history import METRICS
    from dirt.sandbox.monitoring import RULES_DIR

    out = ["# Metrics and alert rules", "", _generated_note("`dirt.app.history.METRICS` and the rule files"), "",
           "## Metrics", "", "`dirt history export` writes these gauges (OpenMetrics text, or a push to a "
           "Pushgateway); the Grafana dashboard `monitoring/grafana-dirt.json` uses only these.", "",
           "| metric | labels | meaning |", "|---|---|---|"]
    for name, (labels, text) in METRICS.items():
        out.append(f"| `{name}` | {', '.join(f'`{label}`' for label in labels)} | {_cell(text)} |")
    out.append("")
    for path, title in rule_files():
        package = RULES_DIR.parents[1]  # where dirt is installed (the checkout's dirt/, or site-packages/dirt)
        shown = f"dirt/{path.relative_to(package).as_posix()}" if path.is_relative_to(package) else \
            path.relative_to(REPO).as_posix()
        out += [f"## {title}", "", f"From `{shown}`.", "", "| alert | for | severity | expression | summary |",
                "|---|---|---|---|---|"]
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        groups = document.get("groups") or document.get("spec", {}).get("groups", [])
        for group in groups:
            for rule in group.get("rules", []):
                if "alert" not in rule:
                    continue
                annotations = rule.get("annotations", {})
                summary = annotations.get("summary") or annotations.get("description", "")
                out.append(f"| `{rule['alert']}` | {rule.get('for', '')} | {rule.get('labels', {}).get('severity', '')}"
                           f" | `{_cell(rule['expr']).replace('`', '')}` | {_cell(summary)} |")
        out.append("")
    return "\n".join(out)


CLI_PAGE = """# Commands

Every command and option of `dirt`, from the command line itself (`dirt COMMAND --help` prints the same).
Exit codes: [Exit codes](exit-codes.md).

*Generated from `dirt.cli` with mkdocs-click when the site is built; do not edit.*

::: mkdocs-click
    :module: dirt.cli
    :command: cli
    :prog_name: dirt
    :depth: 1
    :style: table
    :list_subcommands: true
"""


def pages() -> dict[str, str]:
    """Every generated page, by its path under ``docs/``."""
    registry = driver_registry()
    result = {f"reference/{slug}.md": driver_page(kind, registry) for kind, (slug, _, _) in KIND_PAGES.items()}
    result.update({
        "reference/cli.md": CLI_PAGE,
        "reference/scenario.md": scenario_page(registry),
        "reference/gameday.md": gameday_page(),
        "reference/config.md": config_page(),
        "reference/journal.md": journal_page(),
        "reference/exit-codes.md": exit_codes_page(),
        "reference/metrics.md": metrics_page(),
    })
    return result


# -- the MkDocs hook -----------------------------------------------------------------------------------


def on_config(config: Any) -> Any:
    import dirt.cli

    dirt.cli.register_subcommands()  # mkdocs-click reads the group: every command group attached
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files

"""Alert coverage: do the alerts our drills expect exist, and which rules are never drilled?

``dirt coverage`` runs ``promtool check rules`` on the rule files (a broken rule
file is an error), then prints two tables: every alert a scenario expects, with
the rule file and line defining it (a missing rule is an error: exit 2), and
every alerting rule that no scenario expects — the alerts nobody has ever seen
fire on purpose.  Alerts a scenario names in ``expect.silent`` or ``abort_when``
that no rule defines get a warning: such a guard can never trip.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from dirt.clients.commands import run
from dirt.config import LoadedConfig
from dirt.core.errors import ScenarioError, UsageError
from dirt.documents.problems import did_you_mean
from dirt.documents.rules import as_prometheus, is_prometheus_rule, rule_groups



@dataclass(frozen=True)
class RuleRef:
    alert: str
    path: Path
    line: int
    group: str


def rule_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in (".yml", ".yaml")
                                and not p.is_dir()))
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such rule file or folder")
    return files


def read_rules(paths: list[Path]) -> list[RuleRef]:
    from dirt.core.safefile import MAX_RULES_BYTES
    from dirt.documents import yamlpos

    refs: list[RuleRef] = []
    for path in rule_files(paths):
        try:
            data, positions, _ = yamlpos.load_file(path, limit=MAX_RULES_BYTES)
        except yamlpos.YamlSyntaxError as exc:
            i = exc.issue
            raise UsageError(f"{path}:{i.mark.line}:{i.mark.column}: cannot read rule file: {i.message}") from None
        groups, where = rule_groups(data)
        for gi, group in enumerate(groups):
            for ri, rule in enumerate(group.get("rules", []) if isinstance(group, dict) else []):
                if isinstance(rule, dict) and "alert" in rule:
                    mark = positions.of_value((*where, gi, "rules", ri, "alert"))
                    refs.append(RuleRef(str(rule["alert"]), path, mark.line, str(group.get("name", ""))))
    return refs


def alert_names_in_rules(paths: list[Path]) -> set[str]:
    return {r.alert for r in read_rules(paths)}


def promtool_check(files: list[Path]) -> tuple[bool, str]:
    """``promtool check rules`` on the files; a PrometheusRule is checked as the plain rule file in its spec."""
    import tempfile

    import yaml

    from dirt.core.safefile import MAX_RULES_BYTES
    from dirt.documents import yamlpos

    promtool = shutil.which("promtool")
    if promtool is None:
        return False, "promtool not found (it comes with the Debian package 'prometheus'; `make deps` installs it)"
    with tempfile.TemporaryDirectory(prefix="dirt-rules-") as scratch:
        checked: list[str] = []
        for i, path in enumerate(files):
            try:
                data, _, _ = yamlpos.load_file(path, limit=MAX_RULES_BYTES)
            except yamlpos.YamlSyntaxError:
                data = None  # promtool says what is wrong with it
            if is_prometheus_rule(data):
                plain = Path(scratch) / f"{i:02d}-{path.name}"
                plain.write_text(yaml.safe_dump(as_prometheus(data), sort_keys=False), encoding="utf-8")
                checked.append(str(plain))
            else:
                checked.append(str(path))
        result = run([promtool, "check", "rules", *checked], timeout=120, what="promtool check rules")
        output = (result.stdout + result.stderr).strip()
        for i, path in enumerate(files):  # name the user's files, not the scratch copies
            output = output.replace(str(Path(scratch) / f"{i:02d}-{path.name}"), str(path))
    return result.ok, output


def default_rule_paths(loaded: LoadedConfig) -> list[Path]:
    from dirt.sandbox.monitoring import RULES_DIR

    return loaded.rule_paths() or [RULES_DIR]


def run_coverage(loaded: LoadedConfig, scenario_paths: list[str], rule_paths: list[Path]) -> None:
    """Print the coverage tables; raise ``UsageError`` (exit 2) for a broken rule file, an invalid
    scenario, or an expected alert that no rule defines."""
    from rich.console import Console
    from rich.table import Table

    from dirt.scenario import LoadOptions, load_scenario, scenario_files

    console = Console()
    err = Console(stderr=True)
    paths = rule_paths or default_rule_paths(loaded)
    files = rule_files(paths)
    if not files:
        raise UsageError(f"no rule files (*.yml, *.yaml) in {', '.join(map(str, paths))}")
    ok, output = promtool_check(files)
    if not ok:
        err.print(output, markup=False, highlight=False)
        raise UsageError("promtool check rules failed on the rule files (output above)")
    console.print(f"promtool check rules: {len(files)} file(s) OK", highlight=False)
    rules = read_rules(paths)
    by_alert: dict[str, list[RuleRef]] = {}
    for ref in rules:
        by_alert.setdefault(ref.alert, []).append(ref)

    expected: dict[str, list[str]] = {}
    guards: dict[str, list[str]] = {}  # silent and abort_when alerts
    options = LoadOptions(known_targets=list(loaded.config.targets))
    bad_files = 0
    for path in scenario_files(scenario_paths):
        try:
            scenario = load_scenario(path, options)
        except ScenarioError as exc:
            err.print(exc.show(), markup=False, highlight=False)
            bad_files += 1
            continue
        for alert in scenario.expect.alerts:
            expected.setdefault(alert.name, []).append(f"{path}")
        silent = [s if isinstance(s, str) else s.name for s in scenario.expect.silent]
        for name in silent + [c.alert for c in scenario.abort_when if c.alert]:
            guards.setdefault(name, []).append(f"{path}")
    table = Table(title="Expected alerts")
    table.add_column("alert")
    table.add_column("rule")
    table.add_column("expected by")
    missing = []
    for alert in sorted(expected):
        refs = by_alert.get(alert)
        where = ", ".join(f"{r.path.name}:{r.line}" for r in refs) if refs else "[bold red]MISSING[/]"
        if not refs:
            missing.append(alert)
        table.add_row(alert, where, "\n".join(sorted(set(expected[alert]))))
    console.print(table)
    unexercised = Table(title="Rules no scenario exercises")
    unexercised.add_column("alert")
    unexercised.add_column("rule")
    for alert in sorted(set(by_alert) - set(expected)):
        unexercised.add_row(alert, ", ".join(f"{r.path.name}:{r.line}" for r in by_alert[alert]))
    console.print(unexercised)
    covered = len(set(by_alert) & set(expected))
    console.print(f"{covered} of {len(by_alert)} alerting rules exercised by a drill", highlight=False)
    for alert in missing:
        hint = did_you_mean(alert, by_alert)
        err.print(f"error: alert {alert!r} is expected by {', '.join(sorted(set(expected[alert])))} "
                  f"but no rule defines it{'; ' + hint if hint else ''}", markup=False, highlight=False)
    for alert in sorted(set(guards) - set(by_alert)):
        hint = did_you_mean(alert, by_alert)
        err.print(f"warning: alert {alert!r} (silent or abort_when in {', '.join(sorted(set(guards[alert])))}) "
                  f"has no rule, so it can never fire{'; ' + hint if hint else ''}", markup=False, highlight=False)
    if missing or bad_files:
        raise UsageError(", ".join(([f"{len(missing)} expected alert(s) without a rule"] if missing else [])
                                   + ([f"{bad_files} invalid scenario file(s)"] if bad_files else [])))

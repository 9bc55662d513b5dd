"""``{{ name }}`` substitution in scenario steps and executable playbook steps.

Deliberately tiny: names only (no expressions, no filters), so a playbook's shell
code — full of ``$VAR`` and ``${VAR}`` — is left alone, and nothing in a scenario
can execute code while being expanded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")

#: Names only known once a run starts; allowed in strings, filled in by the engine.
RUNTIME_VARS: dict[str, str] = {
    "run_id": "the run's id",
    "run_dir": "the run's report folder",
    "target": "the target's name",
    "kubeconfig": "path of the target's kubeconfig",
    "prometheus_url": "the target's Prometheus URL",
    "alertmanager_url": "the target's Alertmanager URL",
    "scenario_dir": "folder of the scenario file",
    "project_dir": "folder of dirt.yaml",
    "etcd_endpoint": "the target's etcd client URL (sandbox)",
}


def names_in(text: str) -> list[str]:
    return PLACEHOLDER.findall(text)


def substitute(text: str, variables: Mapping[str, Any], *, keep_unknown: bool = False) -> str:
    """Replace every ``{{ name }}``; unknown names raise ``KeyError`` unless kept."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            return str(variables[name])
        if keep_unknown:
            return match.group(0)
        raise KeyError(name)

    return PLACEHOLDER.sub(repl, text)


def substitute_value(value: Any, variables: Mapping[str, Any], *, keep_unknown: bool = True) -> Any:
    """Substitute inside nested data; a string that is exactly one placeholder
    takes the variable's own type (so ``replicas: "{{ n }}"`` stays an int)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        return substitute(value, variables, keep_unknown=keep_unknown)
    if isinstance(value, list):
        return [substitute_value(v, variables, keep_unknown=keep_unknown) for v in value]
    if isinstance(value, dict):
        return {k: substitute_value(v, variables, keep_unknown=keep_unknown) for k, v in value.items()}
    return value


def unknown_names(value: Any, known: Iterable[str]) -> list[str]:
    """Placeholders in ``value`` naming neither a scenario nor a runtime variable."""
    allowed = set(known) | set(RUNTIME_VARS)
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            found.extend(n for n in names_in(v) if n not in allowed)
        elif isinstance(v, list):
            for item in v:
                walk(item)
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)

    walk(value)
    return found

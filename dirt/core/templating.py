"""``{{ name }}`` substitution in scenario steps and executable playbook steps.

Deliberately tiny, so a playbook's shell code — full of ``$VAR``, ``${VAR}`` and
``${#arr[@]}`` — is left alone, and nothing in a scenario can execute code while
being expanded.  The grammar, checked by ``template_problems`` when a scenario is
validated:

- ``{{ name }}``: a scenario variable or a runtime variable (``RUNTIME_VARS``);
- ``{{ name | quote }}``: the value quoted for a POSIX shell;
- ``{{ name | default("text") }}``: the value, or the text when the name is unset;
- ``{{ "{{" }}``: a literal string, for text that needs ``{{`` itself (Go templates).

Each ``{{ ... }}`` is parsed by Jinja's sandboxed environment and its syntax tree
checked against that grammar: attribute access, calls, other filters and
statements are refused at validation, not run.  Expansion walks the same tree.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: Any ``{{ ... }}`` (shortest), or an opening ``{{`` never closed.
_SPAN = re.compile(r"\{\{(.*?)\}\}|\{\{", re.S)
_STATEMENT = re.compile(r"\{%.*?%\}", re.S)
#: The filters a template may use, and what they do (for the docs and error hints).
FILTERS: dict[str, str] = {
    "quote": "quote the value for a POSIX shell",
    "default": "default(\"text\"): the text when the variable is not set",
}
_ENV = SandboxedEnvironment(autoescape=False)

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
    "member": "on a fleet target: the member cluster the step acts on",
    "drilled_member": "in a rolling game day (for_each_member): the member this run drills",
    "app_port": "on a sandbox fleet: the port the member serves the app on (the entry point checks it)",
    "entry_url": "on a fleet target: where users come in (the entry point's URL)",
    "entry_metrics_url": "on a fleet target: the entry point's metrics",
}


class TemplateProblem(ValueError):
    """A ``{{ ... }}`` outside the grammar; ``offset`` is where it starts in the text."""

    def __init__(self, message: str, offset: int = 0):
        self.offset = offset
        super().__init__(message)


def _expression(inner: str, offset: int) -> nodes.Expr:
    """The checked syntax tree of one ``{{ inner }}``."""
    if not inner.strip():
        raise TemplateProblem("empty '{{ }}': write '{{ name }}'", offset)
    if len(inner) > 200:
        raise TemplateProblem(f"'{{{{{_clip(inner)}}}}}' is too long for a template: write '{{{{ name }}}}'", offset)
    try:
        tree = _ENV.parse("{{" + inner + "}}")
    except RecursionError:
        raise TemplateProblem(f"'{{{{{_clip(inner)}}}}}' is nested too deeply for a template", offset) from None
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error in '{{{{{_clip(inner)}}}}}': {exc.message}", offset) from None
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
        raise TemplateProblem(f"'{{{{{_clip(inner)}}}}}' is not one expression", offset)
    expr = body[0].nodes[0]
    _check(expr, inner, offset)
    return expr


def _check(expr: nodes.Node, inner: str, offset: int) -> None:
    if isinstance(expr, nodes.Name) or (isinstance(expr, nodes.Const) and isinstance(expr.value, str)):
        return
    if isinstance(expr, nodes.Filter) and expr.node is not None:
        if expr.name not in FILTERS:
            raise TemplateProblem(f"filter '{expr.name}' is not allowed in '{{{{{_clip(inner)}}}}}'; "
                                  f"allowed: {', '.join(FILTERS)}", offset)
        if expr.kwargs or expr.dyn_args or expr.dyn_kwargs or \
                not all(isinstance(a, nodes.Const) and isinstance(a.value, str) for a in expr.args) or \
                len(expr.args) != (1 if expr.name == "default" else 0):
            usage = 'default("text")' if expr.name == "default" else expr.name
            raise TemplateProblem(f"filter '{expr.name}' takes no such arguments; write '{{{{ name | {usage} }}}}'",
                                  offset)
        _check(expr.node, inner, offset)
        return
    raise TemplateProblem(f"'{{{{{_clip(inner)}}}}}' is not allowed: a template holds a variable name "
                          "('{{ name }}'), optionally '| quote' or '| default(\"text\")'", offset)


def _clip(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _spans(text: str) -> Iterable[tuple[re.Match[str], nodes.Expr]]:
    """Each ``{{ ... }}`` with its checked tree; raises ``TemplateProblem`` at the first bad one."""
    if "{{" not in text and "{%" not in text:
        return
    statement = _STATEMENT.search(text)
    if statement:
        raise TemplateProblem(f"'{_clip(statement.group(0))}': template statements are not allowed",
                              statement.start())
    for match in _SPAN.finditer(text):
        if match.group(1) is None:
            raise TemplateProblem("'{{' is not closed with '}}'", match.start())
        yield match, _expression(match.group(1), match.start())


def template_problems(text: str) -> list[TemplateProblem]:
    """Every ``{{ ... }}`` in ``text`` that is outside the grammar (empty when all are fine)."""
    problems = []
    rest, base = text, 0
    while True:
        try:
            for _ in _spans(rest):
                pass
            return problems
        except TemplateProblem as exc:
            exc.offset += base
            problems.append(exc)
            cut = exc.offset - base + 2
            rest, base = rest[cut:], base + cut
            if len(problems) >= 10:
                return problems


def names_in(text: str) -> list[str]:
    """Variable names a text uses (well-formed templates only)."""
    found: list[str] = []
    try:
        for _, expr in _spans(text):
            name = _required_name(expr)
            if name:
                found.append(name)
    except TemplateProblem:
        found = PLACEHOLDER.findall(text)
    return found


def _required_name(expr: nodes.Node) -> str | None:
    """The variable an expression needs (None for literals and for names with a default)."""
    if isinstance(expr, nodes.Name):
        return expr.name
    if isinstance(expr, nodes.Filter) and expr.name != "default" and expr.node is not None:
        return _required_name(expr.node)
    return None


def _evaluate(expr: nodes.Expr, variables: Mapping[str, Any]) -> Any:
    if isinstance(expr, nodes.Const):
        return expr.value
    if isinstance(expr, nodes.Name):
        if expr.name not in variables:
            raise KeyError(expr.name)
        return variables[expr.name]
    assert isinstance(expr, nodes.Filter)
    if expr.name == "default":
        try:
            return _evaluate(expr.node, variables)
        except KeyError:
            return expr.args[0].value
    return shlex.quote(str(_evaluate(expr.node, variables)))


def substitute(text: str, variables: Mapping[str, Any], *, keep_unknown: bool = False) -> str:
    """Expand every ``{{ ... }}``; unknown names raise ``KeyError`` unless kept as written.

    Text outside the grammar raises ``TemplateProblem`` (validation reports it first).
    """
    if "{{" not in text:
        return text
    out: list[str] = []
    last = 0
    for match, expr in _spans(text):
        out.append(text[last:match.start()])
        try:
            out.append(str(_evaluate(expr, variables)))
        except KeyError:
            if not keep_unknown:
                raise
            out.append(match.group(0))
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def substitute_value(value: Any, variables: Mapping[str, Any], *, keep_unknown: bool = True) -> Any:
    """Substitute inside nested data; a string that is exactly one placeholder
    takes the variable's own type (so ``replicas: "{{ n }}"`` stays an int)."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        try:
            return substitute(value, variables, keep_unknown=keep_unknown)
        except TemplateProblem:
            if keep_unknown:
                return value  # reported by validation; left as written
            raise
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


def template_problems_in(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """``(path, message)`` for every template problem in nested data (strings in dicts and lists)."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(value, str):
        found += [(path, str(p)) for p in template_problems(value)]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += template_problems_in(item, path + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            found += template_problems_in(item, path + (key,))
    return found

"""Safe YAML loading that remembers where every value came from.

Validation errors are only useful if they point at a line.  PyYAML's composer
keeps a mark (line, column) on every node; we build plain Python data from the
node tree ourselves and keep a map from each value's *path* (the tuple of keys
and indexes that reaches it, as pydantic reports it in ``loc``) to its mark.

Only the safe constructor is used: no Python tags, no arbitrary objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

try:  # the C loader is several times faster; fall back to the pure one
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Positions:
    """Where each value (and each mapping key) sits in the source text."""

    values: dict[Path_, Mark] = field(default_factory=dict)
    keys: dict[Path_, Mark] = field(default_factory=dict)

    def of_value(self, path: Path_) -> Mark:
        """The mark of the value at ``path``, or of its nearest ancestor."""
        for i in range(len(path), -1, -1):
            mark = self.values.get(tuple(path[:i]))
            if mark is not None:
                return mark
        return Mark(1, 1)

    def of_key(self, path: Path_) -> Mark:
        """The mark of the key that introduces ``path`` (falls back to the value)."""
        mark = self.keys.get(tuple(path))
        return mark if mark is not None else self.of_value(path)


@dataclass
class YamlIssue:
    mark: Mark
    message: str
    hint: str = ""


class YamlSyntaxError(Exception):
    def __init__(self, issue: YamlIssue):
        self.issue = issue
        super().__init__(issue.message)


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self) -> None:
        self.positions = Positions()
        self.issues: list[YamlIssue] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.positions.values[path] = _mark(node)
        # node.id rather than isinstance: the C parser builds nodes of the classes of the
        # yaml module it was first loaded with, which may not be ours (re-imports).
        if node.id == "mapping":
            self._constructor.flatten_mapping(node)  # resolves "<<" merge keys
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.id != "scalar":
                    self.issues.append(
                        YamlIssue(_mark(key_node), "a mapping key must be a plain string")
                    )
                    continue
                key = self._constructor.construct_object(key_node)
                if not isinstance(key, str):
                    key = str(key)
                if key in result:
                    self.issues.append(
                        YamlIssue(
                            _mark(key_node),
                            f"duplicate key {key!r}",
                            "YAML keeps only the last one; remove or merge the duplicates",
                        )
                    )
                child = path + (key,)
                self.positions.keys[child] = _mark(key_node)
                result[key] = self.build(value_node, child)
            return result
        if node.id == "sequence":
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as exc:
            self.issues.append(YamlIssue(_mark(node), str(exc.problem or exc)))
            return None


def load(text: str) -> tuple[Any, Positions, list[YamlIssue]]:
    """Parse one YAML document; return the data, its positions, and soft issues.

    Raises ``YamlSyntaxError`` when the text is not YAML at all (the first syntax
    error, located).  Soft issues (duplicate keys, odd keys) are returned so the
    caller can report them together with validation errors.
    """
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        problem = exc.problem or "invalid YAML"
        hint = _syntax_hint(problem, exc.context or "")
        raise YamlSyntaxError(YamlIssue(where, f"YAML syntax error: {problem}", hint)) from None
    except yaml.YAMLError as exc:  # e.g. a reader error on control characters
        raise YamlSyntaxError(YamlIssue(Mark(1, 1), f"YAML error: {exc}")) from None
    if not nodes:
        return None, Positions(), []
    builder = _Builder()
    data = builder.build(nodes[0], ())
    if len(nodes) > 1:
        builder.issues.append(
            YamlIssue(
                _mark(nodes[1]),
                "more than one YAML document in this file",
                "keep one scenario per file, or remove the '---' separator",
            )
        )
    return data, builder.positions, builder.issues


def _syntax_hint(problem: str, context: str) -> str:
    text = f"{context} {problem}"
    if "found character '\\t'" in text or "tab" in text:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in text:
        return "a value containing ': ' must be quoted, or a key is indented wrongly"
    if "expected <block end>" in text or "did not find expected key" in text:
        return "check the indentation of this line against the lines above"
    if "found undefined alias" in text:
        return "define the &anchor before using *alias"
    if "could not find expected ':'" in text:
        return "a key needs ':' after it; multi-line strings need '|' or quotes"
    if "found unexpected end of stream" in text or "while scanning a quoted scalar" in text:
        return "a quote is not closed"
    return "fix the YAML syntax at this position"

"""Safe YAML loading that remembers where every value came from.

Validation errors are only useful if they point at a line.  PyYAML's composer
keeps a mark (line, column) on every node; we build plain Python data from the
node tree ourselves and keep a map from each value's *path* (the tuple of keys
and indexes that reaches it, as pydantic reports it in ``loc``) to its mark.

Only the safe constructor is used: no Python tags, no arbitrary objects.  The
input is bounded before and while it is built: nesting depth and the number of
nodes are checked on the event stream (iteratively, so 100,000 nested brackets
cannot exhaust the stack), and the number of values built is capped, so an
alias bomb (a few hundred bytes expanding to billions of values) is refused in
milliseconds instead of eating memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dirt.core import safefile

try:  # the C loader is several times faster; fall back to the pure one
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

Path_ = tuple[str | int, ...]

#: Deepest nesting of mappings and sequences accepted (documents here are shallow).
MAX_DEPTH = 64
#: Most nodes in the source, and most values built once aliases are expanded.
MAX_NODES = 200_000
MAX_VALUES = 200_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


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


def _at(mark: Any) -> Mark:
    return Mark(mark.line + 1, mark.column + 1) if mark is not None else Mark(1, 1)


def _why(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    if problem:
        return str(problem)
    if isinstance(exc, AttributeError):  # PyYAML's regex did not match the explicit tag's format
        return "the value does not match its explicit tag (e.g. !!timestamp, !!int)"
    return str(exc) or type(exc).__name__


class _TooBig(Exception):
    def __init__(self, issue: YamlIssue):
        self.issue = issue


class _Builder:
    def __init__(self) -> None:
        self.positions = Positions()
        self.issues: list[YamlIssue] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._built = 0

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self._built += 1
        if self._built > MAX_VALUES or len(path) > MAX_DEPTH:
            what = "too many values" if self._built > MAX_VALUES else "nested too deeply"
            raise _TooBig(YamlIssue(_mark(node), f"{what} once aliases are expanded (an alias bomb, or a "
                                    "recursive anchor?)", "use fewer '*alias' references"))
        self.positions.values[path] = _mark(node)
        # node.id rather than isinstance: the C parser builds nodes of the classes of the
        # yaml module it was first loaded with, which may not be ours (re-imports).
        if node.id == "mapping":
            self._flatten(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.id != "scalar":
                    self.issues.append(
                        YamlIssue(_mark(key_node), "a mapping key must be a plain string")
                    )
                    continue
                try:
                    key = self._constructor.construct_object(key_node)
                except Exception as exc:  # noqa: BLE001 - any tagged scalar PyYAML cannot build
                    self.issues.append(YamlIssue(_mark(key_node), f"cannot read this key: {_why(exc)}"))
                    continue
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
        except Exception as exc:  # noqa: BLE001 - e.g. '!!timestamp 2021-13-45' fails inside PyYAML
            self.issues.append(YamlIssue(_mark(node), f"cannot read this value: {_why(exc)}"))
            return None

    def _flatten(self, node: yaml.Node) -> None:
        """Resolve ``<<`` merge keys; a merge of something that is not a mapping is a located issue."""
        try:
            self._constructor.flatten_mapping(node)
        except yaml.constructor.ConstructorError as exc:
            self.issues.append(YamlIssue(_at(exc.problem_mark), f"bad merge key '<<': {exc.problem}",
                                         "'<<' takes a mapping (or a list of mappings), e.g. '<<: *defaults'"))
        except RecursionError:
            self.issues.append(YamlIssue(_mark(node), "merge key '<<' refers to itself",
                                         "a mapping cannot merge an anchor that contains it"))
        node.value = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]


def load(text: str) -> tuple[Any, Positions, list[YamlIssue]]:
    """Parse one YAML document; return the data, its positions, and soft issues.

    Raises ``YamlSyntaxError`` when the text is not YAML at all (the first syntax
    error, located).  Soft issues (duplicate keys, odd keys) are returned so the
    caller can report them together with validation errors.
    """
    try:
        _check_shape(text)
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        problem = exc.problem or "invalid YAML"
        hint = _syntax_hint(problem, exc.context or "")
        raise YamlSyntaxError(YamlIssue(where, f"YAML syntax error: {problem}", hint)) from None
    except yaml.YAMLError as exc:  # e.g. a reader error on control characters
        mark = getattr(exc, "position", None)
        where = Mark(1, 1)
        if isinstance(mark, int):
            before = text[:mark]
            where = Mark(before.count("\n") + 1, mark - (before.rfind("\n") + 1) + 1)
        reason = getattr(exc, "reason", None) or str(exc)
        raise YamlSyntaxError(YamlIssue(where, f"YAML error: {reason}",
                                        "remove control characters from the file")) from None
    except RecursionError:  # pragma: no cover - _check_shape bounds the depth first
        raise YamlSyntaxError(YamlIssue(Mark(1, 1), "YAML nested too deeply")) from None
    if not nodes:
        return None, Positions(), []
    builder = _Builder()
    try:
        data = builder.build(nodes[0], ())
    except _TooBig as exc:
        raise YamlSyntaxError(exc.issue) from None
    if len(nodes) > 1:
        builder.issues.append(
            YamlIssue(
                _mark(nodes[1]),
                "more than one YAML document in this file",
                "keep one scenario per file, or remove the '---' separator",
            )
        )
    return data, builder.positions, builder.issues


def _check_shape(text: str) -> None:
    """Refuse too deep or too large documents from the event stream, before composing.

    The parser's events come one at a time (no recursion), so this is safe on any
    input; composing (which recurses) only happens on documents that passed.
    """
    depth = 0
    nodes = 0
    for event in yaml.parse(text, Loader=_Loader):
        kind = type(event).__name__  # names, not classes: see the note on node.id below
        if kind in ("MappingStartEvent", "SequenceStartEvent"):
            depth += 1
            if depth > MAX_DEPTH:
                raise YamlSyntaxError(YamlIssue(_at(event.start_mark),
                                                f"nested more than {MAX_DEPTH} levels deep",
                                                "a dirt document is never this deep; check the brackets"))
        elif kind in ("MappingEndEvent", "SequenceEndEvent"):
            depth -= 1
        if kind in ("ScalarEvent", "AliasEvent", "MappingStartEvent", "SequenceStartEvent"):
            nodes += 1
            if nodes > MAX_NODES:
                raise YamlSyntaxError(YamlIssue(_at(event.start_mark), f"more than {MAX_NODES:,} values",
                                                "a dirt document is never this large"))


def load_file(path: Path | str, *, limit: int = safefile.MAX_DOCUMENT_BYTES) -> tuple[Any, Positions, list[YamlIssue]]:
    """``load`` of a file read through ``safefile``; a file that cannot be read (a FIFO, too
    large, not UTF-8) raises ``YamlSyntaxError`` too, located like a syntax error."""
    try:
        text = safefile.read_text(path, limit=limit)
    except safefile.UnreadableFile as exc:
        raise YamlSyntaxError(YamlIssue(Mark(exc.line, exc.column), exc.message, exc.hint)) from None
    return load(text)


@dataclass(frozen=True)
class Document:
    """A dirt document file read and parsed: its bytes (for the digest), data, positions and soft issues."""

    display: str
    raw: bytes
    data: Any
    positions: Positions
    issues: list[YamlIssue]


def read_document(path: Path) -> Document:
    """Read and parse a scenario or game-day file, or raise ``ScenarioError`` with its one located
    problem (unreadable, not UTF-8, not YAML)."""
    from dirt.core.errors import Problem, ScenarioError

    display = str(path)
    try:
        raw = safefile.read_bytes(path)
        text = safefile.decode(raw)
    except safefile.UnreadableFile as exc:
        raise ScenarioError(display, [Problem(display, exc.line, exc.column, exc.message, exc.hint)]) from None
    try:
        data, positions, issues = load(text)
    except YamlSyntaxError as exc:
        i = exc.issue
        raise ScenarioError(display, [Problem(display, i.mark.line, i.mark.column, i.message, i.hint)]) from None
    return Document(display, raw, data, positions, issues)


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

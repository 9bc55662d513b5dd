"""Turn pydantic's validation errors into located, human ``Problem``s.

Shared by the scenario loader and the ``dirt.yaml`` loader: both parse YAML with
positions (``dirt.documents.yamlpos``) and validate with pydantic models; this is
where a ``loc`` becomes ``file:line:col``, where "extra_forbidden" becomes
"unknown field 'x' (did you mean 'y'?)", and where pydantic's phrasing is
turned into what a person fixing a YAML file needs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from dirt.core.errors import Problem
from dirt.documents.yamlpos import Path_, Positions


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else ""


def field_names(model: type[BaseModel]) -> list[str]:
    names = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
    return names


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The nested model that owns the last key of ``loc`` (for did-you-mean)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = None
        for name, f in current.model_fields.items():
            if part in (name, f.alias):
                info = f
                break
        if info is None:
            return None
        current = _unwrap(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """list[X] / X | None / dict[str, X] -> X when X is a model."""
    import typing

    args = typing.get_args(annotation)
    if not args:
        return annotation
    for arg in args:
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"a number ({value})"
    if isinstance(value, float):
        return f"a number ({value:g})"
    if isinstance(value, str):
        return f"a string ({value!r})" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list (YAML '- item' lines)",
    "dict_type": "a mapping (YAML 'key: value' lines)",
    "model_type": "a mapping (YAML 'key: value' lines)",
    "model_attributes_type": "a mapping (YAML 'key: value' lines)",
}


def _clean_loc(loc: tuple[Any, ...], data: Any, kind: str) -> tuple[Any, ...]:
    """Keep only the parts of ``loc`` that are real keys/indexes of ``data``.

    pydantic adds union member names (``str``, ``list[int]``, ``AlertMatch``) and
    validator names to ``loc``; a person only needs the path in their file.
    """
    if data is None:
        return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p[:1].isupper()
                                                                    or p in ("str", "int", "float", "bool"))))
    kept: list[Any] = []
    current = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(current, dict) and part in current:
            kept.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            kept.append(part)
            current = current[part]
        elif isinstance(current, dict) and last and kind in ("missing", "extra_forbidden"):
            kept.append(part)
        else:
            continue  # a union member or validator name
    return tuple(kept)


def problems_from_validation(
    exc: ValidationError,
    *,
    path: str,
    positions: Positions,
    base: Path_ = (),
    model: type[BaseModel] | None = None,
    extra_candidates: Iterable[str] = (),
    data: Any = None,
    document: str = "the scenario",
) -> list[Problem]:
    """One ``Problem`` per located pydantic error (union alternatives merged); ``document`` names
    the top level in messages ("missing required field 'drills' in the game day")."""
    problems: list[Problem] = []
    extra = list(extra_candidates)
    grouped: dict[tuple[Any, ...], list[Any]] = {}
    for err in exc.errors(include_url=False):
        loc = _clean_loc(tuple(err["loc"]), data, err["type"])
        grouped.setdefault(loc, []).append(err)
    for loc, errs in grouped.items():
        err = errs[0]
        full = base + loc
        kind = err["type"]
        where = ".".join(str(p) for p in full) or "(top level)"
        hint = ""
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            owner = _model_at(model, loc) if model else None
            candidates = (field_names(owner) if owner else []) + extra
            hint = did_you_mean(key, candidates) or (
                f"allowed here: {', '.join(sorted(set(candidates)))}" if candidates else ""
            )
            mark = positions.of_key(full)
            message = f"unknown field '{key}'"
            if key in ("True", "False"):  # YAML 1.1: an unquoted on/off, yes/no, y/n key is a boolean
                words = [w for w in YAML11_BOOLS[key == "True"] if w in candidates]
                if words:
                    message = (f"unknown field '{key}': YAML 1.1 reads an unquoted '{words[0]}' as {key.lower()}")
                    hint = f'quote it: "{words[0]}":'
                else:
                    message += f": YAML 1.1 reads an unquoted on/off, yes/no or y/n as {key.lower()}"
                    hint = "quote the key"
        elif kind == "missing":
            key = str(loc[-1]) if loc else "?"
            mark = positions.of_key(full[:-1]) if full[:-1] else positions.of_value(())
            parent = ".".join(str(p) for p in full[:-1]) or document
            message = f"missing required field '{key}' in {parent}"
            hint = f"add '{key}:'"
        else:
            mark = positions.of_value(full)
            type_errors = [e for e in errs if e["type"] in _TYPE_WORDS]
            if len(type_errors) > 1:
                wanted = " or ".join(dict.fromkeys(_TYPE_WORDS[e["type"]] for e in type_errors))
                message = f"{where}: expected {wanted}, got {_describe(err.get('input'))}"
            else:
                message = _message(err, where)
                hint = _hint(err)
        problems.append(Problem(path, mark.line, mark.column, message, hint))
    return problems


#: Keys YAML 1.1 (PyYAML) reads as booleans, by the boolean they become.
YAML11_BOOLS = {True: ("on", "yes", "y", "true"), False: ("off", "no", "n", "false")}


def _message(err: Any, where: str) -> str:
    kind = err["type"]
    if kind in _TYPE_WORDS:
        return f"{where}: expected {_TYPE_WORDS[kind]}, got {_describe(err.get('input'))}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{where}: must be {expected}, got {_describe(err.get('input'))}"
    if kind == "string_pattern_mismatch":
        return f"{where}: {_describe(err.get('input'))} has the wrong form"
    if kind == "too_short":
        return f"{where}: must not be empty"
    if kind == "value_error":
        msg = str(err.get("msg", ""))
        return f"{where}: {msg.removeprefix('Value error, ')}"
    msg = str(err.get("msg", "is invalid"))
    return f"{where}: {msg[:1].lower()}{msg[1:]}"


def _hint(err: Any) -> str:
    kind = err["type"]
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        if "a-z0-9" in pattern:
            return "use lowercase letters, digits and '-', starting and ending with a letter or digit"
        return f"it must match {pattern}"
    if kind in ("list_type",):
        return "write each item on its own line starting with '- '"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "write 'key: value' lines indented under this key"
    if kind == "string_type" and isinstance(err.get("input"), (int, float, bool)):
        return "quote the value to make it a string"
    if kind.startswith("int") or kind.startswith("float"):
        return "write a plain number"
    return ""

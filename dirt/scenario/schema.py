"""The JSON Schema of scenario files, for editors (``dirt schema``).

The document shape comes from ``ScenarioDocument``; each steps section is
replaced by a ``oneOf`` over the registered drivers of its kind, each branch
being the driver's own parameter model plus the keys every step accepts, with
the driver key fixed by ``const`` — so an editor completes ``fault:`` names and
then that fault's parameters.
"""

from __future__ import annotations

from typing import Any

from dirt.drivers import COMMON_KEYS, DRIVER_KEY
from dirt.drivers.registry import Registry, default_registry
from dirt.scenario.model import SECTIONS, ScenarioDocument

_COMMON_TYPES: dict[str, dict[str, Any]] = {
    "name": {"type": "string"},
    "label": {"type": "string"},
    "playbook": {"type": "string", "pattern": r"^[^#]*(#[\w-]*)?$"},
    "within": {"anyOf": [{"type": "string"}, {"type": "number"}]},
    "interval": {"anyOf": [{"type": "string"}, {"type": "number"}]},
    "rollback": {"type": "boolean"},
    "member": {"type": "string", "minLength": 1},
}


def _step_schema(kind: str, name: str, cls: Any, defs: dict[str, Any]) -> dict[str, Any]:
    params = cls.Params.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(params.pop("$defs", {}))
    key = DRIVER_KEY[kind]  # type: ignore[index]
    properties = {key: {"const": name, "description": cls.summary()}}
    for common, text in COMMON_KEYS[kind].items():  # type: ignore[index]
        properties[common] = {**_COMMON_TYPES[common], "description": text}
    properties.update(params.get("properties", {}))
    required = [key, *params.get("required", [])]
    if kind == "backup":
        required.append("name")
    return {
        "title": f"{kind} {name}",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def scenario_schema(registry: Registry | None = None) -> dict[str, Any]:
    registry = registry or default_registry()
    schema = ScenarioDocument.model_json_schema(by_alias=True)
    defs = schema.setdefault("$defs", {})
    for section, kind in SECTIONS.items():
        branches = [_step_schema(kind, name, registry.get(kind, name), defs) for name in registry.names(kind)]
        prop = schema["properties"][section]
        prop["items"] = {"oneOf": branches} if branches else {"type": "object"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dirt scenario (apiVersion dirt/v1, kind Scenario)"
    return schema

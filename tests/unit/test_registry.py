"""Driver registries: built-ins load, and one broken plugin does not break the others."""

from __future__ import annotations

import importlib.metadata

from dirt.drivers import Check, CheckResult, Fault
from dirt.drivers.registry import Registry, default_registry


class GoodCheck(Check):
    """A plugin check."""

    kind = "check"
    name = "plugin.good"

    def probe(self) -> CheckResult:
        return CheckResult(True)


def test_builtin_drivers_are_registered_without_errors() -> None:
    registry = default_registry()
    assert registry.load_errors == []
    for kind, name in [("fault", "exec"), ("check", "http"), ("check", "exec"), ("step", "wait"),
                       ("step", "playbook.run"), ("step", "backup.restore"), ("check", "promql")]:
        assert registry.get(kind, name) is not None, (kind, name)


def test_a_broken_entry_point_is_recorded_and_the_others_still_load(monkeypatch) -> None:
    eps = [
        importlib.metadata.EntryPoint("broken", "dirt_no_such_plugin_module:DRIVERS", "dirt.drivers"),
        importlib.metadata.EntryPoint("good", f"{__name__}:GoodCheck", "dirt.drivers"),
        importlib.metadata.EntryPoint("wrong", "json:dumps", "dirt.drivers"),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [e for e in eps if e.group == group])
    registry = Registry()
    registry.load_entry_points()
    assert registry.get("check", "plugin.good") is GoodCheck
    assert len(registry.load_errors) == 2
    assert "entry point 'broken'" in registry.load_errors[0] and "ModuleNotFoundError" in registry.load_errors[0]


def test_a_second_driver_with_the_same_name_is_refused_not_overwritten() -> None:
    class Other(Fault):
        kind = "fault"
        name = "exec"

    registry = Registry()
    registry.load_module("dirt.faults.generic")
    first = registry.get("fault", "exec")
    registry.register(Other, "a plugin")
    assert registry.get("fault", "exec") is first
    assert "already registered" in registry.load_errors[0]


def test_a_driver_parameter_named_like_a_step_key_is_refused() -> None:
    from dirt.drivers import Params as BaseParams

    class ClashingParams(BaseParams):
        within: str

    class Clashing(Check):
        """Would lose its 'within' to the step's deadline."""

        kind = "check"
        name = "plugin.clash"
        Params = ClashingParams

    registry = Registry()
    registry._register_object(Clashing, "a plugin")
    assert registry.get("check", "plugin.clash") is None
    assert "parameter(s) within collide with the keys every check step has" in registry.load_errors[0]

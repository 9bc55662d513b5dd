"""Drivers by name: the built-in ones, and third-party ones from entry points.

A registry is an ordinary object (no class-level mutable state): the loader and
the engine receive one, tests build their own.  ``default_registry()`` builds
the usual one once per process: built-in driver modules, then every entry point
in the ``dirt.drivers`` group.  An entry point may name a module (its
``DRIVERS`` list is used), a driver class, or a list of classes.  One broken
plugin is recorded in ``load_errors`` and skipped; the others still load.

The test doubles of ``dirt.testing`` (``fake.*``) are not built in: they load
only where asked for, with ``DIRT_TESTING=1`` in the environment (the test
suite sets it), so ``dirt drivers`` never offers them to a user.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from dirt.core.plugins import DRIVERS_GROUP, entry_points_of, testing_enabled
from dirt.drivers.base import COMMON_KEYS, DRIVER_KEY, Backup, Check, Driver, Fault, Kind, RecoveryStep

#: Modules holding the built-in drivers; each exposes ``DRIVERS``.
BUILTIN_MODULES = (
    "dirt.faults.generic",
    "dirt.faults.kube",
    "dirt.faults.cluster",
    "dirt.faults.runtime",
    "dirt.faults.ctk",
    "dirt.checks.generic",
    "dirt.checks.kube",
    "dirt.checks.alerts",
    "dirt.checks.promql",
    "dirt.checks.ctk",
    "dirt.recovery.generic",
    "dirt.recovery.cluster",
    "dirt.recovery.kube",
    "dirt.recovery.backups",
    "dirt.recovery.etcd",
    "dirt.recovery.resources",
    "dirt.recovery.velero",
    "dirt.recovery.playbook",
    "dirt.recovery.ctk",
)

#: Loaded only when ``dirt.core.plugins.testing_enabled()``.
TESTING_MODULES = ("dirt.testing.drivers", "dirt.testing.crash", "dirt.testing.clock")

ENTRY_POINT_GROUP = DRIVERS_GROUP

_BASES: dict[Kind, type[Driver]] = {
    "fault": Fault,
    "check": Check,
    "step": RecoveryStep,
    "backup": Backup,
}


@dataclass
class Registry:
    drivers: dict[tuple[str, str], type[Driver]] = field(default_factory=dict)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)
    load_errors: list[str] = field(default_factory=list)

    def register(self, cls: type[Driver], origin: str = "") -> None:
        kind = getattr(cls, "kind", None)
        name = getattr(cls, "name", None)
        if kind not in _BASES or not isinstance(name, str) or not name:
            raise TypeError(f"{cls!r} is not a dirt driver (needs kind and name)")
        if not issubclass(cls, _BASES[kind]):
            raise TypeError(f"{cls.__qualname__} says kind={kind!r} but is not a {_BASES[kind].__name__}")
        # 'name' may be a driver's own parameter (its steps are labelled with 'label')
        reserved = (set(COMMON_KEYS[kind]) - ({"name"} if kind != "backup" else set())) | {DRIVER_KEY[kind]}
        clash = sorted(reserved & {f.alias or n for n, f in cls.Params.model_fields.items()})
        if clash:  # the loader would take them as the step's own keys, silently
            raise TypeError(f"{cls.__qualname__}: parameter(s) {', '.join(clash)} collide with the keys "
                            f"every {kind} step has; rename them")
        key = (kind, name)
        if key in self.drivers and self.drivers[key] is not cls:
            self.load_errors.append(
                f"{origin or cls.__module__}: {kind} {name!r} already registered by "
                f"{self.origins[key]}; kept the first"
            )
            return
        self.drivers[key] = cls
        self.origins[key] = origin or cls.__module__

    def register_all(self, items: Iterable[type[Driver]], origin: str) -> None:
        for cls in items:
            self.register(cls, origin)

    def get(self, kind: Kind, name: str) -> type[Driver] | None:
        return self.drivers.get((kind, name))

    def names(self, kind: Kind) -> list[str]:
        return sorted(n for k, n in self.drivers if k == kind)

    def all(self) -> list[tuple[Kind, str, type[Driver]]]:
        return sorted(((k, n, c) for (k, n), c in self.drivers.items()), key=lambda t: (t[0], t[1]))  # type: ignore[misc]

    def load_module(self, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - isolate one broken module
            self.load_errors.append(f"{module_name}: cannot import: {type(exc).__name__}: {exc}")
            return
        self._register_object(module, module_name)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for ep in entry_points_of(group):
            try:
                obj = ep.load()
                self._register_object(obj, f"entry point {ep.name!r} ({ep.value})")
            except Exception as exc:  # noqa: BLE001 - one broken plugin must not break the others
                self.load_errors.append(
                    f"entry point {ep.name!r} ({ep.value}): {type(exc).__name__}: {exc}"
                )

    def _register_object(self, obj: Any, origin: str) -> None:
        if isinstance(obj, ModuleType):
            items = getattr(obj, "DRIVERS", None)
            if items is None:
                self.load_errors.append(f"{origin}: module has no DRIVERS list")
                return
        elif isinstance(obj, type):
            items = [obj]
        else:
            items = list(obj)
        for cls in items:
            try:
                self.register(cls, origin)
            except TypeError as exc:
                self.load_errors.append(f"{origin}: {exc}")


@functools.cache
def default_registry() -> Registry:
    registry = Registry()
    for module_name in BUILTIN_MODULES + (TESTING_MODULES if testing_enabled() else ()):
        registry.load_module(module_name)
    registry.load_entry_points()
    return registry

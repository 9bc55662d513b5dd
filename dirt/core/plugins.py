"""How dirt is extended: entry-point groups, and the opt-in for its own test doubles.

Drivers register under ``dirt.drivers`` and target providers under
``dirt.targets`` (``dirt.drivers.registry``, ``dirt.targets.base``).  The test
doubles shipped in ``dirt.testing`` (a fake target, ``fake.*`` drivers) are
loaded only with ``DIRT_TESTING=1`` in the environment — the test suite sets
it — so they are never offered to a user.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

DRIVERS_GROUP = "dirt.drivers"
TARGETS_GROUP = "dirt.targets"
TESTING_ENV = "DIRT_TESTING"


def testing_enabled() -> bool:
    return os.environ.get(TESTING_ENV, "") not in ("", "0", "false", "no")


#: Target providers built in, as "module:Class"; plugins add theirs under ``dirt.targets``.
BUILTIN_TARGETS = {
    "sandbox": "dirt.targets.sandbox:SandboxTarget",
    "kind": "dirt.targets.kind:KindTarget",
    "kubeconfig": "dirt.targets.kubeconfig:KubeconfigTarget",
    "fleet": "dirt.targets.fleet:FleetTarget",
}
TESTING_TARGETS = {"fake": "dirt.testing.target:FakeTarget"}


def entry_points_of(group: str) -> list[importlib.metadata.EntryPoint]:
    return sorted(importlib.metadata.entry_points(group=group), key=lambda ep: ep.name)


def target_providers() -> dict[str, str]:
    """Every target provider this installation knows (name -> "module:Class"); dirt.yaml is
    checked against the names before anything is imported."""
    known = dict(BUILTIN_TARGETS)
    if testing_enabled():
        known.update(TESTING_TARGETS)
    for ep in entry_points_of(TARGETS_GROUP):
        known.setdefault(ep.name, ep.value)
    return known


def load_target_provider(provider: str) -> Any:
    """Import the object registered for ``provider`` (a ``Target`` class, normally).

    ``KeyError`` when no provider has that name; any other exception is the
    provider's own import failing (a broken plugin), for the caller to word.
    """
    import importlib

    module_name, _, attr = target_providers()[provider].partition(":")
    return getattr(importlib.import_module(module_name), attr)

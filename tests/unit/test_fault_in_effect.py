"""What rollback asks a fault before reverting it: is it still in effect (``Fault.in_effect``)?

A run killed half-way through a fault leaves it *partly* done: a namespace still terminating, one of
two nodes deleted or cordoned, one of two components stopped.  ``verify_injected`` rightly says "not
yet" then, but rollback must hear "in effect", or it leaves the damage behind.  (The crash matrix,
``make test-crash``, found the terminating namespace: the namespace controller then deleted what the
next drill applied.)  Pure logic here, over a small in-memory API.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dirt.faults.cluster import ControlPlaneStop
from dirt.faults.kube import NamespaceDelete, NodeCordon, NodeDelete, NodeDrain


class Objects:
    """``find`` and ``get`` over a dict of (kind, name) -> object: all these faults ask."""

    def __init__(self, **objects: dict[str, Any]) -> None:
        self.objects = {tuple(key.split("/")): obj for key, obj in objects.items()}

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        return self.objects[kind, name]

    def list(self, api_version: str, kind: str, namespace: str | None = None, **selectors: Any) -> list[Any]:
        return []  # no pod is left on a node: a drain's verify then turns on the cordon alone


def fault(cls: type, params: dict[str, Any], state: dict[str, Any], kube: Objects | None = None,
          running: set[str] | None = None) -> Any:
    target = SimpleNamespace(kube=lambda: kube, component_running=lambda c: c in (running or set()))
    made = cls(cls.Params.model_validate(params), SimpleNamespace(target=target))
    made.state = state
    return made


@pytest.mark.parametrize(("live", "in_effect", "said"), [
    (None, True, "namespace shop is gone"),
    ({"metadata": {"deletionTimestamp": "2026-12-07T20:29:49Z"}, "status": {"phase": "Terminating"}}, True,
     "namespace shop is terminating"),
    ({"metadata": {}, "status": {"phase": "Active"}}, False, "namespace shop is Active"),
])
def test_a_namespace_still_terminating_is_in_effect_though_not_yet_verified(live, in_effect: bool, said: str) -> None:
    kube = Objects(**({"Namespace/shop": live} if live else {}))
    deleted = fault(NamespaceDelete, {"namespace": "shop"}, {"safety_export": "/x"}, kube)
    assert (deleted.in_effect().ok, deleted.in_effect().detail) == (in_effect, said)
    assert deleted.verify_injected().ok is (live is None)


def test_nodes_half_deleted_are_in_effect_until_every_one_is_back() -> None:
    nodes = [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]
    half = fault(NodeDelete, {"count": 2}, {"nodes": nodes}, Objects(**{"Node/a": nodes[0]}))
    assert not half.verify_injected().ok
    assert (half.in_effect().ok, half.in_effect().detail) == (True, "missing: b")
    back = fault(NodeDelete, {"count": 2}, {"nodes": nodes}, Objects(**{"Node/a": nodes[0], "Node/b": nodes[1]}))
    assert not back.in_effect().ok


@pytest.mark.parametrize("cls", [NodeCordon, NodeDrain])
def test_a_cordon_left_on_any_node_is_in_effect(cls: type) -> None:
    kube = Objects(**{"Node/a": {"spec": {"unschedulable": True}}, "Node/b": {"spec": {}}})
    half = fault(cls, {"count": 2}, {"nodes": ["a", "b"]}, kube)
    assert not half.verify_injected().ok
    assert (half.in_effect().ok, half.in_effect().detail) == (True, "cordoned: a")
    kube.objects["Node", "a"] = {"spec": {}}
    assert not half.in_effect().ok


def test_components_half_stopped_are_in_effect_until_every_one_runs() -> None:
    stop = {"components": ["kube-scheduler", "kube-controller-manager"]}
    half = fault(ControlPlaneStop, stop, {"stopped": stop["components"]}, running={"kube-controller-manager"})
    assert not half.verify_injected().ok
    assert (half.in_effect().ok, half.in_effect().detail) == (True, "down: kube-scheduler")
    both = fault(ControlPlaneStop, stop, {"stopped": stop["components"]},
                 running={"kube-scheduler", "kube-controller-manager"})
    assert not both.in_effect().ok

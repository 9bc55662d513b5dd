"""Faults through the Kubernetes API: pods, Deployments, namespaces, nodes, NetworkPolicies.

They work on any target with a kubeconfig.  Each records in ``state`` what it
touched (names, previous values, a safety export) so ``revert`` — and a later
``dirt rollback`` after a crash — can put it back.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, model_validator

from dirt.core.errors import APIForbiddenError, APINotFoundError, KubeError, StepFailed
from dirt.drivers import CheckResult, Fault, Params
from dirt.drivers.kube import Selector, node_ready, pod_ready, selector_text
from dirt.drivers.resources import export_namespaces, restore_folder

# -- pods ---------------------------------------------------------------------------------


class PodsDeleteParams(Params):
    namespace: str
    selector: Selector = Field(description="Label selector: 'app=web' or {app: web}.")
    count: int | None = Field(None, ge=1, le=100_000, description="How many pods to delete.")
    percent: int | None = Field(None, ge=1, le=100, description="Or: this share of the matching pods.")
    grace_period: int = Field(0, ge=0, le=86_400, description="Seconds the pods get to stop (0: at once, a crash).")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Seed for choosing pods (default: random).")

    @model_validator(mode="after")
    def _how_many(self) -> PodsDeleteParams:
        if self.count is not None and self.percent is not None:
            raise ValueError("give 'count' or 'percent', not both")
        return self


class PodsDelete(Fault):
    """Delete pods matching a selector (a count, a percentage, or all of them)."""

    name = "pods.delete"
    family = "pods"
    Params = PodsDeleteParams
    heals = "their controllers recreate them"

    def _how_many(self, matching: int) -> int:
        p = self.params
        if p.count is not None:
            return min(p.count, matching)
        if p.percent is not None:
            return max(1, math.ceil(matching * p.percent / 100)) if matching else 0
        return matching

    def plan(self) -> list[str]:
        p = self.params
        amount = f"{p.count}" if p.count else (f"{p.percent}% of the" if p.percent else "all")
        return [f"delete {amount} pods matching {selector_text(p.selector)!r} in namespace {p.namespace} "
                f"(grace {p.grace_period}s); {self.heals}"]

    def inject(self) -> None:
        kube = self.ctx.target.kube()
        pods = [p for p in kube.list("v1", "Pod", self.params.namespace, label_selector=selector_text(self.params.selector))
                if not p["metadata"].get("deletionTimestamp")]
        if not pods:
            raise StepFailed(f"no pods match {selector_text(self.params.selector)!r} in {self.params.namespace}")
        chosen = random.Random(self.params.seed).sample(pods, self._how_many(len(pods)))
        for pod in chosen:
            kube.delete("v1", "Pod", pod["metadata"]["name"], self.params.namespace,
                        grace_period=self.params.grace_period)
        self.state = {"deleted": [{"name": p["metadata"]["name"], "uid": p["metadata"]["uid"]} for p in chosen],
                      "matching": len(pods)}

    def verify_injected(self) -> CheckResult:
        kube = self.ctx.target.kube()
        remaining = []
        for pod in self.state.get("deleted", []):
            live = kube.find("v1", "Pod", pod["name"], self.params.namespace)
            if live is not None and live["metadata"]["uid"] == pod["uid"] and not live["metadata"].get("deletionTimestamp"):
                remaining.append(pod["name"])
        return CheckResult(not remaining, f"{len(self.state['deleted'])} pod(s) deleted" if not remaining
                           else f"still running: {', '.join(remaining)}")

    def in_effect(self) -> CheckResult:
        """Until their controllers have replaced them: as many Ready pods match as before."""
        pods = self.ctx.target.kube().list("v1", "Pod", self.params.namespace,
                                           label_selector=selector_text(self.params.selector))
        ready = sum(1 for p in pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp"))
        before = int(self.state.get("matching", 0))
        return CheckResult(ready < before, f"{ready} of {before} matching pod(s) Ready")


# -- workloads ------------------------------------------------------------------------------


class ScaleParams(Params):
    namespace: str
    name: str = Field(validation_alias=AliasChoices("name", "deployment"),
                      description="The Deployment (or StatefulSet, with kind) to scale; also written 'deployment'.")
    kind: str = Field("Deployment", pattern="^(Deployment|StatefulSet)$")
    replicas: int = Field(ge=0, le=100_000)


class DeploymentScale(Fault):
    """Scale a Deployment (or StatefulSet) to a number of replicas; revert restores it."""

    name = "deployment.scale"
    family = "workload"
    reversible = True
    Params = ScaleParams

    def plan(self) -> list[str]:
        p = self.params
        return [f"scale {p.kind} {p.namespace}/{p.name} to {p.replicas} replicas (revert: back to the current count)"]

    def inject(self) -> None:
        p = self.params
        kube = self.ctx.target.kube()
        current = kube.get("apps/v1", p.kind, p.name, p.namespace)
        self.state = {"previous_replicas": current.get("spec", {}).get("replicas", 1)}
        kube.patch("apps/v1", p.kind, p.name, {"spec": {"replicas": p.replicas}}, p.namespace)

    def verify_injected(self) -> CheckResult:
        p = self.params
        obj = self.ctx.target.kube().get("apps/v1", p.kind, p.name, p.namespace)
        ready = obj.get("status", {}).get("readyReplicas", 0) or 0
        ok = obj["spec"]["replicas"] == p.replicas and (ready <= p.replicas)
        return CheckResult(ok, f"spec {obj['spec']['replicas']}, ready {ready}")

    def in_effect(self) -> CheckResult:
        p = self.params
        obj = self.ctx.target.kube().get("apps/v1", p.kind, p.name, p.namespace)
        replicas = obj["spec"].get("replicas", 1)
        return CheckResult(replicas != self.state.get("previous_replicas", replicas),
                           f"spec.replicas {replicas} (before the fault: {self.state.get('previous_replicas')})")

    def revert(self) -> str:
        p = self.params
        if "previous_replicas" not in self.state:
            return "the previous replica count was never recorded: nothing to restore"
        self.ctx.target.kube().patch("apps/v1", p.kind, p.name,
                                     {"spec": {"replicas": self.state["previous_replicas"]}}, p.namespace)
        return f"scaled back to {self.state['previous_replicas']}"


# -- namespaces ----------------------------------------------------------------------------


class NamespaceDeleteParams(Params):
    namespace: str
    safety_export: bool = Field(True, description="Export the namespace first so rollback can restore it.")


class NamespaceDelete(Fault):
    """Delete a namespace and everything in it; verified once it is completely gone."""

    name = "namespace.delete"
    family = "namespace"
    reversible = True
    Params = NamespaceDeleteParams

    def plan(self) -> list[str]:
        return [f"delete namespace {self.params.namespace} and every object in it",
                "rollback: re-apply a safety export taken just before" if self.params.safety_export
                else "no safety export: rollback cannot restore it"]

    def inject(self) -> None:
        kube = self.ctx.target.kube()
        if kube.find("v1", "Namespace", self.params.namespace) is None:
            raise StepFailed(f"namespace {self.params.namespace} does not exist")
        if self.params.safety_export:
            folder = self.ctx.run_dir / "safety" / f"namespace-{self.params.namespace}"
            manifest = export_namespaces(kube, [self.params.namespace], folder)
            self.state["safety_export"] = str(folder)
            self.state["objects"] = manifest["count"]
        kube.delete("v1", "Namespace", self.params.namespace, propagation="Foreground")

    def verify_injected(self) -> CheckResult:
        live = self.ctx.target.kube().find("v1", "Namespace", self.params.namespace)
        if live is None:
            return CheckResult(True, f"namespace {self.params.namespace} is gone")
        return CheckResult(False, f"namespace {self.params.namespace} is {live.get('status', {}).get('phase')}")

    def in_effect(self) -> CheckResult:
        """Gone, or still terminating: the namespace controller deletes what is left of it whatever comes
        next (objects applied to it meanwhile included), so a rollback must wait and restore it."""
        live = self.ctx.target.kube().find("v1", "Namespace", self.params.namespace)
        if live is None:
            return CheckResult(True, f"namespace {self.params.namespace} is gone")
        if live["metadata"].get("deletionTimestamp"):
            return CheckResult(True, f"namespace {self.params.namespace} is terminating")
        return CheckResult(False, f"namespace {self.params.namespace} is {live.get('status', {}).get('phase')}")

    def revert(self) -> str:
        kube = self.ctx.target.kube()
        live = kube.find("v1", "Namespace", self.params.namespace)
        if live is not None and not live["metadata"].get("deletionTimestamp"):
            return "already back"
        folder = self.state.get("safety_export")
        if not folder:
            raise StepFailed(f"no safety export of namespace {self.params.namespace} to restore it from")
        _wait_gone(kube, "v1", "Namespace", self.params.namespace, 120)
        summary = restore_folder(kube, Path(folder))
        return f"re-applied {summary['applied']} object(s) from the safety export"


def _wait_gone(kube: Any, api_version: str, kind: str, name: str, timeout: float,
               namespace: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while kube.find(api_version, kind, name, namespace) is not None:
        if time.monotonic() > deadline:
            raise StepFailed(f"{kind} {name} still terminating after {timeout:.0f}s")
        time.sleep(0.5)


# -- nodes ---------------------------------------------------------------------------------


class NodeParams(Params):
    node: str | None = Field(None, validation_alias=AliasChoices("node", "name"),
                             description="A node by name (also written 'name').")
    selector: Selector | None = Field(None, description="Or: nodes matching a label selector.")
    count: int = Field(1, ge=1, le=10_000, description="How many of the matching nodes.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)


class _NodeFault(Fault):
    family = "node"
    Params = NodeParams

    def _choose(self) -> list[dict[str, Any]]:
        kube = self.ctx.target.kube()
        p = self.params
        if p.node:
            return [kube.get("v1", "Node", p.node)]
        nodes = kube.list("v1", "Node", label_selector=selector_text(p.selector))
        nodes = sorted((n for n in nodes if node_ready(n) and not n["spec"].get("unschedulable")),
                       key=lambda n: n["metadata"]["name"])
        if len(nodes) < p.count:
            raise StepFailed(f"only {len(nodes)} Ready node(s) match, {p.count} wanted")
        return random.Random(p.seed).sample(nodes, p.count)

    def _which(self) -> str:
        p = self.params
        if p.node:
            return f"node {p.node}"
        sel = selector_text(p.selector)
        return f"{p.count} Ready node(s)" + (f" matching {sel!r}" if sel else "")

    @classmethod
    def check_spec(cls, spec: Any, scenario: Any) -> list[tuple[str, str]]:
        if spec.params.node and spec.params.selector:
            return [("give a 'node' or a 'selector', not both", "")]
        return []


class NodeDelete(_NodeFault):
    """Delete nodes (as if the machines were gone); their pods are rescheduled elsewhere."""

    name = "node.delete"
    reversible = True

    def plan(self) -> list[str]:
        return [f"delete {self._which()} from the API; pods bound there are evicted and rescheduled",
                "rollback: re-create the deleted Node objects"]

    def inject(self) -> None:
        from dirt.clients.kube import strip_server_fields

        kube = self.ctx.target.kube()
        nodes = self._choose()
        self.state = {"nodes": [strip_server_fields(n) for n in nodes]}
        for node in nodes:
            kube.delete("v1", "Node", node["metadata"]["name"])

    def verify_injected(self) -> CheckResult:
        kube = self.ctx.target.kube()
        left = [n["metadata"]["name"] for n in self.state.get("nodes", [])
                if kube.find("v1", "Node", n["metadata"]["name"]) is not None]
        return CheckResult(not left, "deleted: " + ", ".join(n["metadata"]["name"] for n in self.state["nodes"])
                           if not left else f"still present: {', '.join(left)}")

    def in_effect(self) -> CheckResult:
        """While any node it deleted is missing (a run killed half-way deleted some)."""
        kube = self.ctx.target.kube()
        missing = [n["metadata"]["name"] for n in self.state.get("nodes", [])
                   if kube.find("v1", "Node", n["metadata"]["name"]) is None]
        return CheckResult(bool(missing), f"missing: {', '.join(missing)}" if missing else "every node is back")

    def revert(self) -> str:
        kube = self.ctx.target.kube()
        created = []
        for node in self.state.get("nodes", []):
            if kube.find("v1", "Node", node["metadata"]["name"]) is None:
                body = {k: v for k, v in node.items() if k != "status"}
                kube.create(body)
                created.append(node["metadata"]["name"])
        return f"re-created node(s) {', '.join(created)}" if created else "the nodes exist"


class NodeCordon(_NodeFault):
    """Mark nodes unschedulable; revert uncordons them."""

    name = "node.cordon"
    reversible = True

    def plan(self) -> list[str]:
        return [f"cordon {self._which()} (no new pods scheduled there)", "rollback: uncordon"]

    def inject(self) -> None:
        kube = self.ctx.target.kube()
        nodes = self._choose()
        self.state = {"nodes": [n["metadata"]["name"] for n in nodes]}
        for name in self.state["nodes"]:
            kube.patch("v1", "Node", name, {"spec": {"unschedulable": True}})

    def verify_injected(self) -> CheckResult:
        kube = self.ctx.target.kube()
        open_ = [n for n in self.state.get("nodes", []) if not kube.get("v1", "Node", n)["spec"].get("unschedulable")]
        return CheckResult(not open_, f"cordoned: {', '.join(self.state['nodes'])}" if not open_
                           else f"still schedulable: {', '.join(open_)}")

    def in_effect(self) -> CheckResult:
        """While any of its nodes is still cordoned: what revert undoes (a drain's evicted pods are their
        controllers' to bring back)."""
        kube = self.ctx.target.kube()
        cordoned = [n for n in self.state.get("nodes", [])
                    if ((kube.find("v1", "Node", n) or {}).get("spec") or {}).get("unschedulable")]
        return CheckResult(bool(cordoned), f"cordoned: {', '.join(cordoned)}" if cordoned
                           else "every node is schedulable")

    def revert(self) -> str:
        kube = self.ctx.target.kube()
        done = []
        for name in self.state.get("nodes", []):
            if kube.find("v1", "Node", name) is not None:
                kube.patch("v1", "Node", name, {"spec": {"unschedulable": None}})
                done.append(name)
        return f"uncordoned {', '.join(done)}" if done else "no such node any more"


class DrainParams(NodeParams):
    timeout: float = Field(120.0, description="Seconds to keep retrying evictions a PodDisruptionBudget blocks.")


class NodeDrain(NodeCordon):
    """Cordon nodes and evict their pods through the Eviction API (honouring PodDisruptionBudgets)."""

    name = "node.drain"
    Params = DrainParams

    def plan(self) -> list[str]:
        return [f"drain {self._which()}: cordon, then evict every pod but DaemonSet and mirror pods "
                f"(PodDisruptionBudgets honoured, retried up to {self.params.timeout:g}s)", "rollback: uncordon"]

    def inject(self) -> None:
        super().inject()
        kube = self.ctx.target.kube()
        evicted: list[str] = []
        blocked: dict[str, str] = {}
        deadline = time.monotonic() + self.params.timeout
        pending = [p for name in self.state["nodes"]
                   for p in kube.list("v1", "Pod", field_selector=f"spec.nodeName={name}")
                   if not _skip_on_drain(p)]
        while pending:
            still = []
            for pod in pending:
                ref = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
                try:
                    kube.evict(pod["metadata"]["name"], pod["metadata"]["namespace"])
                    evicted.append(ref)
                    blocked.pop(ref, None)
                except APINotFoundError:
                    evicted.append(ref)
                except APIForbiddenError as exc:
                    if "being terminated" not in str(exc):
                        raise
                    evicted.append(ref)  # its namespace is being deleted: it is going anyway
                except KubeError as exc:
                    if exc.status == 429:  # a PodDisruptionBudget says not now
                        blocked[ref] = str(exc)
                        still.append(pod)
                    else:
                        raise
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    break
                self.ctx.waiting(f"evictions blocked by PodDisruptionBudgets ({len(pending)})",
                                 self.params.timeout - (deadline - time.monotonic()), self.params.timeout)
                self.ctx.sleep(1.0)
        self.state.update(evicted=evicted, blocked=sorted(blocked))
        if blocked:
            raise StepFailed(f"drain incomplete: {len(blocked)} eviction(s) blocked by PodDisruptionBudgets "
                             f"after {self.params.timeout:g}s: {', '.join(sorted(blocked)[:5])}")

    def verify_injected(self) -> CheckResult:
        cordoned = super().verify_injected()
        if not cordoned.ok:
            return cordoned
        kube = self.ctx.target.kube()
        left = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for name in self.state["nodes"]
                for p in kube.list("v1", "Pod", field_selector=f"spec.nodeName={name}")
                if not _skip_on_drain(p) and not p["metadata"].get("deletionTimestamp")]
        return CheckResult(not left, f"drained: {len(self.state.get('evicted', []))} pod(s) evicted" if not left
                           else f"pods still on the node(s): {', '.join(left[:5])}")


def _skip_on_drain(pod: dict[str, Any]) -> bool:
    meta = pod["metadata"]
    if meta.get("deletionTimestamp"):
        return True  # already terminating
    if "kubernetes.io/config.mirror" in (meta.get("annotations") or {}):
        return True
    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return True
    return any(o.get("kind") == "DaemonSet" for o in meta.get("ownerReferences") or [])


# -- network -------------------------------------------------------------------------------


class NetworkDenyParams(Params):
    namespace: str
    policy_name: str = Field("dirt-deny-all", description="Name of the NetworkPolicy created.")
    ingress: bool = True
    egress: bool = True


class NetworkDeny(Fault):
    """Deny all traffic to/from a namespace's pods with a NetworkPolicy; revert deletes it."""

    name = "network.deny"
    family = "network"
    reversible = True
    Params = NetworkDenyParams

    def _types(self) -> list[str]:
        return [t for t, on in (("Ingress", self.params.ingress), ("Egress", self.params.egress)) if on]

    def plan(self) -> list[str]:
        lines = [f"create NetworkPolicy {self.params.policy_name} denying {' and '.join(self._types()).lower()} "
                 f"for every pod in {self.params.namespace}", "rollback: delete the policy"]
        if getattr(self.ctx.target, "is_sandbox", False):
            lines.append("the sandbox's KWOK nodes do not enforce NetworkPolicies: recorded as an API-level change")
        return lines

    def inject(self) -> None:
        policy = {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": self.params.policy_name, "namespace": self.params.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "dirt"}},
            "spec": {"podSelector": {}, "policyTypes": self._types(), "ingress": [], "egress": []},
        }
        self.ctx.target.kube().apply(policy)
        self.state = {"policy": self.params.policy_name,
                      "enforced": not getattr(self.ctx.target, "is_sandbox", False)}

    def verify_injected(self) -> CheckResult:
        live = self.ctx.target.kube().find("networking.k8s.io/v1", "NetworkPolicy", self.params.policy_name,
                                           self.params.namespace)
        note = "" if self.state.get("enforced") else " (API-level: the sandbox does not enforce it)"
        return CheckResult(live is not None, f"policy {self.params.policy_name} present{note}")

    def revert(self) -> str:
        try:
            self.ctx.target.kube().delete("networking.k8s.io/v1", "NetworkPolicy", self.params.policy_name,
                                          self.params.namespace)
        except APINotFoundError:
            return "the policy was gone already"
        return f"deleted NetworkPolicy {self.params.policy_name}"


DRIVERS = [PodsDelete, DeploymentScale, NamespaceDelete, NodeDelete, NodeCordon, NodeDrain, NetworkDeny]

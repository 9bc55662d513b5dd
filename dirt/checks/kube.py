"""Checks through the Kubernetes API: workloads available, pods and nodes ready, the API
answering, and restored objects matching their backup."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field

from dirt.core.durations import Duration
from dirt.core.errors import KubeError
from dirt.drivers import Check, CheckResult, Params
from dirt.drivers.kube import Selector, node_ready, pod_ready, selector_text
from dirt.drivers.resources import (
    backed_up,
    backup_kinds,
    controller_owned,
    covered_kinds,
    digest,
    key_kind,
    kind_key,
    object_key,
    read_manifest,
)


class DeploymentParams(Params):
    namespace: str
    name: str | None = Field(None, validation_alias=AliasChoices("name", "deployment"),
                             description="One Deployment by name, also written 'deployment' "
                                         "(default: every one in the namespace).")
    selector: Selector | None = None
    min_available: int | None = Field(None, ge=0, le=1_000_000, description="Default: all of spec.replicas.")


class DeploymentAvailable(Check):
    """Deployments have their replicas available (condition Available, updated and ready)."""

    name = "deployment.available"
    Params = DeploymentParams

    def probe(self) -> CheckResult:
        p = self.params
        kube = self.ctx.target.kube()
        if p.name:
            found = kube.find("apps/v1", "Deployment", p.name, p.namespace)
            deployments = [found] if found else []
            if not deployments:
                return CheckResult(False, f"Deployment {p.namespace}/{p.name} not found")
        else:
            deployments = kube.list("apps/v1", "Deployment", p.namespace, label_selector=selector_text(p.selector))
            if not deployments:
                return CheckResult(False, f"no Deployments in {p.namespace}")
        bad, summary = [], {}
        for d in deployments:
            want = d["spec"].get("replicas", 1) if p.min_available is None else p.min_available
            status = d.get("status", {}) or {}
            available = status.get("availableReplicas", 0) or 0
            condition = next((c for c in status.get("conditions", []) or [] if c["type"] == "Available"), {})
            summary[d["metadata"]["name"]] = available
            if available < want or condition.get("status") != "True":
                bad.append(f"{d['metadata']['name']} {available}/{want}")
        if bad:
            return CheckResult(False, f"not available: {', '.join(bad)}", {"available": summary})
        return CheckResult(True, f"{len(deployments)} Deployment(s) available", {"available": summary})


class PodsParams(Params):
    namespace: str
    selector: Selector | None = None
    minimum: int = Field(1, ge=0, le=1_000_000, description="At least this many pods Ready.")


class PodsReady(Check):
    """At least N pods matching a selector are Ready."""

    name = "pods.ready"
    Params = PodsParams

    def probe(self) -> CheckResult:
        p = self.params
        pods = self.ctx.target.kube().list("v1", "Pod", p.namespace, label_selector=selector_text(p.selector))
        ready = [x["metadata"]["name"] for x in pods if pod_ready(x) and not x["metadata"].get("deletionTimestamp")]
        nodes = sorted({x["spec"].get("nodeName") for x in pods if pod_ready(x)} - {None})
        return CheckResult(len(ready) >= p.minimum, f"{len(ready)}/{len(pods)} pod(s) Ready (minimum {p.minimum})",
                           {"ready": len(ready), "nodes": nodes})


class NodesParams(Params):
    selector: Selector | None = None
    minimum: int | None = Field(None, ge=0, le=1_000_000,
                                description="At least this many Ready (default: all of them).")


class NodesReady(Check):
    """Nodes are Ready (all of them, or at least N)."""

    name = "nodes.ready"
    Params = NodesParams

    def probe(self) -> CheckResult:
        nodes = self.ctx.target.kube().list("v1", "Node", label_selector=selector_text(self.params.selector))
        ready = [n["metadata"]["name"] for n in nodes if node_ready(n)]
        want = len(nodes) if self.params.minimum is None else self.params.minimum
        ok = len(ready) >= want and (self.params.minimum is not None or len(nodes) > 0)
        return CheckResult(ok, f"{len(ready)}/{len(nodes)} node(s) Ready", {"ready": ready})


class ApiAvailable(Check):
    """The Kubernetes API server answers /readyz."""

    name = "kube.api_available"

    def probe(self) -> CheckResult:
        ok = self.ctx.target.kube().readyz()
        return CheckResult(ok, "the API server is ready" if ok else "the API server does not answer /readyz")


class MatchParams(Params):
    backup: str = Field(description="A 'resources' backup declared under 'backups:'.")
    namespaces: list[str] = Field(default_factory=list, description="Only these (default: the backup's).")


class ObjectsMatchBackup(Check):
    """Every object of a resources backup is back, unchanged (by kind, name and a hash of its spec/data),
    and the namespaces hold no kind the backup never captured (a backup that missed a kind fails here)."""

    name = "objects.match_backup"
    Params = MatchParams

    def probe(self) -> CheckResult:
        record = self.ctx.backups.get(self.params.backup)
        if record is None:
            return CheckResult(False, f"backup {self.params.backup!r} was not taken")
        if record.type != "resources":
            return CheckResult(False, f"backup {self.params.backup!r} is {record.type}; objects.match_backup "
                                      "compares with a 'resources' backup")
        manifest = read_manifest(Path(record.location))
        namespaces = self.params.namespaces or manifest["namespaces"]
        owned = set(manifest.get("owned", []))
        expected = {k: v for k, v in manifest["digests"].items() if k not in owned and _in(k, namespaces)}
        live, live_owned = self._live(manifest, namespaces, {key_kind(k) for k in expected})
        covered = covered_kinds(manifest)
        missing = sorted(k for k in expected if k not in live)
        changed = sorted(k for k, d in expected.items() if k in live and live[k] != d)
        extra = sorted(k for k in live if k not in expected and k not in owned and k not in live_owned)
        uncaptured = sorted(k for k in extra if key_kind(k) not in covered)
        data: dict[str, Any] = {"objects_expected": len(expected), "objects_missing": len(missing),
                                "objects_changed": len(changed), "objects_extra": len(extra),
                                "objects_uncaptured": len(uncaptured),
                                "objects_controller_owned": len(owned), "missing": missing[:200],
                                "changed": changed[:200], "extra": extra[:200], "uncaptured": uncaptured[:200]}
        problems = []
        if missing or changed:
            parts = []
            if missing:
                parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
            if changed:
                parts.append(f"{len(changed)} changed (e.g. {', '.join(changed[:3])})")
            problems.append(f"{'; '.join(parts)} of {len(expected)} backed-up object(s)")
        if uncaptured:
            kinds = Counter(key_kind(k) for k in uncaptured)
            problems.append(f"{len(uncaptured)} live object(s) of kind(s) the backup never captured: "
                            + ", ".join(f"{kind} ({n})" for kind, n in sorted(kinds.items())))
        if problems:
            return CheckResult(False, "; ".join(problems), data)
        return CheckResult(True, f"all {len(expected)} backed-up object(s) present and unchanged", data)

    def _live(self, manifest: dict[str, Any], namespaces: list[str],
              cluster_kinds: set[str]) -> tuple[dict[str, str], set[str]]:
        """Digests of what the namespaces hold now, every kind a backup would list (a fresh discovery),
        plus the cluster-scoped kinds the backup holds; and the keys of controller-owned objects."""
        kube = self.ctx.target.kube()
        served = kube.served_kinds()
        live: dict[str, str] = {}
        owned: set[str] = set()
        for api_version, kind in backup_kinds(served, manifest.get("selected_kinds")):
            for ns in namespaces:
                try:
                    items = kube.list(api_version, kind, ns)
                except KubeError:
                    continue  # not listable by this identity: the backup could not hold it either
                for obj in filter(backed_up, items):
                    live[object_key(obj)] = digest(obj)
                    if controller_owned(obj):
                        owned.add(object_key(obj))
        for api_version, kind, namespaced in served:
            if namespaced or kind_key(api_version, kind) not in cluster_kinds:
                continue
            for obj in kube.list(api_version, kind):
                if kind != "Namespace" or obj["metadata"]["name"] in namespaces:
                    live[object_key(obj)] = digest(obj)
        return live, owned

    @classmethod
    def check_spec(cls, spec: Any, scenario: Any) -> list[tuple[str, str]]:
        if spec.params.backup not in scenario.backup_names:
            return [(f"no backup named {spec.params.backup!r} under 'backups:'",
                     f"declared: {', '.join(scenario.backup_names) or 'none'}")]
        return []


def _in(key: str, namespaces: list[str]) -> bool:
    _group, kind, namespace, name = key.split("/", 3)
    return namespace in namespaces or (kind == "Namespace" and name in namespaces) or namespace == "-"


class ResponsiveParams(Params):
    namespace: str = Field("default", description="Namespace the canary Deployment is made in (it must exist).")
    schedule: bool = Field(True, description="Also wait for the scheduler to bind the canary's pod to a node "
                                             "(false on a cluster with no schedulable node).")
    image: str = Field("registry.k8s.io/pause:3.10",
                       description="The canary pod's image; it need never run (only its scheduling is awaited).")
    timeout: Duration = Field(30.0, gt=0, le=600, description="How long one canary may take, from creation to "
                                                             "garbage collection (bounded by the step's 'within').")


#: What each stage of a canary's life proves, in order.
CANARY_STAGES = (("replicaset", "the Deployment controller made its ReplicaSet"),
                 ("pod", "the ReplicaSet controller made its Pod"),
                 ("scheduled", "the scheduler bound the Pod to a node"),
                 ("collected", "the garbage collector removed its ReplicaSet once the Deployment was deleted"))
CANARY_LABEL = "dirt.dev/canary"


class ControllersResponsive(Check):
    """The control plane reconciles: a canary Deployment gets its ReplicaSet, its Pod and a node, and
    is garbage-collected once deleted, each within the bound.

    An API server that answers proves little after a recovery: controllers whose watches stalled
    (an etcd restore, a restart they missed) leave a cluster that accepts writes and acts on none.
    This check writes, unlike the others: one labelled Deployment (``dirt.dev/canary``), deleted
    again whatever happens, with a leftover of an interrupted run removed first.
    """

    name = "controllers.responsive"
    Params = ResponsiveParams

    def probe(self) -> CheckResult:
        p = self.params
        kube = self.ctx.target.kube()
        for old in kube.list("apps/v1", "Deployment", p.namespace, label_selector=f"{CANARY_LABEL}=true"):
            kube.delete("apps/v1", "Deployment", old["metadata"]["name"], p.namespace)  # an interrupted run's
        name = f"dirt-canary-{secrets.token_hex(4)}"
        limit = min(float(p.timeout), self.ctx.remaining(float(p.timeout)))
        started = time.monotonic()
        seen: dict[str, float] = {}
        created = False
        try:
            deployment = kube.create(self._canary(name))
            created = True
            uid = deployment["metadata"]["uid"]
            for stage, _ in CANARY_STAGES:
                if stage == "scheduled" and not p.schedule:
                    continue
                if stage == "collected":
                    kube.delete("apps/v1", "Deployment", name, p.namespace, propagation="Background")
                    created = False
                while not self._reached(kube, stage, name, uid):
                    elapsed = time.monotonic() - started
                    if elapsed >= limit:
                        return self._stalled(stage, seen, elapsed)
                    self.ctx.waiting(f"controllers: {dict(CANARY_STAGES)[stage]}", elapsed, limit)
                    self.ctx.sleep(0.1)
                seen[stage] = time.monotonic() - started
        finally:
            if created:
                with contextlib.suppress(KubeError):
                    kube.delete("apps/v1", "Deployment", name, p.namespace, propagation="Background")
        done = ", ".join(f"{stage} after {seconds:.1f}s" for stage, seconds in seen.items())
        return CheckResult(True, f"the control plane reconciles: {done}", {"seconds": _rounded(seen)})

    def _canary(self, name: str) -> dict[str, Any]:
        labels = {CANARY_LABEL: "true", "dirt.dev/canary-name": name}
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.params.namespace, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"terminationGracePeriodSeconds": 0, "automountServiceAccountToken": False,
                                           "containers": [{"name": "canary", "image": self.params.image,
                                                           "imagePullPolicy": "IfNotPresent"}]}}},
        }

    def _reached(self, kube: Any, stage: str, name: str, uid: str) -> bool:
        ns = self.params.namespace
        sets = [r for r in kube.list("apps/v1", "ReplicaSet", ns, label_selector=f"dirt.dev/canary-name={name}")
                if any(o.get("uid") == uid for o in r["metadata"].get("ownerReferences") or [])]
        if stage == "collected":
            return not sets
        if stage == "replicaset":
            return bool(sets)
        owners = {r["metadata"]["uid"] for r in sets}
        pods = [x for x in kube.list("v1", "Pod", ns, label_selector=f"dirt.dev/canary-name={name}")
                if any(o.get("uid") in owners for o in x["metadata"].get("ownerReferences") or [])]
        if stage == "pod":
            return bool(pods)
        return any(x["spec"].get("nodeName") for x in pods)

    def _stalled(self, stage: str, seen: dict[str, float], elapsed: float) -> CheckResult:
        done = "; ".join(f"{dict(CANARY_STAGES)[s]} after {t:.1f}s" for s, t in seen.items())
        return CheckResult(False, f"the control plane does not reconcile: after {elapsed:.0f}s, not yet: "
                                  f"{dict(CANARY_STAGES)[stage]}" + (f" ({done})" if done else ""),
                           {"stalled": stage, "seconds": _rounded(seen)})


def _rounded(seen: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in seen.items()}


DRIVERS = [DeploymentAvailable, PodsReady, NodesReady, ApiAvailable, ObjectsMatchBackup, ControllersResponsive]

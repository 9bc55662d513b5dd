"""Recovery steps through the Kubernetes API: redeploy, wait for rollouts, remove namespaces."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, model_validator

from dirt.core.durations import Duration
from dirt.core.errors import APINotFoundError, KubeError, StepFailed
from dirt.drivers import Params, RecoveryStep, StepOutcome
from dirt.drivers.resources import is_crd

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


def rollout_state(obj: dict[str, Any]) -> tuple[bool, str]:
    """Is a Deployment/StatefulSet/DaemonSet fully rolled out and ready?  (ok, detail)"""
    kind = obj["kind"]
    meta, spec, status = obj["metadata"], obj.get("spec", {}), obj.get("status", {}) or {}
    name = f"{kind} {meta.get('namespace')}/{meta['name']}"
    if (status.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False, f"{name}: new spec not observed yet"
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        ready, updated = status.get("numberReady", 0), status.get("updatedNumberScheduled", 0)
        return ready == want and updated == want, f"{name}: {ready}/{want} ready, {updated} updated"
    want = spec.get("replicas", 1)
    ready = status.get("availableReplicas" if kind == "Deployment" else "readyReplicas", 0) or 0
    updated = status.get("updatedReplicas", 0) or 0
    ok = ready >= want and updated >= want
    if kind == "StatefulSet" and status.get("updateRevision") and status.get("currentRevision"):
        ok = ok and status["updateRevision"] == status["currentRevision"]
    return ok, f"{name}: {ready}/{want} ready, {updated} updated"


def remove_strays(kube: Any, deployments: list[tuple[str, str, str]]) -> list[str]:
    """Delete the ReplicaSets still owned by an earlier Deployment of the same name, now gone.

    The garbage collector deletes a Deployment's ReplicaSets once it sees the Deployment deleted.
    When the Deployment is deleted and created again while the controller-manager's watch is down
    (an API server restart; its reflector backs off up to a minute), the relist shows it one
    object whose UID changed, not a deletion, and the old ReplicaSets are never collected: their
    pods keep their nodes, the new Deployment's ReplicaSet collides with the old one's name and,
    with one-pod-per-node anti-affinity, never schedules.  Their owner is gone for good, so
    deleting them is what the garbage collector would have done.  Returns ``namespace/name``s."""
    removed = []
    sets: dict[str, list[dict[str, Any]]] = {}  # each namespace's ReplicaSets, listed once
    for _, namespace, name in deployments:
        try:
            uid = kube.get("apps/v1", "Deployment", name, namespace)["metadata"]["uid"]
            if namespace not in sets:
                sets[namespace] = kube.list("apps/v1", "ReplicaSet", namespace)
        except KubeError:
            continue  # the rollout wait says what is wrong
        for rs in sets[namespace]:
            owner = next((o for o in rs["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
            if owner and owner.get("kind") == "Deployment" and owner.get("name") == name and owner.get("uid") != uid:
                with contextlib.suppress(APINotFoundError):
                    kube.delete("apps/v1", "ReplicaSet", rs["metadata"]["name"], namespace, propagation="Background")
                    removed.append(f"{namespace}/{rs['metadata']['name']}")
    return removed


def wait_rollouts(step: RecoveryStep, objects: list[tuple[str, str, str]], timeout: float) -> list[str]:
    """Wait until every (kind, namespace, name) is rolled out; return the final details."""
    kube = step.ctx.target.kube()
    start = time.monotonic()
    while True:
        details, pending = [], []
        for kind, namespace, name in objects:
            try:
                ok, detail = rollout_state(kube.get("apps/v1", kind, name, namespace))
            except APINotFoundError:
                ok, detail = False, f"{kind} {namespace}/{name}: not found"
            details.append(detail)
            if not ok:
                pending.append(detail)
        if not pending:
            return details
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise StepFailed(f"not rolled out after {timeout:.0f}s: {'; '.join(pending[:3])}")
        step.ctx.waiting(f"rollout: {pending[0]}", elapsed, timeout)
        step.ctx.sleep(0.5)


class HelmRelease(Params):
    release: str
    chart: str
    namespace: str
    values: list[str] = Field(default_factory=list, description="Values files.")
    set: dict[str, str] = Field(default_factory=dict)
    version: str | None = None


class RedeployParams(Params):
    path: str | None = Field(None, description="Manifests to apply: a file or a folder (kubectl apply -f, recursive).")
    kustomize: str | None = Field(None, description="A kustomization folder (kubectl apply -k).")
    helm: HelmRelease | None = Field(None, description="helm upgrade --install (needs helm on PATH).")
    command: str | None = Field(None, description="Or any command (bash) that redeploys.")
    wait: bool = Field(True, description="Wait until the Deployments/StatefulSets/DaemonSets applied are ready.")
    timeout: Duration = Field(300.0, description="For the apply and the wait.")

    @model_validator(mode="after")
    def _exactly_one(self) -> RedeployParams:
        given = [k for k in ("path", "kustomize", "helm", "command") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'path', 'kustomize', 'helm' or 'command'")
        return self


class Redeploy(RecoveryStep):
    """Redeploy applications: kubectl apply -f/-k, helm upgrade --install, or a command."""

    name = "redeploy"
    Params = RedeployParams

    def _where(self, value: str) -> str:
        path = Path(value)
        return str(path if path.is_absolute() else self.ctx.scenario_dir / path)

    def plan(self) -> list[str]:
        p = self.params
        wait = ", then wait for rollouts" if p.wait else ""
        if p.path:
            return [f"kubectl apply --server-side -f {p.path} (recursive), its CRDs first until Established{wait}"]
        if p.kustomize:
            return [f"kubectl kustomize {p.kustomize}, apply its CRDs until Established, then the rest{wait}"]
        if p.helm:
            return [f"helm upgrade --install {p.helm.release} {p.helm.chart} -n {p.helm.namespace}"]
        return [f"run: {p.command}"]

    def run(self) -> StepOutcome:
        p = self.params
        timeout = self.ctx.remaining(p.timeout)
        if p.command:
            result = self.ctx.run_command(p.command, shell="bash", timeout=timeout, what="redeploy command")
            return StepOutcome("redeploy command exited 0", {"output": result.tail(10)})
        if p.helm:
            return self._helm(p.helm, timeout)
        applied = self._apply()
        workloads = [(o["kind"], o["metadata"].get("namespace", "default"), o["metadata"]["name"])
                     for o in applied if o.get("kind") in WORKLOADS]
        strays = remove_strays(self.ctx.target.kube(), [w for w in workloads if w[0] == "Deployment"])
        details = wait_rollouts(self, workloads, self.ctx.remaining(p.timeout)) if p.wait and workloads else []
        said = f"; removed {len(strays)} ReplicaSet(s) of a deleted Deployment the garbage collector missed" \
            if strays else ""
        return StepOutcome(f"applied {len(applied)} object(s); {len(workloads)} workload(s) ready{said}",
                           {"applied": [f"{o['kind']}/{o['metadata'].get('namespace', '-')}/{o['metadata']['name']}"
                                        for o in applied], "rollouts": details, "strays_removed": strays})

    def _apply(self) -> list[dict[str, Any]]:
        """kubectl apply the path or kustomization, its CRDs first: the custom resources beside them
        cannot be applied until their kinds are served ("ensure CRDs are installed first").  The
        second apply is of the sources as given (CRDs again, unchanged): kubectl reads them itself."""
        p = self.params
        if p.path:
            source = ["-f", self._where(p.path), "-R"]
            documents = path_documents(Path(self._where(p.path)))
        else:
            source = ["-k", self._where(p.kustomize or "")]
            rendered = self.ctx.run_command(["kubectl", "kustomize", source[1]], timeout=self.ctx.remaining(p.timeout),
                                            what="kubectl kustomize").stdout
            try:
                documents = manifest_documents(rendered)
            except yaml.YAMLError as exc:
                raise StepFailed(f"kubectl kustomize {p.kustomize}: its output is not YAML ({exc})") from None
        crds = split_crds(documents)[0]
        if crds:
            self._apply_crds(crds)
        return self._kubectl_apply(source)

    def _apply_crds(self, crds: list[dict[str, Any]]) -> None:
        """Apply the CRDs alone and wait until each is Established (its kind served)."""
        with tempfile.TemporaryDirectory(prefix="dirt-redeploy-") as scratch:
            path = Path(scratch) / "crds.json"  # JSON: kubectl reads it as written, no YAML dialect to mistake
            path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": crds}))
            self._kubectl_apply(["-f", str(path)])
        timeout = self.ctx.remaining(self.params.timeout)
        names = [f"crd/{crd['metadata']['name']}" for crd in crds]
        self.ctx.run_command(["kubectl", "wait", "--for", "condition=established", f"--timeout={max(1, int(timeout))}s",
                              *names], timeout=timeout + 10, what="kubectl wait for the CRDs to be Established")

    def _kubectl_apply(self, source: list[str]) -> list[dict[str, Any]]:
        result = self.ctx.run_command(["kubectl", "apply", "--server-side", "--force-conflicts",
                                       "--field-manager=dirt", *source, "-o", "json"],
                                      timeout=self.ctx.remaining(self.params.timeout), what="kubectl apply")
        return _applied_objects(result.stdout)

    def _helm(self, release: HelmRelease, timeout: float) -> StepOutcome:
        if shutil.which("helm", path=self.ctx.environment().get("PATH")) is None:
            raise StepFailed("redeploy with helm: helm is not installed (put it on PATH, or use 'path'/'command')")
        argv = ["helm", "upgrade", "--install", release.release, release.chart, "--namespace", release.namespace,
                "--create-namespace", "--wait", "--timeout", f"{int(timeout)}s"]
        for values in release.values:
            argv += ["--values", self._where(values)]
        for key, value in release.set.items():
            argv += ["--set", f"{key}={value}"]
        if release.version:
            argv += ["--version", release.version]
        result = self.ctx.run_command(argv, timeout=timeout + 10, what="helm upgrade --install")
        return StepOutcome(f"helm release {release.release} deployed", {"output": result.tail(5)})


def manifest_documents(text: str) -> list[dict[str, Any]]:
    """The objects of a YAML/JSON manifest stream, ``kind: List`` items unpacked."""
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend(item for item in doc["items"] if isinstance(item, dict))
        elif isinstance(doc, dict) and doc.get("kind"):
            out.append(doc)
    return out


def path_documents(path: Path) -> list[dict[str, Any]]:
    """The objects in the files ``kubectl apply -f <path> -R`` reads (.yaml, .yml, .json).  A file that
    does not parse is left to kubectl, which names it in its own error."""
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*")
                                                 if f.is_file() and f.suffix in (".yaml", ".yml", ".json"))
    out: list[dict[str, Any]] = []
    for file in files:
        try:
            out.extend(manifest_documents(file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
    return out


def split_crds(documents: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the CustomResourceDefinitions, everything else), each in its original order."""
    return [d for d in documents if is_crd(d)], [d for d in documents if not is_crd(d)]


def _applied_objects(output: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(output) if output.strip() else {}
    except ValueError:
        return []
    if data.get("kind") == "List" or "items" in data:
        return list(data.get("items", []))
    return [data] if data.get("kind") else []


class RolloutParams(Params):
    namespace: str
    kinds: list[str] = Field(default_factory=lambda: list(WORKLOADS))
    names: list[str] = Field(default_factory=list, description="Only these (default: every one of the kinds).")
    selector: str | None = None
    timeout: Duration = 300.0


class RolloutWait(RecoveryStep):
    """Wait until Deployments, StatefulSets and DaemonSets in a namespace are rolled out and ready."""

    name = "rollout.wait"
    Params = RolloutParams

    def plan(self) -> list[str]:
        which = ", ".join(self.params.names) or f"every {'/'.join(self.params.kinds)}"
        return [f"wait for {which} in {self.params.namespace} to be ready"]

    def run(self) -> StepOutcome:
        p = self.params
        kube = self.ctx.target.kube()
        objects = []
        for kind in p.kinds:
            for obj in kube.list("apps/v1", kind, p.namespace, label_selector=p.selector):
                if not p.names or obj["metadata"]["name"] in p.names:
                    objects.append((kind, p.namespace, obj["metadata"]["name"]))
        missing = set(p.names) - {name for _, _, name in objects}
        if missing:
            raise StepFailed(f"not found in {p.namespace}: {', '.join(sorted(missing))}")
        details = wait_rollouts(self, objects, self.ctx.remaining(p.timeout))
        return StepOutcome(f"{len(objects)} workload(s) ready", {"rollouts": details})


class NamespaceRemoveParams(Params):
    namespaces: list[str] = Field(min_length=1)
    wait: bool = True
    timeout: Duration = 120.0


class NamespaceRemove(RecoveryStep):
    """Delete namespaces (e.g. the sample application, in cleanup) and wait until they are gone."""

    name = "namespace.delete"
    Params = NamespaceRemoveParams

    def run(self) -> StepOutcome:
        kube = self.ctx.target.kube()
        for ns in self.params.namespaces:
            try:
                kube.delete("v1", "Namespace", ns)
            except APINotFoundError:
                pass
        if self.params.wait:
            start = time.monotonic()
            while any(kube.find("v1", "Namespace", ns) is not None for ns in self.params.namespaces):
                elapsed = time.monotonic() - start
                if elapsed > self.params.timeout:
                    raise StepFailed(f"namespaces still terminating after {self.params.timeout:g}s")
                self.ctx.waiting("namespaces terminating", elapsed, self.params.timeout)
                self.ctx.sleep(0.5)
        return StepOutcome(f"deleted {', '.join(self.params.namespaces)}")


DRIVERS = [Redeploy, RolloutWait, NamespaceRemove]

"""Namespaces exported as YAML and restored by server-side apply: the machinery behind the
``resources`` backup, the namespace fault's safety export and ``objects.match_backup``.

Layout of one export (a versioned folder; ``<name>/<UTC time>/``)::

    manifest.json                    created_at, namespaces, counts, and a digest per object
    cluster/<Kind>/<name>.yaml       cluster-scoped objects asked for (CRDs, the Namespaces)
    <namespace>/<Kind>/<name>.yaml   namespaced objects, server-managed fields stripped

Restore applies CRDs first, then Namespaces (waiting until each is Active), then
everything else concurrently with server-side apply.  Objects owned by a
controller (Pods of a ReplicaSet, ReplicaSets of a Deployment) are exported for
the record but not applied: their controllers recreate them, as after a real
restore.  The digest of an object is a hash of what a person declared (spec,
data, labels...), so ``objects.match_backup`` can tell "missing" from "changed".
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from dirt.clients.kube import strip_server_fields
from dirt.core.errors import KubeError, StepFailed

#: Kinds never worth exporting: recreated by the system, or events.
SKIP_KINDS = {"Event", "Endpoints", "EndpointSlice", "Lease", "ControllerRevision", "PodMetrics",
              "LocalSubjectAccessReview", "Binding", "TokenReview", "SelfSubjectReview"}
#: Objects the cluster creates in every namespace.
SKIP_NAMES = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}
#: Apply order: lower first (CRDs, namespaces, then what workloads refer to).
ORDER = {"CustomResourceDefinition": 0, "Namespace": 1, "ServiceAccount": 2, "Secret": 3, "ConfigMap": 3,
         "PersistentVolumeClaim": 4, "Role": 4, "RoleBinding": 5, "Service": 6, "NetworkPolicy": 6,
         "PodDisruptionBudget": 6}
DIGEST_DROP = {"status"}


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    group = obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else "core"
    return f"{group}/{obj['kind']}/{meta.get('namespace') or '-'}/{meta['name']}"


def digest(obj: dict[str, Any]) -> str:
    """Hash of the declared content: everything but status and server-managed metadata."""
    clean = strip_server_fields(obj)
    clean = {k: v for k, v in clean.items() if k not in DIGEST_DROP}
    meta = clean.get("metadata", {})
    clean["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _owned(obj: dict[str, Any]) -> bool:
    return any(o.get("controller") for o in obj.get("metadata", {}).get("ownerReferences") or [])


def export_namespaces(kube: Any, namespaces: list[str], folder: Path, *, kinds: list[str] | None = None,
                      cluster_kinds: list[str] | None = None) -> dict[str, Any]:
    """Export ``namespaces`` (all listable kinds, or ``kinds``) into ``folder``; return the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(kinds) if kinds else None
    served = kube.served_kinds()
    digests: dict[str, str] = {}
    owned: list[str] = []
    counts: dict[str, int] = {}

    def write(obj: dict[str, Any], where: Path) -> None:
        clean = strip_server_fields(obj)
        key = object_key(obj)
        digests[key] = digest(obj)
        if _owned(obj):
            owned.append(key)
        path = where / obj["kind"] / f"{obj['metadata']['name']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(clean, sort_keys=False))
        counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1

    for name in namespaces:
        ns = kube.find("v1", "Namespace", name)
        if ns is None:
            raise StepFailed(f"namespace {name} does not exist: nothing to back up")
        write(ns, folder / "cluster")
        for api_version, kind, namespaced in served:
            if not namespaced or kind in SKIP_KINDS or (wanted is not None and kind not in wanted):
                continue
            try:
                items = kube.list(api_version, kind, name)
            except KubeError:
                continue  # a kind this identity may not list: not part of the backup
            for obj in items:
                if (kind, obj["metadata"]["name"]) in SKIP_NAMES:
                    continue
                write(obj, folder / name)
    for kind in cluster_kinds or []:
        api_version = next((v for v, k, namespaced in served if k == kind and not namespaced), None)
        if api_version is None:
            raise StepFailed(f"the API server serves no cluster-scoped kind {kind!r}")
        for obj in kube.list(api_version, kind):
            write(obj, folder / "cluster")
    manifest = {
        "format": "dirt-resources/v1",
        "created_at": time.time(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "server": kube.server,
        "namespaces": namespaces,
        "count": len(digests),
        "counts": counts,
        "digests": digests,
        "owned": owned,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise StepFailed(f"{folder}: not a dirt resources backup ({exc})") from None


def load_objects(folder: Path) -> list[dict[str, Any]]:
    objects = []
    for path in sorted(folder.rglob("*.yaml")):
        obj = yaml.safe_load(path.read_text())
        if isinstance(obj, dict) and "kind" in obj:
            objects.append(obj)
    return objects


def restore_folder(kube: Any, folder: Path, *, namespaces: list[str] | None = None, concurrency: int = 8,
                   timeout: float = 120.0) -> dict[str, Any]:
    """Apply an export: CRDs, then Namespaces (until Active), then the rest concurrently."""
    manifest = read_manifest(folder)
    owned = set(manifest.get("owned", []))
    objects = [o for o in load_objects(folder) if object_key(o) not in owned]
    if namespaces:
        objects = [o for o in objects if (o["metadata"].get("namespace") or o["metadata"]["name"]) in namespaces
                   or o["kind"] == "CustomResourceDefinition"]
    objects.sort(key=lambda o: ORDER.get(o["kind"], 10))
    first = [o for o in objects if ORDER.get(o["kind"], 10) <= 1]
    rest = [o for o in objects if ORDER.get(o["kind"], 10) > 1]
    applied: list[str] = []
    failed: dict[str, str] = {}
    for obj in first:
        _apply_one(kube, obj, applied, failed)
        if obj["kind"] == "Namespace":
            _wait_active(kube, obj["metadata"]["name"], timeout)
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for group in _waves(rest):
            list(pool.map(lambda o: _apply_one(kube, o, applied, failed), group))
    if failed:
        first_key, first_error = next(iter(failed.items()))
        raise StepFailed(f"restore of {folder.name}: {len(failed)} object(s) failed, e.g. {first_key}: {first_error}")
    return {"applied": len(applied), "skipped_owned": len(owned), "objects": sorted(applied)}


def _waves(objects: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    waves: dict[int, list[dict[str, Any]]] = {}
    for obj in objects:
        waves.setdefault(ORDER.get(obj["kind"], 10), []).append(obj)
    return [waves[k] for k in sorted(waves)]


def _apply_one(kube: Any, obj: dict[str, Any], applied: list[str], failed: dict[str, str]) -> None:
    key = object_key(obj)
    for attempt in range(5):
        try:
            kube.apply(obj)
            applied.append(key)
            return
        except KubeError as exc:
            if attempt == 4:
                failed[key] = str(exc)
                return
            time.sleep(0.5 * (attempt + 1))  # e.g. a namespace or CRD not established yet


def _wait_active(kube: Any, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ns = kube.find("v1", "Namespace", name)
        if ns is not None and ns.get("status", {}).get("phase") == "Active":
            return
        time.sleep(0.25)
    raise StepFailed(f"namespace {name} not Active after {timeout:.0f}s")


def latest_version(folder: Path) -> Path:
    """The newest export in a versioned backup folder (or the folder itself if it is one)."""
    if (folder / "manifest.json").is_file():
        return folder
    versions = sorted(p for p in folder.iterdir() if (p / "manifest.json").is_file()) if folder.is_dir() else []
    if not versions:
        raise StepFailed(f"{folder}: no backup versions (folders with manifest.json) found")
    return versions[-1]



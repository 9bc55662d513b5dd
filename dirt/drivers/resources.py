"""Namespaces exported as YAML and restored by server-side apply: the machinery behind the
``resources`` backup, the namespace fault's safety export and ``objects.match_backup``.

Layout of one export (a versioned folder; ``<name>/<UTC time>/``)::

    manifest.json                    created_at, namespaces, counts, a digest per object, the kinds
                                     listed, the CRDs its custom resources need
    cluster/<Kind>/<name>.yaml       cluster-scoped objects: the Namespaces, the CRDs of the custom
                                     resources exported, and any cluster kind asked for
    <namespace>/<Kind>/<name>.yaml   namespaced objects, server-managed fields stripped

What an export lists is decided by a fresh discovery of the live cluster: every
namespaced kind stored there, custom resources included (a kind missed here is
data silently lost).  Restore creates the CRDs the backup needs that the cluster
lacks (a cluster recreated from nothing) and waits until they are Established,
then applies Namespaces (waiting until each is Active), then everything else
concurrently with server-side apply, each object read from its file only when its wave
applies it (the restore's memory does not grow with the backup).  Objects owned by a
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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from dirt.clients.kube import strip_server_fields
from dirt.core.errors import KubeError, StepFailed

#: Where CustomResourceDefinitions are read and created.
CRD_API_VERSION = "apiextensions.k8s.io/v1"
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
#: libyaml's safe loader and dumper when PyYAML has them (7× faster on a 2,000-object export: 0.22 s
#: instead of 1.5 s to read it back); the same documents either way.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
#: Labels a restore tool stamps on every object it restores (Velero names its backup and restore):
#: a mark of how the object came back, not a change to what was declared.
RESTORE_LABELS = {"velero.io/backup-name", "velero.io/restore-name"}


def kind_key(api_version: str, kind: str) -> str:
    """``group/Kind`` (``core`` for the core group): how a manifest names a kind."""
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else "core"
    return f"{group}/{kind}"


def object_key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{kind_key(obj['apiVersion'], obj['kind'])}/{meta.get('namespace') or '-'}/{meta['name']}"


def key_kind(key: str) -> str:
    """The ``group/Kind`` of an object key."""
    return key.rsplit("/", 2)[0]


def is_crd(obj: dict[str, Any]) -> bool:
    return obj.get("kind") == "CustomResourceDefinition" and str(obj.get("apiVersion", "")).startswith(
        "apiextensions.k8s.io/")


def backup_kinds(served: list[tuple[str, str, bool]], kinds: list[str] | None = None) -> list[tuple[str, str]]:
    """(apiVersion, kind) of every namespaced kind a backup lists among ``served`` (the cluster's
    kinds now, custom resources included), but not those the cluster makes itself (``SKIP_KINDS``)."""
    return [(api_version, kind) for api_version, kind, namespaced in served
            if namespaced and kind not in SKIP_KINDS and (not kinds or kind in kinds)]


def backed_up(obj: dict[str, Any]) -> bool:
    """Is this listed object one a backup holds (not one the cluster creates in every namespace)?"""
    return (obj["kind"], obj["metadata"]["name"]) not in SKIP_NAMES


def covered_kinds(manifest: dict[str, Any]) -> set[str]:
    """The kinds (``group/Kind``) a backup listed; older manifests only show those it found objects of."""
    if "kinds" in manifest:
        return set(manifest["kinds"])
    keys = [*manifest.get("digests", {}), *manifest.get("owned", [])]
    return {key_kind(key) for key in keys}


def digest(obj: dict[str, Any]) -> str:
    """Hash of the declared content: everything but status and server-managed metadata."""
    clean = strip_server_fields(obj)
    clean = {k: v for k, v in clean.items() if k not in DIGEST_DROP}
    meta = dict(clean.get("metadata", {}))
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in RESTORE_LABELS}
    meta.pop("labels", None)
    if labels:
        meta["labels"] = labels
    clean["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:16]


def controller_owned(obj: dict[str, Any]) -> bool:
    """Owned by a controller, which recreates it: exported for the record, never applied."""
    return any(o.get("controller") for o in obj.get("metadata", {}).get("ownerReferences") or [])


def export_namespaces(kube: Any, namespaces: list[str], folder: Path, *, kinds: list[str] | None = None,
                      cluster_kinds: list[str] | None = None) -> dict[str, Any]:
    """Export ``namespaces`` (all listable kinds, or ``kinds``) into ``folder``; return the manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    served = kube.served_kinds()  # a fresh discovery: what the cluster holds now
    listed = backup_kinds(served, kinds)
    crds, unreadable = _crds_by_kind(kube)
    digests: dict[str, str] = {}
    owned: list[str] = []
    counts: dict[str, int] = {}
    needed: dict[str, dict[str, Any]] = {}  # CRD name -> CRD, for the custom resources exported

    def store(obj: dict[str, Any], where: Path) -> None:
        path = where / kind_folder(obj) / f"{obj['metadata']['name']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.dump(strip_server_fields(obj), Dumper=_DUMPER, sort_keys=False))

    def write(obj: dict[str, Any], where: Path) -> None:
        key = object_key(obj)
        digests[key] = digest(obj)
        if controller_owned(obj):
            owned.append(key)
        store(obj, where)
        counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1

    for name in namespaces:
        ns = kube.find("v1", "Namespace", name)
        if ns is None:
            raise StepFailed(f"namespace {name} does not exist: nothing to back up")
        write(ns, folder / "cluster")
        for api_version, kind in listed:
            try:
                items = kube.list(api_version, kind, name)
            except KubeError as exc:  # a kind this identity may not list: named in the manifest
                unreadable[kind_key(api_version, kind)] = str(exc)
                continue
            for obj in filter(backed_up, items):
                write(obj, folder / name)
                crd = crds.get(kind_key(api_version, kind))
                if crd is not None:
                    needed[crd["metadata"]["name"]] = crd
    for kind in cluster_kinds or []:
        api_version = next((v for v, k, namespaced in served if k == kind and not namespaced), None)
        if api_version is None:
            raise StepFailed(f"the API server serves no cluster-scoped kind {kind!r}")
        for obj in kube.list(api_version, kind):
            write(obj, folder / "cluster")
    for crd in needed.values():
        if object_key(crd) not in digests:  # a dependency kept for the restore, not an object to compare
            store(crd, folder / "cluster")
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
        "kinds": sorted({kind_key(v, k) for v, k in listed} - set(unreadable)),
        "selected_kinds": sorted(kinds) if kinds else None,
        "crds": sorted(needed),
        "unreadable": unreadable,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def kind_folder(obj: dict[str, Any]) -> str:
    """The folder of an object's kind in an export: ``Kind`` for Kubernetes' own groups, ``Kind.group``
    for any other, so two CRDs defining the same kind name in different groups never share files."""
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    builtin = not group or "." not in group or group.endswith(".k8s.io")
    return obj["kind"] if builtin else f"{obj['kind']}.{group}"


def _crds_by_kind(kube: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The cluster's CRDs by the kind they define (``group/Kind``), and what could not be read."""
    try:
        crds = kube.list(CRD_API_VERSION, "CustomResourceDefinition")
    except KubeError as exc:  # custom resources are still exported; a fresh cluster would lack their CRDs
        return {}, {kind_key(CRD_API_VERSION, "CustomResourceDefinition"): str(exc)}
    by_kind = {f"{crd['spec']['group']}/{crd['spec']['names']['kind']}": crd for crd in crds}
    return by_kind, {}


def read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise StepFailed(f"{folder}: not a dirt resources backup ({exc})") from None


def _read(path: Path) -> dict[str, Any] | None:
    obj = yaml.load(path.read_text(), Loader=_LOADER)  # noqa: S506 - a safe loader (libyaml's)
    return obj if isinstance(obj, dict) and "kind" in obj else None


@dataclass(frozen=True)
class Entry:
    """One file of an export, known by its place: ``<namespace or cluster>/<Kind[.group]>/<name>.yaml``."""

    path: Path
    kind: str
    #: the namespace of a namespaced object; the name of a cluster-scoped one (what ``namespaces`` selects)
    scope: str

    @property
    def order(self) -> int:
        return ORDER.get(self.kind, 10)


def backup_entries(folder: Path) -> list[Entry]:
    """The files of an export and what their place says of them, without reading one.

    A restore reads each object only when its wave applies it, so its memory does not grow with
    the backup.  A file outside the layout (put there by hand) is read to learn its kind."""
    entries = []
    for path in sorted(folder.rglob("*.yaml")):
        parts = path.relative_to(folder).parts
        if len(parts) == 3:
            kind = parts[1].split(".", 1)[0]
            entries.append(Entry(path, kind, path.stem if parts[0] == "cluster" else parts[0]))
            continue
        obj = _read(path)
        if obj is not None:
            meta = obj.get("metadata") or {}
            entries.append(Entry(path, obj["kind"], meta.get("namespace") or meta.get("name") or ""))
    return entries


def restore_folder(kube: Any, folder: Path, *, namespaces: list[str] | None = None, concurrency: int = 8,
                   timeout: float = 120.0) -> dict[str, Any]:
    """Apply an export: CRDs (until Established), then Namespaces (until Active), then the rest concurrently.

    Objects are read from their files as their wave applies them: a restore of 20,000 objects holds
    a few at a time, not the backup."""
    manifest = read_manifest(folder)
    owned = set(manifest.get("owned", []))
    entries = backup_entries(folder)
    if namespaces:
        entries = [e for e in entries if e.scope in namespaces or e.kind == "CustomResourceDefinition"]
    applied: list[str] = []
    failed: dict[str, str] = {}

    def restorable(entry: Entry) -> dict[str, Any] | None:
        obj = _read(entry.path)
        if obj is None or object_key(obj) in owned:
            return None
        if namespaces and not is_crd(obj) and (obj["metadata"].get("namespace") or obj["metadata"]["name"]) \
                not in namespaces:
            return None  # a file whose place said otherwise than its content
        return obj

    crds = [o for e in entries if e.kind == "CustomResourceDefinition" and (o := restorable(e)) and is_crd(o)]
    _restore_crds(kube, crds, set(manifest.get("digests", {})), applied, failed, timeout)
    if failed:
        first_key, first_error = next(iter(failed.items()))
        raise StepFailed(f"restore of {folder.name}: CRD {first_key} failed: {first_error}")
    rest = sorted((e for e in entries if e.kind != "CustomResourceDefinition"), key=lambda e: e.order)
    for entry in (e for e in rest if e.order <= 1):
        if (obj := restorable(entry)) is not None:
            _apply_one(kube, obj, applied, failed)
            if obj["kind"] == "Namespace":
                _wait_active(kube, obj["metadata"]["name"], timeout)

    def apply_entry(entry: Entry) -> None:
        if (obj := restorable(entry)) is not None:
            _apply_one(kube, obj, applied, failed)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for group in _waves([e for e in rest if e.order > 1]):
            for _ in pool.map(apply_entry, group):
                pass
    if failed:
        first_key, first_error = next(iter(failed.items()))
        raise StepFailed(f"restore of {folder.name}: {len(failed)} object(s) failed, e.g. {first_key}: {first_error}")
    return {"applied": len(applied), "skipped_owned": len(owned), "objects": sorted(applied)}


def _restore_crds(kube: Any, crds: list[dict[str, Any]], recorded: set[str], applied: list[str],
                  failed: dict[str, str], timeout: float) -> None:
    """Create the CRDs the backup's custom resources need, wait until they are Established and
    discover their kinds.  A CRD the backup only depends on is created when missing, never
    overwritten: the cluster may run a newer version of it.  One the backup holds as an object
    (``cluster_kinds``) is applied like every other object."""
    for crd in crds:
        if object_key(crd) in recorded or kube.find(CRD_API_VERSION, crd["kind"], crd["metadata"]["name"]) is None:
            _apply_one(kube, crd, applied, failed)
    if crds and not failed:
        wait_established(kube, [crd["metadata"]["name"] for crd in crds], timeout)
        kube.refresh_discovery()


def crd_established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def wait_established(kube: Any, names: list[str], timeout: float) -> None:
    """Wait until every CRD named is Established (its kind served), or fail naming those that are not."""
    deadline = time.monotonic() + timeout
    pending = list(names)
    while True:
        pending = [name for name in pending
                   if not crd_established(kube.find(CRD_API_VERSION, "CustomResourceDefinition", name) or {})]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StepFailed(f"CRD(s) not Established after {timeout:.0f}s: {', '.join(pending)}")
        time.sleep(0.25)


def _waves(entries: list[Entry]) -> list[list[Entry]]:
    waves: dict[int, list[Entry]] = {}
    for entry in entries:
        waves.setdefault(entry.order, []).append(entry)
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



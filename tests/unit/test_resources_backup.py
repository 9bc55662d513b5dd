"""The pure parts of resources backups and of redeploy: which kinds a backup lists, what its
manifest records about custom resources and their CRDs, the order a restore creates them in,
and how redeploy finds the CRDs in a manifest stream.  The cluster side is in
tests/integration/test_backups_crd.py, against the real sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dirt.core.errors import APIForbiddenError, APINotFoundError
from dirt.drivers import resources
from dirt.drivers.resources import (
    backup_kinds,
    covered_kinds,
    export_namespaces,
    read_manifest,
    restore_folder,
)
from dirt.recovery.kube import manifest_documents, path_documents, remove_strays, split_crds

SERVED = [
    ("v1", "Namespace", False), ("v1", "ConfigMap", True), ("v1", "Event", True), ("v1", "Pod", True),
    ("events.k8s.io/v1", "Event", True), ("coordination.k8s.io/v1", "Lease", True),
    ("apps/v1", "StatefulSet", True), ("apiextensions.k8s.io/v1", "CustomResourceDefinition", False),
    ("example.com/v1", "Widget", True), ("example.com/v1", "Gadget", True),
]


def crd(kind: str, plural: str, group: str = "example.com", established: bool = True) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}", "uid": "u-1", "resourceVersion": "7"},
            "spec": {"group": group, "scope": "Namespaced", "names": {"kind": kind, "plural": plural},
                     "versions": [{"name": "v1", "served": True, "storage": True}]},
            "status": {"conditions": [{"type": "Established", "status": "True" if established else "False"}]}}


def obj(api_version: str, kind: str, name: str, namespace: str | None = "shop", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


class RecordingKube:
    """An in-memory stand-in for KubeClient: served kinds, stored objects, and every write in order."""

    server = "https://127.0.0.1:6443"

    def __init__(self, objects: list[dict[str, Any]], *, forbidden: set[str] = frozenset()) -> None:
        self.objects = {self._key(o): o for o in objects}
        self.forbidden = forbidden
        self.calls: list[str] = []

    @staticmethod
    def _key(o: dict[str, Any]) -> tuple[str, str | None, str]:
        return o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]

    def served_kinds(self, *, namespaced: bool | None = None) -> list[tuple[str, str, bool]]:
        self.calls.append("discovery")
        return [k for k in SERVED if namespaced is None or k[2] == namespaced]

    def refresh_discovery(self) -> None:
        self.calls.append("discovery")

    def find(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        if kind in self.forbidden:
            raise APIForbiddenError(f"list {kind}: forbidden", status=403)
        return [o for (k, ns, _), o in self.objects.items()
                if k == kind and o["apiVersion"] == api_version and (namespace is None or ns == namespace)]

    def apply(self, o: dict[str, Any]) -> dict[str, Any]:
        if o["kind"] not in {"Namespace", "CustomResourceDefinition"} and o["apiVersion"].startswith("example.com") \
                and "discovery" not in self.calls:
            raise APINotFoundError(f"{o['kind']}: the API server does not serve this kind")
        self.calls.append(f"apply {o['kind']}/{o['metadata']['name']}")
        stored = {**o, "status": {"phase": "Active"} if o["kind"] == "Namespace" else
                  crd("x", "x")["status"] if o["kind"] == "CustomResourceDefinition" else {}}
        self.objects[self._key(o)] = stored
        return stored


def shop(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [obj("v1", "Namespace", "shop", namespace=None), obj("v1", "ConfigMap", "settings", data={"a": "1"}),
            obj("v1", "ConfigMap", "kube-root-ca.crt"), obj("v1", "Event", "e1"),
            obj("example.com/v1", "Widget", "w1", spec={"size": 1}),
            obj("example.com/v1", "Widget", "w2", spec={"size": 2}),
            crd("Widget", "widgets"), crd("Gadget", "gadgets"), *extra]


def test_a_backup_lists_every_served_namespaced_kind_but_the_ones_the_cluster_makes() -> None:
    assert backup_kinds(SERVED) == [("v1", "ConfigMap"), ("v1", "Pod"), ("apps/v1", "StatefulSet"),
                                    ("example.com/v1", "Widget"), ("example.com/v1", "Gadget")]
    assert backup_kinds(SERVED, ["Widget"]) == [("example.com/v1", "Widget")]


def test_the_manifest_names_the_kinds_listed_and_the_crds_its_custom_resources_need(tmp_path: Path) -> None:
    kube = RecordingKube(shop())
    manifest = export_namespaces(kube, ["shop"], tmp_path)
    assert manifest == read_manifest(tmp_path)
    assert manifest["crds"] == ["widgets.example.com"], "Gadget has no objects: its CRD is not needed"
    assert manifest["kinds"] == ["apps/StatefulSet", "core/ConfigMap", "core/Pod", "example.com/Gadget",
                                 "example.com/Widget"]
    assert set(manifest["digests"]) == {"core/Namespace/-/shop", "core/ConfigMap/shop/settings",
                                        "example.com/Widget/shop/w1", "example.com/Widget/shop/w2"}
    assert manifest["counts"] == {"Namespace": 1, "ConfigMap": 1, "Widget": 2}
    stored = (tmp_path / "cluster" / "CustomResourceDefinition" / "widgets.example.com.yaml").read_text()
    assert "uid" not in stored and "status" not in stored and "kind: Widget" in stored
    assert not (tmp_path / "cluster" / "CustomResourceDefinition" / "gadgets.example.com.yaml").exists()


def test_a_kind_the_backup_could_not_list_is_named_not_silently_left_out(tmp_path: Path) -> None:
    manifest = export_namespaces(RecordingKube(shop(), forbidden={"Widget"}), ["shop"], tmp_path)
    assert "example.com/Widget" not in manifest["kinds"] and manifest["crds"] == []
    assert manifest["unreadable"] == {"example.com/Widget": "list Widget: forbidden"}


def test_a_manifest_without_a_kinds_list_covers_the_kinds_it_holds_objects_of() -> None:
    old = {"digests": {"core/ConfigMap/shop/a": "x", "core/Namespace/-/shop": "y"}, "owned": ["apps/ReplicaSet/shop/r"]}
    assert covered_kinds(old) == {"core/ConfigMap", "core/Namespace", "apps/ReplicaSet"}
    assert covered_kinds({"kinds": ["example.com/Widget"], "digests": old["digests"]}) == {"example.com/Widget"}


def test_a_restore_into_a_fresh_cluster_creates_the_crds_then_discovers_then_applies_the_custom_resources(
        tmp_path: Path) -> None:
    export_namespaces(RecordingKube(shop()), ["shop"], tmp_path)
    fresh = RecordingKube([])
    summary = restore_folder(fresh, tmp_path)
    calls = fresh.calls
    assert calls[:3] == ["apply CustomResourceDefinition/widgets.example.com", "discovery", "apply Namespace/shop"]
    assert sorted(calls[3:]) == ["apply ConfigMap/settings", "apply Widget/w1", "apply Widget/w2"]
    assert summary["applied"] == 5


def test_a_restore_reads_each_object_when_its_wave_applies_it_so_its_memory_does_not_grow_with_the_backup(
        tmp_path: Path, monkeypatch) -> None:
    maps = [obj("v1", "ConfigMap", f"c{i:03}", data={"i": str(i)}) for i in range(120)]
    other = [obj("v1", "Namespace", "other", namespace=None), obj("v1", "ConfigMap", "x", namespace="other")]
    export_namespaces(RecordingKube([*shop(*maps), *other]), ["shop", "other"], tmp_path)
    (tmp_path / "extra.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n"
                                         "metadata: {name: by-hand, namespace: shop}\n")
    held = {"now": 0, "most": 0}
    real_read = resources._read

    def counting_read(path: Path) -> dict[str, Any] | None:
        held["now"] += 1
        held["most"] = max(held["most"], held["now"])
        return real_read(path)

    fresh = RecordingKube([])
    real_apply = fresh.apply

    def releasing_apply(o: dict[str, Any]) -> dict[str, Any]:
        held["now"] -= 1  # what was read is applied, then dropped
        return real_apply(o)

    monkeypatch.setattr(resources, "_read", counting_read)
    monkeypatch.setattr(fresh, "apply", releasing_apply)
    summary = restore_folder(fresh, tmp_path, namespaces=["shop"], concurrency=4)
    assert summary["applied"] == 1 + 1 + 2 + 120 + 1 + 1, "CRD, Namespace, Widgets, ConfigMaps, settings, by hand"
    assert "apply ConfigMap/by-hand" in fresh.calls, "a file outside the layout is still restored"
    assert not any(c.endswith("/other") or c == "apply ConfigMap/x" for c in fresh.calls), "not selected"
    assert held["most"] <= 4 + 1, f"{held['most']} objects held at once with 4 workers"


def test_a_restore_leaves_a_crd_the_cluster_already_has_as_it_is(tmp_path: Path) -> None:
    export_namespaces(RecordingKube(shop()), ["shop"], tmp_path)
    newer = crd("Widget", "widgets")
    newer["spec"]["versions"].append({"name": "v2", "served": True, "storage": False})
    live = RecordingKube([newer])
    restore_folder(live, tmp_path)
    assert not any("CustomResourceDefinition" in c for c in live.calls)
    assert len(live.find("", "CustomResourceDefinition", "widgets.example.com")["spec"]["versions"]) == 2


def test_a_restore_fails_naming_a_crd_that_never_becomes_established(tmp_path: Path, monkeypatch) -> None:
    export_namespaces(RecordingKube(shop()), ["shop"], tmp_path)
    stuck = RecordingKube([])
    real_apply = stuck.apply

    def apply_unestablished(o: dict[str, Any]) -> dict[str, Any]:
        stored = real_apply(o)
        if o["kind"] == "CustomResourceDefinition":
            stored["status"] = {"conditions": [{"type": "Established", "status": "False"}]}
        return stored

    monkeypatch.setattr(stuck, "apply", apply_unestablished)
    with pytest.raises(Exception, match=r"not Established after 0s: widgets.example.com"):
        restore_folder(stuck, tmp_path, timeout=0)
    assert not any("Widget/" in c for c in stuck.calls)


CRD_YAML = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec: {group: example.com}
"""


def test_split_crds_takes_the_crds_out_of_a_rendered_stream_in_order() -> None:
    stream = f"""\
apiVersion: v1
kind: Namespace
metadata: {{name: shop}}
---
{CRD_YAML}---
# only a comment
---
apiVersion: v1
kind: List
items:
  - {{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, metadata: {{name: gadgets.example.com}}}}
  - {{apiVersion: example.com/v1, kind: Widget, metadata: {{name: w1, namespace: shop}}}}
---
apiVersion: example.com/v1
kind: CustomResourceDefinition
metadata: {{name: not-a-crd-of-the-api}}
"""
    crds, rest = split_crds(manifest_documents(stream))
    assert [c["metadata"]["name"] for c in crds] == ["widgets.example.com", "gadgets.example.com"]
    assert [(r["kind"], r["metadata"]["name"]) for r in rest] == [
        ("Namespace", "shop"), ("Widget", "w1"), ("CustomResourceDefinition", "not-a-crd-of-the-api")]


def test_path_documents_reads_what_kubectl_apply_recursive_reads(tmp_path: Path) -> None:
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "widget.yml").write_text(CRD_YAML)
    (tmp_path / "app.json").write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}))
    (tmp_path / "README.md").write_text("kind: CustomResourceDefinition\n")
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    kinds = sorted(d["kind"] for d in path_documents(tmp_path))
    assert kinds == ["ConfigMap", "CustomResourceDefinition"]
    assert [d["kind"] for d in path_documents(tmp_path / "crds" / "widget.yml")] == ["CustomResourceDefinition"]


def test_same_kind_name_in_two_groups_gets_two_folders() -> None:
    from dirt.drivers.resources import kind_folder

    assert kind_folder({"apiVersion": "v1", "kind": "ConfigMap"}) == "ConfigMap"
    assert kind_folder({"apiVersion": "apps/v1", "kind": "Deployment"}) == "Deployment"
    assert kind_folder({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition"}) == \
        "CustomResourceDefinition"
    a = kind_folder({"apiVersion": "cert-manager.io/v1", "kind": "Certificate"})
    b = kind_folder({"apiVersion": "certs.example.com/v1", "kind": "Certificate"})
    assert a == "Certificate.cert-manager.io" and b == "Certificate.certs.example.com"


def test_a_headless_service_stays_headless_and_an_allocated_cluster_ip_is_left_to_the_server() -> None:
    """A restore re-creates what the author wrote: an address the server allocated is dropped (the new
    cluster allocates one of its own), but ``clusterIP: None`` is a choice, and without it a headless
    Service would come back with an address (and a cluster's few hundred would run out)."""
    from dirt.clients.kube import strip_server_fields
    from dirt.drivers.resources import digest

    headless = obj("v1", "Service", "db", spec={"clusterIP": "None", "clusterIPs": ["None"], "ports": []})
    allocated = obj("v1", "Service", "web", spec={"clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"], "ports": []})
    assert strip_server_fields(headless)["spec"] == {"clusterIP": "None", "clusterIPs": ["None"], "ports": []}
    assert strip_server_fields(allocated)["spec"] == {"ports": []}
    # so a headless Service restored with an address does not compare equal to its backup
    readdressed = obj("v1", "Service", "db", spec={"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"], "ports": []})
    assert digest(headless) != digest(readdressed)
    assert digest(allocated) == digest(obj("v1", "Service", "web", spec={"clusterIP": "10.0.0.8", "ports": []}))


def test_redeploy_removes_the_replicasets_of_an_earlier_deployment_of_the_same_name_the_gc_missed() -> None:
    def owned(name: str, owner: str, uid: str) -> dict[str, Any]:
        return obj("apps/v1", "ReplicaSet", name) | {"metadata": {
            "name": name, "namespace": "shop", "uid": f"uid-{name}",
            "ownerReferences": [{"kind": "Deployment", "name": owner, "uid": uid, "controller": True}]}}

    frontend = obj("apps/v1", "Deployment", "frontend")
    kube = RecordingKube([frontend, obj("apps/v1", "Deployment", "cart"),
                          owned("frontend-old", "frontend", "uid-of-a-deleted-frontend"),
                          owned("frontend-new", "frontend", "uid-frontend"),
                          owned("cart-1", "cart", "uid-of-another-cart")])
    deleted: list[str] = []
    kube.get = kube.find  # type: ignore[attr-defined]
    kube.delete = lambda api_version, kind, name, namespace=None, **kw: deleted.append(f"{kind}/{name}")
    removed = remove_strays(kube, [("Deployment", "shop", "frontend")])
    assert removed == ["shop/frontend-old"] and deleted == ["ReplicaSet/frontend-old"]

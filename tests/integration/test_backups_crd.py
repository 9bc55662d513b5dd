"""Backups and redeploys of an application that brings its own CRD, against the real sandbox.

A CRD installed after discovery was once invisible to backups (the kubernetes client's
discovery cache, a file shared through the temp folder): the custom resources were not
exported, and ``objects.match_backup`` said "all present" after a restore that lost them.
And ``kubectl apply`` of a folder holding a CRD and its custom resources fails
("ensure CRDs are installed first"), so redeploying such an application failed too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.drill_files import report, write

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

NAMESPACE = "crd-shop"
GROUP = "stock.dirt.example"
CRDS = (f"widgets.{GROUP}", f"gadgets.{GROUP}")


def crd_yaml(kind: str, plural: str) -> str:
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.{GROUP}
spec:
  group: {GROUP}
  scope: Namespaced
  names: {{kind: {kind}, plural: {plural}, singular: {kind.lower()}, listKind: {kind}List}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"""


APP = {
    "00-namespace.yaml": f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n",
    "10-crd.yaml": crd_yaml("Widget", "widgets"),
    "20-widgets.yaml": "".join(f"""\
---
apiVersion: {GROUP}/v1
kind: Widget
metadata: {{name: {name}, namespace: {NAMESPACE}, labels: {{app: db}}}}
spec: {{size: {size}, colour: blue}}
""" for name, size in (("w1", 1), ("w2", 2))),
    "30-config.yaml": f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: db-settings, namespace: {NAMESPACE}}}
data: {{max_connections: "100"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db-credentials, namespace: {NAMESPACE}}}
stringData: {{password: not-a-real-one}}
""",
    "40-db.yaml": f"""\
apiVersion: v1
kind: Service
metadata: {{name: db, namespace: {NAMESPACE}}}
spec:
  clusterIP: None
  selector: {{app: db}}
  ports: [{{port: 5432}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db, namespace: {NAMESPACE}}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      containers:
        - name: db
          image: postgres:16
          volumeMounts: [{{name: data, mountPath: /var/lib/postgresql/data}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 1Gi}}}}
""",
}

#: What a resources backup of the application must hold (besides the Namespace and the Service).
MUST_HOLD = {f"{GROUP}/Widget/{NAMESPACE}/w1", f"{GROUP}/Widget/{NAMESPACE}/w2",
             f"core/PersistentVolumeClaim/{NAMESPACE}/data-db-0", f"core/Secret/{NAMESPACE}/db-credentials",
             f"core/ConfigMap/{NAMESPACE}/db-settings", f"apps/StatefulSet/{NAMESPACE}/db"}


def app_folder(root: Path, *, kustomize: bool = False) -> Path:
    folder = root / ("app-kustomized" if kustomize else "app")
    folder.mkdir(parents=True)
    for name, text in APP.items():
        (folder / name).write_text(text)
    if kustomize:
        (folder / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"resources: [{', '.join(sorted(APP))}]\nlabels:\n  - pairs: {{part-of: crd-shop}}\n")
    return folder


def kubectl(target, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(target.kubeconfig_path())}
    proc = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=120)
    assert not check or proc.returncode == 0, proc.stderr
    return proc


def _gone(kube, kind: str, name: str, api_version: str = "v1") -> None:
    deadline = time.monotonic() + 120
    while kube.find(api_version, kind, name) is not None:
        assert time.monotonic() < deadline, f"{kind} {name} still there after 120s"
        time.sleep(0.5)


@pytest.fixture
def clean(dirt_sandbox, tmp_path, monkeypatch):
    """The sandbox without the test's namespace and CRDs, before and after the test; without the
    kubernetes client's shared discovery cache file for it (a test may write one); and kubectl
    with a discovery cache of its own, so no earlier test's CRD is remembered by it."""
    from dirt.core.errors import APINotFoundError

    monkeypatch.setenv("KUBECACHEDIR", str(tmp_path / "kubectl-cache"))

    def remove() -> None:
        kube = dirt_sandbox.kube()
        for kind, name, api_version in [("Namespace", NAMESPACE, "v1"),
                                        *[("CustomResourceDefinition", c, "apiextensions.k8s.io/v1") for c in CRDS]]:
            try:
                kube.delete(api_version, kind, name)
            except APINotFoundError:
                continue
            _gone(kube, kind, name, api_version)
        shared_discovery_cache(dirt_sandbox).unlink(missing_ok=True)

    remove()
    yield dirt_sandbox
    dirt_sandbox.reset_kube()  # the cluster may have been recreated
    remove()


def shared_discovery_cache(target) -> Path:
    """Where the kubernetes client's default discoverer keeps its cache for this server."""
    host = target.kube().server.encode()
    return Path(tempfile.gettempdir()) / f"osrcp-{hashlib.md5(host, usedforsecurity=False).hexdigest()}.json"


def default_discovery_kinds(target, *, refresh: bool = False) -> set[str]:
    """The kinds the kubernetes client's default DynamicClient sees (through its shared cache file)."""
    from kubernetes import config, dynamic

    api = config.new_client_from_config(config_file=str(target.kubeconfig_path()))
    try:
        client = dynamic.DynamicClient(api)
        if refresh:
            client.resources.invalidate_cache()
        return {r.kind for r in client.resources.search()}
    finally:
        api.close()


def plain_apply_fails_on_widgets(proc: subprocess.CompletedProcess) -> bool:
    """A plain ``kubectl apply`` of the application fails on its custom resources: unknown kind."""
    return proc.returncode != 0 and 'no matches for kind "Widget"' in proc.stderr \
        and "ensure CRDs are installed first" in proc.stderr


def backup_manifest(result, name: str) -> dict:
    versions = sorted((result.run_dir / "backups" / name).iterdir())
    return json.loads((versions[-1] / "manifest.json").read_text())


def test_a_crd_installed_after_discovery_is_backed_up_restored_and_verified(dirt, clean, tmp_path) -> None:
    # Discovery done before the CRD exists, by the kubernetes client's default (file) cache and by
    # the target's own client: both must not hide the new kind from the backup.
    assert "Widget" not in default_discovery_kinds(clean, refresh=True)
    assert not any(kind == "Widget" for _, kind, _ in clean.kube().served_kinds())
    app = app_folder(tmp_path)
    dry = kubectl(clean, "apply", "--server-side", "--dry-run=server", "-f", str(app), "-R", check=False)
    assert plain_apply_fails_on_widgets(dry)
    path = write(tmp_path, "drill", f"""\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: crd-backup}}
setup:
  - step: redeploy
    path: {app}
backups:
  - backup: resources
    name: app
    namespaces: [{NAMESPACE}]
inject:
  - fault: namespace.delete
    namespace: {NAMESPACE}
    safety_export: false
recover:
  - step: backup.restore
    backup: app
verify:
  - check: objects.match_backup
    backup: app
    within: 60s
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "passed", result.failures
    manifest = backup_manifest(result, "app")
    assert MUST_HOLD <= set(manifest["digests"]), sorted(MUST_HOLD - set(manifest["digests"]))
    assert manifest["crds"] == [f"widgets.{GROUP}"] and f"{GROUP}/Widget" in manifest["kinds"]
    check = report(result)["restore_verification"][0]
    assert check["objects_missing"] == 0 and check["objects_changed"] == 0
    assert check["objects_expected"] == len([k for k in manifest["digests"] if k not in manifest["owned"]])
    widgets = clean.kube().list(f"{GROUP}/v1", "Widget", NAMESPACE)
    assert sorted((w["metadata"]["name"], w["spec"]["size"]) for w in widgets) == [("w1", 1), ("w2", 2)]
    # The shared cache file still misses the kind: a backup that trusted it would have lost both widgets.
    assert "Widget" not in default_discovery_kinds(clean)


def test_match_backup_fails_naming_the_kinds_a_backup_never_captured(dirt, clean, tmp_path) -> None:
    from dirt.drivers.resources import export_namespaces

    app = app_folder(tmp_path)
    kubectl(clean, "apply", "--server-side", "-f", str(app / "10-crd.yaml"))
    kubectl(clean, "wait", "--for", "condition=established", "--timeout=60s", f"crd/widgets.{GROUP}")
    kubectl(clean, "apply", "--server-side", "-f", str(app), "-R")
    # A backup as the stale discovery cache made it: everything but the widgets (and no 'kinds' list).
    blind = tmp_path / "blind-backup"
    manifest = export_namespaces(clean.kube(), [NAMESPACE], blind)
    shutil.rmtree(blind / NAMESPACE / f"Widget.{GROUP}")
    shutil.rmtree(blind / "cluster" / "CustomResourceDefinition")
    manifest["digests"] = {k: v for k, v in manifest["digests"].items() if "/Widget/" not in k}
    for key in ("kinds", "crds", "selected_kinds", "unreadable"):
        manifest.pop(key)
    (blind / "manifest.json").write_text(json.dumps(manifest))
    gadgets = tmp_path / "gadgets"
    gadgets.mkdir()
    (gadgets / "crd.yaml").write_text(crd_yaml("Gadget", "gadgets"))
    (gadgets / "gadget.yaml").write_text(f"apiVersion: {GROUP}/v1\nkind: Gadget\n"
                                         f"metadata: {{name: g1, namespace: {NAMESPACE}}}\nspec: {{enabled: true}}\n")
    path = write(tmp_path, "drill", f"""\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: uncaptured-kinds}}
backups:
  - backup: resources
    name: blind
    namespaces: [{NAMESPACE}]
    existing: {blind}
  - backup: resources
    name: fresh
    namespaces: [{NAMESPACE}]
inject:
  - fault: exec
    command: "true"
recover:
  - step: redeploy
    name: a kind installed after the backup
    path: {gadgets}
verify:
  - check: objects.match_backup
    name: blind
    backup: blind
    within: 2s
  - check: objects.match_backup
    name: fresh
    backup: fresh
    within: 2s
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "failed"
    blind_failure = next(f for f in result.failures if "blind" in f)
    fresh_failure = next(f for f in result.failures if "fresh" in f)
    assert f"3 live object(s) of kind(s) the backup never captured: {GROUP}/Gadget (1), {GROUP}/Widget (2)" \
        in blind_failure, blind_failure
    assert f"1 live object(s) of kind(s) the backup never captured: {GROUP}/Gadget (1)" in fresh_failure
    assert "missing" not in fresh_failure and "changed" not in fresh_failure, fresh_failure


def test_redeploy_of_a_kustomization_with_its_own_crd_applies_the_crd_first(dirt, clean, tmp_path) -> None:
    app = app_folder(tmp_path, kustomize=True)
    dry = kubectl(clean, "apply", "--server-side", "--dry-run=server", "-k", str(app), check=False)
    assert plain_apply_fails_on_widgets(dry)
    path = write(tmp_path, "drill", f"""\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: kustomized-crd}}
inject:
  - fault: exec
    command: "true"
recover:
  - step: redeploy
    kustomize: {app}
verify:
  - check: exec
    command: kubectl -n {NAMESPACE} get widgets.{GROUP} -l part-of=crd-shop -o name
    stdout_contains: widget.{GROUP}/w2
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "passed", result.failures
    step = next(s for s in report(result)["steps"] if s["driver"] == "redeploy")
    assert step["detail"].startswith("applied 8 object(s); 1 workload(s) ready"), step["detail"]


def test_a_backup_with_custom_resources_restores_into_a_recreated_cluster(dirt, clean, tmp_path) -> None:
    app = app_folder(tmp_path)
    path = write(tmp_path, "drill", f"""\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: crd-cluster-deletion}}
setup:
  - step: redeploy
    path: {app}
backups:
  - backup: resources
    name: app
    namespaces: [{NAMESPACE}]
inject:
  - fault: cluster.delete
    safety_snapshot: false
recover:
  - step: cluster.create
    within: 3m
  - step: backup.restore
    backup: app
    within: 2m
verify:
  - check: objects.match_backup
    backup: app
    within: 60s
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "passed", result.failures
    clean.reset_kube()
    kube = clean.kube()
    crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"widgets.{GROUP}")
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    assert sorted(w["metadata"]["name"] for w in kube.list(f"{GROUP}/v1", "Widget", NAMESPACE)) == ["w1", "w2"]

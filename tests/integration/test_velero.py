"""Velero for real: the sandbox's Velero server backs up and restores, and dirt judges it strictly.

The sandbox of dirt.yaml runs Velero (``velero: true``): ``velero server`` out of
cluster with its AWS plugin, writing to gofakes3 (an S3 API on 127.0.0.1).  Nothing
here moves a Backup's or Restore's status by hand: each outcome is provoked the way
it happens on a real cluster.

* ``PartiallyFailed`` restore: a ValidatingAdmissionPolicy (run by the API server
  itself) refuses to create one ConfigMap the backup holds.
* ``PartiallyFailed`` backup: a CRD whose conversion webhook is down, so its objects
  cannot be read in the version Velero lists.
* Warnings: restoring over an object that was changed since the backup.
* ``Failed`` restore: the backup's data deleted from the bucket.

Velero reads the API's kinds when it starts and then every 5 minutes (hard-coded in
v1.18: ``server.go``, "Refresh() every 5 minutes").  A CRD installed just now is
invisible to its backups until then, and a CRD deleted just now fails every backup
(it goes on listing the kind).  The tests restart the server after either, as an
operator would, and one test shows what happens when nobody does.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.drill_files import cli, report, write

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]


def step(data: dict, driver: str) -> dict:
    return next(s for s in data["steps"] if s["driver"] == driver)


@pytest.fixture(scope="module")
def velero(dirt_sandbox):
    """The sandbox target, with its Velero server ready (the suite's sandbox runs it)."""
    assert dirt_sandbox.settings.velero, "dirt.yaml's sandbox must run Velero (settings: {velero: true})"
    status = dirt_sandbox.sandbox.status()
    assert {c["name"]: c["healthy"] for c in status["components"]}.get("velero"), status["components"]
    return dirt_sandbox


def apply(target, *objects: dict) -> None:
    cli(target, "kubectl", "apply", "-f", "-", stdin="\n---\n".join(yaml.safe_dump(o) for o in objects))


def crd(group: str, kind: str, *, conversion_webhook: str | None = None) -> dict:
    plural = kind.lower() + "s"
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
    spec: dict = {"group": group, "scope": "Namespaced",
                  "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                  "versions": [{"name": "v1", "served": True, "storage": True, "schema": schema}]}
    if conversion_webhook:
        # a second served version, preferred by discovery, that only the (dead) webhook can convert to
        spec["versions"].append({"name": "v2", "served": True, "storage": False, "schema": schema})
        spec["conversion"] = {"strategy": "Webhook", "webhook": {"conversionReviewVersions": ["v1"],
                                                                  "clientConfig": {"url": conversion_webhook}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"}, "spec": spec}


def install_crd(target, definition: dict, *, restart_velero: bool = True) -> None:
    apply(target, definition)
    cli(target, "kubectl", "wait", "--for=condition=established", "--timeout=60s",
        f"crd/{definition['metadata']['name']}")
    if restart_velero:
        target.sandbox.start_velero(restart=True)  # so Velero's discovery knows the new kind


def app(namespace: str) -> list[dict]:
    """A namespace worth restoring: custom resources, a Secret, a ConfigMap, a StatefulSet with a volume claim."""
    labels = {"app": "ledger"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        *({"apiVersion": "velero-test.dirt.dev/v1", "kind": "Ledger",
           "metadata": {"name": f"book-{i}", "namespace": namespace}, "spec": {"currency": "EUR", "shard": i}}
          for i in range(3)),
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ledger-db", "namespace": namespace},
         "stringData": {"password": "not-a-real-one"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ledger-config", "namespace": namespace},
         "data": {"mode": "strict"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ledger", "namespace": namespace},
         "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 5432}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "ledger", "namespace": namespace},
         "spec": {"serviceName": "ledger", "replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                            "spec": {"accessModes": ["ReadWriteOnce"],
                                                     "resources": {"requests": {"storage": "1Gi"}}}}]}},
    ]


def test_the_sandbox_runs_velero_and_the_cli_reaches_it(velero, tmp_path) -> None:
    env = {**os.environ, "DIRT_SANDBOX_HOME": str(velero.sandbox.root.parent)}
    status = subprocess.run([str(REPO / ".venv" / "bin" / "dirt"), "sandbox", "status", "--json"], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    components = {c["name"]: c for c in data["components"]}
    assert components["velero"]["healthy"] and components["object-store"]["healthy"]
    assert data["velero"]["namespace"] == "velero" and data["velero"]["object_store_url"].startswith("http://127.0.0.1:")
    logs = subprocess.run([str(REPO / ".venv" / "bin" / "dirt"), "sandbox", "logs", "velero", "-n", "500"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert logs.returncode == 0 and "velero" in logs.stdout.lower()
    # asks the server through the API (a ServerStatusRequest); the CLI waits 5 s by default
    version = cli(velero, "velero", "version", "--timeout", "60s")
    log_tail = "\n".join((velero.sandbox.root / "logs" / "velero.log").read_text().splitlines()[-40:])
    assert "Server:" in version.stdout and "v1.18.3" in version.stdout.split("Server:")[1], \
        f"{version.stdout}\n--- the server's log ---\n{log_tail}"
    location = velero.kube().get("velero.io/v1", "BackupStorageLocation", "default", "velero")
    assert location["status"]["phase"] == "Available"


SCHEDULED = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: ledger-from-velero}
setup:
  - step: exec
    name: the ledger's schedule, run now
    command: >-
      velero schedule create ledger-hourly --schedule "@every 1h" --include-namespaces vledger &&
      velero backup create --from-schedule ledger-hourly
backups:
  - backup: resources
    name: reference
    namespaces: [vledger]
  - backup: velero
    name: hourly
    existing: latest
    schedule: ledger-hourly
    included_namespaces: [vledger]
    wait: 90s
    max_age: 2h
    accept_warnings: ["ConfigMap:kube-root-ca.crt already exists"]
inject:
  - fault: namespace.delete
    namespace: vledger
recover:
  - step: backup.restore
    backup: hourly
  - step: rollout.wait
    namespace: vledger
    within: 2m
verify:
  - check: objects.match_backup
    backup: reference
  - check: exec
    name: the ledgers are back
    command: test "$(kubectl -n vledger get ledgers -o name | wc -l)" = 3
cleanup:
  - step: namespace.delete
    namespaces: [vledger]
  - step: exec
    command: >-
      velero schedule delete ledger-hourly --confirm &&
      velero backup delete --selector velero.io/schedule-name=ledger-hourly --confirm
"""


def test_a_namespace_with_custom_resources_secrets_and_a_statefulset_comes_back_from_a_scheduled_backup(
        dirt, velero, tmp_path) -> None:
    install_crd(velero, crd("velero-test.dirt.dev", "Ledger"))
    apply(velero, *app("vledger"))
    result = dirt.run(write(tmp_path, "scheduled", SCHEDULED), report_dir=tmp_path / "reports")
    assert result.verdict == "passed", result.failures
    data = report(result)
    hourly = next(b for b in data["backups"] if b["name"] == "hourly")
    assert hourly["type"] == "velero" and hourly["location"].startswith("velero/ledger-hourly-")
    assert hourly["objects"] and hourly["objects"] >= 9  # namespace, 3 ledgers, secret, configmap, sts, svc, pvc
    restore = step(data, "backup.restore")
    assert restore["data"]["items_restored"] >= 9
    assert restore["data"]["accepted_warnings"] == [
        "namespace vledger: could not restore, ConfigMap:kube-root-ca.crt already exists. "
        "Warning: the in-cluster version is different than the backed-up version"]
    match = step(data, "objects.match_backup")["data"]
    assert match["objects_missing"] == 0 and match["objects_changed"] == 0
    assert match["objects_expected"] >= 8, match
    # what Velero restored is what dirt exported, custom resources included
    manifest = json.loads(next((result.run_dir / "backups" / "reference").glob("*/manifest.json")).read_text())
    assert {k for k in manifest["digests"] if "/Ledger/" in k} == {
        f"velero-test.dirt.dev/Ledger/vledger/book-{i}" for i in range(3)}


def test_velero_misses_the_objects_of_a_crd_installed_after_it_started_and_the_reference_export_says_so(
        dirt, velero, tmp_path) -> None:
    group = f"velero-late-{uuid.uuid4().hex[:8]}.dirt.dev"  # a kind this Velero has never seen, on any rerun
    velero.sandbox.start_velero(restart=True)  # its next discovery refresh is 5 minutes away
    install_crd(velero, crd(group, "Invoice"), restart_velero=False)
    apply(velero, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vlate"}},
          {"apiVersion": f"{group}/v1", "kind": "Invoice", "metadata": {"name": "inv-1", "namespace": "vlate"},
           "spec": {"total": 12}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "billing", "namespace": "vlate"},
           "data": {"k": "v"}})
    drill = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: late-crd}
backups:
  - backup: resources
    name: reference
    namespaces: [vlate]
  - backup: velero
    name: fresh
    included_namespaces: [vlate]
    accept_warnings: ["ConfigMap:kube-root-ca.crt already exists"]
inject:
  - fault: namespace.delete
    namespace: vlate
recover:
  - step: backup.restore
    backup: fresh
verify:
  - check: objects.match_backup
    backup: reference
    within: 5s
cleanup:
  - step: namespace.delete
    namespaces: [vlate]
"""
    try:
        result = dirt.run(write(tmp_path, "late", drill), report_dir=tmp_path / "reports")
    finally:
        velero.kube().delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"invoices.{group}")
        velero.sandbox.start_velero(restart=True)  # a Velero that knows a deleted kind fails every backup
    assert result.verdict == "failed"
    match = step(report(result), "objects.match_backup")
    assert match["status"] == "failed"
    assert match["data"]["missing"] == [f"{group}/Invoice/vlate/inv-1"], match["data"]
    assert f"1 missing (e.g. {group}/Invoice/vlate/inv-1)" in match["detail"]


ONE_BACKUP = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: {name}}}
backups:
  - backup: velero
    name: taken
    included_namespaces: [{namespace}]
    timeout: 2m
    accept_warnings: ["ConfigMap:kube-root-ca.crt already exists"]
inject:
{inject}
recover:
  - step: backup.restore
    backup: taken
verify:
  - check: kube.api_available
cleanup:
  - step: namespace.delete
    namespaces: [{namespace}]
"""

DELETE_NAMESPACE = """\
  - fault: namespace.delete
    namespace: {namespace}
"""


def wait_until_refused(target, namespace: str) -> None:
    """The API server enforces a new policy once it has loaded it: probe with a server-side dry run."""
    probe = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "probe", "namespace": namespace, "labels": {"restore-guard": "probe"}}})
    for _ in range(100):
        proc = cli(target, "kubectl", "apply", "--dry-run=server", "-f", "-", stdin=probe, check=False)
        if proc.returncode != 0 and "restore-guard objects may not be created" in proc.stderr:
            return
        time.sleep(0.2)
    raise AssertionError("the ValidatingAdmissionPolicy was never enforced")


def test_a_restore_that_admission_refuses_ends_partially_failed_and_the_drill_names_why(
        dirt, velero, tmp_path) -> None:
    namespace = "vguard"
    apply(velero, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
          {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "frozen", "namespace": namespace, "labels": {"restore-guard": "deny"}},
           "data": {"k": "v"}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fine", "namespace": namespace},
           "data": {"k": "v"}})
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": "dirt-test-restore-guard"},
              "spec": {"failurePolicy": "Fail",
                       "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                               "operations": ["CREATE"],
                                                               "resources": ["configmaps"]}]},
                       "validations": [{"expression": "!has(object.metadata.labels) || "
                                                      "!('restore-guard' in object.metadata.labels)",
                                        "message": "restore-guard objects may not be created"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": "dirt-test-restore-guard"},
               "spec": {"policyName": "dirt-test-restore-guard", "validationActions": ["Deny"],
                        "matchResources": {"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": namespace}}}}}
    apply(velero, policy, binding)
    try:
        wait_until_refused(velero, namespace)
        drill = ONE_BACKUP.format(name="guarded", namespace=namespace,
                                  inject=DELETE_NAMESPACE.format(namespace=namespace))
        result = dirt.run(write(tmp_path, "guarded", drill), report_dir=tmp_path / "reports")
    finally:
        kube = velero.kube()
        kube.delete("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", binding["metadata"]["name"])
        kube.delete("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", policy["metadata"]["name"])
    assert result.verdict == "failed"
    restore = step(report(result), "backup.restore")
    assert restore["status"] == "failed"
    assert "PartiallyFailed" in restore["detail"] and "restore-guard objects may not be created" in restore["detail"]
    assert any("frozen" in e for e in restore["data"]["velero_errors"]), restore["data"]
    assert not any("fine" in e for e in restore["data"]["velero_errors"])


def test_a_restore_over_a_changed_object_warns_and_the_warning_fails_the_drill(dirt, velero, tmp_path) -> None:
    namespace = "vconflict"
    apply(velero, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": namespace},
           "data": {"mode": "strict"}})
    inject = f"""\
  - fault: exec
    name: someone edits the settings
    command: kubectl -n {namespace} patch configmap settings -p '{{"data":{{"mode":"loose"}}}}'
"""
    drill = ONE_BACKUP.format(name="conflict", namespace=namespace, inject=inject)
    result = dirt.run(write(tmp_path, "conflict", drill), report_dir=tmp_path / "reports")
    assert result.verdict == "failed"
    restore = step(report(result), "backup.restore")
    assert restore["status"] == "failed"
    assert "Completed with" in restore["detail"]
    assert "ConfigMap:settings already exists" in restore["detail"], restore["detail"]
    assert restore["data"]["velero_warnings"] == [
        "namespace vconflict: could not restore, ConfigMap:settings already exists. "
        "Warning: the in-cluster version is different than the backed-up version"]


def test_a_backup_that_cannot_read_a_kind_ends_partially_failed_and_nothing_is_injected(
        dirt, velero, tmp_path) -> None:
    namespace = "vunread"
    install_crd(velero, crd("velero-unread.dirt.dev", "Gadget", conversion_webhook="https://127.0.0.1:1/convert"))
    apply(velero, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
          {"apiVersion": "velero-unread.dirt.dev/v1", "kind": "Gadget",
           "metadata": {"name": "g1", "namespace": namespace}, "spec": {"size": 3}})
    try:
        drill = ONE_BACKUP.format(name="unreadable", namespace=namespace,
                                  inject=DELETE_NAMESPACE.format(namespace=namespace))
        # the namespace cannot be deleted while its Gadgets cannot be read: the CRD goes first, below
        drill = drill[:drill.index("cleanup:")]
        result = dirt.run(write(tmp_path, "unreadable", drill), report_dir=tmp_path / "reports")
    finally:
        kube = velero.kube()
        kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", "gadgets.velero-unread.dirt.dev")
        kube.delete("v1", "Namespace", namespace)
        velero.sandbox.start_velero(restart=True)  # or its backups go on listing the kind that is gone
    assert result.verdict == "failed"
    data = report(result)
    backup = next(s for s in data["steps"] if s["section"] == "backups")
    assert backup["status"] == "failed"
    assert "PartiallyFailed" in backup["detail"] and "conversion webhook" in backup["detail"], backup["detail"]
    assert any("Gadget" in e for e in backup["data"]["velero_errors"]), backup["data"]
    assert "inject" not in [p["name"] for p in data["phases"]]  # a backup that failed protects nothing


def test_a_restore_whose_backup_data_was_lost_from_the_bucket_fails(dirt, velero, tmp_path) -> None:
    namespace = "vlost"
    apply(velero, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": namespace},
           "data": {"k": "v"}})
    store = velero.sandbox.velero_status()["object_store_url"]
    # the backup's name is only known at run time: delete every tarball of this drill's backups
    inject = f"""\
  - fault: exec
    name: the bucket loses the backup's data
    command: >-
      for b in $(velero backup get -o json | python3 -c 'import json,sys;
      d=json.load(sys.stdin); items=d.get("items", [d]);
      print(" ".join(i["metadata"]["name"] for i in items if i["metadata"]["name"].startswith("dirt-taken-")))');
      do python3 -c "import urllib.request as u, sys;
      u.urlopen(u.Request('{store}/velero/backups/'+sys.argv[1]+'/'+sys.argv[1]+'.tar.gz', method='DELETE'))" "$b";
      done
  - fault: namespace.delete
    namespace: {namespace}
"""
    drill = ONE_BACKUP.format(name="lost", namespace=namespace, inject=inject)
    result = dirt.run(write(tmp_path, "lost", drill), report_dir=tmp_path / "reports")
    assert result.verdict == "failed"
    restore = step(report(result), "backup.restore")
    assert restore["status"] == "failed"
    assert "Failed" in restore["detail"], restore["detail"]

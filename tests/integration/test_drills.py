"""Negative drills against the sandbox, and Velero backups against the real API server.

The example drills in scenarios/ run as tests of their own (`pytest scenarios/`);
here are the drills that must fail, and fail usefully: a backup that misses a
namespace, a deadline too short, a recovery step that breaks.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "scenarios" / "apps" / "shop" / "manifests"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drill.yaml"
    path.write_text(text)
    return path


def report(result) -> dict:
    return json.loads((result.run_dir / "report.json").read_text())


def test_a_backup_that_leaves_out_a_namespace_fails_the_match_and_names_the_missing_objects(
        dirt, dirt_sandbox, tmp_path) -> None:
    path = write(tmp_path, f"""\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: partial-backup}}
setup:
  - step: redeploy
    path: {SHOP}
  - step: exec
    name: a second namespace
    command: kubectl create namespace payments && kubectl -n payments create configmap ledger --from-literal=k=v
backups:
  - backup: resources
    name: reference
    namespaces: [shop, payments]
  - backup: resources
    name: shop-only
    namespaces: [shop]
inject:
  - fault: namespace.delete
    namespace: shop
    safety_export: false
  - fault: namespace.delete
    namespace: payments
    safety_export: false
recover:
  - step: backup.restore
    backup: shop-only
verify:
  - check: objects.match_backup
    name: everything is back
    backup: reference
    within: 3s
cleanup:
  - step: namespace.delete
    namespaces: [shop, payments]
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "failed"
    data = report(result)
    check = data["restore_verification"][0]
    assert check["objects_missing"] == 2 and check["objects_changed"] == 0
    assert check["missing"] == ["core/ConfigMap/payments/ledger", "core/Namespace/-/payments"]
    assert any("2 missing (e.g. core/ConfigMap/payments/ledger" in f for f in result.failures)


def test_a_deadline_too_short_fails_with_measured_against_objective(dirt, dirt_sandbox, tmp_path) -> None:
    path = write(tmp_path, """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: too-short}
inject:
  - fault: control_plane.stop
    components: [kube-apiserver]
expect:
  alerts:
    - name: KubeAPIDown
      fires_within: 1s
recover:
  - step: control_plane.start
    components: [kube-apiserver]
    within: 10ms
verify:
  - check: kube.api_available
    within: 30s
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "failed"
    data = report(result)
    by_kind = {x["kind"]: x for x in data["expectations"]}
    step = by_kind["step"]
    assert step["objective_seconds"] == 0.01 and step["measured_seconds"] > 0.01 and not step["passed"]
    assert step["detail"] == f"took {step['measured_seconds']:.1f}s, objective 0.01s"
    alert = by_kind["alert"]
    assert not alert["passed"] and alert["objective_seconds"] == 1.0
    assert alert["measured_seconds"] is None or alert["measured_seconds"] > 1.0
    assert dirt_sandbox.kube().readyz(), "the API server is back (recovered, then rolled back if needed)"
    junit = (result.run_dir / "junit.xml").read_text()
    assert 'failures="2"' in junit


def test_a_failing_recovery_step_still_rolls_back_and_writes_the_report(dirt, dirt_sandbox, tmp_path) -> None:
    path = write(tmp_path, """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: broken-recovery}
inject:
  - fault: control_plane.stop
    components: [kube-scheduler]
recover:
  - step: exec
    name: a restart script that fails
    command: "echo 'cannot reach the node' >&2; exit 3"
verify:
  - check: kube.api_available
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "failed"
    assert "step command exited with 3: cannot reach the node" in result.failures[0]
    assert dirt_sandbox.component_running("kube-scheduler"), "rollback started the scheduler again"
    data = report(result)
    assert data["rollback"]["ran"] is True
    assert data["rollback"]["actions"] == [{"index": 0, "name": "control_plane.stop", "action": "revert",
                                            "status": "passed", "detail": "started kube-scheduler"}]
    assert data["faults"][0]["life"] == "reverted by rollback (started kube-scheduler)"
    assert [p["name"] for p in data["phases"]] == ["preflight", "inject", "detect", "recover", "rollback"]
    for name in ("report.md", "report.html", "junit.xml"):
        assert (result.run_dir / name).stat().st_size > 0


# -- Velero ------------------------------------------------------------------------------
#
# No Velero server can run here (it needs object storage and node agents). These
# tests install Velero's real CRDs, from its published Go module, into the real API
# server, and the test itself plays the Velero server: it moves each Backup's and
# Restore's status the way Velero would.

VELERO_VERSION = "v1.17.1"


@pytest.fixture(scope="module")
def velero_crds(dirt_sandbox):
    proc = subprocess.run(["go", "mod", "download", "-json", f"github.com/vmware-tanzu/velero@{VELERO_VERSION}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    bases = Path(json.loads(proc.stdout)["Dir"]) / "config" / "crd" / "v1" / "bases"
    kube = dirt_sandbox.kube()
    for name in ("velero.io_backups.yaml", "velero.io_restores.yaml"):
        kube.apply(yaml.safe_load((bases / name).read_text()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        crd = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "restores.velero.io")
        conditions = (crd.get("status") or {}).get("conditions") or []  # None until the server fills them in
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            break
        time.sleep(0.5)
    if kube.find("v1", "Namespace", "velero") is None:
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "velero"}})
    dirt_sandbox.reset_kube()  # rediscover the API with the new kinds
    return dirt_sandbox


class FakeVeleroServer:
    """Moves new Backups/Restores through InProgress to a chosen final status."""

    def __init__(self, target, restore_outcome: dict) -> None:
        self.target = target
        self.restore_outcome = restore_outcome
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(10)

    def _run(self) -> None:
        from dirt.clients.kube import KubeClient

        kube = KubeClient.from_kubeconfig(self.target.kubeconfig_path())
        while not self._stop.wait(0.3):
            for kind, outcome in (("Backup", {"phase": "Completed", "progress": {"itemsBackedUp": 21}}),
                                  ("Restore", self.restore_outcome)):
                for obj in kube.list("velero.io/v1", kind, "velero"):
                    phase = (obj.get("status") or {}).get("phase")
                    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    if phase is None:
                        status = {"phase": "InProgress", "startTimestamp": now}
                    elif phase == "InProgress":
                        status = {**outcome, "completionTimestamp": now}
                    else:
                        continue
                    kube.patch("velero.io/v1", kind, obj["metadata"]["name"], {"status": status}, "velero")


VELERO_DRILL = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: velero-{name}}}
backups:
  - backup: velero
    name: nightly
    included_namespaces: [shop]
    timeout: 60s
{existing}
inject:
  - fault: exec
    command: "true"
recover:
  - step: backup.restore
    backup: nightly
verify:
  - check: kube.api_available
"""


def test_velero_restore_that_completes_clean_passes(dirt, velero_crds, tmp_path) -> None:
    path = write(tmp_path, VELERO_DRILL.format(name="ok", existing=""))
    with FakeVeleroServer(velero_crds, {"phase": "Completed", "progress": {"itemsRestored": 21}}):
        result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "passed", result.failures
    data = report(result)
    assert data["backups"][0]["type"] == "velero" and data["backups"][0]["objects"] == 21
    restore = next(s for s in data["steps"] if s["driver"] == "backup.restore")
    assert restore["detail"].startswith("Velero restore dirt-restore-dirt-nightly-")


def test_velero_restore_partially_failed_fails_naming_phase_and_counts(dirt, velero_crds, tmp_path) -> None:
    path = write(tmp_path, VELERO_DRILL.format(name="partial", existing=""))
    with FakeVeleroServer(velero_crds, {"phase": "PartiallyFailed", "warnings": 1, "errors": 2}):
        result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "failed"
    assert any("PartiallyFailed (1 warning(s), 2 error(s))" in f for f in result.failures), result.failures


def test_velero_completed_with_warnings_is_a_failure(dirt, velero_crds, tmp_path) -> None:
    path = write(tmp_path, VELERO_DRILL.format(name="warned", existing=""))
    with FakeVeleroServer(velero_crds, {"phase": "Completed", "warnings": 3}):
        result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "failed"
    assert any("Completed with 3 warning(s), 0 error(s)" in f for f in result.failures), result.failures


def test_the_latest_scheduled_velero_backup_is_used_and_its_age_is_the_rpo(dirt, velero_crds, tmp_path) -> None:
    kube = velero_crds.kube()
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    for i, (age, phase) in enumerate([(timedelta(hours=2), "Completed"), (timedelta(hours=5), "Completed"),
                                      (timedelta(minutes=10), "PartiallyFailed")]):
        name = f"nightly-2026112{i}"
        kube.apply({"apiVersion": "velero.io/v1", "kind": "Backup",
                    "metadata": {"name": name, "namespace": "velero", "labels": {"velero.io/schedule-name": "nightly"}},
                    "spec": {"includedNamespaces": ["shop"]}})
        done = (datetime.now(timezone.utc) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
        kube.patch("velero.io/v1", "Backup", name, {"status": {"phase": phase, "completionTimestamp": done}}, "velero")
    path = write(tmp_path, VELERO_DRILL.format(name="latest", existing="    existing: latest\n    schedule: nightly"))
    with FakeVeleroServer(velero_crds, {"phase": "Completed"}):
        result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.verdict == "passed", result.failures
    backup = report(result)["backups"][0]
    assert backup["location"] == "velero/nightly-20261120"
    assert backup["age_seconds"] == pytest.approx((datetime.now(timezone.utc) - two_hours_ago).total_seconds(), abs=30)

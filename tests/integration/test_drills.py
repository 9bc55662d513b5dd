"""Negative drills against the sandbox (Velero's are in test_velero.py, against a real Velero server).

The example drills in scenarios/ run as tests of their own (`pytest scenarios/`);
here are the drills that must fail, and fail usefully: a backup that misses a
namespace, a deadline too short, a recovery step that breaks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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

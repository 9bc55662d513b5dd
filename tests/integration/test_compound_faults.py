"""Compound disasters on the real sandbox, and rollback from the journal alone.

Faults here inject, verify and revert while others are in effect: the API server
down while etcd loses its data, etcd stopped while it loses its data, three
control-plane failures at once.  A drill killed with SIGKILL is put back by
`dirt rollback` from nothing but its journal, and a passed drill is never
touched by it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "scenarios" / "apps" / "shop" / "manifests"
DIRT = [sys.executable, "-m", "dirt"]


def write(tmp_path: Path, text: str, name: str = "drill.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def report(run_dir: Path) -> dict:
    return json.loads((run_dir / "report.json").read_text())


def dirt_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy())


def kube_system_uid(target) -> str:
    target.reset_kube()
    return target.kube().get("v1", "Namespace", "kube-system")["metadata"]["uid"]


def remove_namespace(target, name: str) -> None:
    kube = target.kube()
    if kube.find("v1", "Namespace", name) is not None:
        kube.delete("v1", "Namespace", name)
    deadline = time.monotonic() + 120
    while kube.find("v1", "Namespace", name) is not None and time.monotonic() < deadline:
        time.sleep(0.5)


def everything_runs(target) -> None:
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert target.component_running(component), f"{component} is not running"
    target.reset_kube()
    assert target.kube().readyz()


def test_three_control_plane_failures_at_once_are_each_verified_and_recovered(dirt, dirt_sandbox, tmp_path) -> None:
    path = write(tmp_path, """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: three-at-once}
inject:
  - fault: control_plane.stop
    name: scheduler down
    components: [kube-scheduler]
  - fault: control_plane.stop
    name: controller-manager down
    components: [kube-controller-manager]
  - fault: etcd.stop
    name: etcd down
expect:
  alerts:
    - {name: KubeSchedulerDown, fires_within: 30s, resolves_within: 60s}
    - {name: KubeControllerManagerDown, fires_within: 30s, resolves_within: 60s}
    - {name: etcdMembersDown, fires_within: 30s, resolves_within: 60s}
recover:
  - step: etcd.start
  - step: control_plane.start
    components: [kube-controller-manager, kube-scheduler]
verify:
  - check: kube.api_available
    within: 60s
  - check: nodes.ready
    within: 60s
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.passed, result.failures
    faults = result.report["faults"]
    assert [(f["name"], f["status"], f["resolved_by"]["driver"]) for f in faults] == [
        ("scheduler down", "recovered", "control_plane.start"),
        ("controller-manager down", "recovered", "control_plane.start"),
        ("etcd down", "recovered", "etcd.start"),
    ]
    assert all(f["verified"] for f in faults)
    everything_runs(dirt_sandbox)


def test_etcd_loses_its_data_while_it_is_stopped(dirt, dirt_sandbox, tmp_path) -> None:
    uid = kube_system_uid(dirt_sandbox)
    path = write(tmp_path, f"""\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: stopped-then-wiped}}
setup:
  - step: redeploy
    path: {SHOP}
backups:
  - backup: etcd_snapshot
    name: etcd
  - backup: resources
    name: shop
    namespaces: [shop]
inject:
  - fault: etcd.stop
  - fault: etcd.wipe
recover:
  - step: etcd.start
  - step: backup.restore
    backup: etcd
verify:
  - check: objects.match_backup
    backup: shop
    within: 60s
cleanup:
  - step: namespace.delete
    namespaces: [shop]
""")
    result = dirt.run(path, report_dir=tmp_path / "reports")
    assert result.passed, result.failures
    wipe = result.report["faults"][1]
    assert wipe["verified"] and "etcd is stopped" in wipe["verify_detail"]
    assert [f["status"] for f in result.report["faults"]] == ["recovered", "recovered"]
    assert kube_system_uid(dirt_sandbox) == uid, "the cluster's own data came back"
    everything_runs(dirt_sandbox)


KILLED_COMPOUND = f"""\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: killed-compound}}
setup:
  - step: redeploy
    path: {SHOP}
inject:
  - fault: control_plane.stop
    name: kill kube-apiserver
    components: [kube-apiserver]
  - fault: etcd.wipe
    name: lose etcd's data
expect:
  alerts:
    - name: KubeSchedulerDown      # never fires here: the drill waits for it until it is killed
      fires_within: 5m
recover:
  - step: backup.restore
    backup: never-reached
backups:
  - backup: etcd_snapshot
    name: never-reached
"""


def test_a_drill_killed_while_waiting_for_an_alert_is_put_back_from_its_journal_alone(dirt_sandbox, tmp_path) -> None:
    uid = kube_system_uid(dirt_sandbox)
    path = write(tmp_path, KILLED_COMPOUND)
    reports = tmp_path / "reports"
    proc = subprocess.Popen([*DIRT, "run", str(path), "--report-dir", str(reports), "--display", "none"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    run_dir = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and run_dir is None:
        for journal in reports.glob("*/journal.jsonl"):
            if '"phase": "detect"' in journal.read_text():
                run_dir = journal.parent
        time.sleep(0.3)
    assert run_dir is not None, "the drill never reached detection"
    proc.kill()  # SIGKILL: no handler, no rollback, no run.end
    proc.wait(10)
    assert not dirt_sandbox.component_running("kube-apiserver"), "the compound disaster is in effect"

    rolled = dirt_cli("rollback", str(run_dir), "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    # newest first: restoring the safety snapshot restarts the whole control plane, so the API
    # server's own fault is found undone already and left alone
    assert rolled.stdout.splitlines() == ["reverted lose etcd's data", "already recovered: kill kube-apiserver"]
    assert "restores the safety snapshot of" in rolled.stderr and "every write since is lost" in rolled.stderr
    everything_runs(dirt_sandbox)
    assert kube_system_uid(dirt_sandbox) == uid, "the pre-drill state is back"
    assert dirt_sandbox.kube().find("v1", "Namespace", "shop") is not None

    rendered = dirt_cli("report", str(run_dir))
    assert rendered.returncode == 0, rendered.stderr
    data = report(run_dir)
    assert data["verdict"] == "aborted" and data["complete"] is True
    api, wipe = data["faults"]
    assert api["status"] == "recovered" and "found no longer in effect before reverting" in api["resolution"]
    assert wipe["status"] == "reverted" and "restored the safety snapshot" in wipe["resolution"]
    assert data["still_in_effect"] == []

    again = dirt_cli("rollback", str(run_dir), "--yes")
    assert again.returncode == 0 and again.stdout.startswith("nothing to roll back"), again.stderr
    remove_namespace(dirt_sandbox, "shop")


def test_rollback_of_a_passed_compound_drill_touches_nothing(dirt, dirt_sandbox, tmp_path) -> None:
    result = dirt.run(REPO / "scenarios" / "api-down-then-etcd-lost.yaml", report_dir=tmp_path / "reports")
    assert result.passed, result.failures
    assert [f["life"] for f in result.report["faults"]] == [
        "recovered by step 'restore etcd from the snapshot' (the restore procedure restarted the control plane)",
        "recovered by step 'restore etcd from the snapshot' (etcd's data restored from the snapshot)",
    ]
    journal = (result.run_dir / "journal.jsonl").read_bytes()
    uid = kube_system_uid(dirt_sandbox)
    rolled = dirt_cli("rollback", str(result.run_dir), "--yes")
    assert rolled.returncode == 0 and rolled.stdout.startswith("nothing to roll back"), rolled.stderr
    assert (result.run_dir / "journal.jsonl").read_bytes() == journal
    assert kube_system_uid(dirt_sandbox) == uid

"""`dirt gameday export` against the real things that will read it.

The CronJob export goes through the sandbox API server's own validation
(`kubectl apply --dry-run=server`): the CronJob's `timeZone`, the RBAC objects, the
ConfigMap and its items.  The systemd units go through `systemd-analyze verify`, and
the OnCalendar values through `systemd-analyze calendar`, whose next elapse is checked
against times worked out by hand (including summer time).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dirt.app import gameday_export as ge
from tests.unit import test_gameday_export as unit
from tests.unit.test_gameday_export import make_gameday

pytestmark = [pytest.mark.integration]

NAMESPACE = "dirt-gameday-export"
project = unit.project  # the same fixture: a copy of the repository's drills and playbooks, a user's project


def kubectl(target, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl is not installed")
    return subprocess.run([binary, "--kubeconfig", target.kubeconfig_path(), *args], input=stdin, text=True,
                          capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def namespace(dirt_sandbox):
    """The CronJob's namespace: a server-side dry run needs it to exist (one for the module: a
    namespace being deleted takes nothing new, not even in a dry run)."""
    made = kubectl(dirt_sandbox, "apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Namespace\nmetadata:\n"
                                                           f"  name: {NAMESPACE}\n")
    assert made.returncode == 0, made.stderr
    yield dirt_sandbox
    kubectl(dirt_sandbox, "delete", "namespace", NAMESPACE, "--wait=false")


@pytest.mark.sandbox
def test_the_cronjob_export_passes_server_side_dry_run(namespace, project: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    text = ge.cronjob(day, image="localhost/dirt:dev", namespace=NAMESPACE, reports_pvc="dirt-reports")
    applied = kubectl(namespace, "apply", "--dry-run=server", "-f", "-", stdin=text)
    assert applied.returncode == 0, applied.stderr
    for kind in ("configmap", "serviceaccount", "clusterrole.rbac.authorization.k8s.io",
                 "clusterrolebinding.rbac.authorization.k8s.io", "role.rbac.authorization.k8s.io",
                 "rolebinding.rbac.authorization.k8s.io", "cronjob.batch"):
        assert re.search(rf"^{re.escape(kind)}/dirt-gameday-weekly-dirt created \(server dry run\)$",
                         applied.stdout, re.M), applied.stdout


@pytest.mark.sandbox
def test_the_management_cluster_export_passes_server_side_dry_run(namespace, project: Path) -> None:
    day = make_gameday(project, ["control-plane-down", "etcd-loss"])
    text = ge.cronjob(day, image="localhost/dirt:dev", namespace=NAMESPACE, management_cluster=True,
                      kubeconfig_secret="drilled-cluster")
    applied = kubectl(namespace, "apply", "--dry-run=server", "-f", "-", stdin=text)
    assert applied.returncode == 0, applied.stderr
    assert "cronjob.batch/dirt-gameday-weekly-dirt created (server dry run)" in applied.stdout


@pytest.mark.sandbox
def test_the_server_checks_what_the_dry_run_sends(namespace, project: Path) -> None:
    """The dry run is a real check: a time zone the API server does not know is rejected."""
    day = make_gameday(project, ["namespace-deletion"])
    text = ge.cronjob(day, image="localhost/dirt:dev", namespace=NAMESPACE)
    broken = text.replace("timeZone: Europe/Berlin", "timeZone: Mars/Olympus_Mons")
    assert broken != text
    applied = kubectl(namespace, "apply", "--dry-run=server", "-f", "-", stdin=broken)
    assert applied.returncode != 0 and "timeZone" in applied.stderr


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "TZ": "UTC"})


def test_systemd_units_pass_systemd_analyze_verify(project: Path, tmp_path: Path) -> None:
    day = make_gameday(project, ["namespace-deletion"])
    dirt = Path(sys.executable).with_name("dirt")
    assert dirt.is_file(), "the venv's dirt script"
    units = ge.systemd(day, executable=str(dirt))
    folder = tmp_path / "units"
    folder.mkdir()
    for name, text in units.items():
        (folder / name).write_text(text)
    checked = systemd_analyze("verify", "--man=no", *(str(folder / name) for name in sorted(units)))
    assert checked.returncode == 0, checked.stderr
    mentions = [line for line in (checked.stdout + checked.stderr).splitlines() if "dirt-gameday" in line]
    assert mentions == [], "systemd-analyze warns about the units"


@pytest.mark.parametrize(("cron", "zone", "base", "expected"), [
    # 10:00 in Berlin is 09:00 UTC in winter (CET) and 08:00 UTC in summer (CEST)
    ("0 10 * * 2", "Europe/Berlin", "2026-01-15 00:00:00 UTC", "Tue 2026-01-20 09:00:00 UTC"),
    ("0 10 * * 2", "Europe/Berlin", "2026-07-01 00:00:00 UTC", "Tue 2026-07-07 08:00:00 UTC"),
    # the Sunday Berlin moves its clocks forward (29 March 2026): 10:00 CEST is 08:00 UTC
    ("0 10 * * 0", "Europe/Berlin", "2026-03-28 12:00:00 UTC", "Sun 2026-03-29 08:00:00 UTC"),
    ("30 2 1,15 * *", "America/New_York", "2026-02-02 00:00:00 UTC", "Sun 2026-02-15 07:30:00 UTC"),
    ("*/15 9-17 * * 1-5", "UTC", "2026-01-16 17:50:00 UTC", "Mon 2026-01-19 09:00:00 UTC"),
])
def test_on_calendar_values_elapse_when_the_cron_would(cron: str, zone: str, base: str, expected: str) -> None:
    values = ge.on_calendar(cron, zone)
    assert len(values) == 1
    shown = systemd_analyze("calendar", f"--base-time={base}", values[0])
    assert shown.returncode == 0, shown.stderr
    assert f"Next elapse: {expected}" in shown.stdout, shown.stdout

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
import yaml

from dirt.app import gameday_export as ge
from tests.conftest import REPO
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
    text = ge.cronjob(day, image="localhost/dirt:dev", namespace=NAMESPACE, reports_pvc="dirt-reports",
                      **unit.WATCHED)
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
                      kubeconfig_secret="drilled-cluster", **unit.WATCHED)
    applied = kubectl(namespace, "apply", "--dry-run=server", "-f", "-", stdin=text)
    assert applied.returncode == 0, applied.stderr
    assert "cronjob.batch/dirt-gameday-weekly-dirt created (server dry run)" in applied.stdout


@pytest.mark.sandbox
def test_the_server_checks_what_the_dry_run_sends(namespace, project: Path) -> None:
    """The dry run is a real check: a time zone the API server does not know is rejected."""
    day = make_gameday(project, ["namespace-deletion"])
    text = ge.cronjob(day, image="localhost/dirt:dev", namespace=NAMESPACE, **unit.WATCHED)
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


# -- the quarterly game day (first Tuesday of each quarter, 2#1) in each scheduler's terms -------------

QUARTERLY = REPO / "gamedays" / "quarterly-dirt.yaml"
#: The first Tuesday of each quarter's first month, read off a calendar; 10:00 in Berlin.
FIRST_TUESDAYS_UTC = ["Tue 2027-01-05 09:00:00 UTC", "Tue 2027-04-06 08:00:00 UTC", "Tue 2027-07-06 08:00:00 UTC",
                      "Tue 2027-10-05 08:00:00 UTC", "Tue 2028-01-04 09:00:00 UTC", "Tue 2028-04-04 08:00:00 UTC",
                      "Tue 2028-07-04 08:00:00 UTC", "Tue 2028-10-03 08:00:00 UTC"]


def quarterly():
    from dirt.config import load_config
    from dirt.gameday import load_gameday

    loaded = load_config(str(REPO / "dirt.yaml"))
    return load_gameday(QUARTERLY, known_targets=list(loaded.config.targets))


@pytest.mark.sandbox
def test_the_quarterly_game_day_exports_to_a_cronjob_the_api_server_accepts(namespace) -> None:
    text = ge.cronjob(quarterly(), image="dirt.local/dirt:dev", namespace=NAMESPACE, management_cluster=True,
                      kubeconfig_secret="drilled-cluster", **unit.WATCHED)
    applied = kubectl(namespace, "apply", "--dry-run=server", "-f", "-", stdin=text)
    assert applied.returncode == 0, applied.stderr
    assert "cronjob.batch/dirt-gameday-quarterly-dirt created (server dry run)" in applied.stdout
    verbatim = text.replace('schedule: 0 10 * 1,4,7,10 2\n', "schedule: 0 10 * 1,4,7,10 2#1\n")
    assert verbatim != text
    refused = kubectl(namespace, "apply", "--dry-run=server", "-f", "-", stdin=verbatim)
    assert refused.returncode != 0 and "failed to parse int from 2#1" in refused.stderr, "why it is translated"


def test_the_exported_and_the_starter_workflows_pass_actionlint(tmp_path: Path) -> None:
    from tests.integration.tools import actionlint

    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "quarterly.yml").write_text(ge.github_actions(quarterly()))
    starter = subprocess.run([sys.executable, "-m", "dirt", "init", str(tmp_path / "starter")], capture_output=True,
                             text=True, timeout=60)
    assert starter.returncode == 0, starter.stderr
    shutil.copy(tmp_path / "starter" / ".github" / "workflows" / "dirt.yml", folder / "starter.yml")
    assert shutil.which("shellcheck"), "actionlint checks the run: scripts with shellcheck (make deps installs it)"
    linted = subprocess.run([str(actionlint()), "-color=false", "quarterly.yml", "starter.yml"], cwd=folder,
                            capture_output=True, text=True, timeout=120)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_quarterly_timer_elapses_on_exactly_the_first_tuesdays(tmp_path: Path) -> None:
    units = ge.systemd(quarterly(), executable="/usr/local/bin/dirt")
    timer = units["dirt-gameday-quarterly-dirt.timer"]
    values = [line.split("=", 1)[1] for line in timer.splitlines() if line.startswith("OnCalendar=")]
    assert values == ["Tue *-01,04,07,10-01..07 10:00:00 Europe/Berlin"]
    shown = systemd_analyze("calendar", "--iterations=8", "--base-time=2027-01-01 00:00:00 UTC", values[0])
    assert shown.returncode == 0, shown.stderr
    elapses = re.findall(r"(?:Next elapse|Iter\. #\d+): (.+)$", shown.stdout, re.M)
    assert elapses == FIRST_TUESDAYS_UTC


def faked(moment: str, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """``argv`` run with the clock at ``moment`` (UTC) by libfaketime: dirt reads its real clock, moved."""
    binary = shutil.which("faketime")
    assert binary, "libfaketime's faketime (make deps installs it)"
    return subprocess.run([binary, moment, *argv], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, "TZ": "UTC", **(env or {})})


@pytest.mark.parametrize("moment", ["2027-04-13 08:05:00", "2027-04-20 08:00:30", "2027-10-26 09:03:00"])
def test_started_on_another_tuesday_each_scheduler_finds_no_slot_and_touches_nothing(moment: str,
                                                                                     tmp_path: Path) -> None:
    """What the CronJob and the timer start (`dirt gameday run --trigger schedule`) and what the workflow's
    guard asks (`dirt gameday due`), at the hour the schedulers fire on the second, third and fourth
    Tuesdays of a quarter's first month (their supersets of 2#1)."""
    reports = tmp_path / "reports"
    ran = faked(moment, sys.executable, "-m", "dirt", "--config", str(REPO / "dirt.yaml"), "gameday", "run",
                str(QUARTERLY), "--trigger", "schedule", "--report-dir", str(reports), "--display", "none")
    assert ran.returncode == 0, ran.stderr
    assert "not a scheduled slot of '0 10 * 1,4,7,10 2#1' in Europe/Berlin" in ran.stdout
    assert ran.stdout.rstrip().endswith("nothing was touched")
    assert not reports.exists(), "no report, no journal, no history"
    assert _guard(moment, tmp_path)["run"] == "false"


def test_started_on_the_first_tuesday_of_a_quarter_the_slot_is_due(tmp_path: Path) -> None:
    due = faked("2027-04-06 08:04:00", sys.executable, "-m", "dirt", "--config", str(REPO / "dirt.yaml"), "gameday",
                "due", str(QUARTERLY))
    assert due.returncode == 0, due.stdout + due.stderr
    assert "due for the slot of 2027-04-06T10:00:00+02:00" in due.stdout
    assert _guard("2027-04-06 08:04:00", tmp_path) == {"started_at": "2027-04-06T08:04:00+00:00", "run": "true"}
    late = faked("2027-04-06 09:00:00", sys.executable, "-m", "dirt", "--config", str(REPO / "dirt.yaml"),
                 "gameday", "due", str(QUARTERLY))
    assert late.returncode == 1 and "not a scheduled slot" in late.stdout, "an hour late: past starting_deadline"


def _guard(moment: str, tmp_path: Path) -> dict[str, str]:
    """The exported workflow's guard step, run by bash as GitHub's runner would run it on a schedule event."""
    workflow = yaml.safe_load(ge.github_actions(quarterly()))
    guard = next(s for s in workflow["jobs"]["gameday"]["steps"] if s.get("id") == "guard")
    output = tmp_path / f"github-output-{moment.replace(' ', '-').replace(':', '')}"
    output.write_text("")
    utc_hour = int(moment[11:13])
    fired = next(c["cron"] for c in workflow["on"]["schedule"] if c["cron"].split()[1] == str(utc_hour))
    env = {"EVENT": "schedule", "SCHEDULE": fired, "ZONE": guard["env"]["ZONE"], "GITHUB_OUTPUT": str(output),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = faked(moment, "bash", "-c", guard["run"], env=env, cwd=REPO)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return dict(line.split("=", 1) for line in output.read_text().splitlines())

"""dirt's own dependencies failing during a real drill on the sandbox (issue 23, item 2).

What a careful SRE expects of each case is written in docs/explanation/when-dirt-fails.md; each
test here holds dirt to it: a clear verdict and message, the fault rolled back, the journal
intact and readable, the right exit code.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from dirt.journal import read_journal

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]
DIRT = [sys.executable, "-m", "dirt"]

SCHEDULER_DOWN = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {name: scheduler-down-disk-full}
inject:
  - fault: control_plane.stop
    name: stop the scheduler
    components: [kube-scheduler]
expect:
  alerts:
    - {name: KubeSchedulerDown, fires_within: 3m}
recover:
  - step: control_plane.start
    components: [kube-scheduler]
"""


def dirt_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy())


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MiB tmpfs of our own for the reports folder (root only: mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "small-disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(where: Path) -> Path:
    """Write a file until the disk refuses: another process filling the reports folder's disk."""
    filler = where / "filler.bin"
    chunk = b"\0" * 65536
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_a_reports_disk_that_fills_mid_drill_stops_the_drill_rolls_it_back_and_keeps_a_valid_journal(
        dirt_sandbox, tmp_path, small_disk) -> None:
    """Expected: the drill stops within a second or two (a drill that cannot be recorded cannot be
    trusted, and it may write nothing for minutes while it waits for an alert), rolls its fault back
    from what it holds in memory, exits 3 (aborted) and says why and what was not written; the
    journal on disk is valid JSON Lines, and once there is room `dirt report` renders it and
    `dirt rollback` finds nothing left to undo."""
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(SCHEDULER_DOWN)
    reports = small_disk / "reports"
    proc = subprocess.Popen([*DIRT, "run", str(scenario), "--report-dir", str(reports), "--display", "none"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        journal = wait_for_event(reports, "fault.injected")
        filler = fill(small_disk)  # another process fills the disk while dirt waits for the alert
        filled = time.monotonic()
        out, err = proc.communicate(timeout=180)
        stopped_after = time.monotonic() - filled
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
    assert proc.returncode == 3, out + err
    assert "Traceback" not in err, err
    assert out.startswith("ABORTED"), out
    assert stopped_after < 60, f"{stopped_after:.0f}s: stopped at once, not after the alert's 3 minutes"
    assert "stopped: the reports folder's disk is full (0 KiB free at" in out, out
    assert "reports not written (No space left on device" in out, out
    assert dirt_sandbox.component_running("kube-scheduler"), "rolled back: the scheduler runs again"

    contents = read_journal(journal)
    assert contents.events and not contents.problems, contents.problems
    assert "fault.injected" in [e.event for e in contents.events]
    assert not list(journal.parent.glob("*.tmp")), "no half-written report file left"

    filler.unlink()
    rendered = dirt_cli("report", str(journal.parent))
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr
    data = json.loads((journal.parent / "report.json").read_text())
    assert data["verdict"] == "aborted" or not data["complete"], data["verdict"]
    rolled = dirt_cli("rollback", str(journal.parent), "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "reverted" not in rolled.stdout, "nothing is reverted twice"


def wait_for_event(reports: Path, event: str, timeout: float = 120) -> Path:
    """The journal of the run under ``reports`` once it holds ``event``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journal = next((j for j in reports.glob("*/journal.jsonl") if f'"{event}"' in j.read_text()), None)
        if journal is not None:
            return journal
        time.sleep(0.1)
    raise AssertionError(f"no {event} in a journal under {reports} within {timeout}s")


def test_a_clock_that_jumps_an_hour_mid_drill_changes_neither_mttd_nor_mttr(dirt_sandbox, tmp_path) -> None:
    """Expected: MTTD comes from the servers' own timestamps (Prometheus's activeAt + for) against the
    moment the fault took effect, and every moment dirt records from its monotonic clock counted from
    one wall-clock reading at the start, so the dirt host's clock stepping an hour ahead in the middle
    of a drill (an NTP step, a VM resumed) changes neither MTTD nor MTTR, and the journal's times do
    not jump.  The step is ``dirt.testing.clock`` (libfaketime cannot run a Python drill: see there)."""
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(SCHEDULER_DOWN.replace("scheduler-down-disk-full", "scheduler-down-clock-jump"))
    reference = dirt_cli("run", str(scenario), "--report-dir", str(tmp_path / "reference"), "--display", "none")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    before = json.loads(next((tmp_path / "reference").glob("*/report.json")).read_text())["timings"]

    reports = tmp_path / "jumped"
    env = {**os.environ, "DIRT_TESTING": "1", "DIRT_TEST_CLOCK_STEP": "fault.injected@3600"}
    jumped = subprocess.run([*DIRT, "run", str(scenario), "--report-dir", str(reports), "--display", "none"],
                            cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert jumped.returncode == 0, jumped.stdout + jumped.stderr
    journal = next(reports.glob("*/journal.jsonl"))
    after = json.loads((journal.parent / "report.json").read_text())["timings"]
    mttd_before, mttd_after = before["mttd_seconds"]["KubeSchedulerDown"], after["mttd_seconds"]["KubeSchedulerDown"]
    assert mttd_after is not None and abs(mttd_after - mttd_before) < 15, (mttd_before, mttd_after)
    assert abs(after["mttr_seconds"] - before["mttr_seconds"]) < 15, (before["mttr_seconds"], after["mttr_seconds"])
    stamps = [e.ts for e in read_journal(journal).events]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] < 600, "the journal's times did not jump"
    lock = dirt_sandbox.kube().find("coordination.k8s.io/v1", "Lease", "dirt-drill-lock", "kube-system")
    assert not (lock.get("spec") or {}).get("holderIdentity"), "the drill lock was released"
    released = datetime.fromisoformat(lock["metadata"]["annotations"]["dirt.drill/released-at"].replace("Z", "+00:00"))
    assert released.timestamp() > time.time() + 3000, "the clock really stepped: dirt stamped its release an hour on"


SCHEDULER_ALERT = SCHEDULER_DOWN.replace("scheduler-down-disk-full", "scheduler-down-monitoring").replace(
    "fires_within: 3m", "fires_within: 40s")


def run_and_kill_after_injection(dirt_sandbox, tmp_path: Path, process: str) -> tuple[subprocess.Popen, Path]:
    """Start the scheduler drill; SIGKILL one of the sandbox's monitoring processes once the fault is in."""
    scenario = tmp_path / "drill.yaml"
    scenario.write_text(SCHEDULER_ALERT)
    reports = tmp_path / "reports"
    proc = subprocess.Popen([*DIRT, "run", str(scenario), "--report-dir", str(reports), "--display", "none"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    journal = wait_for_event(reports, "fault.injected")
    sandbox = dirt_sandbox.sandbox
    assert sandbox._owner(process).stop_process(process, sig=signal.SIGKILL), f"{process} was not running"
    return proc, journal


@pytest.mark.parametrize("process", ["prometheus", "alertmanager"])
def test_a_monitoring_server_that_dies_while_dirt_waits_for_an_alert_makes_detection_unknown_not_missed(
        dirt_sandbox, tmp_path, process) -> None:
    """Expected: dirt keeps polling, journals the errors (``monitor.error``), and at the deadline does
    not claim "the alert did not fire" (nobody could look) but fails the expectation with "cannot tell",
    naming the server, since when and its last error; the drill still recovers its fault, passes or
    fails the rest on its own evidence, and exits 1 (detection is unproven)."""
    proc, journal = run_and_kill_after_injection(dirt_sandbox, tmp_path, process)
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        dirt_sandbox.sandbox.restart_monitor(process)
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err, err
    assert "could not be read from" in out and process in out, out
    assert dirt_sandbox.component_running("kube-scheduler"), "the fault was recovered all the same"
    data = json.loads((journal.parent / "report.json").read_text())
    alert = next(x for x in data["expectations"] if x["name"] == "KubeSchedulerDown")
    assert not alert["passed"]
    if process == "prometheus":
        assert alert["detail"].startswith("cannot tell whether KubeSchedulerDown fired within 40s: prometheus "
                                          "could not be read from "), alert["detail"]
    else:  # Prometheus saw it fire; nobody could ask Alertmanager
        assert "cannot tell in alertmanager: alertmanager could not be read from" in alert["detail"], alert["detail"]
        assert alert["sources"]["prometheus"]["fired"] is True
    events = read_journal(journal).events
    assert any(e.event == "monitor.error" and e.source == process for e in events)
    assert not read_journal(journal).problems and events[-1].event == "run.end"

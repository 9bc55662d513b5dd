"""One drill per target at a time, on the real sandbox.

The measured problem: a namespace-deletion drill started while control-plane-down
waited for its alert; its automatic `sandbox up` restarted the API server the first
drill had stopped, both deployed and deleted the same namespace, and both passed.
Here the first drill runs as a real `dirt run` process and holds the sandbox; a
second `dirt run` while the API server is down is refused (exit 2, naming the
holder) without touching anything, `dirt sandbox up` by hand is refused too, and the
first drill passes undisturbed.  Its Lease is visible with kubectl while it runs and
released when it ends.
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
DIRT = [sys.executable, "-m", "dirt"]


def dirt_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DIRT, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=os.environ.copy(), stdin=subprocess.DEVNULL)


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def lease(target) -> dict | None:
    """The drill lock's Lease as `kubectl get lease` shows it; None while the API cannot answer."""
    got = target.sandbox.kubectl("get", "lease", "-n", "kube-system", "dirt-drill-lock", "-o", "json",
                                 "--request-timeout=5s", check=False, timeout=20)
    return json.loads(got.stdout) if got.returncode == 0 else None


def wait_until(what: str, probe, proc: subprocess.Popen[str], timeout: float = 300):
    """Poll ``probe`` until it answers; fail early if the first drill has ended meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the first drill ended before {what}: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.2)
    raise AssertionError(f"never saw {what} within {timeout:g}s")


def test_a_second_drill_is_refused_while_the_first_holds_the_sandbox_and_the_first_passes(
        dirt_sandbox, tmp_path) -> None:
    first_reports, second_reports = tmp_path / "first", tmp_path / "second"
    first = subprocess.Popen(
        [*DIRT, "run", str(REPO / "scenarios" / "control-plane-down.yaml"), "--report-dir", str(first_reports),
         "--display", "none"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ.copy())
    try:
        run_dir = wait_until("its run folder", lambda: next(iter(first_reports.glob("*/journal.jsonl")), None),
                             first).parent
        run_id = run_dir.name

        held = wait_until("the Lease held by the drill",
                          lambda: (got := lease(dirt_sandbox)) and got["spec"].get("holderIdentity") == run_id
                          and got, first)
        notes = held["metadata"]["annotations"]
        assert notes["dirt.drill/scenario"] == "control-plane-down"
        assert notes["dirt.drill/pid"] == str(first.pid) and notes["dirt.drill/host"]
        assert held["spec"]["leaseDurationSeconds"] > 0 and held["spec"]["renewTime"]

        wait_until("the API server stopped by the drill",
                   lambda: any(e["event"] == "fault.injected" for e in events(run_dir)), first)

        second = dirt_cli("run", str(REPO / "scenarios" / "namespace-deletion.yaml"),
                          "--report-dir", str(second_reports), "--display", "none")
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"locked by run {run_id}" in second.stderr
        assert "scenario 'control-plane-down'" in second.stderr and f"pid {first.pid}" in second.stderr
        assert "started " in second.stderr and "Traceback" not in second.stderr
        assert not second_reports.exists() or not any(second_reports.iterdir()), "the refused drill wrote no run"

        by_hand = dirt_cli("sandbox", "up")
        assert by_hand.returncode == 2, by_hand.stdout + by_hand.stderr
        assert f"held by run {run_id}" in by_hand.stderr and "would restart the components it stopped" \
            in by_hand.stderr

        out, err = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.terminate()  # it rolls back by itself
            first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    data = json.loads((run_dir / "report.json").read_text())
    assert data["verdict"] == "passed"
    assert [f["status"] for f in data["faults"]] == ["recovered"]

    after = lease(dirt_sandbox)
    assert after is not None and not after["spec"].get("holderIdentity"), "released at the end"
    assert (dirt_sandbox.drill_lock_path()).read_text() == "", "the local lock is free"

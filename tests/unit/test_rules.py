"""The sandbox's alert rules, unit-tested with `promtool test rules` (series in, alerts out)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DATA = Path(__file__).parent / "data"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    assert tool, "promtool is missing: `make deps` installs the Debian package prometheus"
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)


def test_etcd_data_loss_fires_on_any_loss_and_on_nothing_else() -> None:
    proc = promtool("test", "rules", str(DATA / "sandbox-rules.test.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_the_rule_tests_can_fail(tmp_path) -> None:
    """A wrong expectation makes promtool fail, so the test above is not vacuous."""
    text = (DATA / "sandbox-rules.test.yaml").read_text()
    broken = text.replace("exp_alerts: []", "exp_alerts: [{exp_labels: {severity: critical}}]", 1)
    (tmp_path / "broken.test.yaml").write_text(broken.replace("../../../dirt", str(DATA.parents[2] / "dirt")))
    proc = promtool("test", "rules", str(tmp_path / "broken.test.yaml"))
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr

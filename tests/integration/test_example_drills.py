"""What the example drills must report, beyond passing (they also run as `pytest scenarios/`).

What control-plane-down must report (MTTD from both alert sources, the restart linked to its
playbook) is checked on its run inside the quarterly game day: test_gameday_quarterly.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]


def test_the_sandbox_rules_and_the_shop_alerts_pass_promtool() -> None:
    rules = [*sorted((REPO / "dirt" / "sandbox" / "rules").glob("*.yaml")), REPO / "scenarios/apps/shop/alerts.yaml"]
    proc = subprocess.run(["promtool", "check", "rules", *map(str, rules)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(rules)

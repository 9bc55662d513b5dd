"""A drill whose steps print secrets leaves none of them anywhere: run folder, terminal, pytest output.

The secrets are planted the way they reach a real drill: a monitoring token in the
environment variable dirt.yaml names, a password in the file it names, and the
usual shapes (AWS keys, Authorization headers, --password, curl -u, x-api-key)
printed by a playbook step and an ``exec`` step, then an ``exec`` step fails
printing the token, so the failure path (step detail, run failures, the terminal) is exercised too.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DIRT

TOKEN = "e2e-prom-token-Zq81vK"
AM_PASSWORD = "e2e-am-password-Lm27"
AWS_KEY_ID = "AKIAE2ETESTKEY000001"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYE2E2EKEY"
CLI_PASSWORD = "e2e-cli-pass-Qw55"
CURL_PASSWORD = "e2e-curl-pass-Rt66"
API_KEY = "e2e-api-key-Yu77abc"
BEARER = "e2e-bearer-Op88xyz"
BASIC = base64.b64encode(f"ops:{AM_PASSWORD}".encode()).decode()

#: Every planted value, and the encodings a command printed them in.
PLANTED = [TOKEN, base64.b64encode(TOKEN.encode()).decode().rstrip("="), AM_PASSWORD, BASIC, AWS_KEY_ID,
           AWS_SECRET, CLI_PASSWORD, CURL_PASSWORD, API_KEY, BEARER]

CONFIG = """\
default_target: fake
targets:
  fake:
    provider: fake
    settings: {alert_delay: 0.2, resolve_delay: 0.2}
    prometheus: {url: "http://127.0.0.1:9", bearer_token_env: PLANTED_PROM_TOKEN}
    alertmanager: {url: "http://127.0.0.1:9", username: ops, password_file: am-password.txt}
"""

PLAYBOOK = f"""\
# Leaky

## Repair

```bash dirt-step=repair timeout=20s
echo "calling prometheus with Authorization: Bearer $PLANTED_PROM_TOKEN"
echo "AWS_ACCESS_KEY_ID={AWS_KEY_ID} AWS_SECRET_ACCESS_KEY={AWS_SECRET}"
printf '%s' "$PLANTED_PROM_TOKEN" | base64
```
"""

SCENARIO = f"""\
apiVersion: dirt/v1
kind: Scenario
metadata:
  name: leaky-drill
  playbook: playbooks/leaky.md
inject:
  - fault: fake.fault
    name: break-it
    fires: [FakeDown]
recover:
  - step: playbook.run
    playbook: "#repair"
  - step: exec
    command: |
      echo "token is $PLANTED_PROM_TOKEN, password is $(cat am-password.txt)"
      echo "Authorization: Basic {BASIC}"
      echo "curl -H 'Authorization: Bearer {BEARER}' -H 'x-api-key: {API_KEY}' -u admin:{CURL_PASSWORD}"
      echo "mysql --password {CLI_PASSWORD} shop"
  - step: exec
    command: |
      echo "login failed with $PLANTED_PROM_TOKEN" >&2
      exit 1
"""


@pytest.fixture
def leaky(project) -> Path:
    root = project.root
    (root / "dirt.yaml").write_text(CONFIG)
    (root / "am-password.txt").write_text(AM_PASSWORD + "\n")
    (root / "playbooks" / "leaky.md").write_text(PLAYBOOK)
    (root / "leaky.yaml").write_text(SCENARIO)
    return root


def _env() -> dict[str, str]:
    return {**os.environ, "PLANTED_PROM_TOKEN": TOKEN, "DIRT_TESTING": "1"}


def _leaks(text: str) -> list[str]:
    return [value for value in PLANTED if value in text]


def _files_with_leaks(folder: Path) -> dict[str, list[str]]:
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            leaks = _leaks(path.read_bytes().decode("utf-8", errors="replace"))
            if leaks:
                found[str(path.relative_to(folder))] = leaks
    return found


def test_a_drill_printing_secrets_leaves_none_in_the_run_folder_or_on_the_terminal(leaky: Path) -> None:
    proc = subprocess.run([*DIRT, "run", "leaky.yaml", "--display", "plain"], cwd=leaky, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    (run_dir,) = (leaky / "reports").glob("*-leaky-drill-*")
    written = {p.name for p in run_dir.iterdir()}
    assert {"journal.jsonl", "report.json", "report.md", "report.html", "junit.xml"} <= written
    # the steps ran and what they printed was kept, masked
    journal = (run_dir / "journal.jsonl").read_text()
    assert "calling prometheus with Authorization: Bearer ***" in journal
    assert "token is ***, password is ***" in journal
    assert "step command exited with 1: login failed with ***" in proc.stdout
    assert _files_with_leaks(leaky / "reports") == {}
    assert _leaks(proc.stdout) == [] and _leaks(proc.stderr) == []


def test_a_failing_drill_under_pytest_shows_no_secret(leaky: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "leaky.yaml", "-p", "no:cacheprovider",
                           "--dirt-report-dir", "pytest-reports"], cwd=leaky, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "drill leaky-drill FAILED" in proc.stdout
    assert "login failed with ***" in proc.stdout
    assert _leaks(proc.stdout) == [] and _leaks(proc.stderr) == []
    assert _files_with_leaks(leaky / "pytest-reports") == {}

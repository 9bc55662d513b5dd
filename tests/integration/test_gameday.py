"""A game day on the sandbox: drills not in the repository, a real webhook receiver, the day's report.

Cheap drills (seconds each, against the real API server with the real kubectl): a ConfigMap
deleted and redeployed, a drill that fails on purpose with ``on_failure: stop``, and one that
must therefore never run.  A second day is vetoed by its approval webhook: nothing runs.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dirt.app.gameday import run_gameday
from dirt.app.history import open_history
from dirt.gameday import load_gameday
from tests.integration.drill_files import cli
from tests.unit.test_gameday_run import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: gd-settings
  namespace: default
data:
  colour: blue
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def drills(folder: Path) -> None:
    """Three drills in ``folder/drills``: restore a ConfigMap; fail on purpose; a marker that must never appear."""
    (folder / "drills").mkdir()
    manifest = write(folder / "drills", "manifest.yaml", CONFIGMAP)
    write(folder / "drills", "configmap.yaml", f"""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata: {{name: gd-configmap-restore}}
        setup:
          - step: redeploy
            path: {manifest}
        steady_state:
          - check: exec
            command: kubectl -n default get configmap gd-settings
        inject:
          - fault: exec
            name: delete the ConfigMap
            command: kubectl -n default delete configmap gd-settings
            verify: "! kubectl -n default get configmap gd-settings"
        recover:
          - step: redeploy
            path: {manifest}
        verify:
          - check: exec
            name: the ConfigMap is back
            command: kubectl -n default get configmap gd-settings -o jsonpath={{.data.colour}}
            stdout_contains: blue
            within: 30s
        cleanup:
          - step: exec
            command: kubectl -n default delete configmap gd-settings --ignore-not-found
        """)
    write(folder / "drills", "broken.yaml", """\
        apiVersion: dirt/v1
        kind: Scenario
        metadata: {name: gd-broken-restore}
        inject:
          - fault: exec
            name: nothing really breaks
            command: "true"
        recover:
          - step: exec
            name: the restore procedure fails
            command: echo "restore script not found" >&2; exit 3
        """)
    write(folder / "drills", "marker.yaml", """\
        apiVersion: dirt/v1
        kind: Scenario
        metadata: {name: gd-marker}
        inject:
          - fault: exec
            name: leave a marker
            command: kubectl -n default create configmap gd-must-not-run --from-literal=ran=yes
        cleanup:
          - step: exec
            command: kubectl -n default delete configmap gd-must-not-run --ignore-not-found
        """)


def day_file(folder: Path, hook: Receiver, extra: str = "") -> Path:
    return write(folder, "day.yaml", f"""\
        apiVersion: dirt/v1
        kind: GameDay
        metadata:
          name: it-gameday
          description: Cheap drills on the sandbox.
        participants:
          - {{name: Ada, role: facilitator}}
          - {{name: Grace, role: approver}}
        target: sandbox
        drills:
          - scenario: drills/configmap.yaml
          - scenario: drills/broken.yaml
            on_failure: stop
          - scenario: drills/marker.yaml
        notify:
          - name: receiver
            url: {hook.url}
            format: json
        """) if not extra else write(folder, "day.yaml", (folder / "day.yaml").read_text() + textwrap.dedent(extra))


def not_there(target, name: str) -> bool:
    return cli(target, "kubectl", "-n", "default", "get", "configmap", name, check=False).returncode != 0


def test_a_game_day_runs_its_drills_notifies_each_and_stops_after_the_failed_one(dirt, dirt_sandbox, tmp_path) -> None:
    hook = Receiver()
    try:
        drills(tmp_path)
        day = load_gameday(day_file(tmp_path, hook), known_targets=list(dirt.loaded.config.targets))
        reports = tmp_path / "reports"
        result = run_gameday(day, dirt.loaded, report_dir=reports, approved_by="Grace", handle_signals=False)
    finally:
        hook.close()
    assert [(d.id, d.verdict) for d in result.drills] == [
        ("configmap", "passed"), ("broken", "failed"), ("marker", "not-run")], [d.reason for d in result.drills]
    assert result.verdict == "failed" and result.exit_code == 1 and result.stopped_after == "broken"
    assert not_there(dirt_sandbox, "gd-must-not-run"), "the drill after the stop ran"

    assert hook.events() == [("start", None), ("drill", "configmap"), ("drill", "broken"), ("failure", "broken"),
                             ("finish", None)]
    restored = hook.bodies[1]
    assert restored["verdict"] == "passed" and restored["mttr"] is not None and Path(restored["report"]).is_file()
    assert "restore script not found" in hook.bodies[3]["reason"]
    finish = hook.bodies[-1]
    assert finish["verdict"] == "failed" and finish["stopped_after"] == "broken"
    assert "stopped after broken failed" in finish["text"]
    assert [(d["id"], d["verdict"]) for d in finish["drills"]] == [
        ("configmap", "passed"), ("broken", "failed"), ("marker", "not-run")]

    for name in ("report.json", "report.md", "report.html", "junit.xml"):
        text = (result.day_dir / name).read_text()
        assert all(drill_id in text for drill_id in ("configmap", "broken", "marker")), name
    report = json.loads((result.day_dir / "report.json").read_text())
    assert report["approval"]["by"] == "Grace" and report["stopped_after"] == "broken"
    assert all((result.day_dir / d["report_href"]).is_file() for d in report["drills"] if d["run_id"])
    assert "stopped after drill <code>broken</code> failed" in (result.day_dir / "report.html").read_text()

    with open_history(dirt.loaded, reports) as store:
        runs = store.runs()
        days = store.gamedays("it-gameday")
    assert sorted(r.scenario for r in runs if r.gameday_run_id == result.run_id) == [
        "gd-broken-restore", "gd-configmap-restore"]
    assert [(d.run_id, d.verdict, d.approved_by) for d in days] == [(result.run_id, "failed", "Grace")]


def test_a_veto_from_the_approval_webhook_stops_everything(dirt, dirt_sandbox, tmp_path) -> None:
    hook = Receiver()
    approver = Receiver(answer={"allow": False, "reason": "change freeze"})
    try:
        drills(tmp_path)
        day_file(tmp_path, hook)
        path = day_file(tmp_path, hook, f"""\
            approval:
              webhook: {approver.url}
              timeout: 10s
            """)
        day = load_gameday(path, known_targets=list(dirt.loaded.config.targets))
        result = run_gameday(day, dirt.loaded, report_dir=tmp_path / "reports", handle_signals=False)
    finally:
        hook.close()
        approver.close()
    assert result.verdict == "aborted" and result.exit_code == 3
    assert "the approval webhook said no: change freeze" in result.reason
    assert [d.verdict for d in result.drills] == ["not-run", "not-run", "not-run"]
    assert not list((tmp_path / "reports").glob("*/journal.jsonl")), "a drill ran"
    assert not_there(dirt_sandbox, "gd-must-not-run")
    assert approver.bodies[0]["gameday"] == "it-gameday" and len(approver.bodies[0]["drills"]) == 3
    assert hook.events() == [("failure", None), ("finish", None)]

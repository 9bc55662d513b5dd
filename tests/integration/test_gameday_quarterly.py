"""The example game day, ``gamedays/quarterly-dirt.yaml``, as a team would run it on the sandbox.

Four real disasters back to back (the API server down, etcd's data lost, the shop's
namespace deleted, the whole cluster deleted), each detected by its alerts and recovered by
its playbook's steps.  Its webhooks are real local receivers named by the environment
variables the file names (as a team's secrets would be): the approval bot answers allow, and
the chat and incident webhooks must get every message.  ``make test`` runs these four drills
here only, not a second time on their own (see the Makefile).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from dirt.app.gameday import run_gameday
from dirt.app.history import open_history
from dirt.gameday import load_gameday
from tests.unit.test_gameday_run import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.sandbox]

REPO = Path(__file__).resolve().parents[2]
DRILLS = ["control-plane-down", "etcd-loss", "namespace-deletion", "cluster-deletion"]


def wait_until_quiet(prometheus: str, alerts: list[str], timeout: float = 120.0) -> None:
    """The day is skipped while one of its ``skip_when_firing`` alerts fires: let an earlier test's settle."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=10) as answer:
            firing = {a["labels"]["alertname"] for a in json.load(answer)["data"]["alerts"] if a["state"] == "firing"}
        if not firing & set(alerts) or time.monotonic() > deadline:
            return
        time.sleep(2)


def test_the_quarterly_game_day_runs_all_four_disasters_and_tells_everyone(dirt, dirt_sandbox, tmp_path,
                                                                          monkeypatch) -> None:
    chat, incidents = Receiver(), Receiver()
    approver = Receiver(answer={"allow": True, "by": "Grace Hopper", "reason": "CHG-1234 approved"})
    monkeypatch.setenv("DIRT_SLACK_WEBHOOK", chat.url)
    monkeypatch.setenv("DIRT_GAMEDAY_WEBHOOK", incidents.url)
    monkeypatch.setenv("DIRT_APPROVAL_WEBHOOK", approver.url)
    day = load_gameday(REPO / "gamedays" / "quarterly-dirt.yaml", known_targets=list(dirt.loaded.config.targets))
    wait_until_quiet(dirt_sandbox.sandbox.prometheus_url, day.document.schedule.skip_when_firing)
    reports = tmp_path / "reports"
    try:
        result = run_gameday(day, dirt.loaded, report_dir=reports, handle_signals=False)
    finally:
        for hook in (chat, incidents, approver):
            hook.close()

    assert [(d.id, d.verdict) for d in result.drills] == [(name, "passed") for name in DRILLS], \
        [(d.id, d.reason) for d in result.drills]
    assert result.verdict == "passed" and result.exit_code == 0

    # the approval bot was asked first, with the whole plan, and its answer is in the report
    [plan] = approver.bodies
    assert plan["gameday"] == "quarterly-dirt" and [d["id"] for d in plan["drills"]] == DRILLS
    assert {"control-plane", "etcd", "cluster"} <= set(plan["blast_radius"])
    report = json.loads((result.day_dir / "report.json").read_text())
    assert report["approval"]["by"] == "Grace Hopper" and report["approval"]["allowed"] is True

    # every message, in order, to the incident bot (JSON) and to the chat (Slack format)
    expected = [("start", None), *(("drill", name) for name in DRILLS), ("finish", None)]
    assert incidents.events() == expected
    for body, name in zip(incidents.bodies[1:-1], DRILLS):
        assert body["verdict"] == "passed" and body["mttr"] is not None and Path(body["report"]).is_file(), name
        assert body["mttd"] and all(seconds is not None for seconds in body["mttd"].values()), name
    assert incidents.bodies[-1]["verdict"] == "passed" and incidents.bodies[-1]["score"] > 0
    assert len(chat.bodies) == len(expected) and all(set(b) == {"text", "blocks"} for b in chat.bodies)
    assert chat.bodies[-1]["text"].startswith("Game day quarterly-dirt")

    # the control-plane drill's own report: MTTD from both alert sources, the restart linked to the playbook
    drill_dir = Path(incidents.bodies[1]["report"]).parent
    drill = json.loads((drill_dir / "report.json").read_text())
    alert = next(x for x in drill["expectations"] if x["kind"] == "alert" and x["name"] == "KubeAPIDown")
    prometheus, alertmanager = alert["sources"]["prometheus"], alert["sources"]["alertmanager"]
    assert prometheus["fired"] and alertmanager["fired"]
    # Prometheus: activeAt + for; Alertmanager: startsAt — the same moment, by the servers' clocks
    assert prometheus["server_time"] == pytest.approx(prometheus["active_at"] + prometheus["for_seconds"])
    assert alertmanager["server_time"] == pytest.approx(prometheus["server_time"], abs=1.0)
    assert 0 < prometheus["mttd_seconds"] <= 30 and prometheus["observed_seconds"] >= prometheus["mttd_seconds"]
    assert drill["timings"]["mttd_seconds"]["KubeAPIDown"] == prometheus["mttd_seconds"]
    restart = next(s for s in drill["steps"] if s["driver"] == "control_plane.start")
    assert restart["playbook_url"].endswith("playbooks/control-plane-down.md#restart-the-api-server")
    fault = drill["faults"][0]
    assert fault["status"] == "recovered" and fault["in_effect"] is False
    assert fault["life"] == "recovered by step 'restart kube-apiserver' (started kube-apiserver)"
    assert "recovered by step &#x27;restart kube-apiserver&#x27;" in (drill_dir / "report.html").read_text()

    # the day's report names every drill and links its report; the history holds the day and its four runs
    for name in ("report.md", "report.html", "junit.xml"):
        text = (result.day_dir / name).read_text()
        assert all(drill_id in text for drill_id in DRILLS), name
    assert all((result.day_dir / d["report_href"]).is_file() for d in report["drills"])
    with open_history(dirt.loaded, reports) as store:
        runs = [r for r in store.runs() if r.gameday_run_id == result.run_id]
        [recorded] = store.gamedays("quarterly-dirt")
    assert sorted(r.scenario for r in runs) == sorted(DRILLS) and all(r.passed for r in runs)
    assert recorded.verdict == "passed" and recorded.approved_by == "Grace Hopper"
    assert "quarterly-dirt" in (reports / "index.html").read_text(), "the dashboard lists the day"

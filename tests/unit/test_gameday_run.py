"""Running a game day on the fake target: approval, skips, order, stops, notifications and the day's report.

Notifications and approvals go to a real HTTP server on 127.0.0.1 (a thread of the test),
so the payloads are checked as a webhook receives them.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dirt.app.gameday import run_gameday, slack_message
from dirt.core.errors import ScenarioError, UsageError
from dirt.gameday.model import GameDay, GameDayDocument
from dirt.testing.target import FakeTarget
from tests.conftest import basic_scenario

FAILING_RECOVERY = """\
    recover:
      - step: fake.step
        fail: true
        message: the restore broke
    """


class Receiver:
    """A webhook: records every JSON body POSTed to it and answers ``status`` + ``answer`` after ``delay`` s."""

    def __init__(self, status: int = 200, answer: Any = None, delay: float = 0.0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.paths.append(self.path)
                receiver.headers.append(dict(self.headers))
                if delay:
                    time.sleep(delay)
                body = json.dumps(answer if answer is not None else {"ok": True}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up waiting (the timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[tuple[str, str | None]]:
        return [(b.get("event"), b.get("drill")) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        made.append(Receiver(**kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def drill(project, name: str, **overrides: str) -> str:
    head = textwrap.dedent(f"""\
        apiVersion: dirt/v1
        kind: Scenario
        metadata:
          name: {name}
          playbook: playbooks/fake.md
        vars:
          who: world
        """)
    project.scenario(name, basic_scenario(head=head, **overrides))
    return f"{name}.yaml"


def gameday(project, drills: list[dict[str, Any]], **extra: Any) -> GameDay:
    data = {"apiVersion": "dirt/v1", "kind": "GameDay",
            "metadata": {"name": "unit-day", "description": "A day of fake drills.", "owner": "platform"},
            "participants": [{"name": "Ada", "role": "facilitator", "contact": "ada@example.org"},
                             {"name": "Grace", "role": "approver"}],
            "drills": drills, **extra}
    document = GameDayDocument.model_validate(data)
    return GameDay(path=project.root / "unit-day.yaml", document=document,
                   drill_paths={d.id: (project.root / d.scenario).resolve() for d in document.drills})


def run(project, day: GameDay, **kwargs: Any):
    kwargs.setdefault("handle_signals", False)
    return run_gameday(day, project.loaded(), report_dir=project.reports, **kwargs)


def day_report(result) -> dict[str, Any]:
    return json.loads((result.day_dir / "report.json").read_text())


def journal(result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (result.day_dir / "journal.jsonl").read_text().splitlines()]


# -- order, dependencies, stops --------------------------------------------------------------------

def test_a_passing_day_runs_drills_in_dependency_order_and_sends_every_json_notification(project, receiver) -> None:
    hook = receiver()
    day = gameday(project, [{"scenario": drill(project, "second"), "depends_on": ["first"]},
                            {"scenario": drill(project, "first")}],
                  notify=[{"name": "team", "url": hook.url, "format": "json"}])
    result = run(project, day)
    assert result.verdict == "passed" and result.exit_code == 0
    assert [d.id for d in result.drills] == ["first", "second"]
    assert hook.events() == [("start", None), ("drill", "first"), ("drill", "second"), ("finish", None)]
    start, first, _, finish = hook.bodies
    assert start["gameday"] == "unit-day" and start["run_id"] == result.run_id and start["verdict"] is None
    assert [d["id"] for d in start["drills"]] == ["first", "second"]
    assert first["verdict"] == "passed" and first["schema_version"] == 1
    assert set(first["mttd"]) == {"FakeDown"} and first["mttr"] is not None
    assert Path(first["report"]).is_file() and first["drill_run_id"] == result.drills[0].run_id
    assert finish["verdict"] == "passed" and finish["report"] == str(result.day_dir / "report.html")
    assert finish["score"] is not None and [d["verdict"] for d in finish["drills"]] == ["passed", "passed"]


def test_a_failed_drill_with_on_failure_stop_stops_the_day_and_says_so(project, receiver) -> None:
    hook = receiver()
    day = gameday(project, [{"scenario": drill(project, "breaks", recover=FAILING_RECOVERY)},
                            {"scenario": drill(project, "never")}],
                  notify=[{"url": hook.url}])
    result = run(project, day)
    assert result.verdict == "failed" and result.exit_code == 1
    assert result.stopped_after == "breaks"
    assert [(d.id, d.verdict) for d in result.drills] == [("breaks", "failed"), ("never", "not-run")]
    assert result.drills[1].reason == "not run: stopped after breaks failed"
    assert not list(project.reports.glob("*-never-*")), "the drill after the stop must not run"
    assert hook.events() == [("start", None), ("drill", "breaks"), ("failure", "breaks"), ("finish", None)]
    assert "stopped after breaks failed" in hook.bodies[-1]["text"]
    assert hook.bodies[-1]["stopped_after"] == "breaks"
    report = day_report(result)
    assert report["stopped_after"] == "breaks"
    assert any(f["drill"] == "never" and "stopped after breaks" in f["detail"] for f in report["findings"])
    assert "stopped after drill `breaks` failed" in (result.day_dir / "report.md").read_text()


def test_on_failure_continue_goes_on_and_skips_the_drills_that_depend_on_the_failed_one(project) -> None:
    day = gameday(project, [{"scenario": drill(project, "breaks", recover=FAILING_RECOVERY), "on_failure": "continue"},
                            {"scenario": drill(project, "needs-it"), "depends_on": ["breaks"]},
                            {"scenario": drill(project, "independent")}])
    result = run(project, day)
    assert [(d.id, d.verdict) for d in result.drills] == [
        ("breaks", "failed"), ("needs-it", "skipped"), ("independent", "passed")]
    assert result.drills[1].reason == "skipped: depends on breaks (failed)"
    assert result.verdict == "failed" and result.stopped_after is None


def test_the_days_abort_when_is_added_to_every_drill(project) -> None:
    day = gameday(project, [{"scenario": drill(project, "guarded")}],
                  abort_when=[{"alert": "FakeDown", "name": "the fake is down"}])
    result = run(project, day)
    assert result.verdict == "aborted" and result.exit_code == 3
    report = result.drills[0].report
    assert [c["title"] for c in report["abort_when"]] == ["the fake is down"]


def test_day_variables_then_drill_variables_reach_the_drill(project) -> None:
    day = gameday(project, [{"scenario": drill(project, "greets"), "vars": {"who": "drill"}}], vars={"who": "day"})
    result = run(project, day)
    assert result.verdict == "passed"
    assert (project.root / "repaired.txt").read_text().strip() == "repairing drill"


# -- approval --------------------------------------------------------------------------------------

def test_an_approval_webhook_is_sent_the_plan_and_its_allow_is_recorded(project, receiver) -> None:
    approver = receiver(answer={"allow": True, "by": "change-bot", "reason": "CHG-42 approved"})
    day = gameday(project, [{"scenario": drill(project, "approved")}], approval={"webhook": approver.url})
    result = run(project, day)
    assert result.verdict == "passed" and result.approved_by == "change-bot"
    plan = approver.bodies[0]
    assert plan["gameday"] == "unit-day" and plan["targets"] == ["fake"]
    assert plan["drills"][0]["id"] == "approved" and plan["drills"][0]["blast_radius"][0]["driver"] == "fake.fault"
    assert day_report(result)["approval"] | {"at": None} == {
        "allowed": True, "via": "webhook", "by": "change-bot", "reason": "CHG-42 approved",
        "webhook": approver.url.rsplit("/", 1)[0], "at": None}


@pytest.mark.parametrize("status,answer,delay,why", [
    (200, {"allow": False, "reason": "change freeze"}, 0.0, "the approval webhook said no: change freeze"),
    (500, {"allow": True}, 0.0, "the approval webhook answered HTTP 500"),
    (200, ["allow"], 0.0, "the approval webhook's answer is not a JSON object"),
    (200, {"allow": True}, 3.0, "no answer from the approval webhook"),
])
def test_anything_but_an_allow_is_a_veto_nothing_runs_and_it_is_notified(project, receiver, status, answer, delay,
                                                                         why) -> None:
    approver = receiver(status=status, answer=answer, delay=delay)
    hook = receiver()
    day = gameday(project, [{"scenario": drill(project, "vetoed")}],
                  approval={"webhook": approver.url, "timeout": "1s"}, notify=[{"url": hook.url}])
    result = run(project, day)
    assert result.verdict == "aborted" and result.exit_code == 3
    assert why in result.reason
    assert [(d.id, d.verdict) for d in result.drills] == [("vetoed", "not-run")]
    assert not list(project.reports.glob("*-vetoed-*"))
    assert hook.events() == [("failure", None), ("finish", None)]
    assert hook.bodies[-1]["verdict"] == "aborted" and why in hook.bodies[-1]["reason"]
    report = day_report(result)
    assert report["approval"]["allowed"] is False and why in report["approval"]["reason"]


def test_approved_by_must_be_an_approver(project) -> None:
    day = gameday(project, [{"scenario": drill(project, "any")}], approval={"approvers": ["Grace"]})
    with pytest.raises(UsageError, match="'Mallory' is not an approver of game day 'unit-day'"):
        run(project, day, approved_by="Mallory")
    assert not project.reports.exists() or not any(project.reports.iterdir()), "no run folder, no report"
    result = run(project, day, approved_by="Grace")
    assert result.verdict == "passed" and result.approved_by == "Grace"
    assert day_report(result)["approval"]["via"] == "approved-by"


def test_a_day_that_needs_approval_and_got_none_is_vetoed(project) -> None:
    day = gameday(project, [{"scenario": drill(project, "any")}], approval={"approvers": ["Grace"]})
    result = run(project, day)
    assert result.verdict == "aborted" and "pass --approved-by NAME (Grace)" in result.reason


# -- skip_when_firing --------------------------------------------------------------------------------

def test_the_day_is_skipped_while_a_listed_alert_fires_unless_forced(project, receiver) -> None:
    hook = receiver()
    target = FakeTarget(root=project.root)
    target.breaks("incident", ["KubeAPIDown"])
    target.alerts[0].fired_at = 0.0  # firing already
    target.broken.clear()  # an alert about something else: the drill's own steady state holds
    day = gameday(project, [{"scenario": drill(project, "careful")}], notify=[{"url": hook.url}],
                  schedule={"cron": "* * * * *", "skip_when_firing": ["KubeAPIDown"]})  # every moment is a slot
    result = run(project, day, make_target=lambda scenario, name: target, trigger="schedule")
    assert result.verdict == "skipped" and result.exit_code == 0
    assert result.reason == "skipped: alert(s) firing: KubeAPIDown"
    assert [d.verdict for d in result.drills] == ["not-run"]
    assert hook.events() == [("finish", None)] and hook.bodies[0]["verdict"] == "skipped"
    assert day_report(result)["skipped"] == {"reason": result.reason, "alerts": ["KubeAPIDown"]}

    forced = run(project, day, make_target=lambda scenario, name: target, force=True)
    assert forced.drills[0].result is not None, "--force runs the drills although the alert fires"
    assert forced.verdict == "passed"


def test_a_scheduled_run_inside_a_blackout_is_skipped_and_a_manual_one_is_not(project, receiver) -> None:
    hook = receiver()
    target = FakeTarget(root=project.root)
    # a weekly blackout covering every minute of every day: whenever the test runs, it is inside it
    every_day = {"name": "always", "weekly": {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}}
    day = gameday(project, [{"scenario": drill(project, "blacked-out")}], notify=[{"url": hook.url}],
                  schedule={"cron": "* * * * *", "blackouts": [every_day]})
    result = run(project, day, make_target=lambda scenario, name: target, trigger="schedule")
    assert result.verdict == "skipped" and result.exit_code == 0
    assert result.reason == "skipped: inside a blackout: always (weekly)"
    assert [d.verdict for d in result.drills] == ["not-run"] and hook.bodies[-1]["verdict"] == "skipped"
    manual = run(project, day, make_target=lambda scenario, name: target)
    assert manual.verdict == "passed", "a person starting the day by hand decides for themselves"


def test_a_scheduled_run_waits_out_the_jitter_next_showed(project) -> None:
    from datetime import datetime, timezone

    from dirt.gameday.schedule import scheduled_start

    target = FakeTarget(root=project.root)
    day = gameday(project, [{"scenario": drill(project, "jittered")}], schedule={"cron": "* * * * *", "jitter": "50s"})
    slept: list[float] = []
    before = datetime.now(timezone.utc)
    result = run(project, day, make_target=lambda scenario, name: target, trigger="schedule", sleep=slept.append)
    assert result.verdict == "passed"
    cron_at, start = scheduled_start(day.document.schedule, before, day.name)
    assert cron_at <= before and (before - cron_at).total_seconds() < 60  # this minute's cron time
    if start > before:  # the hash put the start after the moment the test began: it waited (at most that long)
        assert len(slept) == 1 and 0 < slept[0] <= (start - before).total_seconds()
    else:
        assert slept == [], "the jitter had already passed: no wait"


def test_a_scheduled_run_outside_every_slot_touches_nothing_and_exits_0(project, receiver) -> None:
    """A scheduler's superset time (every Tuesday for 2#1), or a catch-up long after the slot: the run
    says so and does nothing: no drill, no notification, no report folder, no history."""
    from datetime import datetime, timedelta, timezone

    from dirt.app.history import open_history

    hook = receiver()
    target = FakeTarget(root=project.root)
    later = datetime.now(timezone.utc) + timedelta(hours=2)  # its only slot today is two hours away
    day = gameday(project, [{"scenario": drill(project, "not-now")}], notify=[{"url": hook.url}],
                  schedule={"cron": f"{later.minute} {later.hour} * * *", "timezone": "UTC"})
    result = run(project, day, make_target=lambda scenario, name: target, trigger="schedule")
    assert (result.verdict, result.exit_code, result.drills) == ("not-due", 0, [])
    assert result.reason.startswith(f"not a scheduled slot of '{later.minute} {later.hour} * * *' in UTC")
    assert "the next is " in result.reason and result.reason.endswith("nothing was touched")
    assert hook.bodies == [] and target.calls == [], "nothing told, nothing touched"
    assert not project.reports.exists() or not any(project.reports.iterdir()), "no run folder, no report"
    with open_history(project.loaded(), project.reports) as store:
        assert store.gamedays("unit-day") == []
    assert run(project, day, make_target=lambda scenario, name: target).verdict == "passed", "by hand it runs"


# -- notifications: formats, failures, secrets -------------------------------------------------------

def test_slack_notifications_carry_text_and_mrkdwn_blocks(project, receiver) -> None:
    hook = receiver()
    day = gameday(project, [{"scenario": drill(project, "chatty")}],
                  notify=[{"url": hook.url, "format": "slack", "on": ["drill", "finish"]}])
    run(project, day)
    assert len(hook.bodies) == 2
    for body in hook.bodies:
        assert set(body) == {"text", "blocks"} and body["text"].startswith("Game day unit-day")
        assert all(b["type"] in ("section", "context") for b in body["blocks"])
        assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert "*MTTD*: FakeDown" in hook.bodies[0]["blocks"][1]["text"]["text"]


def test_with_report_base_url_notifications_link_reports_where_they_are_published(project, receiver) -> None:
    config = project.root / "dirt.yaml"
    config.write_text(config.read_text() + "report_base_url: https://ci.example.org/artifacts/run-7\n")
    hook, chat = receiver(), receiver()
    day = gameday(project, [{"scenario": drill(project, "linked")}],
                  notify=[{"url": hook.url, "on": ["drill", "finish"]},
                          {"url": chat.url, "format": "slack", "on": ["finish"]}])
    result = run(project, day)

    drill_body, finish = hook.bodies
    base = "https://ci.example.org/artifacts/run-7/"
    run_dir = result.drills[0].result.run_dir.relative_to(project.reports).as_posix()
    assert drill_body["report"] == f"{base}{run_dir}/report.html"
    assert finish["report"] == f"{base}gamedays/{result.run_id}/report.html"
    assert finish["drills"][0]["report"] == drill_body["report"]
    assert f"*Report*: <{finish['report']}|report.html>" in chat.bodies[0]["blocks"][1]["text"]["text"]


def test_without_report_base_url_a_report_is_its_path_on_the_runner(project, receiver) -> None:
    hook = receiver()
    day = gameday(project, [{"scenario": drill(project, "local")}], notify=[{"url": hook.url, "on": ["finish"]}])
    result = run(project, day)

    assert hook.bodies[0]["report"] == str(result.day_dir / "report.html")


def test_a_webhook_variable_unset_or_not_a_url_stops_the_day_before_anything_runs(project, monkeypatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    monkeypatch.setenv("NOT_A_URL", "ftp://files.example.org/T0SECRET")
    day = gameday(project, [{"scenario": drill(project, "never-runs")}],
                  notify=[{"name": "unset", "url_env": "NOT_SET_ANYWHERE"}, {"url_env": "NOT_A_URL"}])
    with pytest.raises(ScenarioError) as caught:
        run(project, day)
    text = str(caught.value)
    assert "notify.0.url_env: $NOT_SET_ANYWHERE is not set (set it before the day runs" in text
    assert "notify.1.url_env: the value of $NOT_A_URL must start with http:// or https://" in text
    assert "T0SECRET" not in text
    assert not list(project.reports.glob("gamedays/*")), "nothing ran, nothing was written"


def test_slack_message_of_a_start_lists_the_planned_drills() -> None:
    message = slack_message({"event": "start", "text": "Game day x started", "run_id": "r", "at": "now",
                             "drills": [{"id": "a", "verdict": None}], "mttd": {}, "mttr": None, "score": None,
                             "report": None})
    assert message["text"] == "Game day x started"
    assert message["blocks"][1]["text"]["text"] == "*Drills*: a (planned)"


def test_an_undeliverable_notification_is_a_warning_and_a_secret_url_is_never_written(
        project, receiver, monkeypatch) -> None:
    hook = receiver(status=503)
    secret = "T0SECRET/B0SECRET/XyZsecretToken1234567890"
    monkeypatch.setenv("TEAM_WEBHOOK", f"{hook.url}/{secret}")
    day = gameday(project, [{"scenario": drill(project, "quiet")}],
                  notify=[{"url_env": "TEAM_WEBHOOK", "format": "slack", "on": ["finish"]},
                          {"name": "relay", "url": "http://127.0.0.1:9/closed", "timeout": "2s", "on": ["finish"]}])
    result = run(project, day)
    assert result.verdict == "passed", "a notification never fails the day"
    assert hook.paths == [f"/hook/{secret}"]  # delivered (and refused), so the URL was really used
    sent = [e for e in journal(result) if e["event"] == "notify"]
    assert [(e["sink"], e["ok"]) for e in sent] == [("$TEAM_WEBHOOK", False), ("relay", False)]
    assert "HTTP 503" in sent[0]["detail"] and "connect" in sent[1]["detail"].lower()
    assert len(result.warnings) == 2
    for name in ("journal.jsonl", "report.json", "report.md", "report.html", "junit.xml"):
        assert "XyZsecretToken" not in (result.day_dir / name).read_text(), name


# -- the game-day report ------------------------------------------------------------------------------

def test_the_day_report_names_every_drill_links_its_report_and_playbook_and_has_one_timeline(project) -> None:
    day = gameday(project, [{"scenario": drill(project, "one"), "weight": 3},
                            {"scenario": drill(project, "two", recover=FAILING_RECOVERY), "on_failure": "continue"}])
    result = run(project, day)
    report = day_report(result)
    assert report["schema_version"] == 1 and report["kind"] == "gameday"
    assert [p["role"] for p in report["participants"]] == ["facilitator", "approver"]
    one, two = report["drills"]
    assert (result.day_dir / one["report_href"]).resolve() == (result.drills[0].result.run_dir / "report.html")
    assert (result.day_dir / one["playbook_href"]).resolve() == (project.root / "playbooks" / "fake.md").resolve()
    assert two["verdict"] == "failed"
    assert any(f["drill"] == "two" and "the restore broke" in f["detail"] for f in report["findings"])
    assert report["score"] == round((3 * one["score"] + two["score"]) / 4, 1)
    html = (result.day_dir / "report.html").read_text()
    assert html.count('class="drill"') >= 2 and '<svg xmlns="http://www.w3.org/2000/svg" id="timeline"' in html
    assert html.count("<svg") == 1 and "http://" not in html.split("<svg", 1)[1].split("</svg>")[0].replace(
        "http://www.w3.org/2000/svg", "")
    junit = (result.day_dir / "junit.xml").read_text()
    assert junit.count("<testcase") == 2 and 'failures="1"' in junit and 'name="two"' in junit


def test_the_html_report_escapes_what_the_game_day_file_says(project) -> None:
    day = gameday(project, [{"scenario": drill(project, "plain")}])
    doc = day.document.model_copy(update={"participants": [
        day.document.participants[0].model_copy(update={"name": "<script>alert(1)</script>"})]})
    day = day.model_copy(update={"document": doc})
    result = run(project, day)
    html = (result.day_dir / "report.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_the_history_records_the_day_and_links_every_drill_run_to_it(project) -> None:
    from dirt.app.history import open_history

    day = gameday(project, [{"scenario": drill(project, "kept"), "on_failure": "continue"},
                            {"scenario": drill(project, "also-kept", recover=FAILING_RECOVERY)}],
                  schedule={"cron": "* * * * *", "timezone": "Europe/Berlin"})  # every moment is a slot
    result = run(project, day, trigger="schedule")
    with open_history(project.loaded(), project.reports) as store:
        days = store.gamedays("unit-day")
        runs = store.runs()
    assert [(d.run_id, d.verdict, d.trigger, d.schedule) for d in days] == [
        (result.run_id, "failed", "schedule", "* * * * *")]
    assert sorted((r.scenario, r.gameday_run_id, r.trigger) for r in runs) == [
        ("also-kept", result.run_id, "schedule"), ("kept", result.run_id, "schedule")]
    assert sorted(d.run_id for d in days[0].drills) == sorted(d.run_id for d in result.drills)


def test_the_example_game_day_plans_its_four_drills_in_order_without_touching_anything() -> None:
    from dirt.app.gameday import render_gameday_plan
    from dirt.config import load_config
    from dirt.documents.yamlpos import load_file
    from tests.conftest import REPO

    path = REPO / "gamedays" / "quarterly-dirt.yaml"
    data, _, _ = load_file(path)
    document = GameDayDocument.model_validate(data)
    day = GameDay(path=path, document=document,
                  drill_paths={d.id: (path.parent / d.scenario).resolve() for d in document.drills})
    text, refused = render_gameday_plan(day, load_config(REPO / "dirt.yaml"))
    assert refused == []
    order = [line.split(":")[0].strip() for line in text.splitlines() if line[:5].strip().rstrip(".").isdigit()]
    assert order == ["1. control-plane-down", "2. etcd-loss", "3. namespace-deletion", "4. cluster-deletion"]
    assert "Approval: webhook $DIRT_APPROVAL_WEBHOOK" in text and "Notify incident-bot (json)" in text
    assert "year-end freeze" in text and "Europe/Berlin" in text


# -- the command line ----------------------------------------------------------------------------------

def dirt_cli(project, *args: str, env: dict[str, str] | None = None):
    import os
    import subprocess

    from tests.conftest import DIRT

    return subprocess.run([*DIRT, *args], cwd=project.root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def day_yaml(project, text: str) -> Path:
    path = project.root / "day.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_gameday_run_exits_with_the_days_verdict_and_prints_where_the_report_is(project) -> None:
    drill(project, "good")
    drill(project, "bad", recover=FAILING_RECOVERY)
    day_yaml(project, """\
        apiVersion: dirt/v1
        kind: GameDay
        metadata: {name: cli-day}
        participants: [{name: Grace, role: approver}]
        drills:
          - scenario: good.yaml
          - scenario: bad.yaml
        """)
    proc = dirt_cli(project, "gameday", "run", "day.yaml", "--approved-by", "Grace", "--display", "none")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("PASSED   good ") and lines[1].startswith("FAILED   bad ")
    last = next(line for line in lines if "game day cli-day" in line)
    report = Path(last.split(": ", 1)[1])
    assert last.startswith("FAILED ") and report.name == "report.html" and report.parent.parent.name == "gamedays"
    assert (project.root / report).is_file()

    wrong = dirt_cli(project, "gameday", "run", "day.yaml", "--approved-by", "Mallory")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr and "not an approver" in wrong.stderr


def test_gameday_plan_shows_order_targets_and_blast_radius_and_hides_secret_urls(project) -> None:
    drill(project, "first")
    drill(project, "second")
    day_yaml(project, """\
        apiVersion: dirt/v1
        kind: GameDay
        metadata: {name: plan-day}
        drills:
          - scenario: second.yaml
            depends_on: [first]
          - scenario: first.yaml
        notify:
          - url_env: CHAT_HOOK
            format: slack
          - url: http://127.0.0.1:9/relay/abc
        approval:
          webhook_env: APPROVAL_HOOK
          approvers: [Grace]
        """)
    proc = dirt_cli(project, "gameday", "plan", "day.yaml",
                    env={"CHAT_HOOK": "https://hooks.chat.invalid/services/T000/B000/SeCrEtPaRt1234567890"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.index("1. first: first.yaml on fake") < out.index("2. second: second.yaml on fake; after first")
    assert "blast radius" in out and "--- drill first ---" in out and "(dry run: nothing was touched)" in out
    assert "Notify $CHAT_HOOK (slack)" in out and "Notify http://127.0.0.1:9 (json)" in out
    assert "SeCrEtPaRt" not in out and "/relay/abc" not in out
    assert "Approval: webhook $APPROVAL_HOOK (timeout 30s) or --approved-by Grace" in out
    assert not project.reports.exists()

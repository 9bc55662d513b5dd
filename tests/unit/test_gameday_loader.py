"""Game-day files: a valid one loads into a plan; every mistake is one located line, all at once; the CLI's
`dirt gameday validate|next` and `dirt schema --kind gameday` exit 0 or 2, never with a traceback."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest

from dirt.cli import exit_code
from dirt.core.errors import ScenarioError
from dirt.gameday import approved_by_problem, gameday_files, load_gameday

SCENARIO = """\
apiVersion: dirt/v1
kind: Scenario
metadata:
  name: {name}
  description: A small drill for game-day tests.
steady_state:
  - check: exec
    command: "true"
inject:
  - fault: exec
    command: "echo {inject}"
verify:
  - check: exec
    command: "true"
"""

GOOD = """\
apiVersion: dirt/v1
kind: GameDay
metadata:
  name: quarterly
  owner: platform
participants:
  - {name: Ann, role: facilitator, contact: ann@example.org}
  - {name: Bob, role: approver}
vars:
  who: everyone
drills:
  - scenario: drills/api.yaml
    depends_on: [etcd]
    weight: 2
  - scenario: drills/etcd.yaml
    every: 90d
    vars: {who: etcd}
schedule:
  cron: "0 10 * * 2"
  timezone: Europe/Berlin
  jitter: 15m
  skip_when_firing: [KubeAPIDown]
  blackouts:
    - name: year-end
      freeze: {from: 2027-12-20, to: 2028-01-02}
    - weekly: {days: [sat, sun]}
notify:
  - url: http://127.0.0.1:8080/hook
    format: slack
approval:
  webhook: http://127.0.0.1:8080/approve
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def drills(project) -> Path:
    """Two small scenarios under drills/; one needs a variable the game day gives it."""
    write(project.root / "drills" / "api.yaml", SCENARIO.format(name="api-down", inject="api"))
    write(project.root / "drills" / "etcd.yaml", SCENARIO.format(name="etcd-loss", inject="{{ who }}"))
    return project.root


def messages(exc: pytest.ExceptionInfo[ScenarioError], root: Path) -> list[str]:
    return [str(p).replace(str(root) + os.sep, "") for p in exc.value.problems + exc.value.warnings]


def test_a_valid_game_day_loads_into_a_plan(drills: Path) -> None:
    path = write(drills / "quarterly.yaml", GOOD)
    day = load_gameday(path, known_targets=["fake", "guarded"])
    assert day.name == "quarterly"
    assert [d.id for d in day.drills] == ["api", "etcd"]
    assert [d.id for d in day.order()] == ["etcd", "api"]  # api waits for etcd
    assert day.drill_paths == {"api": (drills / "drills" / "api.yaml").resolve(),
                               "etcd": (drills / "drills" / "etcd.yaml").resolve()}
    assert day.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert day.document.drills[1].every == 90 * 86400
    assert day.schedule is not None and day.schedule.jitter == 900
    assert day.approvers() == ["Bob"]
    assert day.warnings == ()
    assert day.path == path.resolve()


def test_every_mistake_is_reported_at_its_line_at_once(drills: Path) -> None:
    write(drills / "drills" / "broken.yaml", SCENARIO.format(name="broken", inject="x").replace("fault: exec",
                                                                                               "fault: exek"))
    path = write(drills / "bad.yaml", """\
        apiVersion: dirt/v2
        kind: GameDay
        metadata:
          name: Bad Name
          ownr: me
        participants:
          - {name: Ann, role: facilitatr}
        target: fak
        vars: {who: x}
        drills:
          - scenario: drills/api.yaml
            depends_on: [etcd, nope]
          - scenario: drills/etcd.yaml
            depends_on: [api]
          - scenario: drills/apii.yaml
          - scenario: drills/api.yaml
          - scenario: drills/broken.yaml
            on_failure: later
        schedule:
          cron: "0 10 * *"
          timezone: Europe/Berlim
          blackouts:
            - dates: {from: 2027-12-20, to: 2027-12-01}
            - weekly: {days: [sat], from: "22:00", to: "06:00"}
            - weekly: {days: [sun]}
              freeze: {from: 2027-12-20, to: 2027-12-21}
        notify:
          - url: ftp://example.org/hook
        approval:
          webhook: "http://[::1"
          approvers: [Carl, Carl]
        """)
    with pytest.raises(ScenarioError) as exc:
        load_gameday(path, known_targets=["fake", "guarded"])
    assert messages(exc, drills) == [
        "bad.yaml:1:13: apiVersion 'dirt/v2' is not supported (write 'apiVersion: dirt/v1')",
        "bad.yaml:4:9: metadata.name: a string ('Bad Name') has the wrong form (use lowercase letters, digits and "
        "'-', starting and ending with a letter or digit)",
        "bad.yaml:5:3: unknown field 'ownr' (did you mean 'owner'?)",
        "bad.yaml:7:23: participants.0.role: must be 'facilitator', 'responder', 'observer' or 'approver', "
        "got a string ('facilitatr')",
        "bad.yaml:8:9: unknown target 'fak' (did you mean 'fake'?)",
        "bad.yaml:12:17: depends_on goes round in a circle: api -> etcd -> api (a drill can only wait for drills "
        "that do not wait for it)",
        "bad.yaml:12:24: depends_on names no drill of this day: 'nope' (drills: api, etcd, apii, broken)",
        "bad.yaml:15:15: scenario file 'drills/apii.yaml' not found (did you mean 'drills/api.yaml'?)",
        "bad.yaml:16:15: drill id 'api' is used twice (first on line 11) (give each drill its own 'name:')",
        "bad.yaml:17:15: drill 'broken': scenario 'drills/broken.yaml' has 1 problem(s) (listed below)",
        "drills/broken.yaml:10:12: unknown fault 'exek' (did you mean 'exec'?)",
        "bad.yaml:18:17: drills.4.on_failure: must be 'stop' or 'continue', got a string ('later')",
        "bad.yaml:20:9: cron '0 10 * *' has 4 field(s); dirt reads five: minute hour day-of-month month "
        "day-of-week (e.g. '0 10 * * 2' is 10:00 on Tuesdays)",
        "bad.yaml:21:13: unknown time zone 'Europe/Berlim' (did you mean 'Europe/Berlin'?)",
        "bad.yaml:23:37: dates: 'to' (2027-12-01) is before 'from' (2027-12-20) (swap them)",
        "bad.yaml:24:48: weekly: 'to' (06:00) is not after 'from' (22:00) (a window over midnight is two: "
        "one 'to: \"24:00\"', one 'from: \"00:00\"' the next day)",
        "bad.yaml:25:7: schedule.blackouts.2: give exactly one of 'dates', 'freeze' or 'weekly'",
        "bad.yaml:28:10: notify.0.url: 'ftp://example.org/hook' must start with http:// or https://",
        "bad.yaml:30:12: approval.webhook: 'http://[::1' is not a valid URL (Invalid IPv6 URL)",
        "bad.yaml:31:21: approver 'Carl' is listed twice",
        "bad.yaml:6:1: warning: no participant has role facilitator (name who runs the day: a participant with "
        "'role: facilitator')",
        "bad.yaml:31:15: warning: approver 'Carl' is not among the participants (add them to 'participants:')",
    ]
    shown = exc.value.show().splitlines()
    assert [line.split(":")[1] for line in shown if line.startswith(str(path))] == sorted(
        [line.split(":")[1] for line in shown if line.startswith(str(path))], key=int)  # in file order


@pytest.mark.parametrize(("schedule", "expected"), [
    ('cron: "0 10 * * *"\n  jitter: 1d', "3:11: jitter 24h00m is not shorter than the time between two cron times "
                                         "(24h00m) (a delayed run would meet the next one; shorten the jitter)"),
    ('cron: "0 0 30 2 *"', "2:9: cron '0 0 30 2 *' never matches a date (check the day of month against the month)"),
    ('cron: "61 10 * * *"', "2:9: '61 10 * * *' is not a valid cron expression (e.g. '0 10 * * 2' is 10:00 on "
                            "Tuesdays)"),
    ('cron: "@dialy"', "2:9: unknown cron nickname '@dialy' (did you mean '@daily'?)"),
    ('cron: "@weekly"\n  timezone: "../etc/passwd"', "3:13: unknown time zone '../etc/passwd' (give an IANA name "
                                                     "such as Europe/Berlin, America/New_York or UTC)"),
])
def test_schedule_mistakes_are_located(drills: Path, schedule: str, expected: str) -> None:
    path = write(drills / "day.yaml", f"schedule:\n  {schedule}\n" + GOOD.split("schedule:")[0].replace(
        "apiVersion", "apiVersion", 1))
    with pytest.raises(ScenarioError) as exc:
        load_gameday(path)
    assert messages(exc, drills) == [f"day.yaml:{expected}"]


def test_a_scenario_given_as_a_game_day_says_so(drills: Path) -> None:
    with pytest.raises(ScenarioError) as exc:
        load_gameday(drills / "drills" / "api.yaml")
    assert messages(exc, drills)[:2] == [
        "drills/api.yaml:1:1: missing required field 'drills' in the game day (add 'drills:')",
        "drills/api.yaml:2:7: this is a scenario, not a game day (check it with `dirt validate`, or list it under "
        "'drills:' of a game day)",
    ]


def test_a_drill_that_is_not_a_scenario_is_refused(drills: Path) -> None:
    write(drills / "drills" / "manifest.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    path = write(drills / "day.yaml", GOOD.replace("drills/etcd.yaml", "drills/manifest.yaml").replace(
        "depends_on: [etcd]", "depends_on: [manifest]"))
    with pytest.raises(ScenarioError) as exc:
        load_gameday(path)
    assert messages(exc, drills) == ["day.yaml:15:15: 'drills/manifest.yaml' is not a scenario (kind ConfigMap) "
                                     "(a drill runs a file with 'kind: Scenario')"]


def test_drill_variables_reach_the_scenario(drills: Path) -> None:
    """etcd.yaml uses {{ who }} without declaring it: the day's vars (or the drill's) must give it."""
    without = write(drills / "day.yaml", GOOD.replace("vars:\n  who: everyone\n", "").replace(
        "    vars: {who: etcd}\n", ""))
    with pytest.raises(ScenarioError) as exc:
        load_gameday(without)
    found = messages(exc, drills)
    assert found[0] == "day.yaml:13:15: drill 'etcd': scenario 'drills/etcd.yaml' has 1 problem(s) (listed below)"
    assert found[1].startswith("drills/etcd.yaml:10:5: unknown variable '{{ who }}'")
    assert load_gameday(without, variables={"who": "cli"}).name == "quarterly"


def test_unreadable_and_malformed_files_are_one_located_line(drills: Path) -> None:
    fifo = drills / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ScenarioError) as exc:
        load_gameday(fifo)
    assert len(exc.value.problems) == 1 and "FIFO" in str(exc.value)
    broken = write(drills / "broken.yaml", "apiVersion: dirt/v1\nkind: GameDay\ndrills: [\n")
    with pytest.raises(ScenarioError) as exc:
        load_gameday(broken)
    assert len(exc.value.problems) == 1 and str(exc.value).startswith(f"{broken}:4:1: YAML syntax error")
    listed = write(drills / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="a game day must be a YAML mapping"):
        load_gameday(listed)


def test_warnings_do_not_stop_a_day(drills: Path) -> None:
    path = write(drills / "day.yaml", GOOD.replace("role: facilitator", "role: observer").replace(
        "role: approver", "role: responder").replace("approval:\n  webhook", "approval:\n  approvers: []\n  webhook"))
    day = load_gameday(path)
    assert [str(w).replace(str(drills) + os.sep, "") for w in day.warnings] == [
        "day.yaml:6:1: warning: no participant has role facilitator (name who runs the day: a participant with "
        "'role: facilitator')",
        "day.yaml:30:1: warning: the approval names no approver: any --approved-by NAME is accepted (list "
        "'approvers:', or give a participant 'role: approver')",
    ]


def test_approved_by_must_be_an_approver_when_there_are_some(drills: Path) -> None:
    day = load_gameday(write(drills / "day.yaml", GOOD))
    assert approved_by_problem(day, "Bob") is None
    assert approved_by_problem(day, "Bobb") == "'Bobb' is not an approver of game day 'quarterly' (did you mean 'Bob'?)"
    assert approved_by_problem(day, " ") == "--approved-by needs a name"
    assert "control characters" in (approved_by_problem(day, "Bob\x1b[2J") or "")
    open_day = load_gameday(write(drills / "open.yaml", GOOD.replace("role: approver", "role: observer")))
    assert approved_by_problem(open_day, "Anyone") is None


def test_every_accepts_long_intervals_but_not_absurd_ones(drills: Path) -> None:
    path = write(drills / "day.yaml", GOOD.replace("every: 90d", "every: 4000d"))
    with pytest.raises(ScenarioError) as exc:
        load_gameday(path)
    assert messages(exc, drills) == ["day.yaml:16:12: drills.1.every: '4000d' is out of range: at most 3650d"]


def test_folders_are_searched_for_game_days_only(drills: Path) -> None:
    write(drills / "days" / "q.yaml", GOOD)
    write(drills / "days" / "typo.yml", "apiVersion: dirt/v1\nkind: Gameday\n")
    write(drills / "days" / "other.yaml", "apiVersion: v1\nkind: ConfigMap\n")
    assert [p.name for p in gameday_files([drills / "days"])] == ["q.yaml", "typo.yml"]


# -- the command line ---------------------------------------------------------------------


def test_cli_validate_says_ok_or_lists_problems_with_exit_2(drills: Path, capsys: pytest.CaptureFixture) -> None:
    write(drills / "days" / "good.yaml", GOOD.replace("drills/", "../drills/"))
    assert exit_code(["gameday", "validate", "days"]) == 0
    out = capsys.readouterr().out
    assert "ok  days/good.yaml  (quarterly: 2 drill(s), cron '0 10 * * 2' in Europe/Berlin)" in out
    assert "1 valid, 0 invalid" in out
    write(drills / "days" / "bad.yaml", GOOD.replace("drills/", "../drills/").replace("target", "").replace(
        "cron: \"0 10 * * 2\"", "cron: \"0 10 * * 8\""))
    assert exit_code(["gameday", "validate", "days"]) == 2
    captured = capsys.readouterr()
    assert "days/bad.yaml:19:9: '0 10 * * 8' is not a valid cron expression" in captured.err
    assert "dirt: error: 1 valid, 1 invalid" in captured.err
    assert "Traceback" not in captured.err
    assert exit_code(["gameday", "validate", "nowhere"]) == 2


def test_cli_next_lists_runs_and_marks_blackouts(drills: Path, capsys: pytest.CaptureFixture) -> None:
    """Tuesdays at 10:00 Berlin time, 15 minutes of jitter; the year-end freeze covers Tue 21 and 28 Dec 2027."""
    write(drills / "day.yaml", GOOD)
    assert exit_code(["gameday", "next", "day.yaml", "--after", "2027-12-10T00:00", "--count", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["after"] == "2027-12-10T00:00:00+01:00"  # read in the schedule's zone
    cron_times = [(o["cron_at"], o["status"], o["reason"]) for o in data["occurrences"]]
    assert cron_times == [
        ("2027-12-14T10:00:00+01:00", "run", None),
        ("2027-12-21T10:00:00+01:00", "blackout", "year-end"),
        ("2027-12-28T10:00:00+01:00", "blackout", "year-end"),
        ("2028-01-04T10:00:00+01:00", "run", None),
        ("2028-01-11T10:00:00+01:00", "run", None),
    ]
    assert data["schedule"]["skip_when_firing"] == ["KubeAPIDown"] and data["seed"] == "quarterly"
    assert "checked when a run starts" in data["skip_when_firing_note"]
    assert exit_code(["gameday", "next", "day.yaml", "--after", "2027-12-10T00:00+00:00", "--count", "1"]) == 0
    text = capsys.readouterr().out
    assert "game day quarterly: cron '0 10 * * 2' in Europe/Berlin, jitter up to 15m00s" in text
    assert "  RUN      2027-12-14 Tue 10:" in text
    assert "skip_when_firing: checked when a run starts, not known in advance: a run is skipped while KubeAPIDown " \
           "fires" in text


def test_cli_next_refuses_what_it_cannot_list(drills: Path, capsys: pytest.CaptureFixture) -> None:
    write(drills / "day.yaml", GOOD)
    unscheduled = GOOD.split("schedule:")[0] + "notify:" + GOOD.split("notify:")[1]
    write(drills / "manual.yaml", unscheduled)
    assert exit_code(["gameday", "next", "manual.yaml"]) == 2
    assert "has no schedule" in capsys.readouterr().err
    assert exit_code(["gameday", "next", "day.yaml", "--after", "soon"]) == 2
    assert "--after 'soon' is not an ISO-8601 date-time" in capsys.readouterr().err
    assert exit_code(["gameday", "next", "day.yaml", "--count", "1001"]) == 2
    blocked = GOOD.replace("weekly: {days: [sat, sun]}", "weekly: {days: [tue]}")
    write(drills / "blocked.yaml", blocked)
    assert exit_code(["gameday", "next", "blocked.yaml", "--after", "2027-01-01T00:00Z"]) == 2
    assert "the blackouts cover (nearly) every one" in capsys.readouterr().err


def test_cli_schema_of_game_days(project, capsys: pytest.CaptureFixture) -> None:
    assert exit_code(["schema", "--kind", "gameday"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "dirt game day (apiVersion dirt/v1, kind GameDay)"
    assert {"drills", "schedule", "notify", "approval", "participants"} <= set(schema["properties"])
    assert exit_code(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"].startswith("dirt scenario")

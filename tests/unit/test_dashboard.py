"""reports/index.html as the team's dashboard: sparklines per scenario, scores, overdue marks, game days.

The run folders are built from two real report.json files (a passed control-plane-down run and
an etcd-loss run whose alert never fired), with run ids, dates and timings changed to draw a trend.
"""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dirt.history.analysis import run_score
from dirt.report import update_index
from dirt.report.dashboard import MAX_POINTS, SeriesPoint, scenario_rows, sparkline, worst_mttd
from dirt.report.render import to_html

DATA = Path(__file__).parent / "data" / "dashboard"
PASSED = json.loads((DATA / "control-plane-down.passed.json").read_text())
FAILED = json.loads((DATA / "etcd-loss.failed.json").read_text())
HOSTILE = '<script>alert("x")</script>\'&amp;'
#: control-plane-down, oldest first: MTTR falls from 20s to 6s, MTTD from 9s to 3s.
TREND = [(20.0, 9.0), (16.0, 7.5), (12.0, 6.0), (9.0, 4.0), (6.0, 3.0)]


def write_run(report_dir: Path, base: dict[str, Any], day: int, *, scenario: str | None = None,
              mttr: float | None = None, mttd: dict[str, float | None] | None = None) -> str:
    """A run folder with a report.json (``base`` with new id, date, timings) and its real report.html."""
    report = copy.deepcopy(base)
    name = scenario or report["scenario"]["name"]
    run_id = f"202610{day:02d}-090000-{name.replace('/', '_')[:20]}-{day:04x}"
    report["run_id"] = run_id
    report["scenario"]["name"] = name
    report["started_at"] = f"2026-10-{day:02d}T09:00:00.000Z"
    if mttr is not None:
        report["timings"]["mttr_seconds"] = mttr
    if mttd is not None:
        report["timings"]["mttd_seconds"] = mttd
    folder = report_dir / run_id
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps(report))
    (folder / "report.html").write_text(to_html(report))
    return run_id


def write_dashboard_reports(report_dir: Path) -> dict[str, Any]:
    """Five control-plane-down runs (a falling trend), three etcd-loss runs (the first failed, its alert
    never fired), one run of a scenario with a hostile name, and a game day of two drills and a skipped one."""
    trend = [write_run(report_dir, PASSED, day + 1, mttr=mttr, mttd={"KubeAPIDown": mttd})
             for day, (mttr, mttd) in enumerate(TREND)]
    etcd = [write_run(report_dir, FAILED, 6)]
    etcd += [write_run(report_dir, PASSED, day, scenario="etcd-loss", mttr=8.0, mttd={"etcdDataLoss": 3.0})
             for day in (7, 8)]
    hostile = write_run(report_dir, PASSED, 9, scenario=HOSTILE)
    gameday = report_dir / "gamedays" / "20261010-100000-quarterly-ab12"
    gameday.mkdir(parents=True)
    (gameday / "report.html").write_text("<!DOCTYPE html><title>game day</title>")
    (gameday / "report.json").write_text(json.dumps({
        "run_id": gameday.name, "name": "quarterly <dirt>", "verdict": "failed", "score": 70.0,
        "started_at": "2026-10-10T10:00:00Z", "ended_at": "2026-10-10T10:20:00Z",
        "drills": [
            {"id": "api", "scenario": "control-plane-down", "run_id": trend[-1], "verdict": "passed",
             "weight": 1, "score": 95.0, "report": f"../../{trend[-1]}/report.html"},
            {"id": "etcd", "scenario": "scenarios/etcd-loss.yaml", "name": "etcd-loss", "verdict": "failed",
             "weight": 2, "score": 30.0, "report_href": f"../../{etcd[0]}/report.html"},  # as dirt.report.gameday
            {"id": "wipe", "scenario": "namespace-deletion", "run_id": None, "verdict": "not-run", "weight": 1,
             "score": None, "report": None},
        ],
    }))
    return {"trend": trend, "etcd": etcd, "hostile": hostile, "gameday": gameday.name}


class Elements(HTMLParser):
    """Every start tag with its attributes and the attributes of its enclosing elements."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self, page: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str], list[tuple[str, dict[str, str]]]]] = []
        self.stack: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.placed: list[tuple[str, list[tuple[str, dict[str, str]]]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = (tag, {k: v or "" for k, v in attrs})
        self.found.append((*element, list(self.stack)))
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}, list(self.stack)))

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        self.placed.append((data, list(self.stack)))

    def text_inside(self, **where: str) -> str:
        """The text inside elements whose ancestors carry every attribute value in ``where``."""
        return "".join(t for t, stack in self.placed if _within(stack, where))

    def inside(self, tag: str, **where: str) -> list[tuple[str, dict[str, str], list[tuple[str, dict[str, str]]]]]:
        """Elements ``tag`` whose ancestors carry every attribute value in ``where``."""
        return [e for e in self.found if e[0] == tag and _within(e[2], where)]


def _within(stack: list[tuple[str, dict[str, str]]], where: dict[str, str]) -> bool:
    """Some enclosing element carries each attribute (``data_scenario`` -> ``data-scenario``, ``class_``)."""
    return all(any(a.get(k.rstrip("_").replace("_", "-")) == v for _, a in stack) for k, v in where.items())


@pytest.fixture
def dashboard(tmp_path: Path) -> tuple[Path, dict[str, Any], Elements]:
    ids = write_dashboard_reports(tmp_path)
    page = update_index(tmp_path, overdue={"etcd-loss": "last run 40 days ago; expected every 7 days",
                                           "cluster-deletion": "never run"}).read_text()
    return tmp_path, ids, Elements(page)


# -- the geometry ----------------------------------------------------------------------------

def test_sparkline_points_follow_known_mttrs() -> None:
    line = sparkline([SeriesPoint(f"2026-10-0{i}", v, "passed", f"r{i}/report.html")
                      for i, v in enumerate([10.0, 20.0, 40.0], 1)], width=108, height=36, pad=4)
    # x evenly from pad to width - pad; y from the bottom (0s) to the top (the largest value, 40s)
    assert [(p.x, p.y) for p in line.points] == [(4.0, 25.0), (54.0, 18.0), (104.0, 4.0)]
    assert line.polyline == "4.0,25.0 54.0,18.0 104.0,4.0"
    assert line.top == 40.0 and line.missing == ()
    assert line.points[0].title == "10.0s · 2026-10-01 · passed"


def test_a_single_run_sits_in_the_middle_and_only_the_last_runs_are_drawn() -> None:
    one = sparkline([SeriesPoint("t", 5.0, "passed", "a")], width=100, height=30, pad=4)
    assert [(p.x, p.y) for p in one.points] == [(50.0, 4.0)]
    many = sparkline([SeriesPoint(str(i), float(i), "passed", "a") for i in range(MAX_POINTS + 25)])
    assert len(many.points) == MAX_POINTS
    assert many.points[0].point.value == 25.0 and many.top == MAX_POINTS + 24


def test_a_failed_run_is_marked_and_a_run_that_measured_nothing_is_a_cross_at_the_top() -> None:
    line = sparkline([SeriesPoint("a", 4.0, "passed", "a"), SeriesPoint("b", 9.0, "failed", "b"),
                      SeriesPoint("c", None, "aborted", "c", "KubeAPIDown not detected")], pad=4)
    assert [p.point.failed for p in line.points] == [False, True]
    assert [(p.y, p.point.failed) for p in line.missing] == [(4.0, True)]
    assert line.missing[0].title == "not measured (KubeAPIDown not detected) · c · aborted"


def test_mttd_is_the_slowest_alert_and_an_alert_that_never_fired_is_not_detected() -> None:
    assert worst_mttd({"KubeAPIDown": 3.0, "etcdMembersDown": 4.5}) == (4.5, "etcdMembersDown")
    assert worst_mttd({"KubeAPIDown": 3.0, "etcdDataLoss": None}) == (None, "etcdDataLoss not detected")


def test_scenario_rows_hold_a_point_per_run_oldest_first(tmp_path: Path) -> None:
    runs = [{"scenario": "s", "started_at": f"2026-10-0{i}", "verdict": "passed", "href": f"{i}/report.html",
             "mttr": mttr, "mttd": {"A": mttd}, "score": score}
            for i, (mttr, mttd, score) in enumerate([(9.0, 2.0, 10.0), (6.0, 1.0, 20.0), (3.0, 1.5, 90.0)], 1)]
    runs += [{**runs[0], "started_at": f"2026-10-0{i}", "score": 100.0} for i in (4, 5, 6)]
    (row,) = scenario_rows(list(reversed(runs)), {})
    assert row["runs"] == 6 and row["last"]["started_at"] == "2026-10-06" and row["overdue"] is None
    assert [p.point.value for p in row["mttr"].points] == [9.0, 6.0, 3.0, 9.0, 9.0, 9.0]
    assert [p.point.value for p in row["mttd"].points] == [2.0, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert row["score"] == pytest.approx((20 + 90 + 300) / 5)  # the last five runs


# -- the page --------------------------------------------------------------------------------

def test_each_scenario_has_sparklines_with_a_point_per_run_and_its_score(dashboard) -> None:
    _, _, page = dashboard
    assert 0 < run_score(FAILED) < run_score(PASSED) == 100.0
    scores = {name: page.text_inside(data_scenario=name, class_="score")
              for name in ("control-plane-down", "etcd-loss", "cluster-deletion")}
    assert scores == {"control-plane-down": "100", "etcd-loss": f"{(run_score(FAILED) + 200) / 3:.0f}",
                      "cluster-deletion": "-"}  # the mean of the last runs' scores; never run: none
    for kind, expected in (("MTTR", [20.0, 16.0, 12.0, 9.0, 6.0]), ("MTTD", [9.0, 7.5, 6.0, 4.0, 3.0])):
        circles = page.inside("circle", data_scenario="control-plane-down", data_kind=kind)
        assert len(circles) == len(TREND)
        ys = [float(c[1]["cy"]) for c in circles]
        assert ys == sorted(ys), f"{kind} falls, so its points go down the chart: {ys}"
    titles = [t for t in page.text if t.startswith("20.0s · 2026-10-01")]
    assert titles, "each point carries its value and date as a tooltip"


def test_the_failed_run_is_red_and_its_undetected_alert_is_a_cross(dashboard) -> None:
    _, ids, page = dashboard
    mttr = page.inside("circle", data_scenario="etcd-loss", data_kind="MTTR")
    assert [c[1]["fill"] for c in mttr] == ["#c62828", "#1565c0", "#1565c0"]
    assert "failed-run" in mttr[0][1]["class"]
    crosses = page.inside("path", data_scenario="etcd-loss", data_kind="MTTD")
    assert len(crosses) == 1 and crosses[0][1]["stroke"] == "#c62828"
    assert len(page.inside("circle", data_scenario="etcd-loss", data_kind="MTTD")) == 2
    assert any("etcdDataLoss not detected" in t for t in page.text)
    links = [a[1]["href"] for a in page.inside("a", data_scenario="etcd-loss") if "last-run" in a[1].get("class", "")]
    assert links == [f"{ids['etcd'][-1]}/report.html"]


def test_overdue_scenarios_are_marked_even_when_they_never_ran(dashboard) -> None:
    _, _, page = dashboard
    rows = {e[1]["data-scenario"]: e[1]["class"] for e in page.found if e[0] == "tr" and "data-scenario" in e[1]}
    assert rows["etcd-loss"] == "scenario overdue" and rows["cluster-deletion"] == "scenario overdue"
    assert rows["control-plane-down"] == "scenario"
    assert "last run 40 days ago; expected every 7 days" in page.text
    assert "never run" in page.text


def test_a_hostile_scenario_name_is_escaped_everywhere(dashboard) -> None:
    root, _, page = dashboard
    html = (root / "index.html").read_text()
    assert "<script" not in html
    assert HOSTILE not in html and "&lt;script&gt;alert(" in html
    assert HOSTILE in {e[1].get("data-scenario") for e in page.found}  # round-trips as an attribute value
    assert HOSTILE in page.text


def test_game_days_are_listed_with_links_to_their_drills(dashboard) -> None:
    root, ids, page = dashboard
    (gameday,) = [e for e in page.found if e[0] == "div" and "data-gameday" in e[1]]
    assert gameday[1]["data-gameday"] == "quarterly <dirt>"
    drills = page.inside("a", data_gameday="quarterly <dirt>")
    hrefs = [a[1]["href"] for a in drills]
    assert hrefs == [f"gamedays/{ids['gameday']}/report.html", f"{ids['trend'][-1]}/report.html",
                     f"{ids['etcd'][0]}/report.html"]  # the skipped drill has no report
    assert all((root / h).is_file() for h in hrefs)
    assert len(page.inside("tr", data_gameday="quarterly <dirt>")) == 4  # header + three drills
    assert page.text_inside(data_gameday="quarterly <dirt>", class_="gameday-drill").count("etcd-loss") == 1
    assert "not-run" in page.text
    assert "70" in page.text


def test_runs_stay_listed_newest_first_and_damaged_game_days_are_named(tmp_path: Path) -> None:
    ids = write_dashboard_reports(tmp_path)
    broken = tmp_path / "gamedays" / "broken"
    broken.mkdir()
    (broken / "report.json").write_text("[]")
    (tmp_path / "gamedays" / "evil").mkdir()
    (tmp_path / "gamedays" / "evil" / "report.json").write_text(json.dumps(
        {"name": "evil", "drills": [{"id": "x", "run_id": "../../etc", "report": "/etc/passwd"}, "junk"]}))
    page = Elements(update_index(tmp_path).read_text())  # the old signature: only the folder
    runs = [e[1]["href"] for e in page.found if e[0] == "a" and any(a.get("class") == "run" for _, a in e[2])]
    assert runs[0] == quote(f"{ids['hostile']}/report.html") and runs[-1] == f"{ids['trend'][0]}/report.html"
    assert len(runs) == 9
    assert "gamedays/broken" in page.text
    assert [e[1]["data-gameday"] for e in page.found if e[0] == "div" and "data-gameday" in e[1]] == [
        "quarterly <dirt>", "evil"]
    assert len(page.inside("tr", data_gameday="evil")) == 2  # the drill that is not a dict is left out
    assert page.inside("a", data_gameday="evil") == []  # no link leaves the reports folder


def test_game_days_kept_in_another_folder_are_linked_relative_to_the_index(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    ids = write_dashboard_reports(reports)
    elsewhere = tmp_path / "days"
    (reports / "gamedays").rename(elsewhere)
    page = Elements(update_index(reports, gamedays_dir=elsewhere).read_text())
    hrefs = [a[1]["href"] for a in page.inside("a", data_gameday="quarterly <dirt>")]
    # the etcd drill names its report only relative to the game day's old folder: no link rather than a dead one
    assert hrefs == [f"../days/{ids['gameday']}/report.html", f"{ids['trend'][-1]}/report.html"]
    assert all((reports / h).is_file() for h in hrefs)

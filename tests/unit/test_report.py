"""Reports are a pure function of the journal: render a recorded one and check every format."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dirt.journal import read_journal
from dirt.report import render_run, update_index
from dirt.report.model import build_report
from dirt.report.render import timeline_svg

RECORDED = Path(__file__).parent / "data" / "recorded-journal.jsonl"


@pytest.fixture
def report() -> dict:
    return build_report(read_journal(RECORDED).events)


def test_report_json_has_the_documented_fields(report) -> None:
    assert report["schema_version"] == 2
    for key in ("scenario", "target", "verdict", "started_at", "ended_at", "phases", "expectations",
                "timings", "steps", "errors"):
        assert key in report, key
    assert report["verdict"] == "passed" and report["complete"] is True
    assert [p["name"] for p in report["phases"]] == ["preflight", "inject", "detect", "recover", "verify"]
    assert all(p["status"] == "passed" and p["start"] and p["end"] for p in report["phases"])
    for x in report["expectations"]:
        assert {"name", "kind", "objective_seconds", "measured_seconds", "passed", "detail"} <= x.keys()
    assert report["timings"]["mttd_seconds"]["FakeDown"] == pytest.approx(0.2, abs=0.1)
    assert report["timings"]["mttr_seconds"] > 0
    assert report["timings"]["rpo_seconds"] == {"store": pytest.approx(0, abs=1)}
    run_playbook = next(s for s in report["steps"] if s["driver"] == "playbook.run")
    assert run_playbook["playbook_url"].endswith("playbooks/fake.md#repair-the-thing")
    assert run_playbook["outcome"] == "passed" and run_playbook["seconds"] is not None
    assert {a["name"] for a in report["alerts"]["noise"]} == {"NoisyNeighbour"}


def test_a_journal_written_by_dirt_0_1_still_renders_with_its_faults(report) -> None:
    assert read_journal(RECORDED).schema_version == 1
    fault = report["faults"][0]
    assert (fault["index"], fault["name"], fault["driver"]) == (0, "break it", "fake.fault")
    assert fault["plan"] == ["break fake 'fake', firing FakeDown, NoisyNeighbour"] and fault["verified"] is True
    assert fault["status"] == "verified" and fault["life"] == "still in effect"  # 0.1 recorded no resolutions
    assert report["journal_problems"] == []


def test_report_is_deterministic_from_the_journal(report) -> None:
    again = build_report(read_journal(RECORDED).events)
    assert again == report


def test_every_format_renders_from_a_run_folder(tmp_path) -> None:
    run_dir = tmp_path / "run1"
    run_dir.mkdir()
    shutil.copy(RECORDED, run_dir / "journal.jsonl")
    data = render_run(run_dir)
    assert json.loads((run_dir / "report.json").read_text()) == data

    md = (run_dir / "report.md").read_text()
    assert md.startswith("# Drill report: fake-drill — PASSED")
    assert "| ✅ | FakeDown | alert |" in md
    assert "[Repair the thing](" in md

    junit = ET.parse(run_dir / "junit.xml").getroot()
    suite = junit.find("testsuite")
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases) == len(data["expectations"]) + len(data["steps"])
    assert suite.get("failures") == "0"
    assert any(c.get("name") == "alert: FakeDown" for c in cases)

    html = (run_dir / "report.html").read_text()
    assert "<svg" in html and 'id="timeline"' in html
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for step in data["steps"]:
        assert f'data-step="{step["name"]}"' in html

    index = update_index(tmp_path)
    assert 'href="run1/report.html"' in index.read_text()


def test_a_failed_expectation_becomes_a_junit_failure(report) -> None:
    from dirt.report.render import to_junit

    report["expectations"][0].update(passed=False, detail="FakeDown did not fire within 5s")
    suite = ET.fromstring(to_junit(report)).find("testsuite")
    assert suite.get("failures") == "1"
    failure = suite.find("testcase/failure")
    assert failure.get("message") == "FakeDown did not fire within 5s"


def test_timeline_has_a_lane_per_phase_fault_alert_and_step(report) -> None:
    svg = timeline_svg(report)
    assert svg.count('class="phase"') == 5
    assert svg.count('class="fault"') == 1
    assert 'data-alert="FakeDown"' in svg and 'data-alert="NoisyNeighbour"' in svg
    assert svg.count('class="step"') == len(report["steps"])
    ET.fromstring(svg)  # well-formed XML

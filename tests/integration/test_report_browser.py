"""report.html in real headless Chromium: the timeline and every step render, no console errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dirt.report import render_run
from tests.integration.browser import Browser

RECORDED = Path(__file__).parents[1] / "unit" / "data" / "recorded-journal.jsonl"

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def test_report_html_renders_timeline_and_steps_without_console_errors(tmp_path, browser) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(RECORDED, run_dir / "journal.jsonl")
    report = render_run(run_dir)
    browser.open((run_dir / "report.html").as_uri())

    assert browser.evaluate("document.title").startswith("fake-drill — passed")
    width = browser.evaluate("document.querySelector('#timeline').getBoundingClientRect().width")
    assert width > 300, "the SVG timeline is laid out"
    assert browser.evaluate("document.querySelectorAll('#timeline rect.phase').length") == len(report["phases"])
    assert browser.evaluate("document.querySelectorAll('#timeline rect.step').length") == len(report["steps"])
    rows = browser.evaluate("[...document.querySelectorAll('tr.step-row')].map(r => r.dataset.step)")
    assert rows == [s["name"] for s in report["steps"]]
    links = browser.evaluate("[...document.querySelectorAll('a.playbook-link')].map(a => a.getAttribute('href'))")
    assert links and all("playbooks/fake.md" in href for href in links)
    expectations = browser.evaluate("document.querySelectorAll('tr.expectation').length")
    assert expectations == len(report["expectations"])
    assert browser.errors() == []


def test_the_console_error_check_can_fail(tmp_path, browser) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('boom'); undefinedFunction();</script></body></html>")
    browser.open(page.as_uri())
    errors = browser.errors()
    assert any("boom" in e for e in errors) and len(errors) >= 2

"""report.html and the index dashboard in real headless Chromium: the SVG renders, no console errors."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from dirt.report import render_run, update_index
from tests.integration.browser import Browser
from tests.unit.test_dashboard import HOSTILE, write_dashboard_reports

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


def test_the_dashboard_draws_sparklines_links_and_overdue_marks_without_console_errors(tmp_path, browser) -> None:
    ids = write_dashboard_reports(tmp_path)
    index = update_index(tmp_path, overdue={"etcd-loss": "last run 40 days ago; expected every 7 days"})
    browser.open(index.as_uri())

    points = browser.evaluate("""Object.fromEntries([...document.querySelectorAll('tr.scenario')].map(row => [
        row.dataset.scenario,
        [...row.querySelectorAll('svg.sparkline')]
            .map(s => `${s.dataset.kind}:${s.querySelectorAll('circle.point').length}`)
    ]))""")
    assert points["control-plane-down"] == ["MTTD:5", "MTTR:5"]
    assert points["etcd-loss"] == ["MTTD:2", "MTTR:3"]  # the failed run's alert never fired: a cross, not a point
    assert points[HOSTILE] == ["MTTD:1", "MTTR:1"]
    assert browser.evaluate("document.scripts.length") == 0, "the hostile name stays text"
    box = browser.evaluate("(() => { const r = document.querySelector('tr.scenario svg.sparkline')"
                           ".getBoundingClientRect(); return [r.width, r.height]; })()")
    assert box[0] > 100 and box[1] > 20, f"the sparkline is laid out: {box}"
    mttr = browser.evaluate("""[...document.querySelector('tr.scenario[data-scenario="control-plane-down"] '
        + 'svg[data-kind="MTTR"]').querySelectorAll('circle.point')].map(c => [+c.getAttribute('cy'),
        c.querySelector('title').textContent])""")
    assert [y for y, _ in mttr] == sorted(y for y, _ in mttr), "MTTR falls from 20s to 6s: each point lower"
    assert mttr[0][1].startswith("20.0s · 2026-10-01") and mttr[-1][1].startswith("6.0s · 2026-10-05")
    red = browser.evaluate("""[...document.querySelectorAll('tr.scenario[data-scenario="etcd-loss"] circle.failed-run')]
        .map(c => getComputedStyle(c).fill)""")
    assert red == ["rgb(198, 40, 40)"], red

    overdue = browser.evaluate("""[...document.querySelectorAll('tr.scenario.overdue')].map(r => [r.dataset.scenario,
        r.querySelector('.overdue-mark').innerText, getComputedStyle(r.querySelector('.overdue-mark')).color])""")
    assert overdue == [["etcd-loss", "overdue", "rgb(198, 40, 40)"]]

    hrefs = browser.evaluate("[...document.querySelectorAll('a')].map(a => new URL(a.getAttribute('href'), "
                             "document.baseURI).href)")
    assert len(hrefs) == 9 + 9 + 9 + 3 + 1 + 2  # runs, MTTD and MTTR marks, 3 last runs, game day, 2 drills
    missing = [h for h in hrefs if not Path(unquote(urlparse(h).path)).is_file()]
    assert missing == []
    assert f"gamedays/{ids['gameday']}/report.html" in "\n".join(hrefs)
    assert browser.errors() == []


def test_the_console_error_check_can_fail(tmp_path, browser) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('boom'); undefinedFunction();</script></body></html>")
    browser.open(page.as_uri())
    errors = browser.errors()
    assert any("boom" in e for e in errors) and len(errors) >= 2

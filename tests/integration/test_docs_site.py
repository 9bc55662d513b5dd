"""The documentation site in real headless Chromium: it renders, nothing errs, and its search finds things.

The site is built strict into a temporary folder and served on 127.0.0.1 (search loads its
index over HTTP, as on any web server); a screenshot of the home page is kept with the test's
files for a human to look at.
"""

from __future__ import annotations

import base64
import functools
import os
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.browser import Browser

pytestmark = [pytest.mark.integration, pytest.mark.browser]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's signature
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k != "DIRT_TESTING"} | {"NO_MKDOCS_2_WARNING": "1"}
    built = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
                           cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert built.returncode == 0, built.stderr[-4000:]
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def _wait_for(browser: Browser, expression: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.evaluate(expression)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never true in the page: {expression}")


def test_the_home_page_renders_with_its_navigation_and_no_console_errors(site, browser, tmp_path) -> None:
    browser.open(f"{site}/")
    browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    assert browser.evaluate("document.title").startswith("dirt")
    assert browser.evaluate("document.querySelector('article h1').textContent.trim()").startswith("dirt")
    sections = browser.evaluate("[...document.querySelectorAll('.md-nav__item--section > label, "
                                ".md-nav__item--section > a')].map(e => e.textContent.trim())")
    assert {"How-to guides", "Reference", "Explanation"} <= set(sections), sections
    # the report picture is really loaded, not a broken image
    assert browser.evaluate("[...document.images].filter(i => i.src.endsWith('img/report.png'))"
                            ".every(i => i.complete && i.naturalWidth > 500)")
    shot = browser.call("Page.captureScreenshot", format="png")
    png = base64.b64decode(shot["data"])
    (tmp_path / "docs-home.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    assert browser.errors() == []


def test_search_finds_a_fault_and_leads_to_its_reference(site, browser) -> None:
    browser.open(f"{site}/tutorial/")
    _wait_for(browser, "document.querySelector('.md-search__input') !== null")
    browser.evaluate("""(() => {
        document.querySelector('#__search').checked = true;
        const input = document.querySelector('.md-search__input');
        input.focus();
        input.value = 'etcd.wipe';
        input.dispatchEvent(new Event('input', {bubbles: true}));
        input.dispatchEvent(new KeyboardEvent('keyup', {bubbles: true, key: 'e'}));
        return true;
    })()""")
    hrefs = _wait_for(browser, "(() => { const r = [...document.querySelectorAll('.md-search-result__item a')]"
                               ".map(a => a.getAttribute('href')); return r.length ? r : null; })()")
    assert any("reference/faults/" in href and "#etcd-wipe" in href for href in hrefs), hrefs
    meta = browser.evaluate("document.querySelector('.md-search-result__meta').textContent")
    assert "matching" in meta, meta
    assert browser.errors() == []


def test_the_command_reference_lists_every_command_group(site, browser) -> None:
    browser.open(f"{site}/reference/cli/")
    headings = browser.evaluate("[...document.querySelectorAll('article h2, article h3, article h4')]"
                                ".map(h => h.textContent.trim())")
    for command in ("dirt run", "dirt plan", "dirt sandbox", "dirt sandbox up", "dirt kind build-image",
                    "dirt gameday export"):
        assert any(h.startswith(command) for h in headings), (command, headings)
    assert browser.errors() == []

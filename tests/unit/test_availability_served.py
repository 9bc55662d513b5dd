"""``served_by``: who served each answer of an availability probe (a fleet entry point's ``X-Served-By``).

A drill deletes one member of a fleet; the probe at the entry point records, answer by
answer, the member that served it, and the report shows that the lost member stopped
getting users, the survivors took them, and the rebuilt member took traffic again.
Real HTTP servers on 127.0.0.1 (threads of this test), no mocks.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dirt.app.run import run_one
from dirt.clients import http
from dirt.engine.availability import (
    FAILURE,
    SUCCESS,
    HttpSampler,
    Samples,
    buckets,
    served_counts,
    served_spans,
    span_merge_window,
)
from dirt.engine.runner import RunOptions
from dirt.journal.events import (
    MAX_SERVER_NAME,
    MAX_SERVERS,
    OTHER_SERVER,
    AvailabilityBucket,
    AvailabilityStarted,
    ServerNames,
)
from dirt.report import render_run
from dirt.scenario import load_scenario
from dirt.scenario.model import AvailabilityExpectation
from dirt.scenario.schema import scenario_schema
from dirt.testing import FakeTarget
from tests.conftest import journal_lines
from tests.unit.test_availability import journal, problems, scenario_with


class Entry(BaseHTTPRequestHandler):
    """A pretend fleet entry point: each answer names, in ``X-Served-By``, the member written in
    the server's ``who`` file (none when it is empty); the server notes each in ``seen``."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        member = self.server.who.read_text().strip()
        self.server.seen.append(member)
        self.send_response(200)
        if member:
            self.send_header("X-Served-By", member)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def entry_point(folder: Path) -> Iterator[ThreadingHTTPServer]:
    """The entry point on 127.0.0.1 and a free port (``.url``), serving member "a" until ``served.txt``
    says otherwise; stopped on the way out."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Entry)
    httpd.who, httpd.seen = folder / "served.txt", []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.who.write_text("a")
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def member(tmp_path: Path) -> Iterator[ThreadingHTTPServer]:
    with entry_point(tmp_path) as running:
        yield running


# -- the HTTP client: the headers of an answer --------------------------------------------------


def test_an_answer_carries_the_header_asked_for_whatever_its_case(member) -> None:
    answer = http.timed_get(member.url, timeout=2.0, header="x-served-by")
    assert (answer.status, answer.header) == (200, "a")
    assert http.timed_get(member.url, timeout=2.0, header="X-Not-There").header is None
    assert http.timed_get(member.url, timeout=2.0).header is None
    nobody = http.timed_get("http://127.0.0.1:9/", timeout=1.0, header="X-Served-By")
    assert nobody.status is None and nobody.header is None


def test_a_response_holds_its_headers_lower_cased_and_read_only(member) -> None:
    response = http.request("GET", member.url, timeout=2.0)
    assert response.headers["x-served-by"] == "a" and "X-Served-By" not in response.headers
    with pytest.raises(TypeError):
        response.headers["x-served-by"] = "b"  # type: ignore[index]
    assert dict(http.HttpResponse(200, "", 0.1).headers) == {}


# -- the scenario format --------------------------------------------------------------------------


def test_served_by_names_a_header_of_an_http_probe(project) -> None:
    (probe,) = scenario_with(project, '- http: "http://x/"\n  served_by: X-Served-By\n').expect.availability
    assert probe.served_by == "X-Served-By"
    schema = scenario_schema()["$defs"]["AvailabilityExpectation"]["properties"]["served_by"]
    assert "which member served the users" in json.dumps(schema)


@pytest.mark.parametrize("probe, message", [
    ("- promql: up\n  served_by: X-Served-By", "'served_by' apply only to 'http' probes"),
    ('- http: "http://x/"\n  served_by: "X Served: By"', "'served_by': 'X Served: By' is not a header name"),
])
def test_a_bad_served_by_is_a_located_problem(project, probe: str, message: str) -> None:
    lines = problems(project, probe)
    assert any("drill.yaml:" in ln and message in ln for ln in lines), lines


# -- names of who served: hostile input, bounded ----------------------------------------------------


def test_server_names_are_interned_bounded_in_number_and_cut_short() -> None:
    names = ServerNames()
    assert names.index(None) == -1 and names.index("  ") == -1
    assert [names.index(n) for n in ("west", "east", "west")] == [0, 1, 0]
    for i in range(40):
        names.index(f"member-{i}")
    assert len(names.names) == MAX_SERVERS + 1 and names.names[-1] == OTHER_SERVER
    assert names.name("member-39") == OTHER_SERVER and names.name("east") == "east"
    long = ServerNames().name("x" * 1000)
    assert long == "x" * MAX_SERVER_NAME
    assert ServerNames().name("a\nb\x1b[31m") == "a?b?[31m"


# -- statistics on synthetic samples ------------------------------------------------------------


def fleet(rows: list[tuple[float, int, str | None]]) -> Samples:
    samples = Samples()
    for at, ok, who in rows:
        samples.add(at, 0.01 if who else math.nan, 1.0 if ok == SUCCESS else 0.0, ok, who)
    return samples


def test_a_sample_stores_an_index_into_a_small_table_of_names() -> None:
    samples = fleet([(0.0, SUCCESS, "west"), (0.2, SUCCESS, "east"), (0.4, FAILURE, None), (0.6, SUCCESS, "west")])
    assert samples.served.typecode == "h" and list(samples.served) == [0, 1, -1, 0]
    assert samples.servers.names == ["west", "east"]
    plain = Samples()
    plain.add(0.0, 0.01, 1.0, SUCCESS)  # a probe without served_by
    assert list(plain.served) == [-1] and served_counts(plain) == {}


def test_buckets_and_totals_count_only_the_successful_answers_of_each_server() -> None:
    samples = fleet([(100.1, SUCCESS, "west"), (100.5, FAILURE, "west"), (100.7, SUCCESS, "east"),
                     (101.2, FAILURE, None), (101.6, SUCCESS, "east")])
    rows = buckets(samples, 0, len(samples))
    assert [(b.at, b.served) for b in rows] == [(100, {"west": 1, "east": 1}), (101, {"east": 1})]
    assert served_counts(samples) == {"west": 1, "east": 2}
    assert buckets(fleet([(5.0, FAILURE, "west")]), 0, 1)[0].served == {}


def test_a_lost_member_shows_as_two_spans_around_the_gap_and_round_robin_is_no_gap() -> None:
    """west and east take turns every 200 ms; west is gone from 4 s to 10 s, then back."""
    rows = []
    for i in range(75):
        at = 1000.0 + i * 0.2
        west_turn = i % 2 == 0 and not (4.0 <= at - 1000.0 < 10.0)
        rows.append((at, SUCCESS, "west" if west_turn else "east"))
    samples = fleet(rows)
    merge = span_merge_window(0.2, len(served_counts(samples)))
    assert merge == pytest.approx(1.2)
    spans = served_spans(samples, merge)
    assert spans["east"] == [(1000.2, 1014.6)]
    assert spans["west"] == [(1000.0, 1003.6), (1010.0, 1014.8)]
    assert len(served_spans(samples, 0.3)["west"]) > 10  # shorter than a round of turns: each turn a span
    assert served_spans(fleet([(1.0, FAILURE, "west")]), 1.0) == {}


def test_the_http_sampler_records_who_served_even_a_failed_answer(member) -> None:
    spec = AvailabilityExpectation(http=member.url, served_by="X-Served-By", expect_status=[204])
    sample = HttpSampler(spec, member.url).sample()
    assert (sample.ok, sample.reason, sample.served) == (FAILURE, "HTTP 200", "a")
    ok = HttpSampler(spec.model_copy(update={"expect_status": None}), member.url).sample()
    assert (ok.ok, ok.served) == (SUCCESS, "a")


# -- the journal ---------------------------------------------------------------------------------


def test_buckets_of_a_probe_without_served_by_are_written_as_before() -> None:
    assert "served" not in AvailabilityBucket(at=1, n=2).model_dump(mode="json")
    assert AvailabilityBucket(at=1, n=2, served={"west": 2}).model_dump(mode="json")["served"] == {"west": 2}
    assert AvailabilityBucket.model_validate({"at": 1, "n": 2}).served == {}
    started = AvailabilityStarted(name="p", kind="http", interval_seconds=0.2, served_by="X-Served-By")
    assert started.model_dump()["served_by"] == "X-Served-By"


# -- the report, from a hand-written journal ------------------------------------------------------


START = {"event": "run.start", "run_id": "r1", "schema_version": 2, "scenario": {"name": "fleet"},
         "target": {"name": "fake", "provider": "fake"}}
PROBE = {"event": "availability.start", "t": 1.0, "name": "entry", "kind": "http", "url": "http://127.0.0.1:9/",
         "interval_seconds": 0.5, "timeout_seconds": 1.0, "served_by": "X-Served-By"}


def served_buckets(t: float, rows: list[tuple[int, dict[str, int]]]) -> dict:
    """Buckets of two samples a second (more when more answered), every answer a success."""
    out = []
    for at, served in rows:
        answers = sum(served.values())
        out.append({"at": at, "n": max(2, answers), "failed": max(2, answers) - answers, "score": float(answers),
                    "served": served})
    return {"event": "availability.buckets", "t": t, "name": "entry", "buckets": out}


FLEET_BUCKETS = served_buckets(8.0, [(1001, {"west": 1, "east": 1}), (1002, {"west": 1, "east": 1}),
                                     (1003, {"east": 2}), (1004, {"east": 2}), (1005, {"east": 1, "west": 1}),
                                     (1006, {"east": 1, "west": 1})])
RESULT = {"event": "availability.result", "t": 8.0, "name": "entry", "kind": "http", "window_start": 1001.0,
          "window_end": 1007.0, "samples": 12, "successes": 12, "ratio": 1.0, "passed": True,
          "served": {"west": 4, "east": 8},
          "served_spans": {"west": [[1001.0, 1002.5], [1005.0, 1006.5]], "east": [[1001.5, 1006.0]]}}
END = {"event": "run.end", "t": 9.0, "verdict": "passed", "failures": []}


def test_the_report_shows_who_served_when_in_every_format(tmp_path) -> None:
    (tmp_path / "journal.jsonl").write_text(journal(dict(START), dict(PROBE), dict(FLEET_BUCKETS), dict(RESULT),
                                                    dict(END)))
    report = render_run(tmp_path)
    (probe,) = report["availability"]
    assert probe["served_by"] == "X-Served-By" and probe["served"] == {"west": 4, "east": 8}
    assert probe["served_spans"]["west"] == [
        {"start": "1970-01-01T00:16:41.000Z", "end": "1970-01-01T00:16:42.500Z", "start_offset": 1.0,
         "end_offset": 2.5},
        {"start": "1970-01-01T00:16:45.000Z", "end": "1970-01-01T00:16:46.500Z", "start_offset": 5.0,
         "end_offset": 6.5}]
    assert probe["buckets"][2]["served"] == {"east": 2}
    assert json.loads((tmp_path / "report.json").read_text())["availability"][0]["served"] == probe["served"]

    md = (tmp_path / "report.md").read_text()
    assert "Who served entry (`X-Served-By`):" in md
    assert "| west | 4 | 33.3% | +1.0s | +6.5s | +2.5s to +5.0s (2.5s) |" in md
    assert "| east | 8 | 66.7% | +1.5s | +6.0s | none |" in md

    html = (tmp_path / "report.html").read_text()
    assert html.count('class="served-label"') == 2
    west = [line for line in html.split("<rect") if 'data-server="west"' in line]
    assert len(west) == 2  # +1s to +3s, then again from +5s
    assert 'class="served" data-server="east"' in html and "east served +1s to +7s (8 answers)" in html
    assert "served by (a thin lane per server)" in html


def test_a_probe_without_served_by_reports_as_before(tmp_path) -> None:
    plain = {k: v for k, v in PROBE.items() if k != "served_by"}
    rows = {"event": "availability.buckets", "t": 3.0, "name": "entry",
            "buckets": [{"at": 1001, "n": 2, "failed": 0, "score": 2.0}]}
    (tmp_path / "journal.jsonl").write_text(journal(dict(START), plain, rows))
    (probe,) = render_run(tmp_path)["availability"]
    assert probe["served"] == {} and probe["served_spans"] == {} and "served" not in probe["buckets"][0]
    assert "Who served" not in (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "served-label" not in html and "served-by" not in html


def test_a_crashed_run_shows_who_served_from_the_buckets_so_far(tmp_path) -> None:
    (tmp_path / "journal.jsonl").write_text(journal(dict(START), dict(PROBE), dict(FLEET_BUCKETS)))
    (probe,) = render_run(tmp_path)["availability"]
    assert probe["verdict"] is None and probe["served"] == {"west": 4, "east": 8}
    assert [(s["start_offset"], s["end_offset"]) for s in probe["served_spans"]["west"]] == [(1.0, 3.0), (5.0, 7.0)]
    assert "| west | 4 | 33.3% | +1.0s | +7.0s | +3.0s to +5.0s (2.0s) |" in (tmp_path / "report.md").read_text()


def test_hostile_server_names_are_escaped_cut_short_and_bounded(tmp_path) -> None:
    hostile = "<script>alert(1)</script>" + "x" * 200
    many = {hostile: 5} | {f"m{i}|<b>": 1 for i in range(30)}
    rows = served_buckets(3.0, [(1001, many), (1002, {hostile: 2})])
    result = dict(RESULT) | {"served": many, "served_spans": {name: [[1001.0, 1001.5]] for name in many}}
    (tmp_path / "journal.jsonl").write_text(journal(dict(START), dict(PROBE), rows, result, dict(END)))
    (probe,) = render_run(tmp_path)["availability"]
    assert len(probe["served"]) == MAX_SERVERS + 1 and probe["served"][OTHER_SERVER] == 31 - MAX_SERVERS
    assert len(probe["served_spans"]) == MAX_SERVERS + 1
    assert probe["served"][hostile[:MAX_SERVER_NAME]] == 5
    html = (tmp_path / "report.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;xxx" in html
    assert "m0|<b>" not in html and "m0|&lt;b&gt;" in html
    assert html.count('class="served-label"') == MAX_SERVERS + 1
    md = (tmp_path / "report.md").read_text()
    assert "| m0\\|<b> | 1 |" in md  # a table cell cannot be broken out of


# -- a drill: the entry point's answers switch from member a to b and back ----------------------------


def test_a_drill_shows_the_lost_member_stop_the_survivor_take_over_and_the_member_return(project) -> None:
    with entry_point(project.root) as entry:
        text = f"""\
apiVersion: dirt/v1
kind: Scenario
metadata:
  name: member-loss
inject:
  - fault: exec
    name: lose-member-a
    command: "sleep 1; echo b > served.txt"  # the users see a first
    verify: "grep -q b served.txt"
    revert: "echo a > served.txt"
expect:
  availability:
    - name: users at the entry point
      http: "{entry.url}/"
      interval: 100ms
      served_by: X-Served-By
      min_success: 99%
recover:
  - step: wait
    duration: 2s
  - step: exec
    name: member-a-is-back
    command: "echo a > served.txt"
  - step: wait
    duration: 2s
verify:
  - check: http
    url: "{entry.url}/"
    response_headers: {{x-served-by: a}}
    within: 10s
"""
        scenario = load_scenario(project.scenario("fleet", text))
        name, config = project.loaded().target("fake")
        result = run_one(scenario, FakeTarget(name, config, project.root),
                         RunOptions(report_dir=project.reports, handle_signals=False))
    assert result.verdict == "passed", result.failures
    assert entry.seen[0] == "a" and "b" in entry.seen and entry.seen[-1] == "a"

    events = journal_lines(result.run_dir)
    (started,) = [e for e in events if e["event"] == "availability.start"]
    assert started["served_by"] == "X-Served-By"
    rows = [b for e in events if e["event"] == "availability.buckets" for b in e["buckets"]]
    assert {name for b in rows for name in b.get("served", {})} == {"a", "b"}
    (outcome,) = [e for e in events if e["event"] == "availability.result"]
    assert set(outcome["served"]) == {"a", "b"} and sum(outcome["served"].values()) == outcome["successes"]
    a_spans, b_spans = outcome["served_spans"]["a"], outcome["served_spans"]["b"]
    assert len(a_spans) == 2 and len(b_spans) == 1  # a served, stopped while b took over, then again
    assert a_spans[0][1] <= b_spans[0][0] and b_spans[0][1] <= a_spans[1][0]
    check = next(e for e in events if e["event"] == "step.end" and e["section"] == "verify")
    assert check["data"]["headers"] == {"x-served-by": "a"}

    saved = json.loads((result.run_dir / "report.json").read_text())["availability"][0]
    assert saved["served"] == outcome["served"] and len(saved["served_spans"]["a"]) == 2
    md = (result.run_dir / "report.md").read_text()
    assert "Who served users at the entry point (`X-Served-By`):" in md
    assert [line.split(" | ")[0] for line in md.splitlines() if line.startswith(("| a |", "| b |"))] == ["| a", "| b"]
    html = (result.run_dir / "report.html").read_text()
    assert 'class="served" data-server="a"' in html and 'class="served" data-server="b"' in html
    assert html.count('class="served-label"') == 2

"""``expect.availability``: the format, the statistics, and the report drawn from the journal alone."""

from __future__ import annotations

import json
import math
import textwrap

import pytest

from dirt.core.errors import ScenarioError
from dirt.engine.availability import FAILURE, SUCCESS, UNKNOWN, Samples, buckets, judge, longest_outage, summarize
from dirt.report import render_run
from dirt.scenario import load_scenario
from dirt.scenario.model import AvailabilityExpectation
from dirt.scenario.schema import scenario_schema
from tests.conftest import basic_scenario

# -- the scenario format --------------------------------------------------------------------


def scenario_with(project, probes: str):
    expect = "expect:\n  availability:\n" + textwrap.indent(textwrap.dedent(probes).rstrip("\n") + "\n", "    ")
    return load_scenario(project.scenario("drill", basic_scenario(expect=expect)))


def problems(project, probes: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        scenario_with(project, probes)
    return info.value.show().splitlines()


def test_probes_load_with_their_defaults_and_objectives_in_either_spelling(project) -> None:
    scenario = scenario_with(project, """\
        - http: "http://127.0.0.1:8080/health"
          min_success: 99.9%
          max_outage: 2s
        - name: checkout
          promql: sum(rate(ok[30s])) / sum(rate(all[30s]))
          min_success: 0.95
        """)
    http, promql = scenario.expect.availability
    assert (http.kind, http.every, http.timeout, http.max_outage) == ("http", 0.2, 1.0, 2.0)
    assert http.min_success == pytest.approx(0.999)
    assert http.title() == "GET http://127.0.0.1:8080/health"
    assert (promql.kind, promql.every, promql.min_success, promql.title()) == ("promql", 1.0, 0.95, "checkout")


@pytest.mark.parametrize("probe, line, message", [
    ('- http: "http://x/"\n  min_success: 99.9', 23, "99.9 is more than 1: write a percentage as '99.9%'"),
    ('- http: "http://x/"\n  min_success: "most"', 23, "'most' is not a percentage: write it like '99.9%'"),
    ('- http: "http://x/"\n  min_success: 120%', 23, "a success ratio lies between 0% and 100%"),
    ('- http: "http://x/"\n  promql: up', 22, "give exactly one of 'http'"),
    ("- min_success: 99%", 22, "give exactly one of 'http'"),
    ('- http: "ftp://x/"', 22, "must start with http:// or https://"),
    ('- http: "http://x/"\n  interval: 10ms', 22, "an http probe's 'interval' must be at least 50ms"),
    ("- promql: up\n  interval: 500ms", 22, "a promql probe's 'interval' must be at least 1s"),
    ("- promql: up\n  max_latency: 1s", 22, "'max_latency' apply only to 'http' probes"),
    ('- http: "http://x/"\n  max_latency: 2s', 22, "'max_latency' (2s) is longer than 'timeout' (1s)"),
    ('- http: "http://x/"\n  timeout: 1m', 23, "timeout: input should be less than or equal to 30"),
    ('- http: "http://x/"\n  max_outage: soon', 23, "'soon' is not a duration"),
    ('- http: "http://x/"\n  expect_status: [200, 999]', 23, "expect_status.1: input should be less than or equal"),
    ('- http: "http://x/"\n- http: "http://x/"', 21, "'GET http://x/' is used twice (set 'name:')"),
    ('- http: "{{ nowhere }}/health"', 22, "unknown variable '{{ nowhere }}'"),
    ('- http: "{{ who }}/health"', 22, "'world/health' must start with http:// or https://"),
    ('- http: "http://x/{{ who | upper }}"', 22, "filter 'upper' is not allowed"),
    ("- http: http://x/\n  every: 1s", 23, "unknown field 'every'"),
])
def test_a_bad_probe_is_a_located_problem(project, probe: str, line: int, message: str) -> None:
    lines = problems(project, probe)
    located = [ln for ln in lines if f"drill.yaml:{line}:" in ln]
    assert any(message in ln for ln in located), lines


def test_more_probes_than_threads_allowed_is_a_located_problem(project) -> None:
    """Each probe samples on its own thread: a scenario cannot ask for hundreds."""
    probes = "".join(f'- {{name: p{i}, http: "http://x/{i}"}}\n' for i in range(21))
    lines = problems(project, probes)
    assert any("drill.yaml:" in ln and "at most 20 items" in ln for ln in lines), lines
    assert len(scenario_with(project, probes.split("- {name: p20")[0]).expect.availability) == 20


def test_the_json_schema_shows_the_probe_fields() -> None:
    schema = scenario_schema()
    probe = schema["$defs"]["AvailabilityExpectation"]["properties"]
    assert {"http", "promql", "interval", "timeout", "expect_status", "max_latency", "min_success",
            "max_outage", "name"} <= set(probe)
    assert "99.9%" in probe["min_success"]["description"] or "99.9%" in json.dumps(probe["min_success"])
    assert schema["$defs"]["Expect"]["properties"]["availability"]["items"]["$ref"].endswith("AvailabilityExpectation")


# -- statistics on synthetic samples ------------------------------------------------------


def series(rows: list[tuple[float, int]], latency: float = 0.01) -> Samples:
    samples = Samples()
    for at, ok in rows:
        samples.add(at, latency if ok != UNKNOWN else math.nan, 1.0 if ok == SUCCESS else 0.0, ok)
    return samples


def test_the_longest_outage_runs_from_the_first_failure_to_the_next_success() -> None:
    rows = [(0.0, SUCCESS), (1.0, FAILURE), (2.0, SUCCESS), (3.0, FAILURE), (4.0, UNKNOWN), (5.0, FAILURE),
            (6.5, SUCCESS), (7.0, SUCCESS)]
    outage = longest_outage([r[0] for r in rows], [r[1] for r in rows], window_end=8.0)
    assert outage is not None
    assert (outage.start, outage.end, outage.seconds, outage.samples, outage.ongoing) == (3.0, 6.5, 3.5, 3, False)
    summary = summarize(series(rows), window_end=8.0)
    assert (summary.samples, summary.successes, summary.unknown) == (8, 4, 1)
    assert summary.ratio == pytest.approx(0.5)


def test_an_outage_still_running_when_the_window_closes_ends_with_the_window() -> None:
    rows = [(0.0, SUCCESS), (1.0, SUCCESS), (2.0, FAILURE), (3.0, FAILURE)]
    outage = longest_outage([r[0] for r in rows], [r[1] for r in rows], window_end=4.25)
    assert outage is not None and outage.ongoing and outage.seconds == pytest.approx(2.25)
    assert longest_outage([0.0, 1.0], [SUCCESS, SUCCESS], 2.0) is None


def test_the_verdict_weighs_both_objectives_and_an_empty_window_fails() -> None:
    rows = [(i * 0.5, FAILURE if 4 <= i < 8 else SUCCESS) for i in range(20)]  # 2s down out of 10s
    summary = summarize(series(rows), window_end=10.0)
    assert summary.ratio == pytest.approx(0.8)
    spec = AvailabilityExpectation(http="http://x/", min_success="80%", max_outage="2s")
    assert judge(spec, summary)[0] is True
    assert judge(spec.model_copy(update={"min_success": 0.81}), summary) == (
        False, "success 80.0%, objective 81% (80.0% of 20 samples succeeded; longest outage 2.0s)")
    assert judge(spec.model_copy(update={"max_outage": 1.5}), summary)[1].startswith(
        "longest outage 2.0s, objective 1.5s")
    assert judge(spec, summarize(Samples(), 1.0)) == (False, "no sample was taken")
    assert judge(AvailabilityExpectation(http="http://x/"), summarize(Samples(), 1.0))[0] is True


def test_promql_scores_are_averaged_and_latency_percentiles_skip_unanswered_samples() -> None:
    samples = Samples()
    for i, (score, ok) in enumerate([(1.0, SUCCESS), (0.5, FAILURE), (0.0, UNKNOWN), (0.9, FAILURE)]):
        samples.add(float(i), math.nan, score, ok)
    summary = summarize(samples, 4.0)
    assert summary.ratio == pytest.approx(0.6) and summary.p50 is None
    timed = series([(0.0, SUCCESS), (0.1, SUCCESS), (0.2, UNKNOWN)], latency=0.2)
    assert summarize(timed, 1.0).p95 == pytest.approx(0.2)


def test_buckets_hold_one_second_each() -> None:
    samples = series([(100.1, SUCCESS), (100.6, FAILURE), (101.2, UNKNOWN), (103.0, SUCCESS)])
    rows = buckets(samples, 0, len(samples))
    assert [(b.at, b.n, b.failed, b.unknown, b.score) for b in rows] == [
        (100, 2, 1, 0, 1.0), (101, 1, 1, 1, 0.0), (103, 1, 0, 0, 1.0)]
    assert rows[0].p50 == pytest.approx(0.01) and rows[1].p50 is None


# -- the report, from a hand-written journal ----------------------------------------------------


def journal(*events: dict) -> str:
    lines = []
    for seq, event in enumerate(events, 1):
        lines.append(json.dumps({"seq": seq, "ts": 1000.0 + event.pop("t", 0.0), "t": 0.0} | event))
    fixed = []
    for line in lines:
        record = json.loads(line)
        record["t"] = round(record["ts"] - 1000.0, 3)
        fixed.append(json.dumps(record))
    return "\n".join(fixed) + "\n"


START = {"event": "run.start", "run_id": "r1", "schema_version": 2, "scenario": {"name": "shop"},
         "target": {"name": "fake", "provider": "fake"}}
PROBE = {"event": "availability.start", "t": 1.0, "name": "<script>alert(1)</script>", "kind": "http",
         "url": "http://127.0.0.1:9/<b>", "interval_seconds": 0.2, "timeout_seconds": 1.0,
         "min_success": 0.999, "max_outage_seconds": 1.0}
BUCKETS = {"event": "availability.buckets", "t": 6.0, "name": "<script>alert(1)</script>", "buckets": [
    {"at": 1001, "n": 5, "failed": 0, "score": 5.0, "p50": 0.01, "max": 0.02},
    {"at": 1002, "n": 5, "failed": 5, "score": 0.0, "p50": 0.01, "max": 0.3},
    {"at": 1003, "n": 5, "failed": 1, "score": 4.0, "p50": 0.01, "max": 0.05}]}


def test_a_crashed_run_shows_the_buckets_so_far_and_no_verdict(tmp_path) -> None:
    (tmp_path / "journal.jsonl").write_text(journal(dict(START), dict(PROBE), dict(BUCKETS)))
    report = render_run(tmp_path)
    (probe,) = report["availability"]
    assert probe["verdict"] is None and probe["complete"] is False
    assert probe["samples"] == 15 and probe["ratio"] == pytest.approx(9 / 15)
    assert [b["offset"] for b in probe["buckets"]] == [1.0, 2.0, 3.0]
    html = (tmp_path / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "no verdict" in html and "http://127.0.0.1:9/&lt;b&gt;" in html and "9/<b>" not in html
    junit = (tmp_path / "junit.xml").read_text()
    assert "the run ended before the probe was judged" in junit
    assert "no verdict (run did not finish)" in (tmp_path / "report.md").read_text()


def test_a_judged_probe_reports_its_window_outage_and_latency(tmp_path) -> None:
    result = {"event": "availability.result", "t": 7.0, "name": "<script>alert(1)</script>", "kind": "http",
              "window_start": 1001.0, "window_end": 1004.0, "samples": 15, "successes": 9, "ratio": 0.6,
              "longest_outage": {"start": 1002.0, "end": 1003.1, "seconds": 1.1, "samples": 6},
              "latency_p50": 0.01, "latency_p95": 0.25, "latency_max": 0.3, "min_success": 0.999,
              "max_outage_seconds": 1.0, "passed": False, "failures": {"HTTP 503": 6}}
    expectation = {"event": "expectation", "t": 7.0, "name": "<script>alert(1)</script>", "kind": "availability",
                   "objective_seconds": 1.0, "measured_seconds": 1.1, "passed": False, "detail": "success 60.0%",
                   "data": {"objective": "success ≥ 99.9%, outage ≤ 1s", "measured": "60.0%, longest outage 1.1s"}}
    end = {"event": "run.end", "t": 8.0, "verdict": "failed", "failures": ["availability: success 60.0%"]}
    (tmp_path / "journal.jsonl").write_text(journal(dict(START), dict(PROBE), dict(BUCKETS), result, expectation,
                                                    end))
    report = render_run(tmp_path)
    (probe,) = report["availability"]
    assert probe["verdict"] == "failed" and probe["ratio"] == 0.6 and not probe["cut_short"]
    assert probe["longest_outage"]["start_offset"] == 2.0 and probe["longest_outage"]["end_offset"] == 3.1
    assert probe["latency"] == {"p50": 0.01, "p95": 0.25, "max": 0.3}
    md = (tmp_path / "report.md").read_text()
    assert ("| 60.0% | success ≥ 99.9%, outage ≤ 1.0s | 1.1s (+2.0s to +3.1s) | 10ms / 250ms / 300ms | failed |"
            in md)
    assert "6× HTTP 503" in md
    html = (tmp_path / "report.html").read_text()
    assert 'class="availability-outage"' in html and "success ≥ 99.9%, outage ≤ 1s" in html
    junit = (tmp_path / "junit.xml").read_text()
    assert "objective success ≥ 99.9%, outage ≤ 1s, measured 60.0%, longest outage 1.1s" in junit

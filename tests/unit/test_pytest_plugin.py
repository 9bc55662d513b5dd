"""`pytest scenarios/` collects scenario files as tests; the `dirt` fixture runs drills."""

from __future__ import annotations

import textwrap

import pytest
import yaml  # noqa: F401 - imported before pytester's in-process runs: its C parser
# keeps references to the first yaml module, so it must not be re-imported per run

from tests.conftest import FAKE_CONFIG, PLAYBOOK, basic_scenario

pytest_plugins = ["pytester"]


@pytest.fixture
def tree(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", dirt=FAKE_CONFIG)
    (pytester.path / "playbooks").mkdir()
    (pytester.path / "playbooks" / "fake.md").write_text(PLAYBOOK)
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "good.yaml").write_text(basic_scenario())
    (pytester.path / "scenarios" / "deployment.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n")
    return pytester


def test_scenario_files_are_collected_and_other_yaml_is_not(tree) -> None:
    result = tree.runpytest("scenarios", "--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["scenarios/good.yaml::fake-drill"])
    assert "deployment" not in result.stdout.str()


def test_a_passing_drill_is_a_passing_test(tree) -> None:
    result = tree.runpytest("scenarios", "-p", "no:cacheprovider", "--dirt-report-dir", "out")
    result.assert_outcomes(passed=1)
    assert list((tree.path / "out").glob("*/report.html"))


def test_a_failing_drill_shows_failed_expectations_report_path_and_location(tree) -> None:
    text = basic_scenario(expect="""\
        expect:
          alerts:
            - name: NeverFires
              fires_within: 0.5s
        """)
    (tree.path / "scenarios" / "bad.yaml").write_text(text.replace("name: fake-drill", "name: bad-drill"))
    result = tree.runpytest("scenarios/bad.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*drill bad-drill FAILED (*scenarios/bad.yaml:4)*",
        "*- alert NeverFires: NeverFires did not fire within 0.5s*",
        "*report: *report.html*",
    ])


def test_an_invalid_scenario_is_a_collection_error_with_file_and_line(tree) -> None:
    (tree.path / "scenarios" / "broken.yaml").write_text("apiVersion: dirt/v1\nkind: Scenario\nmetadata: {name: x}\ninject:\n  - fault: nope\n")
    result = tree.runpytest("scenarios/broken.yaml", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*broken.yaml:5:12: unknown fault 'nope'*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "Traceback" not in result.stdout.str()


def test_tags_become_markers(tree) -> None:
    result = tree.runpytest("scenarios", "-m", "fake_target", "--collect-only", "-q", "-p", "no:cacheprovider",
                            "--strict-markers")
    result.stdout.fnmatch_lines(["scenarios/good.yaml::fake-drill"])
    result = tree.runpytest("scenarios", "-m", "not fast", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert "fake-drill" not in result.stdout.str()


def test_the_dirt_fixture_runs_a_scenario_and_returns_its_result(tree) -> None:
    tree.makepyfile(test_drill=textwrap.dedent("""\
        def test_restore(dirt):
            result = dirt.run("scenarios/good.yaml")
            assert result.passed, result.failures
            assert result.report["timings"]["mttr_seconds"] < 30
            assert result.report["target"]["provider"] == "fake"
        """))
    result = tree.runpytest("test_drill.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_dirt_target_option_selects_the_target(tree) -> None:
    result = tree.runpytest("scenarios/good.yaml", "-p", "no:cacheprovider", "--dirt-target", "nosuch")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*unknown target 'nosuch'*"])

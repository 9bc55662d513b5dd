"""pytest integration: scenario files are tests, and a ``dirt`` fixture runs drills.

Registered through the ``pytest11`` entry point, so ``pytest scenarios/``
collects every scenario file (YAML with ``apiVersion: dirt/...`` and ``kind:
Scenario`` — never other YAML) as one test item.  A failing drill shows its
failed expectations and the report path, located at the scenario file and line;
scenario tags become markers (``pytest -m control_plane``).

Options: ``--dirt-target NAME`` (a target from dirt.yaml), ``--dirt-report-dir``,
``--dirt-config``.  In a Python test::

    def test_namespace_restore(dirt):
        result = dirt.run("scenarios/namespace-deletion.yaml")
        assert result.passed, result.failures
        assert result.report["timings"]["mttr_seconds"] < 300
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

_CONFIG_KEY = pytest.StashKey["DirtSession"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dirt", "dirt disaster-recovery drills")
    group.addoption("--dirt-target", default=None, help="Target from dirt.yaml to run scenario files against.")
    group.addoption("--dirt-report-dir", default=None, help="Where run folders go (default: dirt.yaml's).")
    group.addoption("--dirt-config", default=None, help="dirt.yaml to use (default: the nearest one).")
    group.addoption("--dirt-no-collect", action="store_true", default=False,
                    help="Do not collect scenario files as tests.")
    group.addoption("--dirt-keep-sandbox", action="store_true", default=False,
                    help="Leave a sandbox this session started running at the end.")


class DirtSession:
    """Per-session state: the configuration, options, and results (in the config stash)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._loaded: Any = None
        self.results: list[Any] = []
        self.started_sandboxes: dict[str, Any] = {}  # name -> Sandbox this session brought up
        self.skipped: list[tuple[Path, str]] = []  # YAML files collection found not to be scenarios

    @property
    def loaded(self) -> Any:
        if self._loaded is None:
            from dirt.config import load_config

            self._loaded = load_config(self.config.getoption("--dirt-config"), start=self.config.rootpath)
        return self._loaded

    @property
    def target_name(self) -> str | None:
        return self.config.getoption("--dirt-target")

    @property
    def report_dir(self) -> Path | None:
        value = self.config.getoption("--dirt-report-dir")
        return Path(value) if value else None

    def run(self, path: Path | str, *, target: str | None = None, variables: dict[str, Any] | None = None,
            report_dir: Path | None = None) -> Any:
        from dirt.app.run import run_one, run_options, target_for
        from dirt.scenario import load_options, load_scenario

        loaded = self.loaded
        scenario = load_scenario(Path(path), load_options(loaded, target=target or self.target_name,
                                                          variables=variables))
        target_obj = target_for(scenario, loaded, target or self.target_name)
        self.ensure_up(target_obj)
        options = run_options(loaded, report_dir=report_dir or self.report_dir, handle_signals=False,
                              variables=dict(variables or {}))
        result = run_one(scenario, target_obj, options)
        self.results.append(result)
        return result

    def ensure_up(self, target: Any) -> None:
        """Bring a sandbox target, or a fleet dirt makes here, up once per session (reused when already up)."""
        sandbox = getattr(target, "sandbox", None)
        fleet_settings = getattr(getattr(target, "settings", None), "sandbox", None)
        if sandbox is None and fleet_settings is not None and hasattr(target, "fleet"):
            sandbox = target.fleet  # a fleet of sandboxes: up, status and down like one
        if sandbox is None or sandbox.name in self.started_sandboxes:
            return
        status = sandbox.status() if sandbox.exists() else None
        if status is not None and all(c["healthy"] for c in status["components"]):
            self.started_sandboxes[sandbox.name] = None  # was up already: reuse, leave running
            return
        from dirt.app.sandbox import refuse_while_drilling

        refuse_while_drilling(target, "up")  # a drill elsewhere stopped a component on purpose
        sandbox.up(log=lambda message: None)
        self.started_sandboxes[sandbox.name] = sandbox

    def sandbox_target(self, name: str | None = None) -> Any:
        """The sandbox target of dirt.yaml (``name``, else the default if it is a sandbox)."""
        from dirt.app.sandbox import sandbox_target

        target = sandbox_target(self.loaded, name)
        self.ensure_up(target)
        return target

    def finish(self) -> None:
        if self.config.getoption("--dirt-keep-sandbox"):
            return
        for sandbox in self.started_sandboxes.values():
            if sandbox is not None:
                sandbox.down(log=lambda message: None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = session.config.stash.get(_CONFIG_KEY, None)
    if state is not None:
        state.finish()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_CONFIG_KEY] = DirtSession(config)
    config.addinivalue_line("markers", "dirt_scenario: a dirt scenario file collected as a test")


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    """Scenario files become tests; broken ones (unreadable, ``kind: Scenaro``...) collection errors.

    Detection parses each YAML file (any case of .yaml/.yml), exactly as ``dirt validate``
    does, and the files skipped as not scenarios are counted in the terminal summary.
    """
    if file_path.suffix.lower() not in (".yaml", ".yml") or parent.config.getoption("--dirt-no-collect"):
        return None
    from dirt.scenario import classify

    verdict, why = classify(file_path)
    if verdict == "other":
        parent.config.stash[_CONFIG_KEY].skipped.append((file_path, why))
        return None
    return ScenarioFile.from_parent(parent, path=file_path)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_CONFIG_KEY, None)
    if state is None or not state.skipped:
        return
    terminalreporter.write_line(f"dirt: {len(state.skipped)} YAML file(s) skipped as not scenarios"
                                + ("" if config.getoption("verbose") > 0 else " (-v lists them)"))
    if config.getoption("verbose") > 0:
        for path, why in state.skipped:
            terminalreporter.write_line(f"  {path}: {why}")


class ScenarioFile(pytest.File):
    def collect(self) -> Any:
        from dirt.core.errors import ScenarioError
        from dirt.scenario import load_options, load_scenario

        session: DirtSession = self.config.stash[_CONFIG_KEY]
        try:
            scenario = load_scenario(self.path, load_options(session.loaded, target=session.target_name))
        except ScenarioError as exc:
            raise self.CollectError(f"invalid scenario file:\n{exc.show()}") from None
        item = ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)
        item.add_marker(pytest.mark.dirt_scenario)
        for tag in scenario.metadata.tags:
            marker = tag.replace("-", "_")
            self.config.addinivalue_line("markers", f"{marker}: dirt scenario tag")
            item.add_marker(getattr(pytest.mark, marker))
        yield item


class DrillFailure(Exception):
    def __init__(self, result: Any) -> None:
        self.result = result
        super().__init__(result.verdict)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.result: Any = None

    def runtest(self) -> None:
        session: DirtSession = self.config.stash[_CONFIG_KEY]
        self.result = session.run(self.scenario.path)
        self.user_properties.append(("dirt_report", str(self.result.run_dir / "report.html")))
        self.user_properties.append(("dirt_verdict", self.result.verdict))
        if not self.result.passed:
            raise DrillFailure(self.result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from dirt.core.redact import redact_text

        return redact_text(self._failure_text(excinfo))

    def _failure_text(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:
        from dirt.core.errors import DirtError

        if isinstance(excinfo.value, DrillFailure):
            result = excinfo.value.result
            lines = [f"drill {self.scenario.name} {result.verdict.upper()} "
                     f"({self.scenario.path}:{self.scenario.line})"]
            lines += [f"  - {failure}" for failure in result.failures]
            lines.append(f"report: {result.run_dir / 'report.html'}")
            return "\n".join(lines)
        if isinstance(excinfo.value, DirtError):
            return f"{self.scenario.path}:{self.scenario.line}: {excinfo.value.show()}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.line - 1, f"dirt scenario: {self.scenario.name}"


@pytest.fixture
def dirt(request: pytest.FixtureRequest) -> DirtSession:
    """Run a scenario from a Python test and inspect its ``RunResult``."""
    return request.config.stash[_CONFIG_KEY]


@pytest.fixture(scope="session")
def dirt_sandbox(request: pytest.FixtureRequest) -> Any:
    """The session's sandbox target, up (started once, or reused when already up).

    A sandbox this session started is taken down at the end of the session
    (``--dirt-keep-sandbox`` keeps it); one that was already up is left running.
    """
    return request.config.stash[_CONFIG_KEY].sandbox_target()

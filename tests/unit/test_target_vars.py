"""A target's ``vars`` (dirt.yaml): values for the scenarios run on it, between the scenario's own and --var."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dirt.config import load_config
from dirt.core.errors import ConfigError
from dirt.scenario import load_options, load_scenario

SCENARIO = """\
apiVersion: dirt/v1
kind: Scenario
metadata: {{name: where}}
{target}vars:
  storefront: http://127.0.0.1:18080/
steady_state:
  - check: http
    url: "{{{{ storefront }}}}"
inject:
  - fault: pods.delete
    namespace: shop
    selector: app=web
"""


def _project(tmp_path: Path, *, scenario_target: str = "") -> tuple[object, Path]:
    (tmp_path / "dirt.yaml").write_text(textwrap.dedent("""\
        default_target: here
        targets:
          here: {provider: sandbox}
          there:
            provider: kubeconfig
            vars: {storefront: "http://127.0.0.1:18090/"}
        """))
    path = tmp_path / "where.yaml"
    path.write_text(SCENARIO.format(target=f"target: {scenario_target}\n" if scenario_target else ""))
    return load_config(str(tmp_path / "dirt.yaml")), path


def _url(loaded, path: Path, **options) -> str:
    scenario = load_scenario(path, load_options(loaded, **options))
    return scenario.steady_state[0].params.url


def test_the_chosen_targets_vars_override_the_scenarios_and_var_overrides_both(tmp_path: Path) -> None:
    loaded, path = _project(tmp_path)
    assert _url(loaded, path) == "http://127.0.0.1:18080/"  # the default target has no vars
    assert _url(loaded, path, target="there") == "http://127.0.0.1:18090/"
    assert _url(loaded, path, target="there", variables={"storefront": "http://127.0.0.1:1/"}) == "http://127.0.0.1:1/"


def test_a_scenarios_own_target_brings_its_vars(tmp_path: Path) -> None:
    loaded, path = _project(tmp_path, scenario_target="there")
    assert _url(loaded, path) == "http://127.0.0.1:18090/"
    assert _url(loaded, path, target="here") == "http://127.0.0.1:18080/"  # --target wins over the scenario's


def test_a_var_name_that_is_not_an_identifier_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "dirt.yaml").write_text("targets:\n  t:\n    provider: sandbox\n    vars: {my-url: x}\n")
    with pytest.raises(ConfigError, match="identifiers"):
        load_config(str(tmp_path / "dirt.yaml"))

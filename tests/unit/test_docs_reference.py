"""The docs site's reference is generated from the code (docs/hooks/reference.py), and builds strict."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from tests.conftest import REPO

HOOK = REPO / "docs" / "hooks" / "reference.py"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("docs_reference_hook", HOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages(reference) -> dict[str, str]:
    return reference.pages()


def _user_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DIRT_TESTING"}


def test_every_driver_dirt_drivers_lists_has_its_reference_entry(pages, reference) -> None:
    listed = subprocess.run([sys.executable, "-m", "dirt", "drivers"], capture_output=True, text=True,
                            env=_user_env(), timeout=120, check=True).stdout.splitlines()
    drivers = [line.split()[:2] for line in listed if line.strip()]
    assert len(drivers) > 40
    for kind, name in drivers:
        slug = reference.KIND_PAGES[kind][0]
        page = pages[f"reference/{slug}.md"]
        assert f"## `{name}` {{ #{reference._anchor(name)} }}" in page, (kind, name)
    # and nothing more: the test doubles of dirt.testing never reach the site
    for kind, (slug, _, _) in reference.KIND_PAGES.items():
        documented = re.findall(r"^## `([^`]+)`", pages[f"reference/{slug}.md"], re.M)
        assert sorted(documented) == sorted(n for k, n in drivers if k == kind)
        assert not any(n.startswith("fake.") for n in documented)


def test_a_drivers_parameters_types_defaults_family_and_needs_are_on_its_page(pages) -> None:
    faults = pages["reference/faults.md"]
    section = faults[faults.index("## `pods.delete`"):].split("\n## ")[0]
    assert "**Family**: `pods` (delete pods); off the sandbox a target needs `allow: [pods]`" in section
    assert "| `grace_period` | integer (≥ 0, ≤ 86400) | `0` | Seconds the pods get to stop (0: at once, a crash). |" \
        in section
    assert "| `namespace` | string | *required* |" in section
    etcd = faults[faults.index("## `etcd.wipe`"):]
    assert "**Needs the target to**: wipe etcd's data (`etcd_wipe`)" in etcd.split("\n## ")[0]


def test_adding_a_parameter_to_a_driver_changes_its_page_with_no_edit_under_docs(reference) -> None:
    from dirt.checks.generic import DRIVERS as CHECKS
    from dirt.drivers.registry import Registry

    base = next(cls for cls in CHECKS if cls.name == "http")

    class WiderParams(base.Params):
        retries_on_reset: int = Field(3, ge=0, description="Connection resets retried before the check fails.")

    class WiderHttp(base):
        __doc__ = base.__doc__
        Params = WiderParams

    before, after = Registry(), Registry()
    before.register(base, "dirt.checks.generic")
    after.register(WiderHttp, "dirt.checks.generic")
    old, new = reference.driver_page("check", before), reference.driver_page("check", after)
    row = "| `retries_on_reset` | integer (≥ 0) | `3` | Connection resets retried before the check fails. |"
    assert row not in old and row in new
    assert set(new.splitlines()) - set(old.splitlines()) == {row}


def test_a_plugins_driver_says_where_it_comes_from(reference) -> None:
    from dirt.drivers.base import Fault
    from dirt.drivers.registry import Registry

    class Unplug(Fault):
        """Unplug the rack's switch (a plugin's fault).

        It never comes back by itself."""

        name = "rack.unplug"
        family = "node"

    registry = Registry()
    registry.register(Unplug, "entry point 'racks' (racks.drivers)")
    page = reference.driver_page("fault", registry)
    assert "**From**: entry point 'racks' (racks.drivers)" in page
    assert "It never comes back by itself." in page and "*No parameters.*" in page
    assert "**Rollback**: cannot be reverted by dirt" in page


def test_document_pages_hold_every_field_of_their_models(pages) -> None:
    from dirt.config import DirtConfig, TargetConfig
    from dirt.scenario.model import ScenarioDocument

    scenario = pages["reference/scenario.md"]
    for name, field in ScenarioDocument.model_fields.items():
        assert f"| `{field.alias or name}` |" in scenario, name
    config = pages["reference/config.md"]
    for model in (DirtConfig, TargetConfig):
        for name, field in model.model_fields.items():
            assert f"| `{field.alias or name}` |" in config, (model.__name__, name)
    gameday = pages["reference/gameday.md"]
    assert "| `schedule` |" in gameday and "| `drills` |" in gameday


def test_journal_exit_codes_and_metrics_come_from_their_code(pages) -> None:
    from dirt.app.history import METRICS
    from dirt.core import errors
    from dirt.journal.events import EVENT_TYPES

    journal = pages["reference/journal.md"]
    for cls in EVENT_TYPES:
        assert f"## `{cls.model_fields['event'].default}`" in journal
    codes = pages["reference/exit-codes.md"]
    assert "| `DrillLocked` | 2 | another drill holds the target (its holder named) |" in codes
    assert "| 3 | a drill's verdict is *aborted*; errors: `DrillAborted` |" in codes
    assert f"| `RollbackFailed` | {errors.RollbackFailed.exit_code} |" in codes
    metrics = pages["reference/metrics.md"]
    for name, (labels, _) in METRICS.items():
        assert f"| `{name}` | {', '.join(f'`{label}`' for label in labels)} |" in metrics
    rules = yaml.safe_load((REPO / "dirt/sandbox/rules/kubernetes.yaml").read_text())
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert alerts and all(f"| `{alert}` |" in metrics for alert in alerts)


def _site_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for part in ("docs", "monitoring"):
        shutil.copytree(REPO / part, root / part)
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    return root


def _build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    return subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(site)], cwd=root, text=True,
                          capture_output=True, timeout=300, env={**_user_env(), "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strict_with_every_page_and_no_warning(tmp_path: Path) -> None:
    built = _build(_site_copy(tmp_path), tmp_path / "site")
    assert built.returncode == 0, built.stderr[-4000:]
    assert "WARNING" not in built.stderr, built.stderr
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]

    def pages_of(entries) -> list[str]:
        out = []
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            out += pages_of(value) if isinstance(value, list) else [value]
        return out

    for page in pages_of(nav):
        html = tmp_path / "site" / (page.removesuffix(".md").removesuffix("index") + "/index.html").lstrip("/")
        html = tmp_path / "site" / "index.html" if page == "index.md" else html
        assert html.is_file(), page
    commands = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    for group in ("dirt sandbox up", "dirt gameday run", "dirt kind up", "dirt history export"):
        assert f">{group}<" in commands, group


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    root = _site_copy(tmp_path)
    with (root / "docs" / "how-to" / "pytest.md").open("a") as page:
        page.write("\nSee [the old page](../no-such-page.md).\n")
    built = _build(root, tmp_path / "site")
    assert built.returncode != 0
    assert "contains a link '../no-such-page.md', but the target 'no-such-page.md' is not found" in built.stderr

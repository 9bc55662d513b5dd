"""dirt as a new user gets it: a wheel installed in a fresh virtualenv, run in an empty folder.

No checkout is on ``sys.path`` and the sandbox state starts empty (``DIRT_SANDBOX_HOME``
in a temporary folder; only the binary cache is shared): ``dirt init`` writes the starter
project, ``validate`` and ``plan`` read it, ``sandbox build`` finds every binary in the
cache, a component builds from the wrapper module inside the installed package, and the
starter's first drill passes on a sandbox of its own.
"""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from dirt import __version__
from tests.conftest import REPO
from tests.integration.conftest import User

pytestmark = [pytest.mark.integration]

#: What the package must carry to build its sandbox, write a project and run drills, outside a checkout.
PACKAGE_DATA = ["dirt/sandbox/gomodules/kubernetes/go.mod", "dirt/sandbox/gomodules/kubernetes/go.sum",
                "dirt/sandbox/gomodules/etcd/tools.go", "dirt/sandbox/gomodules/velero/go.mod",
                "dirt/sandbox/gomodules/kube-state-metrics/go.sum", "dirt/sandbox/rules/kubernetes.yaml",
                "dirt/sandbox/fleet_rules/fleet.yaml",
                "dirt/starter/dirt.yaml", "dirt/starter/scenarios/first-drill.yaml",
                "dirt/starter/dot-github/workflows/dirt.yml.in", "dirt/starter/dot-gitignore",
                "dirt/report/templates/report.html.j2", "dirt/py.typed"]


def test_the_wheel_and_the_sdist_carry_what_dirt_reads_at_run_time(dirt_dist) -> None:
    with zipfile.ZipFile(dirt_dist["wheel"]) as wheel:
        names = set(wheel.namelist())
    missing = [name for name in PACKAGE_DATA if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert dirt_dist["wheel"].name.startswith(f"dirt-{__version__}-")
    with tarfile.open(dirt_dist["sdist"]) as sdist:
        root = f"dirt-{__version__}/"
        in_sdist = {m.name.removeprefix(root) for m in sdist.getmembers()}
    assert not [n for n in PACKAGE_DATA if n not in in_sdist], "the sdist builds the same wheel"
    assert {"CHANGELOG.md", "README.md", "Containerfile", "pyproject.toml"} <= in_sdist


def test_the_installed_dirt_is_the_package_not_a_checkout(user: User) -> None:
    assert user.dirt("--version").stdout.strip() == f"dirt, version {__version__}"
    where = user.run(str(user.venv / "bin" / "python"), "-c", "import dirt, sys; print(dirt.__file__); "
                     "print(any('dirt' in p and 'site-packages' not in p and p for p in sys.path[1:]))")
    module, checkout_on_path = where.stdout.split()
    assert Path(module).is_relative_to(user.venv) and not Path(module).is_relative_to(REPO)
    assert checkout_on_path == "False"


@pytest.fixture(scope="module")
def starter(user: User):
    """The user's project after ``dirt init`` (once: the tests below run in any order)."""
    return user.dirt("init")


def test_init_writes_a_starter_project_and_never_overwrites_it(user: User, starter) -> None:
    made = starter
    assert "wrote .gitignore" in made.stdout.splitlines() and "dirt run scenarios/first-drill.yaml" in made.stdout
    for rel in ("dirt.yaml", "scenarios/first-drill.yaml", "playbooks/first-drill.md", "gamedays/example.yaml",
                ".github/workflows/dirt.yml", ".gitignore", "apps/hello/alerts.yaml"):
        assert (user.project / rel).is_file(), rel
    workflow = (user.project / ".github/workflows/dirt.yml").read_text()
    assert f"dirt-project/dirt@v{__version__}" in workflow and "@DIRT_VERSION@" not in workflow
    before = {p: p.read_bytes() for p in user.project.rglob("*") if p.is_file()}
    again = user.dirt("init", check=False)
    assert again.returncode == 2
    assert again.stderr.strip() == (f"dirt: error: {Path('.github/workflows/dirt.yml')}: already exists; dirt init "
                                    "never overwrites a file (move it away, or run again with --force to overwrite "
                                    "the starter's files)")
    assert {p: p.read_bytes() for p in user.project.rglob("*") if p.is_file()} == before


def test_the_starter_validates_and_plans_without_touching_anything(user: User, starter, tmp_path: Path) -> None:
    untouched = {"DIRT_SANDBOX_HOME": str(tmp_path / "no-sandbox-yet")}  # the first drill's sandbox may be up
    assert "1 valid, 0 invalid" in user.dirt("validate", "scenarios", env=untouched).stdout
    assert "1 valid, 0 invalid" in user.dirt("gameday", "validate", "gamedays", env=untouched).stdout
    plan = user.dirt("plan", "scenarios/first-drill.yaml", env=untouched).stdout
    assert "delete namespace hello" in plan and "playbooks/first-drill.md#restore-the-namespace" in plan
    assert not (tmp_path / "no-sandbox-yet").exists(), "plan touches nothing, not even the sandbox's state"


def test_sandbox_build_finds_every_binary_in_the_cache(user: User) -> None:
    built = user.dirt("sandbox", "build")
    assert "building " not in built.stderr, built.stderr
    assert "binaries ready" in built.stderr


def test_a_component_builds_from_the_wrapper_module_inside_the_installed_package(user: User, tmp_path: Path) -> None:
    """An empty binary cache: etcd is built from the package's go.mod (Go's own caches keep it quick)."""
    script = ("from dirt.sandbox.binaries import ETCD, build, cache_root; import sys; "
              "folder = build(ETCD, log=lambda m: print(m, file=sys.stderr)); print(folder)")
    done = user.run(str(user.venv / "bin" / "python"), "-c", script, env={"DIRT_BIN_CACHE": str(tmp_path / "bin")})
    folder = Path(done.stdout.strip())
    assert folder.is_relative_to(tmp_path) and (folder / "etcdctl").is_file()
    copied = tmp_path / "bin" / "modules" / "etcd" / "go.mod"
    assert copied.read_text() == (REPO / "dirt/sandbox/gomodules/etcd/go.mod").read_text()
    assert "building etcd" in done.stderr


def test_the_first_drill_passes_on_a_fresh_sandbox(user: User, starter) -> None:
    user.dirt("sandbox", "up", timeout=600)
    ran = user.dirt("run", "scenarios/first-drill.yaml", "--display", "plain", check=False, timeout=900)
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-3000:]
    reports = sorted(p for p in (user.project / "reports").iterdir() if p.is_dir())
    assert len(reports) == 1
    report = json.loads((reports[0] / "report.json").read_text())
    assert report["verdict"] == "passed"
    # the app's own alert, read from the starter's PrometheusRule into the sandbox's Prometheus
    assert report["timings"]["mttd_seconds"]["HelloWorkloadsMissing"] > 0

"""The runner image's recipe: the venv written by hand, wheels installed with pypa's installer, the
dirt wheel repacked from an installed dirt, and the Containerfile saying the same as the Python recipe.

The real build (debootstrap, pip, the real wheels) is tests/integration/test_runner_image.py.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import marshal
import re
import shlex
import sys
import zipfile
from pathlib import Path

import pytest

import dirt
from dirt.core.errors import BinaryError, UsageError
from dirt.sandbox import runner_image
from dirt.sandbox.runner_image import DebianPython

REPO = Path(__file__).resolve().parents[2]
PYTHON = DebianPython(version="3.11.2", executable="/usr/bin/python3.11")
SITE = "opt/dirt/lib/python3.11/site-packages"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path, project: str = "tinyapp", package: str = "tinyapp", version: str = "1.0") -> Path:
    """A pure-Python wheel with one module and one console script, as a build backend writes it."""
    dist_info = f"{project}-{version}.dist-info"
    files = {
        f"{package}/__init__.py": b"def main():\n    print('tinyapp says hi')\n",
        f"{package}/data.txt": b"package data\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist_info}/entry_points.txt": f"[console_scripts]\n{project} = {package}:main\n".encode(),
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{project}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


# --- the venv and the wheels -------------------------------------------------------------------------


def test_the_venv_is_written_as_venv_makes_it_for_debians_python(tmp_path: Path) -> None:
    site = runner_image.write_venv(tmp_path, PYTHON)
    assert site == tmp_path / SITE and site.is_dir()
    venv = tmp_path / "opt/dirt"
    assert (venv / "pyvenv.cfg").read_text().splitlines() == [
        "home = /usr/bin", "include-system-site-packages = false", "version = 3.11.2",
        "executable = /usr/bin/python3.11"]
    links = {name: str((venv / "bin" / name).readlink()) for name in ("python3", "python", "python3.11")}
    assert links == {"python3": "/usr/bin/python3", "python": "python3", "python3.11": "python3"}
    assert str((venv / "lib64").readlink()) == "lib"


def test_installed_wheels_land_in_site_packages_with_console_scripts_for_the_image(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    runner_image.write_venv(staging, PYTHON)
    runner_image.install_wheels([make_wheel(tmp_path / "wheels")], staging, PYTHON)
    assert (staging / SITE / "tinyapp/__init__.py").is_file() and (staging / SITE / "tinyapp/data.txt").is_file()
    assert (staging / SITE / "tinyapp-1.0.dist-info/INSTALLER").read_text() == "dirt image build\n"
    script = staging / "opt/dirt/bin/tinyapp"
    assert script.read_text().splitlines()[0] == "#!/opt/dirt/bin/python"
    assert "from tinyapp import main" in script.read_text()
    assert script.stat().st_mode & 0o111, "console scripts are executable"
    assert not (tmp_path / "opt").exists(), "nothing is written outside the staging folder"


def test_a_wheel_that_would_overwrite_another_is_a_clear_error(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    runner_image.write_venv(staging, PYTHON)
    runner_image.install_wheels([make_wheel(tmp_path / "a")], staging, PYTHON)
    with pytest.raises(BinaryError, match="installing other-2.0-py3-none-any.whl into the image"):
        runner_image.install_wheels([make_wheel(tmp_path / "b", project="other", package="tinyapp", version="2.0")],
                                    staging, PYTHON)


def test_site_packages_are_compiled_to_unchecked_hash_pycs_that_name_in_image_paths(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    site = runner_image.write_venv(staging, PYTHON)
    runner_image.install_wheels([make_wheel(tmp_path / "wheels")], staging, PYTHON)
    runner_image.compile_site_packages(site, PYTHON)
    pyc = site / f"tinyapp/__pycache__/__init__.{sys.implementation.cache_tag}.pyc"
    data = pyc.read_bytes()
    assert int.from_bytes(data[4:8], "little") == 0b01, "hash-based, never checked against the source"
    assert marshal.loads(data[16:]).co_filename == f"/{SITE}/tinyapp/__init__.py"


def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/b").chmod(0o700)
    (tmp_path / "a/b/tool").write_text("#!/bin/sh\n")
    (tmp_path / "a/b/tool").chmod(0o700)
    (tmp_path / "a/b/data").write_text("x")
    (tmp_path / "a/b/data").chmod(0o600)
    runner_image.normalize_modes(tmp_path / "a")
    paths = (tmp_path / "a/b", tmp_path / "a/b/tool", tmp_path / "a/b/data")
    modes = {p.name: p.stat().st_mode & 0o7777 for p in paths}
    assert modes == {"b": 0o755, "tool": 0o755, "data": 0o644}


def test_debians_python_is_read_from_the_root_filesystem(tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3").symlink_to("python3.11")
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(
        "Package: python3.11\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u8\n\n"
        "Package: python3.11-minimal\nStatus: install ok installed\nPriority: optional\nVersion: 3.11.2-6+deb12u8\n")
    python = runner_image.debian_python(tmp_path)
    assert python == DebianPython(version="3.11.2", executable="/usr/bin/python3.11")
    assert python.site_packages == "/opt/dirt/lib/python3.11/site-packages"


def test_the_user_dirt_is_added_to_the_bases_passwd_and_group(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "etc/group").write_text("root:x:0:\n")
    made = runner_image.user_files(tmp_path)
    assert made == {
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\ndirt:x:65532:65532:dirt:/home/dirt:/usr/sbin/nologin\n",
        "etc/group": "root:x:0:\ndirt:x:65532:\n",
    }


# --- the dirt wheel ------------------------------------------------------------------------------------


def test_an_installed_dirt_is_repacked_into_a_wheel_from_its_record(tmp_path: Path) -> None:
    staging = tmp_path / "installed"
    runner_image.write_venv(staging, PYTHON)
    runner_image.install_wheels([make_wheel(tmp_path / "w", project="dirt", package="dirt", version="9.9")],
                                staging, PYTHON)
    dist = importlib.metadata.PathDistribution(staging / SITE / "dirt-9.9.dist-info")
    wheel = runner_image.wheel_from_installed(tmp_path / "dist", dist)
    assert wheel.name == "dirt-9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        record = zf.read("dirt-9.9.dist-info/RECORD").decode().splitlines()
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            if name.endswith("RECORD"):
                continue
            data = zf.read(name)
            assert (digest, int(size)) == (_record_hash(data), len(data)), name
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert names == {"dirt/__init__.py", "dirt/data.txt", "dirt-9.9.dist-info/METADATA", "dirt-9.9.dist-info/WHEEL",
                     "dirt-9.9.dist-info/entry_points.txt", "dirt-9.9.dist-info/RECORD"}
    assert runner_image.wheel_from_installed(tmp_path / "again", dist).read_bytes() == wheel.read_bytes()
    again = tmp_path / "reinstalled"
    runner_image.write_venv(again, PYTHON)
    runner_image.install_wheels([wheel], again, PYTHON)
    assert (again / "opt/dirt/bin/dirt").read_text().startswith("#!/opt/dirt/bin/python\n")


def test_an_editable_dirt_outside_a_checkout_asks_for_a_wheel(tmp_path: Path) -> None:
    dist_info = tmp_path / "dirt-9.9.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: dirt\nVersion: 9.9\n")
    (dist_info / "direct_url.json").write_text(json.dumps({"url": "file:///gone", "dir_info": {"editable": True}}))
    (dist_info / "RECORD").write_text("__editable__.dirt-9.9.pth,,\ndirt-9.9.dist-info/METADATA,,\n")
    with pytest.raises(UsageError, match=r"editable mode outside a checkout.*pass --wheel FILE"):
        runner_image.wheel_from_installed(tmp_path / "dist", importlib.metadata.PathDistribution(dist_info))


def test_a_wheel_flag_that_is_not_a_dirt_wheel_is_a_usage_error(tmp_path: Path) -> None:
    other = make_wheel(tmp_path)
    with pytest.raises(UsageError, match="not a dirt wheel"):
        runner_image.build_runner_image(wheel=other, output=tmp_path / "x.tar")


def test_this_checkout_is_found_from_the_package() -> None:
    assert runner_image.checkout_root() == REPO


# --- the Containerfile says what the Python recipe does ---------------------------------------------


def _stages() -> dict[str, list[tuple[str, str]]]:
    """The Containerfile's instructions by stage (named by its ``AS`` name; the last one ``final``)."""
    text = (REPO / "Containerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        keyword, _, rest = line.strip().partition(" ")
        if keyword.upper() == "FROM":
            words = rest.split()
            current = [("FROM", words[0])]
            stages[words[2] if len(words) == 3 and words[1].upper() == "AS" else "final"] = current
        else:
            current.append((keyword.upper(), rest.strip()))
    return stages


def _one(stage: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for kw, rest in stage if kw == keyword]
    assert len(found) == 1, f"one {keyword} expected, found {found}"
    return found[0]


def _runs(stage: list[tuple[str, str]]) -> list[str]:
    return [rest for kw, rest in stage if kw == "RUN"]


def _config() -> dict:
    config = runner_image.image_config(version=dirt.__version__, architecture="amd64", wheels=1)
    return config["config"]  # type: ignore[return-value]


def test_the_containerfile_installs_the_same_debian_packages_on_the_same_release() -> None:
    final = _stages()["final"]
    assert _one(final, "FROM") == f"debian:{runner_image.DEBIAN_SUITE}-slim"
    (install,) = [r for r in _runs(final) if "apt-get install" in r]
    words = shlex.split(install.split("apt-get install", 1)[1].split("&&", 1)[0])
    assert sorted(w for w in words if not w.startswith("-")) == sorted(runner_image.DEBIAN_PACKAGES)
    assert "python3-venv" not in words


def test_the_containerfile_makes_the_same_venv_from_the_same_wheels_the_same_way() -> None:
    stages = _stages()
    wheels = stages["wheels"]
    python_image = _one(wheels, "FROM")
    assert python_image == f"python:{PYTHON.short}-slim-{runner_image.DEBIAN_SUITE}"
    (build,) = _runs(wheels)
    assert "pip wheel --no-deps" in build and f"SOURCE_DATE_EPOCH={runner_image._WHEEL_EPOCH}" in build
    assert f'[{",".join(runner_image.EXTRAS)}]' in build
    final_runs = " ".join(_runs(stages["final"]))
    assert f"python3 -m venv --without-pip {runner_image.VENV} " in final_runs
    assert f"{runner_image.VENV}/bin/python -m installer --no-compile-bytecode" in final_runs
    compiles = [c for run in _runs(stages["final"]) for c in re.findall(r"-m compileall (.*?)(?:&&|$)", run)]
    assert len(compiles) == 2
    for command in compiles:
        assert "--invalidation-mode unchecked-hash" in command
        assert shlex.split(command)[-1].startswith(f"{runner_image.VENV}/lib")
    assert f"{runner_image.VENV}/lib/python{PYTHON.short}/site-packages/dirt" in final_runs


def _go_builds() -> dict[str, dict[str, object]]:
    builds = {}
    for run in _runs(_stages()["tools"]):
        words = shlex.split(run)
        assert words[:2] == ["cd", words[1]] and words[2] == "&&" and words[3:5] == ["go", "build"], run
        flags = words[5:]
        output = flags[flags.index("-o") + 1]
        builds[Path(output).name] = {
            "module": Path(words[1]).name, "trimpath": "-trimpath" in flags, "out": output,
            "ldflags": flags[flags.index("-ldflags") + 1].split(), "package": flags[-1],
        }
    return builds


def test_the_containerfile_builds_the_same_tools_with_the_same_flags_and_versions() -> None:
    stages = _stages()
    tools = stages["tools"]
    assert _one(tools, "ENV").split() == ["CGO_ENABLED=0", "GOFLAGS=-buildvcs=false"]
    builds = _go_builds()
    assert sorted(builds) == sorted(runner_image.TOOLS)
    for name, component in runner_image.TOOLS.items():
        build = builds[name]
        assert build["module"] == component.module_dir, name
        assert build["trimpath"], name
        assert build["package"] == component.binaries[name], name
        assert build["ldflags"] == component.ldflags(component).split(), f"{name}: -ldflags differ from binaries.py"
        assert f"dirt/sandbox/gomodules/{component.module_dir}/ /src/{component.module_dir}/" in [
            rest for kw, rest in tools if kw == "COPY"], name
    (copy,) = [rest for kw, rest in stages["final"] if kw == "COPY"]
    words = copy.split()
    assert words[0] == "--from=tools" and words[-1] == runner_image.TOOLS_DIR + "/"
    assert [Path(w).name for w in words[1:-1]] == list(runner_image.TOOLS)


def test_the_containerfile_builds_with_the_go_the_wrapper_modules_ask_for() -> None:
    image = _one(_stages()["tools"], "FROM")
    match = re.fullmatch(rf"golang:(\d+\.\d+)-{runner_image.DEBIAN_SUITE}", image)
    assert match, image
    for component in runner_image.TOOLS.values():
        go_mod = (REPO / "dirt/sandbox/gomodules" / str(component.module_dir) / "go.mod").read_text()
        wanted = re.search(r"^go (\d+\.\d+)", go_mod, re.MULTILINE)
        assert wanted and wanted.group(1) == match.group(1), f"{component.name}'s go.mod asks for go {wanted}"


def test_the_containerfile_adds_the_same_user() -> None:
    final = _stages()["final"]
    (user_run,) = [r for r in _runs(final) if "/etc/passwd" in r]
    assert f"echo '{runner_image.PASSWD_LINE}' >> /etc/passwd" in user_run
    assert f"echo '{runner_image.GROUP_LINE}' >> /etc/group" in user_run
    assert f"chown {runner_image.UID}:{runner_image.GID} {runner_image.HOME}" in user_run
    assert _one(final, "USER") == _config()["User"] == "65532:65532"
    assert _one(final, "WORKDIR") == _config()["WorkingDir"] == runner_image.HOME


def test_the_containerfile_runs_the_image_the_same_way() -> None:
    final = _stages()["final"]
    assert shlex.split(_one(final, "ENV")) == _config()["Env"]
    assert json.loads(_one(final, "ENTRYPOINT")) == _config()["Entrypoint"] == ["dirt"]
    assert json.loads(_one(final, "CMD")) == _config()["Cmd"] == ["--help"]
    assert dict(w.split("=", 1) for w in shlex.split(_one(final, "LABEL"))) == _config()["Labels"]


def test_the_containerfile_says_how_to_build_it_and_what_to_leave_out() -> None:
    text = (REPO / "Containerfile").read_text()
    assert f"docker build -f Containerfile -t {runner_image.references()[0]} ." in text
    assert "dirt image build" in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git", "reports"} <= set(ignored)


def test_the_image_config_names_the_version_the_source_and_the_license() -> None:
    config = runner_image.image_config(version="0.2.0", architecture="amd64", wheels=61)
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert config["config"]["Labels"] == {  # type: ignore[index]
        "org.opencontainers.image.title": "dirt", "org.opencontainers.image.version": "0.2.0",
        "org.opencontainers.image.source": "https://github.com/dirt-project/dirt",
        "org.opencontainers.image.licenses": "Apache-2.0"}
    assert runner_image.references("0.2.0") == ["dirt.local/dirt:0.2.0", "dirt.local/dirt:latest"]


def test_the_cli_refuses_a_wheel_that_is_not_dirts_in_one_line_with_exit_2(tmp_path: Path, capsys) -> None:
    from dirt.cli import exit_code

    notes = tmp_path / "notes.txt"
    notes.write_text("not a wheel\n")
    assert exit_code(["image", "build", "--wheel", str(notes)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"dirt: error: --wheel {notes}: not a dirt wheel file (dirt-<version>-py3-none-any.whl)"]

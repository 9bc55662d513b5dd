"""The dirt runner image: dirt, its Python dependencies and its tools in a Debian image, built offline.

Game days run as Kubernetes CronJobs (``dirt gameday export --cronjob --image IMAGE``), so they need
an image with dirt in it.  No registry and no docker are at hand, so the image is assembled here, as
files, and written as an OCI archive that ``dirt sandbox image import`` (``ctr images import``)
reads.  Four layers, each cached by a key made from its inputs, so a second build with the same
inputs only writes the archive, and a new dirt makes only the small last one:

1. **base** — Debian bookworm (minbase) with ``python3`` and ``ca-certificates``, made by
   ``debootstrap`` (``dirt.sandbox.rootfs``);
2. **python-dependencies** — a virtual environment at ``/opt/dirt`` written by hand (no program runs
   inside the image's root filesystem): ``pyvenv.cfg`` and ``bin/python`` linking to Debian's
   ``/usr/bin/python3``, and every wheel dirt needs (with its ``ctk`` extra) installed into its
   ``site-packages`` with pypa's ``installer``;
3. **tools** — the tools a drill's procedure calls (``kubectl``, ``etcdctl``, ``velero``, from the
   sandbox's binary cache) in ``/usr/local/bin``, and the user ``dirt`` (65532) the image runs as;
4. **dirt** — the dirt wheel (only the newest of these layers is kept in the cache).

The wheels come from this machine's pip (``pip wheel``): this Python must be the image's (CPython
3.11 on the same architecture as Debian 12's ``python3``), so binary wheels fit.  Everything is
byte-compiled here with hash-based ``.pyc`` files that Python never re-checks, so a pod with a
read-only root filesystem starts fast and the layers stay reproducible.  The ``Containerfile`` at the
repository's root builds the same image with docker, podman or buildah; a unit test keeps the two
recipes in agreement.
"""

from __future__ import annotations

import base64
import compileall
import hashlib
import importlib.metadata
import json
import os
import platform
import py_compile
import re
import shutil
import stat
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dirt
from dirt.clients.commands import run
from dirt.core.errors import BinaryError, CommandError, UsageError
from dirt.sandbox import binaries, images, oci
from dirt.sandbox.rootfs import debootstrap_rootfs, rootfs_id

#: The image's names: its version, and ``latest``.
REPOSITORY = f"{images.REGISTRY}/dirt"
DEBIAN_SUITE = "bookworm"
DEBIAN_VARIANT = "minbase"
#: Debian packages on top of minbase: the interpreter, and the CA bundle HTTPS clients trust.
DEBIAN_PACKAGES = ("python3", "ca-certificates")
#: dirt's extras installed in the image: the ``ctk`` driver and Chaos Toolkit interop.
EXTRAS = ("ctk",)
VENV = "/opt/dirt"
TOOLS_DIR = "/usr/local/bin"
#: The tools a drill's procedure calls, and the sandbox component each is built from.
TOOLS: dict[str, binaries.Component] = {
    "kubectl": binaries.KUBERNETES,
    "etcdctl": binaries.ETCD,
    "velero": binaries.VELERO,
}
USER = "dirt"
UID = GID = 65532  # the usual "nonroot" id: no user of a node's host has it
HOME = f"/home/{USER}"
PASSWD_LINE = f"{USER}:x:{UID}:{GID}:{USER}:{HOME}:/usr/sbin/nologin"
GROUP_LINE = f"{USER}:x:{GID}:"
ENV = (
    f"PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "PYTHONDONTWRITEBYTECODE=1",
    "PYTHONUNBUFFERED=1",
    "LANG=C.UTF-8",
)
ENTRYPOINT = ("dirt",)
CMD = ("--help",)
SOURCE_URL = "https://github.com/dirt-project/dirt"
LICENSE = "Apache-2.0"
CREATED = "1970-01-01T00:00:00Z"
#: Bumped when the recipe changes how a layer is made from the same inputs: every layer is made again.
RECIPE_VERSION = 1
#: 1980-01-01, the earliest time a zip entry can carry: the dirt wheel built from a checkout is the
#: same bytes each time (setuptools' ``wheel`` honours SOURCE_DATE_EPOCH).
_WHEEL_EPOCH = "315532800"
_PIP_TIMEOUT = 1800.0
_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def references(version: str = dirt.__version__) -> list[str]:
    return [f"{REPOSITORY}:{version}", f"{REPOSITORY}:latest"]


def labels(version: str = dirt.__version__) -> dict[str, str]:
    return {
        "org.opencontainers.image.title": "dirt",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": SOURCE_URL,
        "org.opencontainers.image.licenses": LICENSE,
    }


def image_cache() -> Path:
    """Where the image's archive, layers and scratch folders live (beside the binary cache)."""
    return binaries.cache_root().parent / "image"


@dataclass(frozen=True)
class LayerInfo:
    name: str
    digest: str
    size: int  # compressed bytes
    uncompressed_size: int
    cached: bool  # taken from the layer cache: nothing was made


@dataclass(frozen=True)
class RunnerImage:
    """What ``build_runner_image`` made."""

    archive: Path
    references: tuple[str, ...]
    digest: str  # the manifest's
    layers: tuple[LayerInfo, ...]
    seconds: float

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def uncompressed_size(self) -> int:
        return sum(layer.uncompressed_size for layer in self.layers)


def build_runner_image(*, wheel: Path | None = None, output: Path | None = None,
                       log: Callable[[str], None] = print) -> RunnerImage:
    """Build the runner image's archive (default ``<cache>/image/dirt-<version>.oci.tar``).

    ``wheel``: the dirt wheel to install (default: built from this checkout, or repacked from the
    installed dirt)."""
    started = time.monotonic()
    version = dirt.__version__
    architecture = _architecture()
    output = output or image_cache() / f"dirt-{version}.oci.tar"
    if wheel is not None:
        _check_wheel(wheel)
    base = debootstrap_rootfs(DEBIAN_PACKAGES, suite=DEBIAN_SUITE, variant=DEBIAN_VARIANT, log=log)
    python = debian_python(base)
    _check_host_python(python)
    tools = {name: _tool(name, component, log) for name, component in TOOLS.items()}
    cache = image_cache() / "layers"
    image_cache().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=image_cache(), prefix="build-") as scratch_name:
        scratch = Path(scratch_name)
        dirt_wheel = wheel or dirt_wheel_for_image(scratch / "dist", log=log)
        wheels = wheelhouse(dirt_wheel, scratch / "wheels", log=log)
        dependencies = [w for w in wheels if _wheel_project(w) != "dirt"]

        log("layer 1/4: base (Debian)")
        base_layer = oci.layer_from_tree(base, cache, key=f"base-{rootfs_id(base)}")
        deps_key = "python-dependencies-" + _key({
            "recipe": RECIPE_VERSION, "venv": VENV, "python": python.version,
            "wheels": sorted((w.name, oci.file_sha256(w)) for w in dependencies)})
        log(f"layer 2/4: python dependencies ({len(dependencies)} wheels)")
        deps_layer = oci.cached_layer(cache, deps_key) or _deps_layer(
            dependencies, python, scratch / "deps", cache, deps_key, log)
        tools_key = "tools-" + _key({
            "recipe": RECIPE_VERSION, "base": rootfs_id(base), "user": [PASSWD_LINE, GROUP_LINE],
            "tools": {name: [TOOLS[name].version, oci.file_sha256(path)] for name, path in sorted(tools.items())}})
        log("layer 3/4: " + ", ".join(tools) + f" and the user {USER}")
        tools_layer = oci.cached_layer(cache, tools_key) or _tools_layer(
            tools, base, scratch / "tools", cache, tools_key, log)
        dirt_key = "dirt-" + _key({"recipe": RECIPE_VERSION, "venv": VENV, "python": python.version,
                                   "dirt": oci.file_sha256(dirt_wheel)})
        log("layer 4/4: dirt")
        dirt_layer = oci.cached_layer(cache, dirt_key) or _dirt_layer(
            dirt_wheel, python, scratch / "dirt", cache, dirt_key, log)
    _prune(cache, prefix="dirt-", keep=dirt_key)  # one per dirt build: only the newest is worth keeping

    layers = [base_layer, deps_layer, tools_layer, dirt_layer]
    names = ("base", "python-dependencies", "tools", "dirt")
    config = image_config(version=version, architecture=architecture, wheels=len(dependencies))
    refs = references(version)
    log(f"writing {output}")
    digest = oci.write_image(output, layers, config=config, references=refs)
    infos = tuple(LayerInfo(name, layer.digest, layer.size, layer.uncompressed_size, layer.cached)
                  for name, layer in zip(names, layers))
    return RunnerImage(archive=output, references=tuple(refs), digest=digest, layers=infos,
                       seconds=round(time.monotonic() - started, 1))


def image_config(*, version: str, architecture: str, wheels: int) -> dict[str, object]:
    """The image's config (without ``rootfs``, which ``oci.write_image`` adds): how it runs, what it is."""
    tool_list = ", ".join(f"{name} {TOOLS[name].version}" for name in TOOLS)
    return {
        "architecture": architecture, "os": "linux", "created": CREATED,
        "config": {"Env": list(ENV), "User": f"{UID}:{GID}", "WorkingDir": HOME, "Entrypoint": list(ENTRYPOINT),
                   "Cmd": list(CMD), "Labels": labels(version)},
        "history": [
            {"created": CREATED, "created_by": f"dirt image build: debootstrap {DEBIAN_SUITE} ({DEBIAN_VARIANT}) "
                                               f"with {', '.join(DEBIAN_PACKAGES)}"},
            {"created": CREATED, "created_by": f"dirt image build: {wheels} wheels in {VENV}"},
            {"created": CREATED, "created_by": f"dirt image build: {tool_list}, user {USER} ({UID})"},
            {"created": CREATED, "created_by": f"dirt image build: dirt {version}"},
        ],
    }


# --- the Python in the image -------------------------------------------------------------------------


@dataclass(frozen=True)
class DebianPython:
    """Debian's ``python3`` in a root filesystem."""

    version: str  # 3.11.2
    executable: str  # /usr/bin/python3.11

    @property
    def short(self) -> str:  # 3.11
        return ".".join(self.version.split(".")[:2])

    @property
    def site_packages(self) -> str:
        return f"{VENV}/lib/python{self.short}/site-packages"


def debian_python(root: Path) -> DebianPython:
    """Which Python ``root``'s ``/usr/bin/python3`` is, read from its files (nothing runs in it)."""
    link = root / "usr/bin/python3"
    target = os.readlink(link) if link.is_symlink() else ""
    match = re.fullmatch(r"(?:/usr/bin/)?python(3\.\d+)", target)
    if not match:
        raise BinaryError(f"{link}: not a link to a python3.X (found {target!r}); remove {root} and retry")
    short = match.group(1)
    version = short
    status = root / "var/lib/dpkg/status"
    text = status.read_text(errors="replace") if status.is_file() else ""
    found = re.search(rf"^Package: python{re.escape(short)}-minimal\n(?:[^\n]+\n)*?Version: (?:\d+:)?([0-9.]+)",
                      text, re.MULTILINE)
    if found:
        version = found.group(1)
    return DebianPython(version=version, executable=f"/usr/bin/python{short}")


def _check_host_python(python: DebianPython) -> None:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if sys.implementation.name != "cpython" or here != python.short:
        raise BinaryError(f"the image's python3 is CPython {python.short} (Debian {DEBIAN_SUITE}), but dirt runs on "
                          f"{sys.implementation.name} {here} here: the wheels pip makes would not fit it; "
                          f"run `dirt image build` with a CPython {python.short}")


def _architecture() -> str:
    machine = platform.machine().lower()
    if machine not in _ARCHITECTURES:
        raise BinaryError(f"cannot build the runner image on {machine!r}: only amd64 and arm64 are known")
    return _ARCHITECTURES[machine]


# --- the dirt wheel ------------------------------------------------------------------------------------


def _check_wheel(wheel: Path) -> None:
    if not wheel.is_file() or wheel.suffix != ".whl" or _wheel_project(wheel) != "dirt":
        raise UsageError(f"--wheel {wheel}: not a dirt wheel file (dirt-<version>-py3-none-any.whl)")


def checkout_root() -> Path | None:
    """The checkout dirt runs from (the folder above the ``dirt`` package holds dirt's pyproject.toml), if any."""
    root = Path(dirt.__file__).resolve().parent.parent
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if project.get("project", {}).get("name") == "dirt" else None


def dirt_wheel_for_image(dest: Path, *, log: Callable[[str], None] = print) -> Path:
    """A wheel of the dirt that runs: built from its checkout, else repacked from its installed files."""
    checkout = checkout_root()
    if checkout is not None:
        return wheel_from_checkout(checkout, dest, log=log)
    return wheel_from_installed(dest)


def wheel_from_checkout(checkout: Path, dest: Path, *, log: Callable[[str], None] = print) -> Path:
    """``pip wheel --no-deps`` of the checkout, built from a copy of its sources: setuptools writes
    ``build/`` and ``*.egg-info`` where it builds (and packs whatever stale file ``build/`` still holds)."""
    source = dest.parent / "dirt-source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    project = tomllib.loads((checkout / "pyproject.toml").read_text()).get("project", {})
    readme = project.get("readme")
    for name in {"pyproject.toml", "setup.cfg", "setup.py", "MANIFEST.in", *(
            [readme] if isinstance(readme, str) else []), *(p.name for p in checkout.glob("LICEN[CS]E*"))}:
        if (checkout / name).is_file():
            shutil.copy2(checkout / name, source / name)
    shutil.copytree(checkout / "dirt", source / "dirt", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    log(f"building the dirt wheel from {checkout}")
    env = dict(os.environ, SOURCE_DATE_EPOCH=_WHEEL_EPOCH)
    _pip(["wheel", "--no-deps", "--quiet", "-w", str(dest), str(source)], env=env, what="pip wheel dirt", log=log)
    made = sorted(dest.glob("dirt-*.whl"))
    if not made:
        raise BinaryError(f"pip built no dirt wheel from {checkout} in {dest}")
    return made[-1]


def wheel_from_installed(dest: Path, dist: importlib.metadata.Distribution | None = None) -> Path:
    """The installed dirt (or ``dist``) packed back into a wheel from its RECORD: every file it lists
    inside site-packages, its dist-info with them (scripts and ``.pyc`` files are made again on install)."""
    hint = "pass --wheel FILE (made with `pip wheel --no-deps PATH-TO-DIRT`)"
    if dist is None:
        try:
            dist = importlib.metadata.distribution("dirt")
        except importlib.metadata.PackageNotFoundError:
            raise UsageError(f"dirt is not installed as a distribution: {hint}") from None
    direct = dist.read_text("direct_url.json")
    editable = bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))
    files = [f for f in dist.files or []
             if not str(f).startswith("..") and "__pycache__" not in f.parts and f.suffix != ".pyc"]
    if editable or not any(str(f) == "dirt/__init__.py" for f in files):
        raise UsageError(f"dirt is installed in editable mode outside a checkout, so its files cannot be packed "
                         f"into the image: {hint}")
    dist_info = f"dirt-{dist.version}.dist-info"
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / f"dirt-{dist.version}-py3-none-any.whl"
    entries: dict[str, bytes] = {}
    for file in files:
        name = str(file)
        if name.startswith(dist_info + "/") and file.name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
            continue  # written at install time, or by this repack (RECORD)
        entries[name] = Path(str(file.locate())).read_bytes()
    entries.setdefault(f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: dirt\nRoot-Is-Purelib: true\n"
                                             b"Tag: py3-none-any\n")
    record = "".join(f"{name},sha256={_urlsafe_sha256(data)},{len(data)}\n" for name, data in sorted(entries.items()))
    entries[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(entries.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel


def _urlsafe_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel_project(wheel: Path) -> str:
    """A wheel's project name, normalised (``Foo_Bar-1.0-…`` → ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-", 1)[0]).lower()


def wheelhouse(dirt_wheel: Path, dest: Path, *, log: Callable[[str], None] = print) -> list[Path]:
    """Every wheel the image needs (dirt's with its extras, and all their dependencies), made by this
    machine's pip: from the package index, its cache or a PIP_FIND_LINKS folder."""
    dest.mkdir(parents=True, exist_ok=True)
    requirement = f"{dirt_wheel}[{','.join(EXTRAS)}]" if EXTRAS else str(dirt_wheel)
    log(f"collecting the wheels of {dirt_wheel.name}[{','.join(EXTRAS)}] with pip")
    _pip(["wheel", "--quiet", "-w", str(dest), requirement], env=None, what="pip wheel", log=log)
    wheels = sorted(dest.glob("*.whl"))
    if not any(_wheel_project(w) == "dirt" for w in wheels):
        raise BinaryError(f"pip wheel left no dirt wheel in {dest}")
    return wheels


def _pip(args: list[str], *, env: dict[str, str] | None, what: str, log: Callable[[str], None]) -> None:
    said = [time.monotonic()]

    def progress(elapsed: float) -> None:
        if time.monotonic() - said[0] >= 30:
            said[0] = time.monotonic()
            log(f"  … still running {what} ({elapsed:.0f}s)")

    try:
        result = run([sys.executable, "-m", "pip", *args], timeout=_PIP_TIMEOUT, env=env, on_wait=progress, what=what)
    except CommandError as exc:
        raise BinaryError(f"{what}: {exc}") from None
    if result.returncode != 0:
        raise BinaryError(f"{what} failed (exit {result.returncode}):\n{result.tail(15)}\n"
                          "pip needs the package index (or a PIP_FIND_LINKS folder) and `python -m pip` working")


# --- the layers ----------------------------------------------------------------------------------------


def _key(inputs: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _tool(name: str, component: binaries.Component, log: Callable[[str], None]) -> Path:
    if not binaries.is_built(component):
        binaries.build(component, log=log)
    path = component.path(name).resolve()  # a binary adopted from PATH is a link in the cache
    if not path.is_file():
        raise BinaryError(f"{name} is missing from {component.folder}: run `dirt sandbox build --force`")
    return path


def write_venv(staging: Path, python: DebianPython) -> Path:
    """The skeleton of a virtual environment at ``VENV`` below ``staging``, as ``python -m venv`` makes it
    for Debian's python3 (without running it); return its site-packages folder in ``staging``."""
    venv = staging / VENV.lstrip("/")
    site = staging / python.site_packages.lstrip("/")
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ninclude-system-site-packages = false\n"
                                     f"version = {python.version}\nexecutable = {python.executable}\n")
    (venv / "bin/python3").symlink_to("/usr/bin/python3")
    (venv / "bin/python").symlink_to("python3")
    (venv / f"bin/python{python.short}").symlink_to("python3")
    (venv / "lib64").symlink_to("lib")  # as venv makes it on 64-bit Linux
    return site


def install_wheels(wheels: list[Path], staging: Path, python: DebianPython) -> None:
    """Install ``wheels`` into the virtual environment at ``VENV``, written below ``staging``; console
    scripts start with ``#!<VENV>/bin/python``, the interpreter they have in the image."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    scheme = {"purelib": python.site_packages, "platlib": python.site_packages,
              "headers": f"{VENV}/include/site/python{python.short}", "scripts": f"{VENV}/bin", "data": VENV}
    destination = SchemeDictionaryDestination(scheme, interpreter=f"{VENV}/bin/python", script_kind="posix",
                                              destdir=str(staging))
    for wheel in wheels:
        with WheelFile.open(wheel) as source:
            try:
                install(source, destination, additional_metadata={"INSTALLER": b"dirt image build\n"})
            except (FileExistsError, ValueError) as exc:
                raise BinaryError(f"installing {wheel.name} into the image: {exc}") from None


def compile_site_packages(site: Path, python: DebianPython) -> None:
    """Byte-compile ``site`` (the staging copy of ``python.site_packages``) for the image: hash-based
    ``.pyc`` files never checked against their source (the image never changes), carrying in-image paths."""
    compileall.compile_dir(str(site), ddir=python.site_packages, quiet=2, workers=0,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def normalize_modes(root: Path) -> None:
    """Folders 0755, files 0644 or 0755 (any execute bit): the layer does not depend on this process's umask."""
    for folder, dirnames, filenames in os.walk(root):
        os.chmod(folder, 0o755)
        for name in filenames:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, 0o755 if mode & 0o111 else 0o644)


def _deps_layer(wheels: list[Path], python: DebianPython, staging: Path, cache: Path, key: str,
                log: Callable[[str], None]) -> oci.Layer:
    started = time.monotonic()
    site = write_venv(staging, python)
    install_wheels(wheels, staging, python)
    compile_site_packages(site, python)
    normalize_modes(staging)
    log(f"  installed and compiled {len(wheels)} wheels in {time.monotonic() - started:.0f}s; packing")
    return oci.layer_from_tree(staging, cache, key=key, default_owner=(0, 0))


def user_files(base: Path) -> dict[str, str]:
    """``etc/passwd`` and ``etc/group`` of the base with the user and group ``dirt`` added."""
    made = {}
    for name, line in (("etc/passwd", PASSWD_LINE), ("etc/group", GROUP_LINE)):
        lines = [entry for entry in (base / name).read_text().splitlines() if not entry.startswith(f"{USER}:")]
        made[name] = "\n".join([*lines, line]) + "\n"
    return made


def _tools_layer(tools: dict[str, Path], base: Path, staging: Path, cache: Path, key: str,
                 log: Callable[[str], None]) -> oci.Layer:
    bin_dir = staging / TOOLS_DIR.lstrip("/")
    bin_dir.mkdir(parents=True)
    for name, path in sorted(tools.items()):
        shutil.copyfile(path, bin_dir / name)
        (bin_dir / name).chmod(0o755)
    for name, text in user_files(base).items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(text)
    (staging / HOME.lstrip("/")).mkdir(parents=True)
    normalize_modes(staging)
    log("  packing " + ", ".join(tools) + f" and the user {USER}")
    return oci.layer_from_tree(staging, cache, key=key, default_owner=(0, 0), owners={HOME.lstrip("/"): (UID, GID)})


def _dirt_layer(dirt_wheel: Path, python: DebianPython, staging: Path, cache: Path, key: str,
                log: Callable[[str], None]) -> oci.Layer:
    site = staging / python.site_packages.lstrip("/")
    site.mkdir(parents=True)
    (staging / VENV.lstrip("/") / "bin").mkdir()
    install_wheels([dirt_wheel], staging, python)
    compile_site_packages(site, python)
    normalize_modes(staging)
    log(f"  packing {dirt_wheel.name}")
    return oci.layer_from_tree(staging, cache, key=key, default_owner=(0, 0))


def _prune(cache: Path, *, prefix: str, keep: str) -> None:
    """Remove the cached layers named ``prefix*`` but ``keep`` (and their sidecars)."""
    for path in cache.glob(f"{prefix}*"):
        if not path.name.startswith(keep):
            path.unlink(missing_ok=True)

"""The sandbox's binaries: built from Go modules once, then found in a versioned cache.

Nothing here is downloaded as a release binary.  Each component is built with
the machine's Go from its published modules, through a small wrapper module
shipped inside the package (``dirt/sandbox/gomodules/<component>/go.mod``, package
data, so an installed wheel builds as a checkout does): Kubernetes' own go.mod
replaces its staging modules with local folders, so the wrapper requires
``k8s.io/kubernetes`` and replaces each staging module with its published
``v0.Y.Z``.  Outputs land in ``${XDG_CACHE_HOME:-~/.cache}/dirt/bin/<component>-<version>/``
and are reused whenever they answer ``--version`` correctly; Go's own module
and build caches make a rebuild after a cache wipe fast.  The wrapper module is
copied to ``<cache>/modules/<component>/`` before a build: site-packages may be
read-only, and one fixed folder keeps Go's caches warm wherever dirt is installed.

Prometheus, promtool, Alertmanager and the Pushgateway come from Debian packages
(installed by ``scripts/install-system-deps.sh``); they are only located here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from dirt.clients.commands import run
from dirt.core.errors import BinaryError, CommandError

KUBERNETES_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"
KSM_VERSION = "v2.20.0"
VELERO_VERSION = "v1.18.3"
VELERO_AWS_VERSION = "v1.14.3"
GOFAKES3_VERSION = "v1.2.0"
#: What a kind node image is made of, beyond the control plane and etcd above (dirt.kind.nodeimage).
KIND_VERSION = "v0.33.0"
COREDNS_VERSION = "v1.14.2"
CRICTL_VERSION = "v1.36.0"
LOCAL_PATH_VERSION = "v0.0.30"
PAUSE_VERSION = "3.10.2"

#: The wrapper modules, a folder of dirt.sandbox (each of its folders holds go.mod, go.sum and tools.go).
GOMODULES = "gomodules"
#: The files of a wrapper module (main.go: a program of its own, e.g. the pause of a kind node image).
MODULE_FILES = ("go.mod", "go.sum", "tools.go", "main.go")


def wrapper_module(name: str) -> Path:
    """The wrapper module ``name`` copied from the package into ``<cache>/modules/<name>``, ready to build in."""
    source = resources.files("dirt.sandbox").joinpath(GOMODULES, name)
    if not source.joinpath("go.mod").is_file():
        raise BinaryError(f"wrapper module {name!r} is missing from the installed dirt package "
                          f"({source}/go.mod): reinstall dirt")
    dest = cache_root() / "modules" / name
    dest.mkdir(parents=True, exist_ok=True)
    for file in MODULE_FILES:
        part = source.joinpath(file)
        if not part.is_file():
            continue
        data = part.read_bytes()
        target = dest / file
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
    return dest


def cache_root() -> Path:
    base = os.environ.get("DIRT_BIN_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "dirt" / "bin"


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    binaries: dict[str, str]  # output name -> Go package
    module_dir: str | None = None  # wrapper module under dirt/sandbox/gomodules/; None: `go install pkg@version`
    ldflags: Callable[[Component], str] = field(default=lambda c: "-s -w")
    #: how each binary is asked for its version (default: --version)
    version_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: binaries that cannot say their version (a Velero plugin, gofakes3): checked to run, never adopted from PATH
    unversioned: frozenset[str] = frozenset()
    #: bumped when dirt builds the same version differently (other ldflags): a new cache folder
    build_id: str = ""

    @property
    def folder(self) -> Path:
        return cache_root() / (f"{self.name}-{self.version}" + (f"-{self.build_id}" if self.build_id else ""))

    def path(self, binary: str) -> Path:
        return self.folder / binary


def _kube_ldflags(c: Component) -> str:
    major, minor = c.version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={c.version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitCommit=go-module-{c.version}",
            f"-X {pkg}.gitTreeState=clean",
            f"-X {pkg}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


KUBERNETES = Component(
    name="kubernetes",
    version=KUBERNETES_VERSION,
    binaries={
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    },
    module_dir="kubernetes",
    ldflags=_kube_ldflags,
    version_args={"kubectl": ("version", "--client")},
)

ETCD = Component(
    name="etcd",
    version=ETCD_VERSION,
    binaries={
        "etcd": "go.etcd.io/etcd/server/v3",
        "etcdctl": "go.etcd.io/etcd/etcdctl/v3",
        "etcdutl": "go.etcd.io/etcd/etcdutl/v3",
    },
    module_dir="etcd",
    ldflags=lambda c: f"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=go-module-{c.version}",
    version_args={"etcdctl": ("version",), "etcdutl": ("version",)},
)

KWOK = Component(
    name="kwok",
    version=KWOK_VERSION,
    binaries={"kwok": "sigs.k8s.io/kwok/cmd/kwok", "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl"},
    module_dir=None,
)

KUBE_STATE_METRICS = Component(
    name="kube-state-metrics",
    version=KSM_VERSION,
    binaries={"kube-state-metrics": "k8s.io/kube-state-metrics/v2"},
    module_dir="kube-state-metrics",
    ldflags=lambda c: f"-s -w -X github.com/prometheus/common/version.Version={c.version.lstrip('v')}",
    version_args={"kube-state-metrics": ("version",)},
)

#: Velero's server and CLI (one binary) and gofakes3, the S3-compatible store Velero writes to: one wrapper
#: module (gomodules/velero), because Velero's go.mod replaces kopia with its fork and pins a k8s.io patch
#: release the module proxy no longer serves.  The version is set by ldflags, or `velero version` is empty.
VELERO = Component(
    name="velero",
    version=VELERO_VERSION,
    binaries={"velero": "github.com/vmware-tanzu/velero/cmd/velero",
              "gofakes3": "github.com/johannesboyne/gofakes3/cmd/gofakes3"},
    module_dir="velero",
    # controller-runtime inside Velero serves a second metrics endpoint on ":8080" (every interface,
    # and one port for the whole machine) with no flag to move it; its default is a variable, so the
    # linker sets it to "0" (off).  Velero's own metrics stay on --metrics-address.
    ldflags=lambda c: (f"-s -w -X github.com/vmware-tanzu/velero/pkg/buildinfo.Version={c.version}"
                       " -X sigs.k8s.io/controller-runtime/pkg/metrics/server.DefaultBindAddress=0"),
    version_args={"velero": ("version", "--client-only")},
    unversioned=frozenset({"gofakes3"}),
    build_id="1",
)

#: Velero's object-store plugin for S3 (and S3-compatible stores); its main package is in a subfolder.
VELERO_AWS_PLUGIN = Component(
    name="velero-plugin-for-aws",
    version=VELERO_AWS_VERSION,
    binaries={"velero-plugin-for-aws": "github.com/vmware-tanzu/velero-plugin-for-aws/velero-plugin-for-aws"},
    module_dir=None,
    unversioned=frozenset({"velero-plugin-for-aws"}),
)

#: The kubelet of the sandbox's real node, from the control plane's wrapper module; its own cache folder,
#: so that sandboxes without a real node never build it.
KUBELET = Component(
    name="kubelet",
    version=KUBERNETES_VERSION,
    binaries={"kubelet": "k8s.io/kubernetes/cmd/kubelet"},
    module_dir="kubernetes",
    ldflags=_kube_ldflags,
)

#: kubeadm and kube-proxy for kind node images: a wrapper module of their own (their requirements differ).
KIND_NODE = Component(
    name="kind-node",
    version=KUBERNETES_VERSION,
    binaries={"kubeadm": "k8s.io/kubernetes/cmd/kubeadm", "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy"},
    module_dir="kind-node",
    ldflags=_kube_ldflags,
    version_args={"kubeadm": ("version", "-o", "short")},
)

#: The kind CLI (it makes, lists and deletes clusters).
KIND = Component(
    name="kind",
    version=KIND_VERSION,
    binaries={"kind": "sigs.k8s.io/kind"},
    version_args={"kind": ("version",)},
)

#: The node image's cluster DNS, CRI client, storage provisioner and pod sandbox.
COREDNS = Component(
    name="coredns",
    version=COREDNS_VERSION,
    binaries={"coredns": "github.com/coredns/coredns"},
    version_args={"coredns": ("-version",)},
)
CRICTL = Component(
    name="crictl",
    version=CRICTL_VERSION,
    binaries={"crictl": "sigs.k8s.io/cri-tools/cmd/crictl"},
    ldflags=lambda c: f"-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version={c.version}",
)
LOCAL_PATH_PROVISIONER = Component(
    name="local-path-provisioner",
    version=LOCAL_PATH_VERSION,
    binaries={"local-path-provisioner": "github.com/rancher/local-path-provisioner"},
    unversioned=frozenset({"local-path-provisioner"}),
)
#: dirt's own pause (gomodules/pause/main.go), tagged as the pause kubeadm asks for.
PAUSE = Component(
    name="pause",
    version=PAUSE_VERSION,
    binaries={"pause": "github.com/dirt-project/dirt/dirt/sandbox/gomodules/pause"},
    module_dir="pause",
    ldflags=lambda c: f"-s -w -X main.version={c.version}",
    version_args={"pause": ("-v",)},
)

COMPONENTS = (KUBERNETES, ETCD, KWOK, KUBE_STATE_METRICS)
#: Built only for sandboxes that run Velero (``settings: {velero: true}``).
VELERO_COMPONENTS = (VELERO, VELERO_AWS_PLUGIN)
#: Built only for sandboxes with a real node (``settings: {real_nodes: 1}``).
REAL_NODE_COMPONENTS = (KUBELET,)
#: Built only for kind node images (``dirt kind build-image``) and kind clusters.
KIND_COMPONENTS = (KIND, KIND_NODE, CRICTL, PAUSE, LOCAL_PATH_PROVISIONER, COREDNS)
#: A cold build of Kubernetes takes minutes on two cores; one hour means something is stuck.
BUILD_TIMEOUT = 3600.0


def _answers(path: Path, component: Component) -> bool:
    """Does the binary run and report the component's version?"""
    if not (path.is_file() and os.access(path, os.X_OK)):
        return False
    if path.name in component.unversioned:
        return True  # built from the pinned module by us; nothing to ask
    args = component.version_args.get(path.name, ("--version",))
    try:
        out = run([str(path), *args], timeout=30, what=f"{path.name} --version")
    except CommandError:
        return False
    return component.version.lstrip("v") in (out.stdout + out.stderr)


def is_built(component: Component) -> bool:
    marker = component.folder / ".complete"
    return marker.is_file() and all((component.folder / b).is_file() for b in component.binaries)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BinaryError("the Go toolchain is not on PATH: the sandbox binaries are built with it "
                          "(install Go 1.26+, then retry: dirt sandbox build)")
    return go


def on_path(component: Component) -> dict[str, Path] | None:
    """The component's binaries if every one of them is on PATH at the right version."""
    if component.unversioned:
        return None  # a binary on PATH that cannot say its version is not known to be the right one
    found = {}
    for name in component.binaries:
        where = shutil.which(name)
        if where is None or not _answers(Path(where), component):
            return None
        found[name] = Path(where)
    return found


def _adopt(component: Component, found: dict[str, Path]) -> Path:
    """Link binaries found on PATH into the cache folder, so everything else finds them there."""
    folder = component.folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, path in found.items():
        (folder / name).symlink_to(path.resolve())
    (folder / ".complete").write_text(json.dumps({"version": component.version, "source": "PATH"}))
    return folder


def build(component: Component, *, log: Callable[[str], None] = print, force: bool = False) -> Path:
    """Use ``component`` from the cache or PATH at the right version, else build it."""
    if is_built(component) and not force:
        return component.folder
    found = None if force else on_path(component)
    if found is not None:
        log(f"using {component.name} {component.version} from PATH ({', '.join(map(str, found.values()))})")
        return _adopt(component, found)
    go = _go()
    folder = component.folder
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false", **component.env)
    env.setdefault("GOTOOLCHAIN", "local")
    started = time.monotonic()
    log_path = cache_root() / f"build-{component.name}-{component.version}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if component.module_dir is not None:
        module = wrapper_module(component.module_dir)
        argv = [go, "build", "-trimpath", "-ldflags", component.ldflags(component),
                "-o", str(staging) + os.sep, *component.binaries.values()]
        cwd = module
    else:
        env["GOBIN"] = str(staging)
        argv = [go, "install", "-trimpath", "-ldflags", component.ldflags(component),
                *(f"{pkg}@{component.version}" for pkg in component.binaries.values())]
        cwd = cache_root()
    log(f"building {component.name} {component.version} ({', '.join(component.binaries)}) — "
        f"a cold build takes minutes; log: {log_path}")
    said = [started]

    def progress(elapsed: float) -> None:
        if time.monotonic() - said[0] >= 30:
            said[0] = time.monotonic()
            log(f"  … still building {component.name} ({elapsed:.0f}s)")

    try:
        result = run(argv, timeout=BUILD_TIMEOUT, env=env, cwd=cwd, on_wait=progress, what=f"go build {component.name}")
    except CommandError as exc:
        raise BinaryError(f"building {component.name} {component.version}: {exc}") from None
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise BinaryError(f"building {component.name} {component.version} failed (exit {result.returncode}); "
                          f"last lines of {log_path}:\n{tail}\nretry with: dirt sandbox build --force")
    # Packages named after their module path (go.etcd.io/etcd/server/v3) build as 'v3'
    # or the last element; rename outputs to the names we want.
    for name, pkg in component.binaries.items():
        produced = _produced_name(staging, pkg)
        if produced is None:
            raise BinaryError(f"{component.name}: go built no binary for {pkg} in {staging}")
        if produced.name != name:
            produced.rename(staging / name)
    for name in component.binaries:
        if not _answers(staging / name, component):
            raise BinaryError(f"{component.name}: {name} does not report version {component.version}; "
                              "retry with: dirt sandbox build --force")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    (folder / ".complete").write_text(json.dumps({"version": component.version,
                                                  "seconds": round(time.monotonic() - started, 1)}))
    log(f"built {component.name} {component.version} in {time.monotonic() - started:.0f}s -> {folder}")
    return folder


def _produced_name(folder: Path, pkg: str) -> Path | None:
    parts = pkg.split("/")
    candidates = [parts[-1]]
    if parts[-1].startswith("v") and parts[-1][1:].isdigit():
        candidates.append(parts[-2])
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    return None


def build_all(*, log: Callable[[str], None] = print, force: bool = False,
              components: tuple[Component, ...] = COMPONENTS) -> dict[str, Path]:
    return {c.name: build(c, log=log, force=force) for c in components}


@dataclass(frozen=True)
class Binaries:
    """Where each sandbox program is."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    etcdctl: Path
    etcdutl: Path
    kwok: Path
    kwokctl: Path
    kube_state_metrics: Path | None
    prometheus: Path
    promtool: Path
    alertmanager: Path

    def versions(self) -> dict[str, str]:
        return {"kubernetes": KUBERNETES_VERSION, "etcd": ETCD_VERSION, "kwok": KWOK_VERSION,
                "kube-state-metrics": KSM_VERSION if self.kube_state_metrics else "not built"}


def _system(name: str, *alternatives: str) -> Path:
    for candidate in (name, *alternatives):
        found = shutil.which(candidate)
        if found:
            return Path(found)
    raise BinaryError(f"{name} not found: install the Debian packages with scripts/install-system-deps.sh "
                      "(or `make deps`)")


def locate(*, build_missing: bool = False, log: Callable[[str], None] = print) -> Binaries:
    """Find every binary, building the Go ones first if asked; raise naming what is missing."""
    for component in COMPONENTS:
        if not is_built(component):
            if build_missing:
                build(component, log=log)
            elif component is not KUBE_STATE_METRICS:
                raise BinaryError(f"{component.name} {component.version} is not built yet: run "
                                  "`dirt sandbox build` (or `make deps`)")
    k, e, w = KUBERNETES, ETCD, KWOK
    return Binaries(
        kube_apiserver=k.path("kube-apiserver"), kube_controller_manager=k.path("kube-controller-manager"),
        kube_scheduler=k.path("kube-scheduler"), kubectl=k.path("kubectl"),
        etcd=e.path("etcd"), etcdctl=e.path("etcdctl"), etcdutl=e.path("etcdutl"),
        kwok=w.path("kwok"), kwokctl=w.path("kwokctl"),
        kube_state_metrics=KUBE_STATE_METRICS.path("kube-state-metrics") if is_built(KUBE_STATE_METRICS) else None,
        prometheus=_system("prometheus"), promtool=_system("promtool"),
        alertmanager=_system("prometheus-alertmanager", "alertmanager"),
    )


@dataclass(frozen=True)
class VeleroBinaries:
    """Velero's server and CLI, its AWS object-store plugin and gofakes3 (for sandboxes with ``velero: true``)."""

    velero: Path
    aws_plugin: Path
    gofakes3: Path

    def versions(self) -> dict[str, str]:
        return {"velero": VELERO_VERSION, "velero-plugin-for-aws": VELERO_AWS_VERSION, "gofakes3": GOFAKES3_VERSION}


def locate_velero(*, build_missing: bool = False, log: Callable[[str], None] = print) -> VeleroBinaries:
    for component in VELERO_COMPONENTS:
        if not is_built(component):
            if not build_missing:
                raise BinaryError(f"{component.name} {component.version} is not built yet (the sandbox runs Velero): "
                                  "run `dirt sandbox build` (or `make deps`)")
            build(component, log=log)
    return VeleroBinaries(velero=VELERO.path("velero"), aws_plugin=VELERO_AWS_PLUGIN.path("velero-plugin-for-aws"),
                          gofakes3=VELERO.path("gofakes3"))


def locate_pushgateway() -> Path:
    """Debian's Prometheus Pushgateway (for sandboxes with ``pushgateway: true``); nothing to build."""
    return _system("prometheus-pushgateway", "pushgateway")


def locate_kubelet(*, build_missing: bool = False, log: Callable[[str], None] = print) -> Path:
    if not is_built(KUBELET):
        if not build_missing:
            raise BinaryError(f"kubelet {KUBELET.version} is not built yet (the sandbox has a real node): "
                              "run `dirt sandbox build` (or `make deps`)")
        build(KUBELET, log=log)
    return KUBELET.path("kubelet")

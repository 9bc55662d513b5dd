"""A real node in the sandbox: kubelet with containerd and runc, running real containers.

Opt-in per sandbox (``settings: {real_nodes: 1}``), beside the KWOK nodes.  Two processes, both
started, health-checked, logged and stopped with the sandbox:

* ``containerd`` (Debian's, with runc): its own socket, root and state under
  ``<sandbox>/realnode/containerd``, metrics on a 127.0.0.1 port (its health check), the CRI
  streaming server on 127.0.0.1, the built-in pause image as the sandbox image, and
  ``restrict_oom_score_adj`` (this machine lacks CAP_SYS_RESOURCE; without it runc fails with
  "can't get final child's PID from pipe").
* ``kubelet`` (built from the same wrapper module as the control plane): node ``real-0`` with
  ``--node-ip 127.0.0.1``, a client certificate for ``system:node:real-0`` signed by the
  sandbox's CA (the Node authorizer applies to it as to any kubelet), its API and health
  endpoint on 127.0.0.1, ``cgroupDriver: cgroupfs`` and ``failCgroupV1: false`` (the machine
  has cgroup v1), its pods under a cgroup of the sandbox's own (``/dirt-<name>-<hash of its folder>``,
  ``node_id``), so two sandboxes never share one, even of the same name.

The node is labelled ``dirt.dev/node=real`` and tainted ``dirt.dev/real-node=true:NoSchedule``: only
workloads that ask for it (a toleration and a node selector) land there; the KWOK controller
manages only the nodes it made.  Pods there use ``hostNetwork`` and listen on 127.0.0.1 ports: the
CNI configuration is loopback only, so no pod network on a private range is reachable from the
host.  Images come from :mod:`dirt.sandbox.images` (no registry), imported into containerd.

Stopping leaves nothing behind: every container is killed through containerd, the shims of this
containerd (found by its socket address, never by name alone) are stopped, the mounts under the
node's folder are unmounted and its cgroups removed.

The ``RealNode`` component at the end puts these parts together: it starts the node (and joins it
to the sandbox's control plane, which it knows only as a ``NodeRegistry``), imports images, kills a
container, and stops the node as a lost machine does.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dirt.clients.commands import CommandResult, run
from dirt.core.errors import BinaryError, CommandError, TargetError
from dirt.sandbox import images
from dirt.sandbox.binaries import locate_kubelet
from dirt.sandbox.component import Log, ProcessGroup, SandboxContext, answers, quiet, write_yaml

NODE_PREFIX = "real-"
LABEL = "dirt.dev/node"
TAINT_KEY = "dirt.dev/real-node"
#: the processes, in start order (stopped in reverse)
COMPONENTS = ("containerd", "kubelet")
#: containerd's namespace for the CRI (kubelet's containers and images live there)
CRI_NAMESPACE = "k8s.io"
#: cgroup v1 hierarchies the kubelet creates its pod cgroups in (and the unified one, if mounted)
_CGROUP_FS = Path("/sys/fs/cgroup")
_UNIX_PATH_MAX = 107


def node_name(index: int = 0) -> str:
    return f"{NODE_PREFIX}{index}"


#: The longest socket path the kubelet and containerd make below the node's folder (the kubelet's
#: pod-resources socket), so that the whole path fits a Unix socket address (107 bytes).
_DEEPEST_SOCKET = len("/kubelet/root/pod-resources/4294967295") + 4


def folder(root: Path) -> Path:
    """The node's files: ``<sandbox>/realnode``, unless the sandbox's folder is too deep for the sockets
    the kubelet and containerd make there; then a short folder of its own in the temp folder."""
    inside = root / "realnode"
    if len(str(inside)) + _DEEPEST_SOCKET <= _UNIX_PATH_MAX:
        return inside
    import tempfile
    import zlib

    return Path(tempfile.gettempdir()) / f"dirt-node-{zlib.crc32(str(root).encode()):08x}"


def socket_path(root: Path) -> Path:
    return folder(root) / "containerd" / "containerd.sock"


def cgroup_root(sandbox: str) -> str:
    return f"/dirt-{re.sub(r'[^A-Za-z0-9_.-]', '_', sandbox)}"


def node_id(sandbox: str, root: Path) -> str:
    """What sets a sandbox's real node apart on the machine (its pod cgroup): the name and where it lives,
    since two sandboxes of one name in different folders must never share (or clean up) each other's pods."""
    return f"{sandbox}-{zlib.crc32(str(root.resolve()).encode()):08x}"


@functools.lru_cache(maxsize=1)
def system_binaries() -> dict[str, Path]:
    """containerd, its ``ctr`` client, runc and the CNI plugins, from Debian's packages."""
    import shutil

    found: dict[str, Path] = {}
    for name in ("containerd", "ctr", "runc", "containerd-shim-runc-v2"):
        where = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                            if os.access(p, os.X_OK)), None)
        if where is None:
            raise BinaryError(f"{name} not found: the sandbox's real node needs Debian's containerd and runc "
                              "(scripts/install-system-deps.sh installs them)")
        found[name] = Path(where)
    cni = Path("/usr/lib/cni")
    if not (cni / "loopback").is_file():
        raise BinaryError("the CNI loopback plugin is not in /usr/lib/cni: install Debian's "
                          "containernetworking-plugins (scripts/install-system-deps.sh)")
    found["cni"] = cni
    return found


def containerd_version() -> str:
    try:
        out = run([str(system_binaries()["containerd"]), "--version"], timeout=10, what="containerd --version")
    except CommandError as exc:
        raise BinaryError(f"containerd does not run: {exc}") from None
    match = re.search(r"\s(v?\d+\.\d+\.\d+)", out.stdout)
    return match.group(1) if match else out.stdout.strip()[:40]


# -- configuration -------------------------------------------------------------------------------
def containerd_config(root: Path, *, metrics_port: int, runc: Path, cni_bin: Path) -> str:
    base = folder(root) / "containerd"
    sock = socket_path(root)
    if len(str(folder(root))) + _DEEPEST_SOCKET > _UNIX_PATH_MAX:
        raise TargetError(f"the temp folder is too deep for the real node's sockets ({sock}): the limit is "
                          f"{_UNIX_PATH_MAX} characters; set TMPDIR to a shorter path")
    def q(value: object) -> str:
        """A TOML basic string: written as a JSON string (quotes and backslashes escaped)."""
        return json.dumps(str(value))

    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = {q(base / 'root')}
state = {q(base / 'state')}
# Snapshotters this machine cannot use (no btrfs, zfs or devmapper) stay quiet.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = {q(sock)}

[ttrpc]
  address = {q(f"{sock}.ttrpc")}

[debug]
  address = ""

[metrics]
  address = "127.0.0.1:{metrics_port}"

[plugins."io.containerd.internal.v1.opt"]
  path = {q(base / 'opt')}

[{cri}]
  sandbox_image = {q(images.PAUSE)}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This machine lacks CAP_SYS_RESOURCE: without this runc fails ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = {q(runc)}
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = {q(cni_bin)}
  conf_dir = {q(base / 'cni')}
"""


#: Loopback only: pods on the real node use hostNetwork on 127.0.0.1 ports; no pod network on a
#: private range exists, so none is reachable from the host.
CNI_CONFIG = """{
  "cniVersion": "1.0.0",
  "name": "dirt-loopback",
  "plugins": [{"type": "loopback"}]
}
"""


def kubelet_config(root: Path, *, port: int, healthz_port: int, ca: Path, sandbox: str,
                   node_status_seconds: float = 2.0, lease_seconds: int = 4) -> dict[str, Any]:
    base = folder(root)
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": "127.0.0.1",
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{socket_path(root)}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroup_root(sandbox),
        "failCgroupV1": False,  # 1.35+ refuses cgroup v1 unless told
        "failSwapOn": False,
        "staticPodPath": "",
        "podLogsDir": str(base / "pod-logs"),
        "maxPods": 30,
        "resolvConf": "/etc/resolv.conf",
        # Node status within seconds, as the KWOK nodes' (the controller-manager's grace period is short).
        "nodeStatusUpdateFrequency": f"{node_status_seconds:g}s",
        "nodeStatusReportFrequency": f"{node_status_seconds:g}s",
        "nodeLeaseDurationSeconds": lease_seconds,
        # No registry to pull from again: never collect the imported images.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "imageMinimumGCAge": "8760h",
        # A busy CI disk must not evict the drill's pods.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "registerWithTaints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}],
        "shutdownGracePeriod": "0s",
        "serializeImagePulls": False,
        "protectKernelDefaults": False,
        "makeIPTablesUtilChains": False,
        "localStorageCapacityIsolation": True,
        "containerLogMaxSize": "1Mi",
        "containerLogMaxFiles": 2,
        "syncFrequency": "5s",
        "fileCheckFrequency": "5s",
    }


def node_credentials(pki: Path, node: str, out: Path) -> tuple[Path, Path]:
    """A client certificate for ``system:node:<node>`` (group ``system:nodes``) signed by the sandbox's CA."""
    out.mkdir(parents=True, exist_ok=True)
    key, csr, cert = out / f"{node}.key", out / f"{node}.csr", out / f"{node}.crt"
    steps = [
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-subj", f"/O=system:nodes/CN=system:node:{node}", "-out", str(csr)],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
         "-CAcreateserial", "-CAserial", str(out / "ca.srl"), "-days", "365", "-out", str(cert)],
    ]
    for argv in steps:
        try:
            result = run(argv, timeout=30, what="openssl")
        except CommandError as exc:
            raise TargetError(f"the real node's certificate: {exc}") from None
        if result.returncode != 0:
            raise TargetError(f"the real node's certificate: openssl failed: {(result.stderr or result.stdout)[-300:]}")
    key.chmod(0o600)
    return cert, key


def kubeconfig(server: str, ca: Path, cert: Path, key: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "sandbox", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "kubelet", "user": {"client-certificate": str(cert), "client-key": str(key)}}],
        "contexts": [{"name": "kubelet", "context": {"cluster": "sandbox", "user": "kubelet"}}],
        "current-context": "kubelet",
    }


def commands(*, root: Path, kubelet: Path, containerd: Path, node: str, extra_labels: dict[str, str] | None = None,
             ) -> dict[str, list[str]]:
    base = folder(root)
    labels = {LABEL: "real", **(extra_labels or {})}
    return {
        "containerd": [str(containerd), "--config", str(base / "containerd" / "config.toml")],
        "kubelet": [str(kubelet), f"--config={base / 'kubelet' / 'config.yaml'}",
                    f"--kubeconfig={base / 'kubelet' / 'kubeconfig.yaml'}", f"--root-dir={base / 'kubelet' / 'root'}",
                    f"--cert-dir={base / 'kubelet' / 'pki'}", "--node-ip=127.0.0.1", f"--hostname-override={node}",
                    "--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())), "--v=1"],
    }


def ensure_cgroups(sandbox: str) -> None:
    """The kubelet's ``cgroupRoot`` must exist in every hierarchy before it starts."""
    for hierarchy in _hierarchies():
        (hierarchy / cgroup_root(sandbox).lstrip("/")).mkdir(exist_ok=True)


def _hierarchies() -> list[Path]:
    try:
        return [p for p in sorted(_CGROUP_FS.iterdir()) if p.is_dir() and not p.is_symlink()
                and (p / "cgroup.procs").exists()]
    except OSError:
        return []


# -- containerd through ctr ----------------------------------------------------------------------
def ctr(root: Path, *args: str, timeout: float = 60.0) -> CommandResult:
    binaries = system_binaries()
    try:
        return run([str(binaries["ctr"]), "--address", str(socket_path(root)), "--namespace", CRI_NAMESPACE, *args],
                   timeout=timeout, what=f"ctr {' '.join(args[:2])}")
    except CommandError as exc:
        raise TargetError(f"the real node's containerd: {exc}") from None


def image_references(root: Path) -> list[str]:
    result = ctr(root, "images", "list", "--quiet", timeout=30)
    if result.returncode != 0:
        raise TargetError(f"ctr images list: {(result.stderr or result.stdout).strip()[-300:]}")
    return sorted(line.strip() for line in result.stdout.splitlines() if line.strip())


def import_image(root: Path, archive: Path) -> list[str]:
    """Import an image archive (OCI layout or ``docker save`` tar) into the node's containerd."""
    images.check_archive(archive)
    before = set(image_references(root))
    result = ctr(root, "images", "import", "--no-unpack=false", "--digests", "--all-platforms", str(archive),
                 timeout=300)
    if result.returncode != 0:
        raise TargetError(f"ctr images import {archive.name}: {(result.stderr or result.stdout).strip()[-300:]}")
    after = image_references(root)
    return sorted(set(after) - before) or [r for r in after if r in result.stdout]


def kill_task(root: Path, container_id: str, *, sig: str = "SIGKILL") -> None:
    """Signal a container's main process through containerd (what a crashing process looks like)."""
    result = ctr(root, "tasks", "kill", "--signal", sig, container_id, timeout=30)
    if result.returncode != 0:
        raise TargetError(f"ctr tasks kill {container_id[:13]}: {(result.stderr or result.stdout).strip()[-300:]}")


# -- stopping without leftovers ------------------------------------------------------------------
def kill_all_tasks(root: Path) -> int:
    """Every container of this containerd killed and deleted; the number killed."""
    if not socket_path(root).exists():
        return 0
    listed = ctr(root, "tasks", "list", "--quiet", timeout=30)
    ids = [line.strip() for line in listed.stdout.splitlines() if line.strip()] if listed.returncode == 0 else []
    for cid in ids:
        ctr(root, "tasks", "kill", "--signal", "SIGKILL", "--all", cid, timeout=30)
    for cid in ids:
        ctr(root, "tasks", "delete", "--force", cid, timeout=30)
    return len(ids)


def shim_pids(root: Path) -> list[int]:
    """The runc shims this containerd started (their command line names its socket)."""
    address = str(socket_path(root))
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and address.encode() in argv:
            pids.append(int(entry.name))
    return pids


def cgroup_pids(sandbox: str) -> list[int]:
    """Processes still in the sandbox's pod cgroups (containers whose shim is gone)."""
    pids: set[int] = set()
    for hierarchy in _hierarchies():
        top = hierarchy / cgroup_root(sandbox).lstrip("/")
        if not top.is_dir():
            continue
        for procs in top.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except (OSError, ValueError):
                continue
    return sorted(pids)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or under ``path``, deepest first (the order to unmount them in)."""
    prefix = str(path.resolve())
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_all(path: Path) -> list[str]:
    """Unmount (lazily, as a last resort) everything the node mounted under ``path``."""
    for point in mounts_under(path):
        try:
            if run(["umount", point], timeout=30, what="umount").returncode != 0:
                run(["umount", "-l", point], timeout=30, what="umount -l")
        except CommandError:
            pass  # still mounted: named below
    return mounts_under(path)


def remove_cgroups(sandbox: str) -> None:
    for hierarchy in _hierarchies():
        top = hierarchy / cgroup_root(sandbox).lstrip("/")
        if not top.is_dir():
            continue
        for sub in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            top.rmdir()
        except OSError:
            pass


def teardown(root: Path, sandbox: str, *, stop: Callable[[str], bool], log: Callable[[str], None],
             remove: bool = False) -> list[str]:
    """Stop the node's containers, kubelet, containerd and shims; unmount and remove what they left.

    ``stop(name)`` stops one of the sandbox's processes by its PID file; ``remove`` deletes the node's
    folder too (the sandbox goes; a node powered off keeps its disk).  Returns what could not be
    cleaned (empty when nothing is left behind).
    """
    problems: list[str] = []
    if stop("kubelet"):
        log("stopped kubelet")
    try:
        killed = kill_all_tasks(root)
        if killed:
            log(f"killed {killed} containers on the real node")
    except (TargetError, BinaryError) as exc:
        problems.append(f"containers: {exc}")
    if stop("containerd"):
        log("stopped containerd")
    for pid in (*shim_pids(root), *cgroup_pids(sandbox)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while (shim_pids(root) or cgroup_pids(sandbox)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = unmount_all(folder(root))
    if left:
        problems.append(f"mounts left: {', '.join(left)}")
    remove_cgroups(sandbox)
    if remove and not left:
        import shutil

        shutil.rmtree(folder(root), ignore_errors=True)
    if cgroup_pids(sandbox):
        problems.append(f"processes left in cgroup {cgroup_root(sandbox)}")
    return problems


# -- the component ------------------------------------------------------------------------------
class NodeRegistry(Protocol):
    """What the real node asks of the control plane it joins."""

    def node_names(self) -> list[str] | None: ...

    def ready_nodes(self) -> list[str]: ...

    def manages_every_node(self) -> bool: ...


class RealNode(ProcessGroup):
    """containerd and the kubelet of the sandbox's real node (``settings: {real_nodes: 1}``)."""

    name = "real-node"
    PROCESSES = COMPONENTS

    def __init__(self, ctx: SandboxContext, *, count: int, cluster: NodeRegistry) -> None:
        super().__init__(ctx)
        self.count = count
        self.cluster = cluster

    @property
    def names(self) -> list[str]:
        return [node_name(i) for i in range(self.count)]

    @property
    def node_id(self) -> str:
        return node_id(self.ctx.name, self.ctx.root)

    @property
    def images_folder(self) -> Path:
        return folder(self.ctx.root) / "images"

    def kubelet(self, *, build_missing: bool = False, log: Log = quiet) -> Path:
        return locate_kubelet(build_missing=build_missing, log=log)

    def prepare(self, *, log: Log = quiet) -> dict[str, str]:
        versions = {"kubelet": self.ctx.binaries().versions()["kubernetes"], "containerd": containerd_version()}
        self.kubelet(build_missing=True, log=log)
        return versions

    def binary(self, name: str) -> Path | None:
        return self.kubelet() if name == "kubelet" else system_binaries()["containerd"]

    def answers(self, name: str) -> bool:
        p = self.ctx.ports()
        if name == "kubelet":
            return answers(f"http://127.0.0.1:{p.kubelet_healthz}/healthz")
        return answers(f"http://127.0.0.1:{p.containerd_metrics}/v1/metrics")

    def status(self) -> dict[str, Any]:
        """Where the real node's parts are: its name, containerd's socket and namespace, the images it holds."""
        return {"nodes": self.names, "label": f"{LABEL}=real", "taint": f"{TAINT_KEY}=true:NoSchedule",
                "containerd_socket": str(socket_path(self.ctx.root)), "containerd_namespace": CRI_NAMESPACE,
                "kubelet_url": f"https://127.0.0.1:{self.ctx.ports().kubelet}", "cgroup": cgroup_root(self.node_id),
                "images_folder": str(self.images_folder)}

    def start(self, *, log: Log = quiet, restart: bool = False, timeout: float = 90.0) -> None:
        """containerd and the kubelet running, the built-in images imported, the node Ready.

        Idempotent; ``restart`` gives the kubelet new credentials and starts it again (a rebuilt
        cluster: a new CA, and its node object gone).
        """
        if self.cluster.manages_every_node():
            raise TargetError(f"sandbox {self.ctx.name!r} was created before it could have a real node (its KWOK "
                              "controller fakes every node): recreate it with `dirt sandbox down` and "
                              "`dirt sandbox up`")
        root, pki = self.ctx.root, self.ctx.pki
        node = node_name(0)
        system = system_binaries()
        kubelet = self.kubelet(build_missing=True, log=log)
        p = self.ctx.ports()
        base = folder(root)
        (base / "containerd" / "cni").mkdir(parents=True, exist_ok=True)
        (base / "containerd" / "config.toml").write_text(containerd_config(
            root, metrics_port=p.containerd_metrics, runc=system["runc"], cni_bin=system["cni"]))
        (base / "containerd" / "cni" / "10-loopback.conflist").write_text(CNI_CONFIG)
        write_yaml(base / "kubelet" / "config.yaml", kubelet_config(
            root, port=p.kubelet, healthz_port=p.kubelet_healthz, ca=pki / "ca.crt", sandbox=self.node_id))
        cert = base / "kubelet" / "credentials" / f"{node}.crt"
        if restart or not cert.is_file() or cert.stat().st_mtime < (pki / "ca.crt").stat().st_mtime:
            cert, key = node_credentials(pki, node, base / "kubelet" / "credentials")
            write_yaml(base / "kubelet" / "kubeconfig.yaml", kubeconfig(
                f"https://127.0.0.1:{p.kube_apiserver}", pki / "ca.crt", cert, cert.with_suffix(".key")))
        ensure_cgroups(self.node_id)
        if not restart and self.running("kubelet") and node not in (self.cluster.node_names() or [node]):
            restart = True  # its node object is gone (etcd lost): a kubelet registers only when it starts
        argvs = commands(root=root, kubelet=kubelet, containerd=system["containerd"], node=node)
        self.record(argvs)
        if restart:
            self.stop_process("kubelet")
        if not self.running("containerd"):
            log(f"starting containerd (socket {socket_path(root)})")
            self.launch("containerd", argvs["containerd"])
        self.wait_healthy(30.0, ("containerd",))
        self.import_builtin_images(log=log)
        if not self.running("kubelet"):
            log(f"starting kubelet (node {node}, 127.0.0.1:{p.kubelet})")
            self.launch("kubelet", argvs["kubelet"])
        self.wait_healthy(30.0, ("kubelet",))
        self.wait_ready(timeout)

    def restart_kubelet(self, *, log: Log = quiet, timeout: float = 60.0) -> bool:
        """Restart the kubelet (its containers go on running), as the documented etcd recovery
        restarts every kubelet so none acts on what the lost etcd held.  Without it the kubelet's
        watches, failed again and again while the control plane was away, back off for up to a
        minute (client-go's reflector), and pods bound to the node meanwhile wait that long.
        False when it was not running (a fault stopped it: it stays stopped)."""
        if not self.running("kubelet"):
            return False
        log("restarting the real node's kubelet (so it acts on the restored state, not its cache)")
        self.restart("kubelet")
        self.wait_healthy(30.0, ("kubelet",))
        self.wait_ready(timeout)
        return True

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(self.names) <= set(self.cluster.ready_nodes()):
                return
            time.sleep(0.25)
        raise TargetError(f"sandbox {self.ctx.name!r}: the real node is not Ready after {timeout:.0f}s "
                          "(see `dirt sandbox logs kubelet`)")

    def stop(self, *, log: Log = quiet) -> None:
        """The node's machine lost: its containers killed, then the kubelet and containerd; its disk stays."""
        self._teardown(log, remove=False)

    def down(self, *, log: Log = quiet) -> None:
        self._teardown(log, remove=True)

    def _teardown(self, log: Log, *, remove: bool) -> None:
        def stop(name: str) -> bool:
            return self.stop_process(name, sig=signal.SIGKILL)

        for problem in teardown(self.ctx.root, self.node_id, stop=stop, log=log, remove=remove):
            log(f"real node: {problem}")

    # -- images and containers ---------------------------------------------------------------------
    def import_builtin_images(self, *, log: Log = quiet) -> list[str]:
        """Make the built-in images and import those containerd does not hold yet."""
        have = set(image_references(self.ctx.root))
        wanted = [spec for spec in images.builtin_specs() if not {spec.reference, *spec.aliases} <= have]
        imported: list[str] = []
        for spec in wanted:
            archive = self.images_folder / spec.archive_name
            images.write_archive(spec, archive)
            import_image(self.ctx.root, archive)
            imported.append(spec.reference)
        if imported:
            log(f"imported images: {', '.join(imported)}")
        return imported

    def _require_containerd(self) -> None:
        if not self.running("containerd"):
            raise TargetError(f"sandbox {self.ctx.name!r} has no running real node: set `real_nodes: 1` in its "
                              "settings and run `dirt sandbox up`")

    def build_images(self, *, log: Log = quiet) -> list[str]:
        """``dirt sandbox image build``: the built-in images made and imported (those not there yet)."""
        self._require_containerd()
        return self.import_builtin_images(log=log)

    def import_image(self, archive: Path) -> list[str]:
        self._require_containerd()
        return import_image(self.ctx.root, archive)

    def images(self) -> list[str]:
        self._require_containerd()
        return [r for r in image_references(self.ctx.root) if not r.startswith(("sha256:", "import-"))]

    def kill_container(self, pod: dict[str, Any], container: str, *, sig: str = "SIGKILL") -> str:
        """Signal a container's main process through containerd; its containerd ID."""
        name = f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
        node = pod.get("spec", {}).get("nodeName")
        if node not in self.names:
            raise TargetError(f"pod {name} runs on {node or 'no node'}, not on the sandbox's real node: a KWOK node "
                              f"runs no process to kill (schedule it with nodeSelector {LABEL}: real "
                              f"and a toleration for {TAINT_KEY})")
        statuses = {c.get("name"): c for c in pod.get("status", {}).get("containerStatuses") or []}
        status = statuses.get(container)
        if status is None:
            raise TargetError(f"pod {name} has no container {container!r} (it has: {', '.join(statuses) or 'none'})")
        cid = str(status.get("containerID") or "")
        if not cid.startswith("containerd://") or "running" not in (status.get("state") or {}):
            raise TargetError(f"container {container!r} of pod {name} is not running")
        kill_task(self.ctx.root, cid.removeprefix("containerd://"), sig=sig)
        return cid.removeprefix("containerd://")

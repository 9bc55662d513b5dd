"""kind node images made on this machine, with no registry: ``dirt kind build-image``.

kind's node images (``kindest/node``) come from a registry, which CI machines and air-gapped labs may not
reach.  dirt builds its own, the way ``kind build node-image`` does, from parts it can get offline:

- Kubernetes (control plane, kubeadm, kubelet, kube-proxy, kubectl), etcd, CoreDNS, crictl, kind's
  local-path-provisioner and a pause, all built from their Go modules (``dirt.sandbox.binaries``);
- the node's operating system by debootstrap from the Debian mirror apt already uses
  (``dirt.sandbox.rootfs``): systemd, containerd and runc, iptables, the CNI plugins;
- kind's own node files (``images/base/files`` of kind's Go module: systemd units, the entrypoint,
  containerd's configuration) laid on it as kind's Dockerfile does;
- the component images kubeadm asks for (``registry.k8s.io/kube-apiserver:v1.36.3``…), written as OCI
  archives by ``dirt.sandbox.oci`` (busybox-static and one binary each; kube-proxy on a small Debian
  root filesystem, for iptables) and preloaded into the node's containerd store by a private
  containerd, as kind's importer does, so a cluster starts without pulling anything; dirt's own
  ``dirt.local/busybox`` and ``dirt.local/pause`` too (the example shop runs from them).

kindnetd is not published as a Go module, so the image has a static CNI instead (``dirt-cni``, a
boot-time unit): the node whose address on the kind network is ``a.b.c.N`` gets pods in
``198.19.N.0/24`` and routes to the other nodes' ranges; pods and Services live in 198.19.0.0/16, out of
the private ranges (``cluster_config`` sets kind's subnets to match).

The image is written as one archive that both ``docker load`` and ``ctr images import`` read, cached as
``<cache>/kind/kind-node-<kubernetes>-<key>.tar`` (its layers gzip-compressed), where the key hashes
every component's version, the Debian package lists and ``RECIPE``.  ``ensure_loaded`` loads it into
docker when the tag is missing, building it first when the archive is.

What a machine needs beyond that is not baked in: ``cluster_config`` adds ``failCgroupV1: false`` only on
a cgroup v1 host, and ``restrict_oom_score_adj`` only when the capability bounding set lacks
CAP_SYS_RESOURCE (containerd then cannot give pods kubelet's OOM scores), and says so in the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dirt.clients.commands import run
from dirt.core.errors import BinaryError, CommandError
from dirt.sandbox import binaries, images, oci, process, rootfs
from dirt.sandbox.binaries import (
    COREDNS,
    CRICTL,
    ETCD,
    KIND,
    KIND_NODE,
    KUBELET,
    KUBERNETES,
    LOCAL_PATH_PROVISIONER,
    PAUSE,
)
from dirt.sandbox.docker import lacks_cap_sys_resource

#: Bumped whenever the image is made differently from the same inputs.
RECIPE = 2
REPOSITORY = "dirt.local/kind-node"
KV = binaries.KUBERNETES_VERSION
#: The names kubeadm v1.36 asks for (cmd/kubeadm/app/constants), and the pause in kind's containerd config.
ETCD_TAG = "3.6.8-0"
PAUSE_TAGS = (binaries.PAUSE_VERSION, "3.10")
#: The images kind v0.33.0's default StorageClass names (pkg/build/nodeimage/const_storage.go).
LOCAL_PATH_IMAGE = "docker.io/kindest/local-path-provisioner:v20260820-69b56db7"
LOCAL_PATH_HELPER_IMAGE = "docker.io/kindest/local-path-helper:v20260131-7181c60a"
#: Pods and Services of dirt's kind clusters: out of the private ranges (RFC 2544's test block).
POD_SUBNET = "198.19.0.0/17"
SERVICE_SUBNET = "198.19.128.0/17"
#: The node's operating system, and the smaller one kube-proxy's image is made of.
NODE_PACKAGES = ("systemd", "systemd-sysv", "conntrack", "iptables", "nftables", "iproute2", "ethtool", "kmod",
                 "libseccomp2", "pigz", "ca-certificates", "procps", "jq", "curl", "containerd", "runc",
                 "containernetworking-plugins", "socat", "util-linux", "mount", "e2fsprogs")
PROXY_PACKAGES = ("iptables", "nftables", "conntrack", "kmod", "iproute2")
#: The Go-built parts of the image.
COMPONENTS = (KUBERNETES, KUBELET, KIND_NODE, ETCD, CRICTL, PAUSE, LOCAL_PATH_PROVISIONER, COREDNS, KIND)
#: A cold build compiles and debootstraps for many minutes; an hour means something is stuck.
STEP_TIMEOUT = 3600.0
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: The static CNI: a ptp network per node, routes to the other nodes' pod ranges, masquerade out.
CNI_SCRIPT = r"""#!/bin/bash
# Made by dirt (dirt/sandbox/kind_image.py): kindnetd is not available offline, so each node gets a
# static pod range from its address on the kind network (a.b.c.N -> 198.19.N.0/24) and routes to the
# other nodes' ranges through their addresses.
set -eu
addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | head -1); addr=${addr%/*}
prefix=${addr%.*}; me=${addr##*.}
mkdir -p /etc/cni/net.d
cat > /etc/cni/net.d/10-dirt.conflist <<JSON
{"cniVersion":"0.4.0","name":"dirt","plugins":[
 {"type":"ptp","ipMasq":false,"mtu":1500,"ipam":{"type":"host-local","dataDir":"/run/cni-ipam-state",
  "routes":[{"dst":"0.0.0.0/0"}],"ranges":[[{"subnet":"198.19.${me}.0/24"}]]}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
JSON
for n in $(seq 2 60); do [ "$n" = "$me" ] || ip route replace "198.19.$n.0/24" via "$prefix.$n" dev eth0 onlink; done
iptables -t nat -C POSTROUTING -s 198.19.0.0/17 ! -d 198.19.0.0/17 -j MASQUERADE 2>/dev/null || \
  iptables -t nat -A POSTROUTING -s 198.19.0.0/17 ! -d 198.19.0.0/17 -j MASQUERADE
"""
CNI_UNIT = """[Unit]
Description=dirt's static CNI configuration and pod routes
Before=kubelet.service containerd.service
After=network.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/dirt-cni
[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class NodeImage:
    tag: str
    archive: Path
    built: bool  # False: the cached archive was used
    seconds: float


def image_key() -> str:
    """A hash of everything that shapes the image."""
    recipe = {"recipe": RECIPE, "components": {c.name: [c.version, c.build_id] for c in COMPONENTS},
              "node": sorted(NODE_PACKAGES), "proxy": sorted(PROXY_PACKAGES), "etcd_tag": ETCD_TAG,
              "pause": PAUSE_TAGS, "local_path": [LOCAL_PATH_IMAGE, LOCAL_PATH_HELPER_IMAGE], "pods": POD_SUBNET}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def image_tag() -> str:
    return f"{REPOSITORY}:{KV}-{image_key()}"


def cache_folder() -> Path:
    return binaries.cache_root().parent / "kind"


def image_archive() -> Path:
    return cache_folder() / f"kind-node-{KV}-{image_key()}.tar"


def build_node_image(*, log: Callable[[str], None] = print, force: bool = False) -> NodeImage:
    """The node image's archive: from the cache, else built (minutes cold, seconds once parts are cached)."""
    started = time.monotonic()
    archive = image_archive()
    if archive.is_file() and not force:
        return NodeImage(image_tag(), archive, built=False, seconds=time.monotonic() - started)
    if os.geteuid() != 0:
        raise BinaryError("building a kind node image needs root (debootstrap, chroot and a private containerd): "
                          f"run `dirt kind build-image` as root once; {archive} is then reused by anyone")
    parts = {c.name: binaries.build(c, log=log) for c in COMPONENTS}
    node_root = rootfs.debootstrap_rootfs(NODE_PACKAGES, log=log)
    proxy_root = rootfs.debootstrap_rootfs(PROXY_PACKAGES, log=log)
    cache = cache_folder()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".build-") as scratch:
        work = Path(scratch)
        log("kind node image: writing the component images")
        archives = component_images(parts, proxy_root, work / "images", cache / "layers")
        log("kind node image: laying out the node")
        node = work / "node"
        subprocess.run(["cp", "-a", "--reflink=auto", f"{node_root}/.", str(node)], check=True)
        lay_out_node(node, parts, kind_files(), log=log)
        log(f"kind node image: preloading {len(archives)} images into the node's containerd")
        preload(node, archives, work / "containerd", log=log)
        log("kind node image: packing the node (about 1 GB)")
        layer = oci.layer_from_tree(node, work, key="node", compresslevel=1)
        config = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
                  "config": {"Env": ["container=docker", PATH_ENV], "StopSignal": "SIGRTMIN+3",
                             "Entrypoint": ["/usr/local/bin/entrypoint", "/sbin/init"]},
                  "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "dirt kind build-image"}]}
        oci.write_image(archive, [layer], config=config, references=[image_tag()], docker=True)
    _prune(cache, keep=archive)
    seconds = time.monotonic() - started
    log(f"kind node image: {image_tag()} in {seconds:.0f}s -> {archive} ({archive.stat().st_size / 1e6:.0f} MB)")
    return NodeImage(image_tag(), archive, built=True, seconds=seconds)


def ensure_loaded(docker: str = "docker", *, log: Callable[[str], None] = print) -> str:
    """The node image's tag, loaded into docker (from the cached archive, built first when missing)."""
    tag = image_tag()
    if _docker(docker, "image", "inspect", tag, check=False).returncode == 0:
        return tag
    image = build_node_image(log=log)
    log(f"kind node image: loading {image.archive.name} into docker")
    _docker(docker, "load", "-i", str(image.archive), timeout=900)
    return tag


#: The docker network kind puts its nodes on (it uses one that exists).
KIND_NETWORK = "kind"
_PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


def ensure_network(docker: str = "docker", *, log: Callable[[str], None] = print) -> str:
    """kind's network, made here when missing: IPv4 only, from the daemon's pools (dirt's daemon: 198.18/16).
    Left to kind, it would also get an IPv6 unique-local (private) subnet.  Returns its IPv4 subnet."""
    found = _docker(docker, "network", "inspect", KIND_NETWORK, "--format", "{{json .IPAM.Config}}", check=False)
    if found.returncode != 0:
        _docker(docker, "network", "create", "--driver", "bridge",
                "--opt", "com.docker.network.bridge.enable_ip_masquerade=true",
                "--opt", "com.docker.network.driver.mtu=1500", KIND_NETWORK)
        found = _docker(docker, "network", "inspect", KIND_NETWORK, "--format", "{{json .IPAM.Config}}")
    subnets = [entry.get("Subnet", "") for entry in json.loads(found.stdout or "[]") or []]
    private = [s for s in subnets if any(_overlaps(s, p) for p in _PRIVATE)]
    if private:
        log(f"kind: docker network {KIND_NETWORK!r} uses {', '.join(private)}, a private range: remove it "
            f"(`docker network rm {KIND_NETWORK}` with no cluster on it) to have dirt make it from its own pools")
    return next((s for s in subnets if ":" not in s), "")


def _overlaps(subnet: str, other: str) -> bool:
    import ipaddress

    try:
        a, b = ipaddress.ip_network(subnet, strict=False), ipaddress.ip_network(other)
    except ValueError:
        return False
    return a.version == b.version and a.overlaps(b)  # type: ignore[arg-type]


def kind_files() -> Path:
    """kind's node files (``images/base/files``) and sources, from kind's Go module."""
    env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
    try:
        out = run([shutil.which("go") or "go", "mod", "download", "-json", f"sigs.k8s.io/kind@{KIND.version}"],
                  timeout=600, env=env, cwd=binaries.cache_root(), what="go mod download kind")
        folder = Path(json.loads(out.stdout)["Dir"])
    except (CommandError, ValueError, KeyError) as exc:
        raise BinaryError(f"kind's module {KIND.version} could not be downloaded: {exc}") from None
    if not (folder / "images/base/files").is_dir():
        raise BinaryError(f"{folder} has no images/base/files: not kind's module?")
    return folder


def component_images(parts: dict[str, Path], proxy_root: Path, out: Path, layers: Path) -> list[Path]:
    """The images kubeadm and kind's manifests name, as OCI archives in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    busybox = images.busybox_binary()
    base = images.ImageSpec(
        reference="dirt.local/kind-busybox", files={"bin/busybox": busybox},
        symlinks={f"bin/{a}": "busybox" for a in images._applets(busybox)},
        folders=("etc", "tmp", "root", "proc", "sys", "dev", "var", "run", "usr", "usr/local", "usr/local/bin"),
        texts={"etc/passwd": images._PASSWD, "etc/group": images._GROUP}, env=(PATH_ENV,))
    busybox_layer = images._layer(base, out / "busybox.tar.gz")
    proxy_layer = oci.layer_from_tree(proxy_root, layers, key=f"proxy-{rootfs.rootfs_id(proxy_root)}")
    k, e = parts["kubernetes"], parts["etcd"]

    def image(references: list[str], files: dict[str, Path], *, base_layer: oci.Layer | None = busybox_layer,
              entrypoint: list[str] | None = None, user: str | None = None) -> Path:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", references[0])
        layer = _files_layer(out / f"{name}.tar.gz", files)
        config: dict[str, Any] = {"Env": [PATH_ENV], "Entrypoint": entrypoint, "WorkingDir": "/"}
        if user:
            config["User"] = user
        archive = out / f"{name}.oci.tar"
        oci.write_image(archive, [base_layer, layer] if base_layer else [layer],
                        config={"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
                                "config": config}, references=references)
        return archive

    made = [image([f"registry.k8s.io/{c}:{KV}"], {f"usr/local/bin/{c}": k / c})
            for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    made.append(image([f"registry.k8s.io/kube-proxy:{KV}"], {"usr/local/bin/kube-proxy": parts["kind-node"] /
                                                             "kube-proxy"}, base_layer=proxy_layer))
    made.append(image([f"registry.k8s.io/etcd:{ETCD_TAG}"], {"usr/local/bin/etcd": e / "etcd",
                                                             "usr/local/bin/etcdctl": e / "etcdctl"}))
    made.append(image([f"registry.k8s.io/pause:{t}" for t in PAUSE_TAGS], {"pause": parts["pause"] / "pause"},
                      base_layer=None, entrypoint=["/pause"], user="65535:65535"))
    made.append(image([f"registry.k8s.io/coredns/coredns:{COREDNS.version}"], {"coredns": parts["coredns"] / "coredns"},
                      entrypoint=["/coredns"]))
    made.append(image([LOCAL_PATH_IMAGE], {"usr/local/bin/local-path-provisioner": parts["local-path-provisioner"] /
                                           "local-path-provisioner"},
                      entrypoint=["/usr/local/bin/local-path-provisioner"]))
    # the helper only needs sh, mkdir and rm: busybox alone
    made.append(image([LOCAL_PATH_HELPER_IMAGE], {}, entrypoint=None))
    # dirt's own images (dirt.local/busybox, dirt.local/pause), as on the sandbox's real node: the example
    # shop and storefront run from them, and nothing has to be loaded into a new cluster
    made += images.build_builtin(out / "dirt").values()
    return made


def _files_layer(path: Path, files: dict[str, Path]) -> oci.Layer:
    """A layer holding ``files`` (path in the image -> file on the host), executable, with their folders."""
    with oci.write_layer(path, compresslevel=1) as (tar, made):
        folders = sorted({str(Path(name).parent) for name in files} - {"."})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, source in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = source.stat().st_size, 0o755, 0
            with source.open("rb") as fh:
                tar.addfile(info, fh)
    return made[0]


def lay_out_node(node: Path, parts: dict[str, Path], kind: Path, *, log: Callable[[str], None]) -> None:
    """kind's base image on the Debian root filesystem (kind's images/base/Dockerfile), then the node part."""
    files = kind / "images/base/files"
    for folder in ("kind/bin", "kind/manifests", "etc/containerd", "etc/systemd/system/kubelet.service.d",
                   "etc/kubernetes/manifests", "opt/cni/bin", "usr/local/bin", "usr/local/sbin", "etc/sysctl.d"):
        (node / folder).mkdir(parents=True, exist_ok=True)

    def put(source: Path, dest: str, mode: int) -> None:
        target = node / dest
        if target.is_symlink() or target.exists():
            target.unlink()
        shutil.copyfile(source, target)
        target.chmod(mode)

    for source in (files / "usr/local/bin").iterdir():
        put(source, f"usr/local/bin/{source.name}", 0o755)
    put(files / "kind/README.txt", "kind/README.txt", 0o644)
    for source in (files / "kind/bin").iterdir():
        put(source, f"kind/bin/{source.name}", 0o755)
    put(files / "etc/crictl.yaml", "etc/crictl.yaml", 0o644)
    put(files / "etc/containerd/config.toml", "etc/containerd/config.toml", 0o644)
    put(files / "etc/default/kubelet", "etc/default/kubelet", 0o644)
    for source in (files / "etc/sysctl.d").iterdir():
        put(source, f"etc/sysctl.d/{source.name}", 0o644)
    for source in (files / "etc/systemd/system").iterdir():
        if source.is_file():
            put(source, f"etc/systemd/system/{source.name}", 0o644)
    for source in (files / "etc/systemd/system/kubelet.service.d").iterdir():
        put(source, f"etc/systemd/system/kubelet.service.d/{source.name}", 0o644)
    # Debian's containerd, runc and CNI plugins where kind's files expect them
    for tool in ("containerd", "ctr", "containerd-shim-runc-v2"):
        _link(node / "usr/local/bin" / tool, f"/usr/bin/{tool}")
    _link(node / "usr/local/sbin/runc", "/usr/sbin/runc")
    for plugin in ("host-local", "loopback", "ptp", "portmap", "bridge"):
        _link(node / "opt/cni/bin" / plugin, f"/usr/lib/cni/{plugin}")
    (node / "etc/containerd/cri-base.json").write_text(json.dumps(cri_base_spec(), indent=1))
    # kind's Dockerfile: no tmpfiles at boot, no wanted units but ours, no kernel log reading
    for pattern in ("lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
                    "lib/systemd/system/multi-user.target.wants/*", "etc/systemd/system/*.wants/*",
                    "lib/systemd/system/local-fs.target.wants/*", "lib/systemd/system/sockets.target.wants/*udev*",
                    "lib/systemd/system/sockets.target.wants/*initctl*", "lib/systemd/system/basic.target.wants/*"):
        for path in node.glob(pattern):
            path.unlink()
    with (node / "etc/systemd/journald.conf").open("a") as fh:
        fh.write("ReadKMsg=no\n")
    _link(node / "sbin/init", "/usr/lib/systemd/systemd")
    # the node part (kind build node-image): Kubernetes, crictl, etcd's tools, the version, storage, CNI
    for binary, where in (("kubeadm", "kind-node"), ("kubelet", "kubelet"), ("kubectl", "kubernetes")):
        put(parts[where] / binary, f"usr/bin/{binary}", 0o755)
    put(parts["crictl"] / "crictl", "usr/local/bin/crictl", 0o755)
    # etcdctl and etcdutl in the node: snapshots are saved, checked and restored there
    for tool in ("etcdctl", "etcdutl"):
        put(parts["etcd"] / tool, f"usr/local/bin/{tool}", 0o755)
    (node / "kind/version").write_text(KV + "\n")
    (node / "kind/manifests/default-storage.yaml").write_text(storage_manifest(kind))
    (node / "usr/local/bin/dirt-cni").write_text(CNI_SCRIPT)
    (node / "usr/local/bin/dirt-cni").chmod(0o755)
    (node / "etc/systemd/system/dirt-cni.service").write_text(CNI_UNIT)
    for args in (["enable", "kubelet.service", "containerd.service", "undo-mount-hacks.service", "dirt-cni.service"],
                 ["mask", "systemd-binfmt.service"]):
        result = run(["chroot", str(node), "systemctl", *args], timeout=120, what="systemctl in the node")
        if result.returncode != 0:
            raise BinaryError(f"systemctl {' '.join(args)} in the node failed: {result.stderr.strip()[-300:]}")
    log(f"kind node image: node laid out (kind {KIND.version} files, Kubernetes {KV})")


def _link(path: Path, target: str) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)


def cri_base_spec() -> dict[str, Any]:
    """kind's ``cri-base.json``: containerd's default OCI spec, with kind's mount hook and no rlimits."""
    try:
        out = run(["ctr", "oci", "spec"], timeout=30, what="ctr oci spec")
        spec = json.loads(out.stdout)
    except (CommandError, ValueError) as exc:
        raise BinaryError(f"`ctr oci spec` (Debian's containerd) failed: {exc}") from None
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    spec.get("process", {}).pop("rlimits", None)
    return spec


def storage_manifest(kind: Path) -> str:
    """kind's default StorageClass manifest, cut from its source with the image names filled in."""
    source = (kind / "pkg/build/nodeimage/const_storage.go").read_text()
    match = re.search(r"const defaultStorageManifest = `(.*?)`\s*$", source, re.S)
    if match is None:
        raise BinaryError(f"kind {KIND.version}: no defaultStorageManifest in const_storage.go")
    return (match.group(1).replace("` + storageProvisionerImage + `", LOCAL_PATH_IMAGE)
            .replace("` + storageHelperImage + `", LOCAL_PATH_HELPER_IMAGE))


def preload(node: Path, archives: list[Path], scratch: Path, *, log: Callable[[str], None]) -> None:
    """Import the images into the node's containerd store (``/var/lib/containerd``) with a private containerd
    of the same version as the node's (both Debian's), without unpacking, as kind's importer does."""
    scratch.mkdir(parents=True, exist_ok=True)
    sock = scratch / "containerd.sock"
    (scratch / "config.toml").write_text(
        f'version = 2\nroot = "{node}/var/lib/containerd"\nstate = "{scratch}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{sock}"\n[ttrpc]\n  address = "{sock}.ttrpc"\n')
    pid = process.start(["containerd", "--config", str(scratch / "config.toml")], log=scratch / "containerd.log",
                        pidfile=scratch / "containerd.pid")
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline or not process.alive(pid):
                raise BinaryError(f"the private containerd did not start; see {scratch / 'containerd.log'}")
            time.sleep(0.2)
        for archive in archives:
            result = run(["ctr", "-a", str(sock), "-n", "k8s.io", "images", "import", "--no-unpack", "--all-platforms",
                          str(archive)], timeout=600, what=f"ctr import {archive.name}")
            if result.returncode != 0:
                raise BinaryError(f"importing {archive.name} into the node failed: {result.stderr.strip()[-300:]}")
        names = run(["ctr", "-a", str(sock), "-n", "k8s.io", "images", "ls", "-q"], timeout=60, what="ctr images ls")
        loaded = names.stdout.split()
        # pinned: kubelet's image garbage collection never removes them (nothing could pull them again)
        for name in loaded:
            run(["ctr", "-a", str(sock), "-n", "k8s.io", "images", "label", name, "io.cri-containerd.pinned=pinned"],
                timeout=60, what="ctr images label")
        log("kind node image: preloaded " + ", ".join(n for n in loaded if "@sha256" not in n))
    finally:
        process.stop(pid, timeout=10)
    shutil.rmtree(node / "var/lib/containerd/tmpmounts", ignore_errors=True)


#: /metrics of the controller-manager and scheduler answered without asking the API server (a drill takes it
#: away: their metrics must still say they run).
_METRICS_OPEN = "  - {name: authorization-always-allow-paths, value: '/healthz,/readyz,/livez,/metrics'}\n"


def cluster_config(*, workers: int = 1, worker_labels: dict[str, str] | None = None,
                   docker: str = "docker", log: Callable[[str], None] = print, base: dict[str, Any] | None = None,
                   cgroup_v1: bool | None = None, lacks_sys_resource: bool | None = None) -> dict[str, Any]:
    """A kind config for dirt's node image on this machine: its CNI, its subnets, metrics where a Prometheus
    beside the cluster can scrape them, and the machine's workarounds only where they are needed
    (``cgroup_v1`` and ``lacks_sys_resource``: detected when None).  ``base``: the user's own kind config
    (its nodes, port mappings, patches), to which that is added; else ``workers`` workers."""
    patches = [
        # kubeadm v1beta4 (Kubernetes >= 1.31): extraArgs is a list of name/value
        "kind: ClusterConfiguration\n"
        f"controllerManager:\n  extraArgs:\n  - {{name: bind-address, value: 0.0.0.0}}\n{_METRICS_OPEN}"
        f"scheduler:\n  extraArgs:\n  - {{name: bind-address, value: 0.0.0.0}}\n{_METRICS_OPEN}"
        "etcd:\n  local:\n    extraArgs:\n    - {name: listen-metrics-urls, value: 'http://0.0.0.0:2381'}\n",
    ]
    if cgroup_v1 is None:
        cgroup_v1 = docker_cgroup_version(docker) == "1"
    if lacks_sys_resource is None:
        lacks_sys_resource = lacks_cap_sys_resource()
    if cgroup_v1:
        log("kind: this machine runs cgroup v1, which kubelet 1.36 refuses by default: the cluster's kubelets "
            "are configured with failCgroupV1: false")
        patches.append("kind: KubeletConfiguration\nfailCgroupV1: false\n")
    config: dict[str, Any] = dict(base) if base else {
        "kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [{"role": "control-plane"}] + [{"role": "worker", **({"labels": dict(worker_labels)}
                                                                      if worker_labels else {})}
                                                for _ in range(workers)]}
    networking = dict(config.get("networking") or {})
    for key, wanted in (("disableDefaultCNI", True), ("podSubnet", POD_SUBNET), ("serviceSubnet", SERVICE_SUBNET)):
        if key in networking and networking[key] != wanted:
            raise BinaryError(f"kind config: networking.{key} is {networking[key]!r}; dirt's node image needs "
                              f"{wanted!r} (its static CNI stands in for kindnetd): remove it, dirt sets it")
        networking[key] = wanted
    config["networking"] = networking
    config["kubeadmConfigPatches"] = [*(config.get("kubeadmConfigPatches") or []), *patches]
    if lacks_sys_resource:
        log("kind: this machine lacks CAP_SYS_RESOURCE, so containerd cannot set kubelet's OOM scores: the "
            "nodes' containerd runs with restrict_oom_score_adj = true")
        config["containerdConfigPatches"] = [*(config.get("containerdConfigPatches") or []),
                                             '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true\n']
    return config


def docker_cgroup_version(docker: str = "docker") -> str:
    return _docker(docker, "info", "--format", "{{.CgroupVersion}}").stdout.strip()


def _docker(docker: str, *args: str, check: bool = True, timeout: float = 120) -> Any:
    try:
        result = run([docker, *args], timeout=timeout, what=f"docker {args[0]}")
    except CommandError as exc:
        raise BinaryError(f"docker {' '.join(args[:2])}: {exc}") from None
    if check and result.returncode != 0:
        raise BinaryError(f"docker {' '.join(args[:2])} failed (exit {result.returncode}): "
                          f"{result.stderr.strip()[-300:]}")
    return result


def _prune(cache: Path, *, keep: Path) -> None:
    """Older node image archives go: each is about half a gigabyte."""
    for old in cache.glob("kind-node-*.tar"):
        if old != keep and stat.S_ISREG(old.stat().st_mode):
            old.unlink()

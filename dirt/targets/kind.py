"""The ``kind`` target: a kind cluster (Kubernetes in Docker), breakable from outside.

Why it exists: CI pipelines (and people with Docker) want drills against a real
kubeadm-built cluster with real kubelets, not the sandbox's faked nodes.  The
Kubernetes API is reached through a kubeconfig that ``kind get kubeconfig``
writes; everything the API cannot do goes through the ``kind`` and ``docker``
CLIs, found on PATH (``kind_binary`` / ``docker_binary`` rename them):

* the whole cluster: ``kind create cluster`` / ``kind delete cluster``;
* a control-plane component, ``component_mode: manifest`` (the default): kubelet
  runs kube-apiserver, kube-controller-manager, kube-scheduler and etcd as
  static pods, so moving ``/etc/kubernetes/manifests/<component>.yaml`` out of
  the control-plane container's manifest folder (to
  ``/etc/kubernetes/<component>.yaml.dirt-stopped``) stops it and moving it back
  starts it.  ``graceful=False`` also kills the container at once with
  ``crictl stop --timeout 0`` instead of leaving kubelet its grace period.
  Whether it runs is ``crictl ps --name <component> -q`` (an id: running);
* ``component_mode: container``: any component stops by stopping the whole
  ``<cluster>-control-plane`` container (``docker kill``, or ``docker stop``
  when graceful) — a lost control-plane machine — and starts with ``docker start``;
* etcd: ``etcdctl snapshot save`` inside the control-plane container (under ``/var/lib``: kind mounts a
  tmpfs on ``/tmp``, which ``docker cp`` cannot see), then ``docker cp`` out; restore follows the
  documented procedure (stop the control plane by moving its manifests out, ``etcdutl snapshot restore``
  into a new data dir, swap it in place of ``/var/lib/etcd``, manifests back, wait for ``/readyz``); a
  wipe moves ``/var/lib/etcd/member`` aside and kills etcd's container, so kubelet restarts it empty;
* a lost worker machine (capability ``node_power``): ``docker kill <node>`` — SIGKILL to the
  whole node container, so kubelet, containerd and every pod process die at once;
  ``docker start <node>`` powers it on, and dirt waits until its Node is Ready.  A
  control-plane node is refused: losing it is a whole-cluster outage (``control_plane.stop``
  with ``component_mode: container``, or ``cluster.delete``).  Caveat: after ``docker start``
  a worker may come back with another address on the kind network; its kubelet re-registers;
* a crashed process (capability ``containers``): ``ctr --namespace k8s.io tasks kill`` inside
  the pod's node container (kind's node image ships containerd's ``ctr``).

The cluster's nodes are what ``kind get nodes`` lists (kind names each node's container after
the node: ``<cluster>-control-plane``, ``<cluster>-worker``, ``<cluster>-worker2``…).

``image: dirt`` uses the node image dirt builds offline (``dirt.sandbox.kind_image``; loaded into docker
when missing) and writes the kind config it needs, added to the user's own ``config`` if given;
``monitoring: true`` runs Prometheus, Alertmanager and kube-state-metrics beside the cluster
(``dirt.sandbox.kind_monitoring``), which become the target's ``prometheus`` and ``alertmanager``.
kind's own node image (``kindest/node``) ships neither ``etcdctl`` nor ``etcdutl``; point the
``etcd_tools`` setting at a host folder holding both (statically linked, the
cluster's etcd version) and they are copied into the node before the first etcd
operation (dirt's image has both).  Control-plane operations touch only the first control-plane node
(``<cluster>-control-plane``): multi-control-plane kind clusters are not modelled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from dirt.clients.commands import CommandResult, run
from dirt.clients.credentials import kubeconfig_secrets
from dirt.config import Endpoint, SettingsCheck, TargetConfig
from dirt.core.durations import Duration
from dirt.core.errors import BinaryError, CommandError, TargetError
from dirt.targets.base import Settings, SnapshotInfo, Target, power_on_and_wait, running_container

#: Components that run as static pods on a kind control-plane node.
KIND_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")

MANIFESTS = "/etc/kubernetes/manifests"
ETCD_DATA = "/var/lib/etcd"
#: Not under /tmp: kind mounts a tmpfs there in every node, which ``docker cp`` cannot see (a snapshot saved
#: there "could not be found", and one copied in lands under the mount, invisible to the node).  /var/lib
#: is on the node's own volume.
NODE_SNAPSHOT = "/var/lib/dirt-snapshot.db"
NODE_RESTORE = "/var/lib/dirt-restore.db"
#: ``image: dirt``: the node image dirt builds offline (``dirt kind build-image``).
DIRT_IMAGE = "dirt"
NODE_KUBECONFIG = "/etc/kubernetes/admin.conf"
ETCDCTL_TLS = (
    "--endpoints=https://127.0.0.1:2379",
    "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
    "--cert=/etc/kubernetes/pki/etcd/server.crt",
    "--key=/etc/kubernetes/pki/etcd/server.key",
)
#: What an etcd restore stops, in this order (etcd last), and starts again (etcd first).
RESTORE_STOP_ORDER = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
#: Seconds between two looks while waiting for a component or the API.
POLL_SECONDS = 1.0


class KindSettings(Settings):
    cluster: str = Field("dirt", pattern=r"^[a-z0-9][-a-z0-9.]*$", description="kind cluster name (--name).")
    config: str | None = Field(None, description="kind config file for create, relative to dirt.yaml's folder.")
    kubeconfig: str | None = Field(
        None, description="Kubeconfig to write and use; default <project>/.dirt/kind-<cluster>.kubeconfig."
    )
    image: str | None = Field(
        None, description="Node image for create (--image); 'dirt': the image dirt builds offline "
        "(dirt kind build-image), loaded into docker when missing, with a cluster config dirt writes "
        "unless 'config' is given.")
    workers: int = Field(1, ge=0, le=20, description="Worker nodes of the config dirt writes (image: dirt).")
    worker_labels: dict[str, str] = Field(
        default_factory=dict, description="Labels of those workers (e.g. for the drills' nodeSelectors).")
    kind_binary: str = Field("kind", description="The kind CLI (a name on PATH or a path); 'kind' falls back "
                             "to the kind dirt builds (dirt kind build-image) when none is on PATH.")
    docker_binary: str = Field("docker", description="The docker CLI (a name on PATH or a path).")
    timeout: Duration = Field(300.0, gt=0, description="Limit for each command and each wait.")
    component_mode: Literal["manifest", "container"] = Field(
        "manifest",
        description="manifest: move one static-pod manifest out and back; "
        "container: stop/start the whole control-plane container.",
    )
    etcd_tools: str | None = Field(
        None, description="Host folder with etcdctl and etcdutl, copied into the node (kindest/node has "
        "neither; dirt's image has both)."
    )
    monitoring: bool = Field(
        False, description="Run Prometheus, Alertmanager and kube-state-metrics beside the cluster on 127.0.0.1 "
        "(dirt's rules and 'rules'); they become the target's prometheus and alertmanager.")
    rules: list[str] = Field(default_factory=list, description="More alert rule files for that Prometheus "
                             "(relative to dirt.yaml's folder).")


class KindTarget(Target):
    """A kind cluster: its API through kind's kubeconfig, the rest through the ``kind`` and ``docker`` CLIs.

    ``node_power`` kills and starts a worker's node container (a lost machine; a worker may come
    back with another address, its kubelet re-registers); ``containers`` signals a pod's container
    with ``ctr`` inside its node container.
    """

    provider = "kind"
    Settings = KindSettings
    capabilities = frozenset({"components", "etcd_snapshot", "etcd_wipe", "etcd_read", "cluster", "containers",
                              "node_power"})

    def __init__(self, name: str, config: TargetConfig, root: Path) -> None:
        super().__init__(name, config, root)
        self.settings: KindSettings
        self._tools_installed = False

    @classmethod
    def check_settings(cls, settings: KindSettings, check: SettingsCheck) -> None:
        """The kind config file is YAML; the etcd tools folder holds both tools.

        The kubeconfig is not checked: kind writes it.
        """
        if settings.config:
            check.yaml_file(("config",), settings.config)
        if settings.etcd_tools:
            folder = check.folder(("etcd_tools",), settings.etcd_tools)
            missing = [tool for tool in ("etcdctl", "etcdutl") if folder and not (folder / tool).is_file()]
            if missing:
                check.error(("etcd_tools",), f"{folder} has no {' and no '.join(missing)}",
                            "put statically linked etcdctl and etcdutl (the cluster's etcd version) there")

    # -- identity ---------------------------------------------------------------------
    def cluster_name(self) -> str:
        return self.settings.cluster

    @property
    def control_plane(self) -> str:
        """The Docker container of the (first) control-plane node."""
        return f"{self.settings.cluster}-control-plane"

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"name": self.name, "provider": self.provider, "cluster": s.cluster,
                "control_plane": self.control_plane, "image": s.image, "component_mode": s.component_mode}

    # -- Kubernetes API ---------------------------------------------------------------
    def _kubeconfig_file(self) -> Path:
        given = self.settings.kubeconfig
        if given:
            return self.root / Path(given).expanduser()
        return self.root / ".dirt" / f"kind-{self.settings.cluster}.kubeconfig"

    def kubeconfig_path(self) -> str | None:
        """The kubeconfig file, written by ``kind get kubeconfig`` when missing."""
        path = self._kubeconfig_file()
        if not path.exists():
            self._write_kubeconfig(path)
        return str(path)

    def kube_context(self) -> str | None:
        return f"kind-{self.settings.cluster}"

    def written_kubeconfig(self) -> str | None:
        """The kubeconfig kind wrote last, without asking kind for one (``prepare`` rewrites it)."""
        path = self._kubeconfig_file()
        return str(path) if path.exists() else None

    def command_env(self) -> dict[str, str]:
        """A drill's commands (``exec``, playbook steps) get the kubeconfig, and first on PATH an ``etcdctl`` that
        runs inside the control-plane node (etcd listens only there) and dirt's kubectl when it built one."""
        # A drill's own commands (e.g. a playbook step recreating the cluster) must
        # run even while the cluster, and so its kubeconfig, is gone.
        try:
            env = super().command_env()
        except TargetError:
            env = {"KUBECONFIG": str(self._kubeconfig_file())}
        from dirt.sandbox import binaries

        folders = [str(self._tool_wrappers())]
        if binaries.is_built(binaries.KUBERNETES):
            folders.append(str(binaries.KUBERNETES.folder))
        env["PATH"] = os.pathsep.join([*folders, os.environ.get("PATH", "")])
        return env

    def _tool_wrappers(self) -> Path:
        """``etcdctl`` as on the control-plane node: a script that runs it there with etcd's address and
        client certificate (what a playbook's ``etcdctl endpoint health`` needs)."""
        folder = self._kubeconfig_file().with_name(f"kind-{self.settings.cluster}-bin")
        script = folder / "etcdctl"
        flags = " ".join(ETCDCTL_TLS)
        text = ("#!/bin/sh\n# made by dirt: etcdctl inside the control-plane node of kind cluster "
                f"{self.settings.cluster!r}\n"
                f"exec {self.settings.docker_binary} exec -i -e ETCDCTL_API=3 {self.control_plane} "
                f'etcdctl {flags} "$@"\n')
        if not script.is_file() or script.read_text() != text:
            folder.mkdir(parents=True, exist_ok=True)
            script.write_text(text)
            script.chmod(0o755)
        return folder

    def _write_kubeconfig(self, path: Path) -> None:
        text = self._kind("get kubeconfig", "get", "kubeconfig", "--name", self.settings.cluster).stdout
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # it holds a client key, whoever created the file
        with os.fdopen(fd, "w") as out:
            out.write(text)
        kubeconfig_secrets(str(path))  # a recreated cluster has a new client key: mask it from now on

    # -- lifecycle --------------------------------------------------------------------
    def prepare(self) -> None:
        cluster = self.settings.cluster
        if not self.cluster_exists():
            hint = "dirt kind up" if self.settings.image == DIRT_IMAGE else f"kind create cluster --name {cluster}"
            raise TargetError(f"kind cluster {cluster!r} does not exist: create it with `{hint}`")
        # Refresh: a cluster recreated outside dirt has a new CA and port.
        self._write_kubeconfig(self._kubeconfig_file())
        self.reset_kube()
        if self.settings.monitoring:
            monitoring = self.monitoring()
            monitoring.start(log=self._say)  # idempotent: what runs keeps running, with this project's rules
            firing = monitoring.wait_scraping()
            if firing:
                self._say(f"kind: alerts firing before the drill: {', '.join(firing)}")

    # -- monitoring beside the cluster ---------------------------------------------------
    def monitoring(self) -> Any:
        """The Prometheus, Alertmanager and kube-state-metrics of ``settings.monitoring``."""
        from dirt.sandbox.cluster import sandbox_home
        from dirt.sandbox.kind_monitoring import ClusterEndpoints, KindMonitoring

        def endpoints() -> ClusterEndpoints:
            return ClusterEndpoints(kubeconfig=Path(self.kubeconfig_path() or ""), control_plane_ip=self._node_ip())

        return KindMonitoring(self.settings.cluster, home=sandbox_home(), endpoints=endpoints,
                              rules=[self.root / Path(r).expanduser() for r in self.settings.rules])

    @property
    def prometheus(self) -> Endpoint | None:
        if self.config.prometheus or not self.settings.monitoring:
            return self.config.prometheus
        return Endpoint(url=self.monitoring().prometheus_url, timeout=5.0)

    @property
    def alertmanager(self) -> Endpoint | None:
        if self.config.alertmanager or not self.settings.monitoring:
            return self.config.alertmanager
        return Endpoint(url=self.monitoring().alertmanager_url, timeout=5.0)

    def _node_ip(self, node: str | None = None) -> str:
        """A node's address on the kind network (default: the control-plane node's)."""
        node = node or self.control_plane
        out = self._docker(f"inspect {node}", "inspect", "-f",
                           "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", node).stdout
        addresses = out.split()
        if not addresses:
            raise TargetError(f"kind: node {node} has no address (is it running?)")
        return addresses[0]

    # -- the whole cluster ------------------------------------------------------------
    def cluster_exists(self) -> bool:
        out = self._kind("get clusters", "get", "clusters").stdout
        return self.settings.cluster in out.split()

    def delete_cluster(self) -> None:
        # --kubeconfig: kind edits that file, never the user's ~/.kube/config.
        self._kind("delete cluster", "delete", "cluster", "--name", self.settings.cluster,
                   "--kubeconfig", str(self._kubeconfig_file()))
        # Gone with the cluster: however the cluster comes back, kubeconfig_path() asks kind again.
        self._kubeconfig_file().unlink(missing_ok=True)
        self._tools_installed = False
        self.reset_kube()

    def create_cluster(self) -> None:
        s = self.settings
        kubeconfig = self._kubeconfig_file()
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        args = ["create", "cluster", "--name", s.cluster]
        config = self.root / Path(s.config).expanduser() if s.config else None
        if config is not None and not config.is_file():
            raise TargetError(f"kind: config file {config} not found (settings.config of target {self.name!r})")
        if s.image == DIRT_IMAGE:
            args += ["--config", str(self._write_dirt_config(config))]
        elif config is not None:
            args += ["--config", str(config)]
        if s.image == DIRT_IMAGE:
            args += ["--image", self._dirt_image()]
        elif s.image:
            args += ["--image", s.image]
        args += ["--kubeconfig", str(kubeconfig), "--wait", f"{s.timeout:g}s"]
        # Creating boots the node (and may pull its image) before the --wait starts.
        self._kind("create cluster", *args, timeout=2 * s.timeout)
        self._tools_installed = False
        self.reset_kube()
        if s.monitoring:
            self._write_kubeconfig(kubeconfig)
            self.monitoring().refresh(log=self._say)  # a new CA, port and client certificate

    def _dirt_image(self) -> str:
        """dirt's node image, loaded into docker (built first when its cached archive is missing), and kind's
        network made IPv4-only from the daemon's pools."""
        from dirt.sandbox.kind_image import ensure_loaded, ensure_network

        try:
            ensure_network(self.settings.docker_binary, log=self._say)
            return ensure_loaded(self.settings.docker_binary, log=self._say)
        except BinaryError as exc:
            raise TargetError(f"kind: dirt's node image: {exc}") from None

    def _write_dirt_config(self, given: Path | None) -> Path:
        """The kind config for dirt's node image on this machine (added to ``given``, the user's own),
        written beside the kubeconfig."""
        from dirt.sandbox.kind_image import cluster_config

        s = self.settings
        try:
            base = yaml.safe_load(given.read_text()) if given is not None else None
            if base is not None and not isinstance(base, dict):
                raise TargetError(f"kind: {given} is not a kind config (a mapping with kind: Cluster)")
            config = cluster_config(workers=s.workers, worker_labels=s.worker_labels, docker=s.docker_binary,
                                    log=self._say, base=base)
        except (BinaryError, yaml.YAMLError, OSError) as exc:
            raise TargetError(f"kind: {exc}") from None
        path = self._kubeconfig_file().with_name(f"kind-{s.cluster}.config.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    @staticmethod
    def _say(message: str) -> None:
        print(f"dirt: {message}", file=sys.stderr)

    # -- control-plane components -----------------------------------------------------
    def stop_component(self, component: str, *, graceful: bool = False) -> None:
        self._check_component(component)
        if self.settings.component_mode == "container":
            verb = "stop" if graceful else "kill"
            self._docker(f"{verb} {self.control_plane}", verb, self.control_plane)
            return
        if f"{component}.yaml" in self._manifests():
            self._node(f"stop {component}", "mv", _manifest(component), _parked(component))
        if not graceful:
            ids = self._node(f"find {component}", "crictl", "ps", "--name", component, "-q").stdout.split()
            if ids:  # it may be gone already: kubelet got there first
                self._node(f"kill {component}", "crictl", "stop", "--timeout", "0", *ids, check=False)
        self._wait(f"{component} to stop", lambda: not self._container_running(component))

    def start_component(self, component: str) -> None:
        self._check_component(component)
        if self.settings.component_mode == "container":
            if not self._node_running():
                self._docker(f"start {self.control_plane}", "start", self.control_plane)
        elif f"{component}.yaml" not in self._manifests():
            self._put_back(component)
        self._wait(f"{component} to run", lambda: self._container_running(component))
        if component == "kube-apiserver" or self.settings.component_mode == "container":
            self.reset_kube()

    def component_running(self, component: str) -> bool:
        self._check_component(component)
        if self.settings.component_mode == "container" and not self._node_running():
            return False
        return self._container_running(component)

    def _check_component(self, component: str) -> None:
        if component not in KIND_COMPONENTS:
            raise TargetError(f"kind: no component {component!r} on a kind node (one of {', '.join(KIND_COMPONENTS)})")

    def _container_running(self, component: str) -> bool:
        out = self._node(f"look for {component}", "crictl", "ps", "--name", component, "-q").stdout
        return bool(out.strip())

    def _node_running(self) -> bool:
        return self._container_up(self.control_plane)

    def _put_back(self, component: str) -> None:
        """A parked manifest back in kubelet's folder, as it was: the same static pod (and mirror pod) again.
        Changing it would make kubelet replace the mirror pod through the API server, which hangs while
        etcd or the API server is what was stopped."""
        self._node(f"start {component}", "mv", _parked(component), _manifest(component))

    def _manifests(self) -> set[str]:
        return set(self._node("list static pod manifests", "ls", MANIFESTS).stdout.split())

    # -- nodes and their containers ----------------------------------------------------
    def cluster_nodes(self) -> list[str]:
        """The cluster's nodes, as ``kind get nodes`` names them (each is also its Docker container)."""
        out = self._kind("get nodes", "get", "nodes", "--name", self.settings.cluster).stdout
        return out.split()  # no nodes: kind says so on stderr and prints nothing here

    def _cluster_node(self, node: str, *, whose: str = "") -> str:
        """``node`` if this cluster has it; a TargetError naming the nodes it has otherwise."""
        nodes = self.cluster_nodes()
        if node not in nodes:
            raise TargetError(f"kind: {node!r}{whose} is not a node of cluster {self.settings.cluster!r} "
                              f"(target {self.name!r}); its nodes: {', '.join(nodes) or 'none'}")
        return node

    def _worker(self, node: str) -> str:
        """``node`` if it is one of this cluster's workers: a control-plane node is not a lost machine."""
        self._cluster_node(node)
        if "control-plane" in node:
            raise TargetError(f"kind: {node} is a control-plane node of cluster {self.settings.cluster!r}: losing "
                              "it is a whole-cluster outage, not a lost worker; use control_plane.stop "
                              "(component_mode: container) or cluster.delete instead")
        return node

    def stop_node(self, node: str) -> None:
        """SIGKILL to the whole node container: kubelet, containerd and every pod process die at once."""
        self._docker(f"kill {node}", "kill", self._worker(node))

    def start_node(self, node: str) -> None:
        """Start the node container, then wait until its Node reports Ready."""
        self._worker(node)
        power_on_and_wait(self.kube(), node, lambda: self._docker(f"start {node}", "start", node),
                          self.settings.timeout, hint=f"see `docker logs {node}` and `docker exec {node} journalctl "
                                                      f"-u kubelet` (target {self.name!r})")

    def node_running(self, node: str) -> bool:
        return self._container_up(self._cluster_node(node))

    def kill_container(self, pod: dict[str, Any], container: str, *, signal: str = "SIGKILL") -> str:
        """``signal`` to the container's main process through containerd on its node; its containerd ID."""
        node, runtime, cid = running_container(pod, container)
        name = f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
        if runtime != "containerd":
            raise TargetError(f"kind: container {container!r} of pod {name} runs under {runtime!r}, not containerd "
                              "(kind's nodes run containerd): ctr cannot signal it")
        self._cluster_node(node, whose=f" (where pod {name} runs)")
        # One argv element each, never a shell: the signal reaches ctr as given.
        self._docker(f"kill container {container} of pod {name}", "exec", node,
                     "ctr", "--namespace", "k8s.io", "tasks", "kill", "--signal", signal, cid)
        return cid

    def _container_up(self, container: str) -> bool:
        out = self._docker(f"inspect {container}", "inspect", "-f", "{{.State.Running}}", container).stdout
        return out.strip() == "true"

    # -- etcd -------------------------------------------------------------------------
    def etcd_snapshot_save(self, path: Path) -> SnapshotInfo:
        self._install_etcd_tools()
        self._node("etcdctl snapshot save", "etcdctl", *ETCDCTL_TLS, "snapshot", "save", NODE_SNAPSHOT,
                   env={"ETCDCTL_API": "3"})
        path.parent.mkdir(parents=True, exist_ok=True)
        self._docker("copy the snapshot out", "cp", f"{self.control_plane}:{NODE_SNAPSHOT}", str(path))
        return _snapshot_info(path, self._snapshot_status(NODE_SNAPSHOT))

    def etcd_snapshot_status(self, path: Path) -> SnapshotInfo:
        """What ``etcdutl snapshot status`` says about a snapshot file on this machine."""
        if not path.is_file():
            raise TargetError(f"kind: snapshot {path} not found")
        self._install_etcd_tools()
        self._docker("copy the snapshot in", "cp", str(path), f"{self.control_plane}:{NODE_RESTORE}")
        return _snapshot_info(path, self._snapshot_status(NODE_RESTORE))

    def etcd_snapshot_restore(self, path: Path) -> None:
        """Restore the whole cluster's state from ``path`` (the control plane restarts)."""
        if not path.is_file():
            raise TargetError(f"kind: snapshot {path} not found")
        self._install_etcd_tools()
        self._docker("copy the snapshot in", "cp", str(path), f"{self.control_plane}:{NODE_RESTORE}")
        self._snapshot_status(NODE_RESTORE)  # a corrupt snapshot fails here, before anything stops
        member = self._etcd_member_flags()
        stamp = time.strftime("%Y%m%d%H%M%S")
        fresh, aside = f"{ETCD_DATA}-restore-{stamp}", f"{ETCD_DATA}-before-restore-{stamp}"
        # The API server and controllers go first: nothing may write to etcd meanwhile.
        present = self._manifests()
        for component in RESTORE_STOP_ORDER:
            if f"{component}.yaml" in present:
                self._node(f"stop {component}", "mv", _manifest(component), _parked(component))
        for component in RESTORE_STOP_ORDER:
            self._wait(f"{component} to stop", lambda c=component: not self._container_running(c))
        self._node("etcdutl snapshot restore", "etcdutl", "snapshot", "restore", NODE_RESTORE,
                   "--data-dir", fresh, *member,
                   # Revisions must not go backwards for watchers (etcd issue 16028).
                   "--bump-revision", "1000000000", "--mark-compacted")
        self._node("set the old etcd data aside", "mv", ETCD_DATA, aside)
        self._node("put the restored etcd data in place", "mv", fresh, ETCD_DATA)
        # All of them come back, also one a fault had stopped before: this is a recovery.
        for component in ("etcd", *RESTORE_STOP_ORDER[:-1]):
            self._put_back(component)
        self._wait("the API server to be ready", self._api_ready)
        self._restart_kubelets()
        self.reset_kube()

    def _restart_kubelets(self) -> None:
        """The procedure's last step: every node's kubelet restarted (its pods go on running), so none acts
        on what it cached of the lost etcd, nor waits out the backoff its watches built up meanwhile."""
        for node in self.cluster_nodes():
            if self._docker(f"is {node}'s kubelet running", "exec", node, "systemctl", "is-active", "--quiet",
                            "kubelet", check=False).returncode != 0:
                continue  # a fault stopped it (a powered-off worker): it stays stopped
            self._docker(f"restart {node}'s kubelet", "exec", node, "systemctl", "restart", "kubelet")

    def etcd_wipe(self) -> None:
        """etcd loses its data: its ``member`` folder is moved aside and etcd's container killed, so that kubelet
        restarts it at once on an empty data directory (the same static pod: moving its manifest out and back
        would make kubelet tear the pod down and recreate it, which takes it about a minute); what was moved
        aside is then deleted.  An etcd another fault had stopped (its manifest parked) stays stopped."""
        aside = f"{ETCD_DATA}-wiped-{time.strftime('%Y%m%d%H%M%S')}"
        if "etcd.yaml" not in self._manifests():
            self._wait("etcd to stop", lambda: not self._container_running("etcd"))
            self._node("delete etcd's data", "rm", "-rf", f"{ETCD_DATA}/member")
            return
        self._node("move etcd's data aside", "sh", "-c", f"mkdir -p {aside} && mv {ETCD_DATA}/member {aside}/")
        ids = self._node("find etcd", "crictl", "ps", "--name", "etcd", "-q").stdout.split()
        if ids:
            self._node("kill etcd", "crictl", "stop", "--timeout", "0", *ids, check=False)
        self._node("delete etcd's old data", "rm", "-rf", aside)

    def etcd_read(self, key: str) -> str | None:
        self._install_etcd_tools()
        out = self._node("etcdctl get", "etcdctl", *ETCDCTL_TLS, "get", key, "--print-value-only",
                         env={"ETCDCTL_API": "3"}).stdout
        return out if out.strip() else None

    def _snapshot_status(self, node_path: str) -> dict[str, Any]:
        out = self._node("etcdutl snapshot status", "etcdutl", "snapshot", "status", node_path, "-w", "json").stdout
        try:
            status = json.loads(out)
        except ValueError:
            status = None
        if not isinstance(status, dict):
            raise TargetError(f"kind: etcdutl snapshot status printed no JSON: {_last_line(out)}")
        return status

    def _etcd_member_flags(self) -> list[str]:
        """--name/--initial-cluster/--initial-advertise-peer-urls as the etcd manifest has them."""
        path = _manifest("etcd") if "etcd.yaml" in self._manifests() else _parked("etcd")
        text = self._node("read the etcd manifest", "cat", path).stdout
        flags: dict[str, str] = {}
        try:
            pod = yaml.safe_load(text) or {}
            for arg in pod["spec"]["containers"][0].get("command", []):
                key, sep, value = str(arg).partition("=")
                if sep:
                    flags[key] = value
        except (yaml.YAMLError, KeyError, IndexError, TypeError, AttributeError):
            pass
        name, peer = flags.get("--name"), flags.get("--initial-advertise-peer-urls")
        if not (name and peer):
            return []
        return ["--name", name, "--initial-cluster", f"{name}={peer}", "--initial-advertise-peer-urls", peer]

    def _api_ready(self) -> bool:
        result = self._node("API readiness", "kubectl", f"--kubeconfig={NODE_KUBECONFIG}", "get", "--raw", "/readyz",
                            check=False)
        return result.returncode == 0 and result.stdout.strip() == "ok"

    def _install_etcd_tools(self) -> None:
        if self._tools_installed or not self.settings.etcd_tools:
            return
        folder = self.root / Path(self.settings.etcd_tools).expanduser()
        for tool in ("etcdctl", "etcdutl"):
            if not (folder / tool).is_file():
                raise TargetError(f"kind: {folder / tool} not found (settings.etcd_tools of target {self.name!r})")
            self._docker(f"copy {tool} into the node", "cp", str(folder / tool),
                         f"{self.control_plane}:/usr/local/bin/{tool}")
        self._tools_installed = True

    # -- running the CLIs ---------------------------------------------------------------
    def _kind(self, what: str, *args: str, timeout: float | None = None) -> CommandResult:
        return self._run(what, [kind_cli(self.settings.kind_binary), *args], timeout=timeout)

    def _docker(self, what: str, *args: str, check: bool = True) -> CommandResult:
        return self._run(what, [self.settings.docker_binary, *args], check=check)

    def _node(self, what: str, *command: str, env: dict[str, str] | None = None,
              check: bool = True) -> CommandResult:
        """Run ``command`` inside the control-plane container."""
        flags = [part for k, v in (env or {}).items() for part in ("-e", f"{k}={v}")]
        return self._docker(what, "exec", *flags, self.control_plane, *command, check=check)

    def _run(self, what: str, argv: Sequence[str], *, timeout: float | None = None,
             check: bool = True, stdin: str | None = None) -> CommandResult:
        """The kind and docker CLIs, through dirt's one command runner; failures as one clean line."""
        limit = timeout or self.settings.timeout
        try:
            result = run(list(argv), timeout=limit, cwd=self.root, what=what, stdin=stdin)
        except CommandError as exc:
            if exc.missing:
                raise TargetError(f"kind: {what} failed: {argv[0]!r} not found on PATH") from None
            if exc.timed_out:
                raise TargetError(f"kind: {what} timed out after {limit:g}s") from None
            raise TargetError(f"kind: {what} failed: {exc}") from None
        if check and result.returncode != 0:
            raise TargetError(
                f"kind: {what} failed (exit {result.returncode}): {_last_line(result.stderr.strip() or result.stdout)}"
            )
        return result

    def _wait(self, what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.settings.timeout
        while not done():
            if time.monotonic() > deadline:
                raise TargetError(f"kind: waited {self.settings.timeout:g}s for {what}")
            time.sleep(POLL_SECONDS)


def kind_cli(name: str = "kind") -> str:
    """The kind CLI: ``name`` as given, except that plain ``kind`` missing from PATH is the one dirt built."""
    if name != "kind" or shutil.which(name):
        return name
    from dirt.sandbox import binaries

    return str(binaries.KIND.path("kind")) if binaries.is_built(binaries.KIND) else name


def _snapshot_info(path: Path, status: dict[str, Any]) -> SnapshotInfo:
    return SnapshotInfo(path=str(path), hash=int(status.get("hash", 0)), revision=int(status.get("revision", 0)),
                        total_keys=int(status.get("totalKey", 0)),
                        size_bytes=int(status.get("totalSize", 0)) or path.stat().st_size,
                        created_at=path.stat().st_mtime)


def _manifest(component: str) -> str:
    return f"{MANIFESTS}/{component}.yaml"


def _parked(component: str) -> str:
    """Where a stopped component's manifest waits: outside the folder kubelet watches."""
    return f"/etc/kubernetes/{component}.yaml.dirt-stopped"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return re.sub(r"\s+", " ", lines[-1])[:300] if lines else "(no output)"

"""One named sandbox: a real control plane run by ``kwokctl --runtime binary``, plus monitoring.

Layout (``$DIRT_SANDBOX_HOME`` or ``${XDG_STATE_HOME:-~/.local/state}/dirt/sandboxes``)::

    <name>/sandbox.json          ports, versions, settings (what `status` reads)
    <name>/kwokctl.yaml          the KwokctlConfiguration (every binary a local path)
    <name>/kwok/clusters/<name>/ kwokctl's working dir: kubeconfig.yaml, pki/, etcd/, pids/, logs/
    <name>/prometheus/           prometheus.yml, rules/, data/
    <name>/alertmanager/         alertmanager.yml, data/
    <name>/pushgateway/          the Pushgateway's persistence file (sandboxes with ``pushgateway: true``)
    <name>/pids/, <name>/logs/   the monitoring processes dirt starts itself

kwokctl creates and deletes the cluster and forks the control-plane processes;
dirt stops and starts single components itself (kwokctl has no command for
that) by PID from ``pids/<component>.pid``, with the exact command line kwokctl
recorded in ``kwok.yaml``.  Every server binds to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from dirt.clients import http
from dirt.clients.commands import CommandResult, run
from dirt.config import state_home
from dirt.core.errors import CommandError, HttpError, TargetError
from dirt.sandbox import images, process
from dirt.sandbox import realnode as realnode_parts
from dirt.sandbox import velero as velero_parts
from dirt.sandbox.binaries import (
    Binaries,
    VeleroBinaries,
    locate,
    locate_kubelet,
    locate_pushgateway,
    locate_velero,
)
from dirt.sandbox.monitoring import (
    RULES_DIR,
    Ports,
    alertmanager_config,
    prometheus_config,
    render_rules,
    rules_in,
    write_rules,
    write_yaml,
)

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")
MONITORS = ("kube-state-metrics", "volume-provisioner", "prometheus", "alertmanager")
#: What a component needs running before it can become healthy.
DEPENDS_ON = {"kube-apiserver": ("etcd",), "kube-controller-manager": ("kube-apiserver",),
              "kube-scheduler": ("kube-apiserver",), "kwok-controller": ("kube-apiserver",)}
#: Components that hold a leader lease in a real control plane, and the default
#: ``--leader-elect-renew-deadline`` after which one that cannot renew it exits.
LEASE_HOLDERS = ("kube-controller-manager", "kube-scheduler")
LEASE_RENEW_DEADLINE = 10.0
#: What the API server needs to answer writes (and so to renew a lease).
API_WRITES_NEED = ("etcd", "kube-apiserver")
Log = Callable[[str], None]


def sandbox_home() -> Path:
    env = os.environ.get("DIRT_SANDBOX_HOME")
    if env:
        return Path(env)
    return state_home() / "sandboxes"


def _quiet(message: str) -> None:
    pass


class Sandbox:
    def __init__(self, name: str = "dirt", *, nodes: int = 3, scrape_interval: float = 1.0,
                 evaluation_interval: float = 1.0, alert_for: float | None = None,
                 rules: list[Path] | None = None, kube_state_metrics: bool = True,
                 node_grace_period: float = 10.0, velero: bool = False, real_nodes: int = 0,
                 pushgateway: bool = False, home: Path | None = None) -> None:
        self.name = name
        self.nodes = nodes
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.alert_for = alert_for
        self.extra_rules = list(rules or [])
        self.want_ksm = kube_state_metrics
        self.node_grace_period = node_grace_period
        self.velero = velero
        if real_nodes not in (0, 1):
            raise TargetError(f"sandbox {name!r}: real_nodes must be 0 or 1 (one kubelet per machine for now)")
        self.real_nodes = real_nodes
        self.pushgateway = pushgateway
        self.root = (home or sandbox_home()) / name
        self.kwok_workdir = self.root / "kwok"
        self.cluster_dir = self.kwok_workdir / "clusters" / name
        self._binaries: Binaries | None = None
        self._velero_binaries: VeleroBinaries | None = None

    # -- paths and state ----------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig.yaml"

    @property
    def pki(self) -> Path:
        return self.cluster_dir / "pki"

    @property
    def state_file(self) -> Path:
        return self.root / "sandbox.json"

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, **fields: Any) -> None:
        data = self.state() | fields
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_file)

    @property
    def ports(self) -> Ports:
        stored = self.state().get("ports") or {}
        known = {k: v for k, v in stored.items() if k in Ports.names() and v}
        if len(known) == len(Ports.names()):
            return Ports(**known)
        # Each sandbox name gets its own neighbourhood of ports below the ephemeral range; a
        # sandbox from an older dirt keeps its ports and gets the ones it lacks.
        start = 20000 + (zlib.crc32(self.name.encode()) % 1000) * 12
        missing = [n for n in Ports.names() if n not in known]
        taken = set(known.values())
        fresh = iter(p for p in process.free_ports(len(missing) + len(taken), start=start) if p not in taken)
        ports = Ports(**known, **{name: next(fresh) for name in missing})
        if self.root.is_dir():  # a sandbox that does not exist yet is not made by asking (`dirt plan` touches nothing)
            self._save_state(ports=asdict(ports))
        return ports

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    @property
    def pushgateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.pushgateway}"

    def binaries(self, *, build_missing: bool = False, log: Log = _quiet) -> Binaries:
        if self._binaries is None:
            self._binaries = locate(build_missing=build_missing, log=log)
        return self._binaries

    def kubelet_binary(self, *, build_missing: bool = False, log: Log = _quiet) -> Path:
        return locate_kubelet(build_missing=build_missing, log=log)

    def velero_binaries(self, *, build_missing: bool = False, log: Log = _quiet) -> VeleroBinaries:
        if self._velero_binaries is None:
            self._velero_binaries = locate_velero(build_missing=build_missing, log=log)
        return self._velero_binaries

    @property
    def monitors(self) -> tuple[str, ...]:
        """The processes dirt starts beside the control plane (Velero's only when the sandbox runs it)."""
        state = self.state()
        runs_velero = self.velero or bool(state.get("velero"))  # started by another configuration
        runs_node = self.real_nodes or bool(state.get("real_nodes"))
        runs_pushgateway = self.pushgateway or bool(state.get("pushgateway"))
        return (*MONITORS, *(("pushgateway",) if runs_pushgateway else ()),
                *(velero_parts.COMPONENTS if runs_velero else ()),
                *(realnode_parts.COMPONENTS if runs_node else ()))

    def exists(self) -> bool:
        return (self.cluster_dir / "kwok.yaml").is_file()

    # -- kwokctl ------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KWOK_")}
        env["KWOK_WORKDIR"] = str(self.kwok_workdir)
        # kwokctl prefers a kubectl found on PATH: make sure it is ours.
        env["PATH"] = f"{self.binaries().kubectl.parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _run(self, argv: list[str], *, what: str, timeout: float, check: bool = True,
             env: dict[str, str] | None = None, cwd: Path | None = None) -> CommandResult:
        """Run one of the sandbox's CLIs; failures are a ``TargetError`` with the program's own last word."""
        try:
            result = run(argv, timeout=timeout, env=env, cwd=cwd, what=what)
        except CommandError as exc:
            raise TargetError(f"sandbox {self.name!r}: {exc}") from None
        if check and result.returncode != 0:
            raise TargetError(f"{what} failed (exit {result.returncode}): "
                              f"{_last_message(result.stderr or result.stdout)}")
        return result

    def _kwokctl(self, *args: str, timeout: float = 180.0, check: bool = True) -> CommandResult:
        return self._run([str(self.binaries().kwokctl), "--name", self.name, *args],
                         what=f"kwokctl {' '.join(args[:2])}", timeout=timeout, check=check, env=self._env(),
                         cwd=self.root)

    def _kwokctl_config(self) -> Path:
        b = self.binaries()
        p = self.ports
        grace_ms = int(self.node_grace_period * 1000)
        config = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "runtime": "binary",
                "kubeVersion": b.versions()["kubernetes"],
                "etcdVersion": b.versions()["etcd"].lstrip("v"),
                "bindAddress": "127.0.0.1",
                "kubeApiserverPort": p.kube_apiserver,
                "etcdPort": p.etcd,
                "etcdPeerPort": p.etcd_peer,
                "kubeControllerManagerPort": p.kube_controller_manager,
                "kubeSchedulerPort": p.kube_scheduler,
                "kwokControllerPort": p.kwok_controller,
                "kubeApiserverBinary": str(b.kube_apiserver),
                "kubeControllerManagerBinary": str(b.kube_controller_manager),
                "kubeSchedulerBinary": str(b.kube_scheduler),
                "kubectlBinary": str(b.kubectl),
                "etcdBinary": str(b.etcd),
                "etcdctlBinary": str(b.etcdctl),
                "etcdutlBinary": str(b.etcdutl),
                "kwokControllerBinary": str(b.kwok),
                "cacheDir": str(self.root / "kwok-cache"),
                "quietPull": True,
                "disableQPSLimits": True,
                # Node liveness in seconds rather than minutes, so node-loss drills are quick.
                "heartbeatFactor": 1.0,
                "nodeLeaseDurationSeconds": max(4, int(self.node_grace_period // 2)),
                "nodeStatusUpdateFrequencyMilliseconds": 2000,
                "kubeControllerManagerNodeMonitorPeriodMilliseconds": 1000,
                "kubeControllerManagerNodeMonitorGracePeriodMilliseconds": grace_ms,
            },
            # A lone controller-manager or scheduler that loses its leader lease (the API
            # server is down for >10s) exits, and no kubelet restarts it here as it would
            # a static pod: without leader election they wait for the API to come back.
            "componentsPatches": [
                {"name": "kube-controller-manager", "extraArgs": [{"key": "leader-elect", "value": "false"}]},
                {"name": "kube-scheduler", "extraArgs": [{"key": "leader-elect", "value": "false"}]},
                # KWOK fakes only the nodes it makes (kwokctl scale): a real kubelet's node is its own.
                {"name": "kwok-controller", "extraArgs": [
                    {"key": "manage-all-nodes", "value": "false"},
                    {"key": "manage-nodes-with-annotation-selector", "value": "kwok.x-k8s.io/node=fake"}]},
            ],
        }
        path = self.root / "kwokctl.yaml"
        write_yaml(path, config)
        return path

    # -- up / down / status ---------------------------------------------------------------
    def up(self, *, log: Log = print, timeout: float = 180.0) -> dict[str, Any]:
        """Create (or resume) the sandbox; return its status once everything is healthy."""
        started = time.monotonic()
        self.binaries(build_missing=True, log=log)
        versions = self.binaries().versions()
        if self.velero:
            versions |= self.velero_binaries(build_missing=True, log=log).versions()
        elif self.state().get("velero"):  # Velero switched off in the settings: stop what an earlier up started
            for name in reversed(velero_parts.COMPONENTS):
                if process.stop(self._pid(name), binary=self._monitor_binary(name)):
                    log(f"stopped {name} (the sandbox no longer runs Velero)")
        if self.real_nodes:
            versions["kubelet"] = versions["kubernetes"]
            versions["containerd"] = realnode_parts.containerd_version()
            self.kubelet_binary(build_missing=True, log=log)
        elif self.state().get("real_nodes"):  # the real node switched off: take down what an earlier up started
            self._teardown_real_node(log)
        if self.pushgateway:
            locate_pushgateway()  # missing: say so before anything starts
        elif self.state().get("pushgateway") and process.stop(self._pid("pushgateway"),
                                                              binary=self._monitor_binary("pushgateway")):
            log("stopped pushgateway (the sandbox no longer runs one)")
        self.root.mkdir(parents=True, exist_ok=True)
        self._save_state(name=self.name, versions=versions, nodes=self.nodes, velero=self.velero,
                         real_nodes=self.real_nodes, pushgateway=self.pushgateway)
        if self.exists():
            for component in CONTROL_PLANE:
                if not self.component_running(component):
                    log(f"starting {component}")
                    self.start_component(component, wait=False)
            self.wait_api(timeout)
            self.scale_nodes(self.nodes, log=log)
        else:
            log(f"creating sandbox {self.name!r} (kwokctl --runtime binary)")
            self.create_cluster(log=log)  # waits for the API and the nodes itself
        self.start_monitoring(log=log)
        if self.velero:
            self.start_velero(log=log)
        if self.real_nodes:
            self.start_real_node(log=log)
        self.wait_healthy(timeout=max(30.0, timeout - (time.monotonic() - started)))
        self.wait_monitoring_settled(timeout=60.0, log=log)
        self._save_state(up_seconds=round(time.monotonic() - started, 2))
        log(f"sandbox {self.name!r} is up in {time.monotonic() - started:.1f}s")
        return self.status()

    def create_cluster(self, *, log: Log = _quiet) -> None:
        """A fresh cluster (new etcd, new PKI) with the sandbox's name and ports."""
        config = self._kwokctl_config()
        self._kwokctl("-c", str(config), "create", "cluster", "--kubeconfig", str(self.root / "kwokctl-kubeconfig.yaml"),
                      "--wait", "60s", "--timeout", "120s")
        self.wait_api(90.0)
        self.scale_nodes(self.nodes, log=log)
        if process.alive(self._pid("kube-state-metrics")):
            # its client certificate came from the old PKI
            self._restart_monitor("kube-state-metrics")
        if self.velero and process.alive(self._pid("velero")):
            # A new cluster has no Velero CRDs and the server holds the old PKI.  Like a real rebuild:
            # install Velero again against the same bucket; it finds the old backups there.
            self.start_velero(log=log, restart=True)
        if self.real_nodes and process.alive(self._pid("kubelet")):
            # Its node object went with the old cluster and its certificate with the old CA: like a
            # machine rejoining a rebuilt cluster, it gets new credentials and registers again.
            self.start_real_node(log=log, restart=True)

    def delete_cluster(self) -> None:
        """The whole cluster gone: processes killed, etcd data and PKI removed."""
        if not self.exists():
            return
        self._kwokctl("delete", "cluster", "--kubeconfig", str(self.root / "kwokctl-kubeconfig.yaml"))
        deadline = time.monotonic() + 30
        while self.exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def down(self, *, log: Log = print) -> None:
        """Stop every process the sandbox started and remove its state."""
        if set(realnode_parts.COMPONENTS) & set(self.monitors):
            self._teardown_real_node(log)
        for name in reversed(self.monitors):
            if process.stop(self._pid(name), binary=self._monitor_binary(name)):
                log(f"stopped {name}")
        if self.exists():
            try:
                self.delete_cluster()
                log("deleted the cluster (kwokctl delete cluster)")
            except (TargetError, OSError) as exc:
                log(f"kwokctl delete failed ({exc}); stopping components by PID")
        for component in CONTROL_PLANE:  # anything kwokctl left behind
            process.stop(self._pid(component), binary=self._component_binary(component))
        shutil.rmtree(self.root, ignore_errors=True)
        log(f"sandbox {self.name!r} removed")

    def status(self) -> dict[str, Any]:
        state = self.state()
        components = []
        for name in (*CONTROL_PLANE, *self.monitors):
            if name == "kube-state-metrics" and not self.want_ksm:
                continue
            pid = self._pid(name)
            running = self.component_running(name)
            components.append({"name": name, "pid": pid if running else None, "healthy": running and self._healthy(name)})
        return {
            "name": self.name,
            "exists": self.exists(),
            "kubeconfig": str(self.kubeconfig),
            "prometheus_url": self.prometheus_url if state.get("ports") else None,
            "alertmanager_url": self.alertmanager_url if state.get("ports") else None,
            "pushgateway_url": self.pushgateway_url if state.get("ports") and "pushgateway" in self.monitors else None,
            "api_server": f"https://127.0.0.1:{self.ports.kube_apiserver}" if state.get("ports") else None,
            "components": components,
            "versions": state.get("versions", {}),
            "root": str(self.root),
            "up_seconds": state.get("up_seconds"),
            "velero": self.velero_status() if self.velero else None,
            "real_nodes": self.real_node_status() if self.real_nodes else None,
        }

    def velero_status(self) -> dict[str, Any]:
        """Where Velero's parts are: its namespace, location, object store and bucket folder."""
        p = self.ports
        return {"namespace": velero_parts.NAMESPACE, "backup_storage_location": velero_parts.LOCATION,
                "object_store_url": f"http://127.0.0.1:{p.object_store}", "bucket": velero_parts.BUCKET,
                "bucket_folder": str(velero_parts.folder(self.root) / "bucket"),
                "metrics_url": f"http://127.0.0.1:{p.velero_metrics}/metrics"}

    # -- health -----------------------------------------------------------------------------
    def _get(self, url: str, *, client_cert: bool = False, verify: bool | str = False,
             timeout: float = 2.0) -> http.HttpResponse | None:
        cert = (str(self.pki / "admin.crt"), str(self.pki / "admin.key")) if client_cert else None
        return http.probe(url, cert=cert, verify=verify, timeout=timeout)

    def _healthy(self, name: str) -> bool:
        p = self.ports
        checks: dict[str, Callable[[], Any]] = {
            "etcd": lambda: self._get(f"http://127.0.0.1:{p.etcd}/health"),
            "kube-apiserver": lambda: self._get(f"https://127.0.0.1:{p.kube_apiserver}/readyz", client_cert=True,
                                                verify=str(self.pki / "ca.crt")),
            "kube-controller-manager": lambda: self._get(f"https://127.0.0.1:{p.kube_controller_manager}/healthz"),
            "kube-scheduler": lambda: self._get(f"https://127.0.0.1:{p.kube_scheduler}/healthz"),
            "kwok-controller": lambda: self._get(f"http://127.0.0.1:{p.kwok_controller}/healthz"),
            "kube-state-metrics": lambda: self._get(f"http://127.0.0.1:{p.kube_state_metrics}/healthz"),
            "prometheus": lambda: self._get(f"{self.prometheus_url}/-/ready"),
            "volume-provisioner": lambda: _Alive(),
            "alertmanager": lambda: self._get(f"{self.alertmanager_url}/-/ready"),
            "pushgateway": lambda: self._get(f"{self.pushgateway_url}/-/healthy"),
            "object-store": lambda: self._get(f"http://127.0.0.1:{p.object_store}/"),
            "velero": lambda: self._get(f"http://127.0.0.1:{p.velero_metrics}/metrics"),
            "containerd": lambda: self._get(f"http://127.0.0.1:{p.containerd_metrics}/v1/metrics"),
            "kubelet": lambda: self._get(f"http://127.0.0.1:{p.kubelet_healthz}/healthz"),
        }
        response = checks[name]()
        return response is not None and response.status == 200

    def wait_api(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.component_running("kube-apiserver") and self._healthy("kube-apiserver"):
                return
            time.sleep(0.2)
        raise TargetError(f"sandbox {self.name!r}: kube-apiserver not ready after {timeout:.0f}s "
                          f"(log: {self.cluster_dir / 'logs' / 'kube-apiserver.log'})")

    def wait_healthy(self, timeout: float = 60.0, components: tuple[str, ...] | None = None) -> None:
        names = components or tuple(c["name"] for c in self.status()["components"])
        deadline = time.monotonic() + timeout
        bad: list[str] = []
        while time.monotonic() < deadline:
            bad = [n for n in names if not (self.component_running(n) and self._healthy(n))]
            if not bad:
                return
            time.sleep(0.25)
        raise TargetError(f"sandbox {self.name!r}: not healthy after {timeout:.0f}s: {', '.join(bad)} "
                          f"(see `dirt sandbox logs {bad[0]}`)")

    #: Alerts about the sandbox itself: start-up noise is waited out (a while) before a drill.
    INFRA_ALERTS = ("KubeAPIDown", "KubeControllerManagerDown", "KubeSchedulerDown", "KwokControllerDown",
                    "etcdMembersDown", "etcdInsufficientMembers", "etcdNoLeader", "etcdDataLoss", "TargetDown")

    def wait_monitoring_settled(self, timeout: float = 60.0, *, quiet_within: float = 20.0,
                                log: Log = _quiet) -> list[str]:
        """Prometheus scrapes every target and has evaluated its rules; start-up noise (the
        sandbox's own alerts, pending or firing) gets ``quiet_within`` seconds to clear.

        Alerts still firing after that are returned and logged, not fatal: a sandbox that
        is up is up, whatever its alerts say, and a drill's baseline shows them.  Only
        monitoring that does not work (a target down, Prometheus silent) is an error.
        """
        deadline = time.monotonic() + timeout
        problems: list[str] = ["Prometheus not answering"]
        scraping_since: float | None = None
        while time.monotonic() < deadline:
            targets = self._get(f"{self.prometheus_url}/api/v1/targets")
            rules = self._get(f"{self.prometheus_url}/api/v1/rules?type=alert")
            try:
                active = targets.json()["data"]["activeTargets"] if targets is not None and targets.ok else None
                groups = rules.json()["data"]["groups"] if rules is not None and rules.ok else None
            except (HttpError, KeyError, TypeError):
                active = groups = None
            if active is not None and groups is not None:
                problems = [f"target {t['labels']['job']} {t['health']}" for t in active if t["health"] != "up"]
                evaluated = all(not str(g.get("lastEvaluation", "0001")).startswith("0001") for g in groups)
                if active and not problems and evaluated:
                    scraping_since = scraping_since or time.monotonic()
                    states = {a["labels"].get("alertname", "?"): a.get("state") for g in groups
                              for r in g.get("rules", []) for a in r.get("alerts", [])}
                    noisy = [n for n, st in states.items() if n in self.INFRA_ALERTS and st in ("pending", "firing")]
                    if not noisy or time.monotonic() - scraping_since > quiet_within:
                        firing = sorted(n for n, st in states.items() if st == "firing" and n != "Watchdog")
                        if firing:
                            log(f"alerts firing: {', '.join(firing)}")
                        return firing
            time.sleep(0.5)
        raise TargetError(f"sandbox {self.name!r}: monitoring not working after {timeout:.0f}s: {', '.join(problems)}")

    # -- nodes ------------------------------------------------------------------------------
    def kubectl(self, *args: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        return self._run([str(self.binaries().kubectl), "--kubeconfig", str(self.kubeconfig), *args],
                         what=f"kubectl {' '.join(args[:3])}", timeout=timeout, check=check)

    def scale_nodes(self, count: int, *, log: Log = _quiet, timeout: float = 60.0) -> None:
        self._kwokctl("scale", "node", "--replicas", str(count))
        deadline = time.monotonic() + timeout
        def kwok_ready() -> list[str]:  # the real node is not KWOK's to count
            return [n for n in self.ready_nodes() if not n.startswith(realnode_parts.NODE_PREFIX)]

        while time.monotonic() < deadline:
            if len(kwok_ready()) >= count:
                return
            time.sleep(0.25)
        raise TargetError(f"sandbox {self.name!r}: {count} nodes wanted, {len(kwok_ready())} Ready "
                          f"after {timeout:.0f}s")

    def node_names(self) -> list[str] | None:
        """Every node's name; None when the API server does not answer."""
        proc = self.kubectl("get", "nodes", "-o", "name", check=False)
        return [line.removeprefix("node/") for line in proc.stdout.split()] if proc.returncode == 0 else None

    def ready_nodes(self) -> list[str]:
        proc = self.kubectl("get", "nodes", "-o", "json", check=False)
        if proc.returncode != 0:
            return []
        items = json.loads(proc.stdout).get("items", [])
        return [n["metadata"]["name"] for n in items
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))]

    # -- components -------------------------------------------------------------------------
    def _pid(self, name: str) -> int | None:
        folder = self.cluster_dir / "pids" if name in CONTROL_PLANE else self.root / "pids"
        return process.read_pid(folder / f"{name}.pid")

    def _component_binary(self, name: str) -> Path:
        return self.cluster_dir / "bin" / name

    def _monitor_binary(self, name: str) -> Path | None:
        b = self.binaries()
        if name in velero_parts.COMPONENTS:
            v = self.velero_binaries()
            return v.gofakes3 if name == "object-store" else v.velero
        if name == "kubelet":
            return self.kubelet_binary()
        if name == "containerd":
            return realnode_parts.system_binaries()["containerd"]
        if name == "pushgateway":
            return locate_pushgateway()
        return {"prometheus": b.prometheus, "alertmanager": b.alertmanager,
                "kube-state-metrics": b.kube_state_metrics, "volume-provisioner": Path(sys.executable)}[name]

    def component_running(self, name: str) -> bool:
        if name in CONTROL_PLANE:
            return process.alive(self._pid(name), self._component_binary(name))
        return process.alive(self._pid(name), self._monitor_binary(name))

    def _recorded(self, name: str) -> dict[str, Any]:
        docs = yaml.safe_load_all((self.cluster_dir / "kwok.yaml").read_text())
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "KwokctlConfiguration":
                for component in doc.get("components", []):
                    if component.get("name") == name:
                        return component
        raise TargetError(f"sandbox {self.name!r}: kwok.yaml has no component {name!r}")

    def stop_component(self, name: str, *, graceful: bool = False) -> None:
        """Kill a component (SIGKILL: a crash, as a lost machine is), or stop it with SIGTERM."""
        if name not in CONTROL_PLANE:
            raise TargetError(f"unknown sandbox component {name!r} (one of {', '.join(CONTROL_PLANE)})")
        if name in API_WRITES_NEED and not self._api_away_file.is_file() and self.component_running(name):
            self._api_away_file.write_text(f"{time.time():.3f}\n")
        process.stop(self._pid(name), binary=self._component_binary(name),
                     sig=signal.SIGTERM if graceful else signal.SIGKILL, timeout=30.0)
        (self.cluster_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)

    def start_component(self, name: str, *, wait: bool = True) -> None:
        """Start one control-plane component with the command line kwokctl recorded."""
        if name not in CONTROL_PLANE:
            raise TargetError(f"unknown sandbox component {name!r} (one of {', '.join(CONTROL_PLANE)})")
        if self.component_running(name):
            return
        self._spawn(name)
        if wait and all(self.component_running(d) for d in DEPENDS_ON.get(name, ())):
            self._wait_started(name)
        # else: what it needs is down (another fault); it becomes healthy once that is back
        if name in API_WRITES_NEED:
            self.restart_lapsed_lease_holders(wait=wait)

    def _spawn(self, name: str) -> None:
        spec = self._recorded(name)
        env = self._env()
        for item in spec.get("envs") or []:
            env[item["name"]] = item["value"]
        process.start([spec["binary"], *spec.get("args", [])], log=self.log_path(name),
                      pidfile=self.cluster_dir / "pids" / f"{name}.pid",
                      cwd=Path(spec.get("workDir") or self.cluster_dir), env=env)

    #: How often a component that exits while it starts is started again, as a control plane's
    #: kubelet restarts a static pod that crashed (each start is said in the component's log).
    START_RETRIES = 3

    def _wait_started(self, name: str, timeout: float = 60.0) -> None:
        """``name`` healthy within ``timeout``; one that exits on the way is started again (up to
        ``START_RETRIES`` times).  Fails naming what it last said: a crash is not a minute of silence."""
        started = time.monotonic()
        deadline = started + timeout
        retries = self.START_RETRIES
        while time.monotonic() < deadline:
            if self.component_running(name):
                if self._healthy(name):
                    return
            elif retries > 0:
                retries -= 1
                said = _last_message(_tail(self.log_path(name)))
                with self.log_path(name).open("a") as log:
                    log.write(f"dirt: {name} exited while starting ({said}); starting it again\n")
                self._spawn(name)
            else:
                break
            time.sleep(0.25)
        state = "running but not healthy" if self.component_running(name) else "not running"
        raise TargetError(f"sandbox {self.name!r}: {name} {state} after {time.monotonic() - started:.0f}s "
                          f"({self.START_RETRIES - retries} restart(s)); it last said: "
                          f"{_last_message(_tail(self.log_path(name)))} (see `dirt sandbox logs {name}`)")

    @property
    def _api_away_file(self) -> Path:
        """When the API server stopped answering writes (its or etcd's stop), while it still does not."""
        return self.cluster_dir / "api-away-since"

    def restart_lapsed_lease_holders(self, *, wait: bool = True) -> list[str]:
        """Restart the controller-manager and scheduler if the API was away past their lease.

        In a real control plane they run with leader election: one that cannot renew its
        lease for ``LEASE_RENEW_DEADLINE`` exits, and the kubelet starts its static pod
        again.  The sandbox runs them without it (no kubelet would restart them), so it
        does the restart itself once the API answers writes again.  Without it they keep
        informers whose watches back off for 30-60 s after a long outage (client-go's
        reflector), and a new namespace, its ServiceAccount and then its pods wait minutes.
        A component started after the outage began is fresh already and left alone.
        """
        if not all(self.component_running(c) for c in API_WRITES_NEED):
            return []
        try:
            since = float(self._api_away_file.read_text())
        except (OSError, ValueError):
            return []
        self._api_away_file.unlink(missing_ok=True)
        away = time.time() - since
        if away <= LEASE_RENEW_DEADLINE:
            return []
        restarted = []
        for name in LEASE_HOLDERS:
            pidfile = self.cluster_dir / "pids" / f"{name}.pid"
            if not self.component_running(name) or pidfile.stat().st_mtime >= since:
                continue
            with (self.cluster_dir / "logs" / f"{name}.log").open("a") as out:
                out.write(f"dirt: the API was away {away:.0f}s, past the {LEASE_RENEW_DEADLINE:.0f}s lease renew "
                          "deadline: restarted, as a kubelet restarts a static pod whose process exited\n")
            self.stop_component(name)  # a lost lease is an exit, not a graceful stop
            self.start_component(name, wait=wait)
            restarted.append(name)
        return restarted

    # -- monitoring processes --------------------------------------------------------------
    def start_monitoring(self, *, log: Log = _quiet) -> None:
        b = self.binaries()
        p = self.ports
        ksm = self.want_ksm and b.kube_state_metrics is not None
        prom_dir = self.root / "prometheus"
        rules = write_rules([RULES_DIR, *self.extra_rules], prom_dir / "rules", self.alert_for)
        write_yaml(prom_dir / "prometheus.yml", prometheus_config(
            ports=p, pki=self.pki, rule_files=rules, scrape_interval=self.scrape_interval,
            evaluation_interval=self.evaluation_interval, with_ksm=ksm, with_pushgateway=self.pushgateway))
        am_dir = self.root / "alertmanager"
        write_yaml(am_dir / "alertmanager.yml", alertmanager_config())
        commands: dict[str, list[str]] = {
            "alertmanager": [str(b.alertmanager), f"--config.file={am_dir / 'alertmanager.yml'}",
                             f"--storage.path={am_dir / 'data'}", f"--web.listen-address=127.0.0.1:{p.alertmanager}",
                             "--cluster.listen-address=", "--log.level=warn"],
            "prometheus": [str(b.prometheus), f"--config.file={prom_dir / 'prometheus.yml'}",
                           f"--storage.tsdb.path={prom_dir / 'data'}", f"--web.listen-address=127.0.0.1:{p.prometheus}",
                           "--storage.tsdb.retention.time=1d", "--web.enable-lifecycle", "--log.level=warn",
                           # send firing alerts to Alertmanager every second, not every minute
                           "--rules.alert.resend-delay=1s"],
        }
        commands["volume-provisioner"] = [
            sys.executable, "-m", "dirt.sandbox.provisioner", f"--kubeconfig={self.kubeconfig}",
            f"--root={self.root / 'volumes'}",
        ]
        if ksm:
            commands["kube-state-metrics"] = [
                str(b.kube_state_metrics), f"--kubeconfig={self.kubeconfig}", "--host=127.0.0.1",
                f"--port={p.kube_state_metrics}", "--telemetry-host=127.0.0.1",
                f"--telemetry-port={p.kube_state_metrics_telemetry}",
                "--resources=deployments,daemonsets,statefulsets,replicasets,pods,nodes,namespaces,"
                "services,configmaps,secrets,persistentvolumeclaims,jobs,poddisruptionbudgets",
            ]
        if self.pushgateway:
            # Kept in the sandbox's folder (never the package's /var/lib one), so pushed metrics
            # outlive a restart of the sandbox but not `down`.
            (self.root / "pushgateway").mkdir(parents=True, exist_ok=True)
            commands["pushgateway"] = [
                str(locate_pushgateway()), f"--web.listen-address=127.0.0.1:{p.pushgateway}",
                f"--persistence.file={self.root / 'pushgateway' / 'metrics.data'}", "--persistence.interval=10s",
                "--log.level=info",  # a few lines: where it listens, what it restored
            ]
        self._save_state(monitors={k: v for k, v in commands.items()})
        for name, argv in commands.items():
            if self.component_running(name):
                if name == "prometheus":
                    self.reload_prometheus()  # its configuration or rules may have changed
                continue
            port = getattr(p, name.replace("-", "_"), None)
            log(f"starting {name}" + (f" on 127.0.0.1:{port}" if port else ""))
            process.start(argv, log=self.root / "logs" / f"{name}.log", pidfile=self.root / "pids" / f"{name}.pid",
                          cwd=self.root)

    def sync_rules(self, *, log: Log = _quiet) -> bool:
        """Load this sandbox object's rules into the running Prometheus when it holds others (another
        project's, or an older version of these); True when they were changed.  A sandbox is shared by
        every project on the machine: the drill about to run must be judged by its own alerts."""
        prom_dir = self.root / "prometheus"
        wanted = render_rules([RULES_DIR, *self.extra_rules], self.alert_for)
        if rules_in(prom_dir / "rules") == wanted:
            return False
        log(f"loading the alert rules of this project into sandbox {self.name!r} "
            f"({', '.join(str(r) for r in self.extra_rules) or 'the built-in rules only'})")
        written = write_rules([RULES_DIR, *self.extra_rules], prom_dir / "rules", self.alert_for, rendered=wanted)
        config = yaml.safe_load((prom_dir / "prometheus.yml").read_text(encoding="utf-8"))
        config["rule_files"] = [str(path) for path in written]  # only the rules: the rest is the running sandbox's
        write_yaml(prom_dir / "prometheus.yml", config)
        self.reload_prometheus()
        return True

    def start_velero(self, *, log: Log = _quiet, restart: bool = False, timeout: float = 90.0) -> None:
        """Velero's object store and server running, its objects in the cluster, its location Available.

        Idempotent; ``restart`` restarts the server (a recreated cluster: new PKI, no CRDs).
        """
        from dirt.clients.kube import KubeClient

        binaries = self.velero_binaries(build_missing=True, log=log)
        p = self.ports
        velero_parts.prepare_files(binaries, self.root)
        argvs = velero_parts.commands(binaries, root=self.root, kubeconfig=self.kubeconfig,
                                      store_port=p.object_store, metrics_port=p.velero_metrics)
        self._save_state(monitors=self.state().get("monitors", {}) | argvs)
        kube = KubeClient.from_kubeconfig(str(self.kubeconfig))
        try:
            velero_parts.install(kube, binaries, self.root, p.object_store)
            if restart:
                process.stop(self._pid("velero"), binary=binaries.velero)
            env = velero_parts.environment(self.root)
            for name, argv in argvs.items():
                if self.component_running(name):
                    continue
                log(f"starting {name} on 127.0.0.1:{p.object_store if name == 'object-store' else p.velero_metrics}")
                process.start(argv, log=self.root / "logs" / f"{name}.log", pidfile=self.root / "pids" / f"{name}.pid",
                              cwd=self.root, env=env)
            velero_parts.wait_ready(kube, store_port=p.object_store, metrics_port=p.velero_metrics, timeout=timeout,
                                    pids={n: self._pid(n) for n in argvs})
        finally:
            kube.close()

    # -- the real node ---------------------------------------------------------------------
    @property
    def real_node_names(self) -> list[str]:
        return [realnode_parts.node_name(i) for i in range(self.real_nodes)]

    def real_node_status(self) -> dict[str, Any]:
        """Where the real node's parts are: its name, containerd's socket and namespace, the images it holds."""
        p = self.ports
        return {"nodes": self.real_node_names, "label": f"{realnode_parts.LABEL}=real",
                "taint": f"{realnode_parts.TAINT_KEY}=true:NoSchedule",
                "containerd_socket": str(realnode_parts.socket_path(self.root)),
                "containerd_namespace": realnode_parts.CRI_NAMESPACE,
                "kubelet_url": f"https://127.0.0.1:{p.kubelet}", "cgroup": realnode_parts.cgroup_root(self.node_id),
                "images_folder": str(self.images_folder)}

    @property
    def node_id(self) -> str:
        """What sets this sandbox's real node apart on the machine (its pod cgroup): the name and where it lives,
        since two sandboxes of one name in different folders must never share (or clean up) each other's pods."""
        return f"{self.name}-{zlib.crc32(str(self.root.resolve()).encode()):08x}"

    @property
    def images_folder(self) -> Path:
        return realnode_parts.folder(self.root) / "images"

    def _kwok_manages_every_node(self) -> bool:
        """Does the KWOK controller fake every node (a sandbox made before real nodes)?  Its last flag counts."""
        if not self.exists():
            return False
        values = [a.split("=", 1)[1] for a in self._recorded("kwok-controller").get("args", [])
                  if a.startswith("--manage-all-nodes=")]
        return bool(values) and values[-1] == "true"

    def start_real_node(self, *, log: Log = _quiet, restart: bool = False, timeout: float = 90.0) -> None:
        """containerd and the kubelet running, the built-in images imported, the node Ready.

        Idempotent; ``restart`` gives the kubelet new credentials and starts it again (a rebuilt
        cluster: a new CA, and its node object gone).
        """
        if self._kwok_manages_every_node():
            raise TargetError(f"sandbox {self.name!r} was created before it could have a real node (its KWOK "
                              "controller fakes every node): recreate it with `dirt sandbox down` and "
                              "`dirt sandbox up`")
        node = realnode_parts.node_name(0)
        system = realnode_parts.system_binaries()
        kubelet = self.kubelet_binary(build_missing=True, log=log)
        p = self.ports
        base = realnode_parts.folder(self.root)
        (base / "containerd" / "cni").mkdir(parents=True, exist_ok=True)
        (base / "containerd" / "config.toml").write_text(realnode_parts.containerd_config(
            self.root, metrics_port=p.containerd_metrics, runc=system["runc"], cni_bin=system["cni"]))
        (base / "containerd" / "cni" / "10-loopback.conflist").write_text(realnode_parts.CNI_CONFIG)
        write_yaml(base / "kubelet" / "config.yaml", realnode_parts.kubelet_config(
            self.root, port=p.kubelet, healthz_port=p.kubelet_healthz, ca=self.pki / "ca.crt", sandbox=self.node_id))
        cert = base / "kubelet" / "credentials" / f"{node}.crt"
        if restart or not cert.is_file() or cert.stat().st_mtime < (self.pki / "ca.crt").stat().st_mtime:
            cert, key = realnode_parts.node_credentials(self.pki, node, base / "kubelet" / "credentials")
            write_yaml(base / "kubelet" / "kubeconfig.yaml", realnode_parts.kubeconfig(
                f"https://127.0.0.1:{p.kube_apiserver}", self.pki / "ca.crt", cert, cert.with_suffix(".key")))
        realnode_parts.ensure_cgroups(self.node_id)
        if not restart and self.component_running("kubelet") and node not in (self.node_names() or [node]):
            restart = True  # its node object is gone (etcd lost): a kubelet registers only when it starts
        argvs = realnode_parts.commands(root=self.root, kubelet=kubelet, containerd=system["containerd"], node=node)
        self._save_state(monitors=self.state().get("monitors", {}) | argvs)
        if restart:
            process.stop(self._pid("kubelet"), binary=kubelet)
        if not self.component_running("containerd"):
            log(f"starting containerd (socket {realnode_parts.socket_path(self.root)})")
            process.start(argvs["containerd"], log=self.root / "logs" / "containerd.log",
                          pidfile=self.root / "pids" / "containerd.pid", cwd=self.root)
        self.wait_healthy(30.0, ("containerd",))
        self.import_builtin_images(log=log)
        if not self.component_running("kubelet"):
            log(f"starting kubelet (node {node}, 127.0.0.1:{p.kubelet})")
            process.start(argvs["kubelet"], log=self.root / "logs" / "kubelet.log",
                          pidfile=self.root / "pids" / "kubelet.pid", cwd=self.root)
        self.wait_healthy(30.0, ("kubelet",))
        self.wait_real_node_ready(timeout)

    def wait_real_node_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(self.real_node_names) <= set(self.ready_nodes()):
                return
            time.sleep(0.25)
        raise TargetError(f"sandbox {self.name!r}: the real node is not Ready after {timeout:.0f}s "
                          "(see `dirt sandbox logs kubelet`)")

    def import_builtin_images(self, *, log: Log = _quiet) -> list[str]:
        """Make the built-in images and import those containerd does not hold yet."""
        have = set(realnode_parts.image_references(self.root))
        wanted = [spec for spec in images.builtin_specs() if not {spec.reference, *spec.aliases} <= have]
        imported: list[str] = []
        for spec in wanted:
            archive = self.images_folder / spec.archive_name
            images.write_archive(spec, archive)
            realnode_parts.import_image(self.root, archive)
            imported.append(spec.reference)
        if imported:
            log(f"imported images: {', '.join(imported)}")
        return imported

    def _require_containerd(self) -> None:
        if not self.component_running("containerd"):
            raise TargetError(f"sandbox {self.name!r} has no running real node: set `real_nodes: 1` in its settings "
                              "and run `dirt sandbox up`")

    def build_images(self, *, log: Log = _quiet) -> list[str]:
        """``dirt sandbox image build``: the built-in images made and imported (those not there yet)."""
        self._require_containerd()
        return self.import_builtin_images(log=log)

    def import_image(self, archive: Path) -> list[str]:
        self._require_containerd()
        return realnode_parts.import_image(self.root, archive)

    def images(self) -> list[str]:
        self._require_containerd()
        return [r for r in realnode_parts.image_references(self.root) if not r.startswith(("sha256:", "import-"))]

    def stop_real_node(self) -> None:
        """The real node's machine lost: its containers killed, then the kubelet and containerd."""
        self._teardown_real_node(_quiet, keep_state=True)

    def _teardown_real_node(self, log: Log, *, keep_state: bool = False) -> None:
        def stop(name: str) -> bool:
            return process.stop(self._pid(name), binary=self._monitor_binary(name), sig=signal.SIGKILL)

        problems = realnode_parts.teardown(self.root, self.node_id, stop=stop, log=log, remove=not keep_state)
        for problem in problems:
            log(f"real node: {problem}")

    def kill_container(self, pod: dict[str, Any], container: str, *, sig: str = "SIGKILL") -> str:
        """Signal a container's main process through containerd; its containerd ID."""
        name = f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
        node = pod.get("spec", {}).get("nodeName")
        if node not in self.real_node_names:
            raise TargetError(f"pod {name} runs on {node or 'no node'}, not on the sandbox's real node: a KWOK node "
                              f"runs no process to kill (schedule it with nodeSelector {realnode_parts.LABEL}: real "
                              f"and a toleration for {realnode_parts.TAINT_KEY})")
        statuses = {c.get("name"): c for c in pod.get("status", {}).get("containerStatuses") or []}
        status = statuses.get(container)
        if status is None:
            raise TargetError(f"pod {name} has no container {container!r} (it has: {', '.join(statuses) or 'none'})")
        cid = str(status.get("containerID") or "")
        if not cid.startswith("containerd://") or "running" not in (status.get("state") or {}):
            raise TargetError(f"container {container!r} of pod {name} is not running")
        realnode_parts.kill_task(self.root, cid.removeprefix("containerd://"), sig=sig)
        return cid.removeprefix("containerd://")

    def reload_prometheus(self) -> None:
        try:
            answer = http.request("POST", f"{self.prometheus_url}/-/reload", timeout=10)
        except HttpError as exc:
            raise TargetError(f"sandbox {self.name!r}: Prometheus did not reload its configuration: {exc}") from None
        if not answer.ok:
            raise TargetError(f"sandbox {self.name!r}: Prometheus did not reload its configuration "
                              f"(HTTP {answer.status})")

    def _restart_monitor(self, name: str) -> None:
        argv = self.state().get("monitors", {}).get(name)
        process.stop(self._pid(name), binary=self._monitor_binary(name))
        env = velero_parts.environment(self.root) if name in velero_parts.COMPONENTS else None
        if argv:
            process.start(argv, log=self.root / "logs" / f"{name}.log", pidfile=self.root / "pids" / f"{name}.pid",
                          cwd=self.root, env=env)

    def restart_monitor(self, name: str) -> None:
        self._restart_monitor(name)

    def log_path(self, name: str) -> Path:
        if name in CONTROL_PLANE:
            return self.cluster_dir / "logs" / f"{name}.log"
        if name in self.monitors:
            return self.root / "logs" / f"{name}.log"
        raise TargetError(f"no component {name!r}; one of {', '.join((*CONTROL_PLANE, *self.monitors))}")

    # -- etcd --------------------------------------------------------------------------------
    @property
    def etcd_data(self) -> Path:
        return self.cluster_dir / "etcd"

    def etcd_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports.etcd}"

    def _etcdctl(self, *args: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        return self._run([str(self.binaries().etcdctl), f"--endpoints={self.etcd_endpoint()}", *args],
                         what=f"etcdctl {' '.join(args[:2])}", timeout=timeout, check=check,
                         env={**os.environ, "ETCDCTL_API": "3"})

    def _etcdutl(self, *args: str, timeout: float = 300.0) -> CommandResult:
        return self._run([str(self.binaries().etcdutl), *args], what=f"etcdutl {' '.join(args[:2])}",
                         timeout=timeout)

    def snapshot_save(self, path: Path) -> dict[str, Any]:
        """``etcdctl snapshot save``; with etcd stopped (another fault), a copy of its database
        file instead, which ``snapshot_restore`` restores without a hash check."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.component_running("etcd"):
            self._etcdctl("snapshot", "save", str(path), timeout=120)
        else:
            db = self.etcd_data / "member" / "snap" / "db"
            if not db.is_file():
                raise TargetError(f"sandbox {self.name!r}: etcd is stopped and has no data to snapshot ({db})")
            shutil.copyfile(db, path)
            Path(str(path) + DATA_DIR_COPY).write_text(str(db))
        return self.snapshot_status(path)

    def snapshot_status(self, path: Path) -> dict[str, Any]:
        result = self._etcdutl("snapshot", "status", str(path), "-w", "json", timeout=60)
        try:
            return dict(json.loads(result.stdout))
        except (ValueError, TypeError):
            raise TargetError(f"etcdutl snapshot status {path}: not JSON: {result.stdout[:100]!r}") from None

    def snapshot_restore(self, path: Path, *, log: Log = _quiet) -> dict[str, Any]:
        """The documented etcd recovery: verify, stop the API server, restore into a new
        data dir, start etcd on it, start the API server, restart the controllers.  Every
        control-plane component runs afterwards, whatever was stopped before."""
        status = self.snapshot_status(path)  # a corrupt snapshot fails here, before anything stops
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller", "etcd"):
            self.stop_component(component)
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        fresh = self.cluster_dir / "etcd-restore"
        shutil.rmtree(fresh, ignore_errors=True)
        copied = Path(str(path) + DATA_DIR_COPY).is_file()  # a database file, not an etcdctl snapshot
        self._etcdutl("snapshot", "restore", str(path), f"--data-dir={fresh}", "--name=node0",
                      f"--initial-cluster=node0={peer}", f"--initial-advertise-peer-urls={peer}",
                      # Revisions must not go backwards for watchers (etcd issue 16028).
                      "--bump-revision=1000000000", "--mark-compacted",
                      *(["--skip-hash-check"] if copied else []))
        shutil.rmtree(self.etcd_data, ignore_errors=True)
        fresh.rename(self.etcd_data)
        for component in CONTROL_PLANE:
            self.start_component(component)
        self.wait_api(60.0)
        if process.alive(self._pid("kube-state-metrics")):
            self._restart_monitor("kube-state-metrics")
        log(f"restored etcd from {path.name} (revision {status.get('revision')}, {status.get('totalKey')} keys)")
        return status

    def etcd_wipe(self) -> None:
        """etcd's data directory lost, as when the control-plane machine loses its disk.

        What ran comes back: etcd empty, and the API server restarted with it
        (otherwise its watch cache would go on serving the lost objects).  What
        another fault stopped stays stopped.
        """
        api = self.component_running("kube-apiserver")
        etcd = self.component_running("etcd")
        self.stop_component("kube-apiserver")
        self.stop_component("etcd")
        shutil.rmtree(self.etcd_data, ignore_errors=True)
        if etcd:
            self.start_component("etcd")
        if api:
            self.start_component("kube-apiserver")

    def etcd_read(self, key: str) -> str | None:
        """One key's value straight from etcd (None: no such key)."""
        result = self._etcdctl("get", key, "--print-value-only", timeout=20)
        return result.stdout if result.stdout.strip() else None


#: Beside a safety snapshot taken by copying etcd's database file (etcd was stopped).
DATA_DIR_COPY = ".from-data-dir"


class _Alive:
    """The health of a process without an endpoint: running is healthy."""

    status = 200


def _tail(path: Path, size: int = 16384) -> str:
    """The end of a log file ('' when there is none)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - size))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


def _last_message(text: str) -> str:
    """The useful part of a Go program's (often JSON) log output."""
    for line in reversed([ln for ln in text.strip().splitlines() if ln.strip()]):
        try:
            record = json.loads(line)
        except ValueError:
            return line.strip()[:300]
        if isinstance(record, dict):
            msg = record.get("msg", "")
            err = record.get("err") or record.get("error") or ""
            return f"{msg}: {err}".strip(": ")[:300]
    return "(no output)"

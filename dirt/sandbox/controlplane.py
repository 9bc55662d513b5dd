"""The sandbox's control plane: a real one (etcd, kube-apiserver, controller-manager, scheduler and the
KWOK controller), created and deleted by ``kwokctl --runtime binary``, with its KWOK nodes and etcd.

kwokctl creates and deletes the cluster and forks the control-plane processes; it has no command to
stop or start one of them, which is what drills do.  So dirt stops a component by its PID (from
``pids/<component>.pid`` in kwokctl's folder) and starts it again with the exact command line
kwokctl recorded in ``kwok.yaml``, restarting it as a kubelet restarts a static pod when it exits
while starting, or when the API was away past the lease a real controller-manager or scheduler
would have lost.  etcd's own operations (snapshot, restore, the data directory lost, a key read)
are here too: they stop and start the same processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dirt.clients.commands import CommandResult, run
from dirt.core.errors import CommandError, TargetError
from dirt.sandbox.component import Log, ProcessGroup, SandboxContext, answers, quiet, write_yaml
from dirt.sandbox.realnode import NODE_PREFIX

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")
#: What a component needs running before it can become healthy.
DEPENDS_ON = {"kube-apiserver": ("etcd",), "kube-controller-manager": ("kube-apiserver",),
              "kube-scheduler": ("kube-apiserver",), "kwok-controller": ("kube-apiserver",)}
#: Components that hold a leader lease in a real control plane, and the default
#: ``--leader-elect-renew-deadline`` after which one that cannot renew it exits.
LEASE_HOLDERS = ("kube-controller-manager", "kube-scheduler")
LEASE_RENEW_DEADLINE = 10.0
#: What the API server needs to answer writes (and so to renew a lease).
API_WRITES_NEED = ("etcd", "kube-apiserver")
#: Beside a safety snapshot taken by copying etcd's database file (etcd was stopped).
DATA_DIR_COPY = ".from-data-dir"
#: KWOK stages dirt adds to kwokctl's defaults (``pod-ready-again``: a kubelet's status sync), loaded by
#: the kwok-controller from a second ``--config``.
KWOK_STAGES = Path(__file__).parent / "kwok_stages"


def _no_reaction(log: Log) -> None:
    pass


class ControlPlane(ProcessGroup):
    """The five control-plane processes of one sandbox, its KWOK nodes and its etcd.

    ``on_new_cluster`` is called after every ``create`` (by ``start`` too, when there was no
    cluster): what runs beside the cluster and holds its old PKI joins the new one.
    """

    name = "control-plane"
    PROCESSES = CONTROL_PLANE
    #: How often a component that exits while it starts is started again, as a control plane's
    #: kubelet restarts a static pod that crashed (each start is said in the component's log).
    START_RETRIES = 3

    def __init__(self, ctx: SandboxContext, *, workdir: Path, nodes: int = 3, node_grace_period: float = 10.0,
                 on_new_cluster: Callable[[Log], None] = _no_reaction) -> None:
        super().__init__(ctx, folder=ctx.cluster_dir)
        self.workdir = workdir
        self.nodes = nodes
        self.node_grace_period = node_grace_period
        self.on_new_cluster = on_new_cluster

    @property
    def cluster_dir(self) -> Path:
        return self.ctx.cluster_dir

    def exists(self) -> bool:
        return (self.cluster_dir / "kwok.yaml").is_file()

    def binary(self, name: str) -> Path | None:
        return self.cluster_dir / "bin" / name

    def answers(self, name: str) -> bool:
        p = self.ctx.ports()
        if name == "kube-apiserver":
            pki = self.ctx.pki
            return answers(f"https://127.0.0.1:{p.kube_apiserver}/readyz", verify=str(pki / "ca.crt"),
                           cert=(str(pki / "admin.crt"), str(pki / "admin.key")))
        return answers({"etcd": f"http://127.0.0.1:{p.etcd}/health",
                        "kube-controller-manager": f"https://127.0.0.1:{p.kube_controller_manager}/healthz",
                        "kube-scheduler": f"https://127.0.0.1:{p.kube_scheduler}/healthz",
                        "kwok-controller": f"http://127.0.0.1:{p.kwok_controller}/healthz"}[name])

    def status(self) -> dict[str, Any]:
        return {"kubeconfig": str(self.ctx.kubeconfig),
                "api_server": f"https://127.0.0.1:{self.ctx.ports().kube_apiserver}"}

    # -- kwokctl ------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KWOK_")}
        env["KWOK_WORKDIR"] = str(self.workdir)
        # kwokctl prefers a kubectl found on PATH: make sure it is ours.
        env["PATH"] = f"{self.ctx.binaries().kubectl.parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def _run(self, argv: list[str], *, what: str, timeout: float, check: bool = True,
             env: dict[str, str] | None = None, cwd: Path | None = None) -> CommandResult:
        """Run one of the sandbox's CLIs; failures are a ``TargetError`` with the program's own last word."""
        try:
            result = run(argv, timeout=timeout, env=env, cwd=cwd, what=what)
        except CommandError as exc:
            raise TargetError(f"sandbox {self.ctx.name!r}: {exc}") from None
        if check and result.returncode != 0:
            raise TargetError(f"{what} failed (exit {result.returncode}): "
                              f"{_last_message(result.stderr or result.stdout)}")
        return result

    def _kwokctl(self, *args: str, timeout: float = 180.0, check: bool = True) -> CommandResult:
        return self._run([str(self.ctx.binaries().kwokctl), "--name", self.ctx.name, *args],
                         what=f"kwokctl {' '.join(args[:2])}", timeout=timeout, check=check, env=self._env(),
                         cwd=self.ctx.root)

    def _kwokctl_config(self) -> Path:
        b = self.ctx.binaries()
        p = self.ctx.ports()
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
                "cacheDir": str(self.ctx.root / "kwok-cache"),
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
                    {"key": "config", "value": str(self._stages_file())},
                    {"key": "manage-all-nodes", "value": "false"},
                    {"key": "manage-nodes-with-annotation-selector", "value": "kwok.x-k8s.io/node=fake"}]},
            ],
        }
        path = self.ctx.root / "kwokctl.yaml"
        write_yaml(path, config)
        return path

    def _stages_file(self) -> Path:
        """dirt's KWOK stages in one file of the sandbox (written again at each start: a newer dirt's)."""
        path = self.ctx.root / "kwok-stages.yaml"
        texts = [f.read_text() for f in sorted(KWOK_STAGES.glob("*.yaml"))]
        path.write_text("\n---\n".join(texts))
        return path

    # -- the cluster ----------------------------------------------------------------------
    def start(self, *, log: Log = quiet, timeout: float = 180.0) -> None:
        """Resume the cluster (start what does not run, scale the nodes), or create it when there is none."""
        if not self.exists():
            log(f"creating sandbox {self.ctx.name!r} (kwokctl --runtime binary)")
            self.create(log=log)  # waits for the API and the nodes itself
            return
        for component in CONTROL_PLANE:
            if not self.running(component):
                log(f"starting {component}")
                self.start_component(component, wait=False)
        self.wait_api(timeout)
        self.scale_nodes(self.nodes, log=log)

    def create(self, *, log: Log = quiet) -> None:
        """A fresh cluster (new etcd, new PKI) with the sandbox's name and ports."""
        config = self._kwokctl_config()
        self._kwokctl("-c", str(config), "create", "cluster", "--kubeconfig",
                      str(self.ctx.root / "kwokctl-kubeconfig.yaml"), "--wait", "60s", "--timeout", "120s")
        self.wait_api(90.0)
        self.scale_nodes(self.nodes, log=log)
        self.on_new_cluster(log)

    def delete(self) -> None:
        """The whole cluster gone: processes killed, etcd data and PKI removed."""
        if not self.exists():
            return
        self._kwokctl("delete", "cluster", "--kubeconfig", str(self.ctx.root / "kwokctl-kubeconfig.yaml"))
        deadline = time.monotonic() + 30
        while self.exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self, *, log: Log = quiet) -> None:
        for name in reversed(self.processes):
            if self.running(name):
                self.stop_component(name, graceful=True)
                log(f"stopped {name}")

    def down(self, *, log: Log = quiet) -> None:
        if self.exists():
            try:
                self.delete()
                log("deleted the cluster (kwokctl delete cluster)")
            except (TargetError, OSError) as exc:
                log(f"kwokctl delete failed ({exc}); stopping components by PID")
        for component in CONTROL_PLANE:  # anything kwokctl left behind
            self.stop_process(component)

    def wait_api(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running("kube-apiserver") and self.answers("kube-apiserver"):
                return
            time.sleep(0.2)
        raise TargetError(f"sandbox {self.ctx.name!r}: kube-apiserver not ready after {timeout:.0f}s "
                          f"(log: {self.log_path('kube-apiserver')})")

    # -- nodes ------------------------------------------------------------------------------
    def kubectl(self, *args: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        return self._run([str(self.ctx.binaries().kubectl), "--kubeconfig", str(self.ctx.kubeconfig), *args],
                         what=f"kubectl {' '.join(args[:3])}", timeout=timeout, check=check)

    def scale_nodes(self, count: int, *, log: Log = quiet, timeout: float = 60.0) -> None:
        self._kwokctl("scale", "node", "--replicas", str(count))
        deadline = time.monotonic() + timeout

        def kwok_ready() -> list[str]:  # the real node is not KWOK's to count
            return [n for n in self.ready_nodes() if not n.startswith(NODE_PREFIX)]

        while time.monotonic() < deadline:
            if len(kwok_ready()) >= count:
                return
            time.sleep(0.25)
        raise TargetError(f"sandbox {self.ctx.name!r}: {count} nodes wanted, {len(kwok_ready())} Ready "
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
        return [n["metadata"]["name"] for n in items if any(c["type"] == "Ready" and c["status"] == "True"
                                                            for c in n.get("status", {}).get("conditions", []))]

    def manages_every_node(self) -> bool:
        """Does the KWOK controller fake every node (a sandbox made before real nodes)?  Its last flag counts."""
        if not self.exists():
            return False
        values = [a.split("=", 1)[1] for a in self._recorded("kwok-controller").get("args", [])
                  if a.startswith("--manage-all-nodes=")]
        return bool(values) and values[-1] == "true"

    # -- single components ------------------------------------------------------------------
    def _recorded(self, name: str) -> dict[str, Any]:
        docs = yaml.safe_load_all((self.cluster_dir / "kwok.yaml").read_text())
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "KwokctlConfiguration":
                for component in doc.get("components", []):
                    if component.get("name") == name:
                        return component
        raise TargetError(f"sandbox {self.ctx.name!r}: kwok.yaml has no component {name!r}")

    def _known(self, name: str) -> None:
        if name not in CONTROL_PLANE:
            raise TargetError(f"unknown sandbox component {name!r} (one of {', '.join(CONTROL_PLANE)})")

    def stop_component(self, name: str, *, graceful: bool = False) -> None:
        """Kill a component (SIGKILL: a crash, as a lost machine is), or stop it with SIGTERM."""
        self._known(name)
        if name in API_WRITES_NEED and not self._api_away_file.is_file() and self.running(name):
            self._api_away_file.write_text(f"{time.time():.3f}\n")
        self.stop_process(name, sig=signal.SIGTERM if graceful else signal.SIGKILL, timeout=30.0)
        self.pidfile(name).unlink(missing_ok=True)

    def start_component(self, name: str, *, wait: bool = True) -> None:
        """Start one control-plane component with the command line kwokctl recorded."""
        self._known(name)
        if self.running(name):
            return
        self._spawn(name)
        if wait and all(self.running(d) for d in DEPENDS_ON.get(name, ())):
            self._wait_started(name)
        # else: what it needs is down (another fault); it becomes healthy once that is back
        if name in API_WRITES_NEED:
            self.restart_lapsed_lease_holders(wait=wait)

    def restart(self, name: str) -> None:
        self.stop_component(name)
        self.start_component(name)

    def _spawn(self, name: str) -> None:
        spec = self._recorded(name)
        env = self._env()
        for item in spec.get("envs") or []:
            env[item["name"]] = item["value"]
        args = list(spec.get("args", []))
        if name == "kwok-controller":
            stages = f"--config={self._stages_file()}"
            if stages not in args:  # a sandbox created by an older dirt
                args.append(stages)
        self.launch(name, [spec["binary"], *args], env=env,
                    cwd=Path(spec.get("workDir") or self.cluster_dir))

    def _wait_started(self, name: str, timeout: float = 60.0) -> None:
        """``name`` healthy within ``timeout``; one that exits on the way is started again (up to
        ``START_RETRIES`` times).  Fails naming what it last said: a crash is not a minute of silence."""
        started = time.monotonic()
        deadline = started + timeout
        retries = self.START_RETRIES
        while time.monotonic() < deadline:
            if self.running(name):
                if self.answers(name):
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
        state = "running but not healthy" if self.running(name) else "not running"
        raise TargetError(f"sandbox {self.ctx.name!r}: {name} {state} after {time.monotonic() - started:.0f}s "
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
        if not all(self.running(c) for c in API_WRITES_NEED):
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
            if not self.running(name) or self.pidfile(name).stat().st_mtime >= since:
                continue
            with self.log_path(name).open("a") as out:
                out.write(f"dirt: the API was away {away:.0f}s, past the {LEASE_RENEW_DEADLINE:.0f}s lease renew "
                          "deadline: restarted, as a kubelet restarts a static pod whose process exited\n")
            self.stop_component(name)  # a lost lease is an exit, not a graceful stop
            self.start_component(name, wait=wait)
            restarted.append(name)
        return restarted

    # -- etcd --------------------------------------------------------------------------------
    @property
    def etcd_data(self) -> Path:
        return self.cluster_dir / "etcd"

    def etcd_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ctx.ports().etcd}"

    def _etcdctl(self, *args: str, timeout: float = 60.0, check: bool = True) -> CommandResult:
        return self._run([str(self.ctx.binaries().etcdctl), f"--endpoints={self.etcd_endpoint()}", *args],
                         what=f"etcdctl {' '.join(args[:2])}", timeout=timeout, check=check,
                         env={**os.environ, "ETCDCTL_API": "3"})

    def _etcdutl(self, *args: str, timeout: float = 300.0) -> CommandResult:
        return self._run([str(self.ctx.binaries().etcdutl), *args], what=f"etcdutl {' '.join(args[:2])}",
                         timeout=timeout)

    def snapshot_save(self, path: Path) -> dict[str, Any]:
        """``etcdctl snapshot save``; with etcd stopped (another fault), a copy of its database
        file instead, which ``snapshot_restore`` restores without a hash check."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.running("etcd"):
            self._etcdctl("snapshot", "save", str(path), timeout=120)
        else:
            db = self.etcd_data / "member" / "snap" / "db"
            if not db.is_file():
                raise TargetError(f"sandbox {self.ctx.name!r}: etcd is stopped and has no data to snapshot ({db})")
            shutil.copyfile(db, path)
            Path(str(path) + DATA_DIR_COPY).write_text(str(db))
        return self.snapshot_status(path)

    def snapshot_status(self, path: Path) -> dict[str, Any]:
        result = self._etcdutl("snapshot", "status", str(path), "-w", "json", timeout=60)
        try:
            return dict(json.loads(result.stdout))
        except (ValueError, TypeError):
            raise TargetError(f"etcdutl snapshot status {path}: not JSON: {result.stdout[:100]!r}") from None

    def snapshot_restore(self, path: Path, *, log: Log = quiet) -> dict[str, Any]:
        """The documented etcd recovery: verify, stop the API server, restore into a new
        data dir, start etcd on it, start the API server, restart the controllers.  Every
        control-plane component runs afterwards, whatever was stopped before."""
        status = self.snapshot_status(path)  # a corrupt snapshot fails here, before anything stops
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller", "etcd"):
            self.stop_component(component)
        peer = f"http://127.0.0.1:{self.ctx.ports().etcd_peer}"
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
        log(f"restored etcd from {path.name} (revision {status.get('revision')}, {status.get('totalKey')} keys)")
        return status

    def etcd_wipe(self) -> None:
        """etcd's data directory lost, as when the control-plane machine loses its disk.

        What ran comes back: etcd empty, and the API server restarted with it
        (otherwise its watch cache would go on serving the lost objects).  What
        another fault stopped stays stopped.
        """
        api = self.running("kube-apiserver")
        etcd = self.running("etcd")
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

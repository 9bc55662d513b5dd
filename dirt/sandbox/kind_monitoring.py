"""Monitoring beside a kind cluster: Prometheus, Alertmanager and kube-state-metrics on 127.0.0.1.

What kube-prometheus runs inside a cluster, run beside it instead, so it survives what a drill does to
the cluster (a control plane down, etcd wiped, the whole cluster deleted) and measures it from outside:

- Prometheus scrapes the API server through kind's port on 127.0.0.1 with the kubeconfig's client
  certificate, and the control-plane node's etcd (``:2381``), kube-controller-manager (``:10257``) and
  kube-scheduler (``:10259``) at the node's address on the kind network (``dirt.sandbox.kind_image``'s
  cluster config binds their metrics there), and kube-state-metrics, which runs here with the
  cluster's kubeconfig; the job names are kube-prometheus's, so dirt's rules (``dirt/sandbox/rules``,
  minus the KWOK controller's: kind has real kubelets) and a project's own rules apply unchanged;
- Alertmanager receives the alerts, with no notification integrations (a drill reads its API).

Everything lives in ``$DIRT_SANDBOX_HOME/kind-<cluster>/``: the configuration, a copy of the kubeconfig and
its certificates, the rules, data, pid and log files, and ``state.json`` (ports, command lines).  A
recreated cluster has a new CA, port and client certificate: ``refresh`` rewrites them, reloads Prometheus
and restarts kube-state-metrics.
"""

from __future__ import annotations

import base64
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from dirt.core.errors import TargetError
from dirt.sandbox import process
from dirt.sandbox.binaries import Binaries, locate
from dirt.sandbox.component import (
    Log,
    ProcessGroup,
    SandboxContext,
    answers,
    merge_state,
    quiet,
    read_state,
    write_yaml,
)
from dirt.sandbox.monitoring import (
    INFRA_ALERTS,
    KSM,
    RULES_DIR,
    alertmanager_argv,
    alertmanager_config,
    prom_duration,
    prometheus_argv,
    reload_prometheus,
    render_rules,
    rules_in,
)

STATE = "state.json"


@dataclass(frozen=True)
class KindMonitoringPorts:
    prometheus: int
    alertmanager: int
    kube_state_metrics: int
    kube_state_metrics_telemetry: int

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.__dataclass_fields__)


@dataclass(frozen=True)
class ClusterEndpoints:
    """Where the cluster is: its kubeconfig (read for the API server's address and credentials) and its
    control-plane node's address on the kind network."""

    kubeconfig: Path
    control_plane_ip: str


class KindMonitoring(ProcessGroup):
    """Prometheus, Alertmanager and kube-state-metrics for one kind cluster, beside it on 127.0.0.1."""

    name = "kind-monitoring"
    PROCESSES = (KSM, "alertmanager", "prometheus")

    def __init__(self, cluster: str, *, home: Path, endpoints: Callable[[], ClusterEndpoints],
                 rules: list[Path] | None = None, scrape_interval: float = 1.0,
                 evaluation_interval: float = 1.0) -> None:
        root = home / f"kind-{cluster}"
        self._binaries: Binaries | None = None
        super().__init__(SandboxContext(name=f"kind-{cluster}", root=root, cluster_dir=root,
                                        ports=lambda: None,  # type: ignore[arg-type,return-value]
                                        binaries=self.binaries, state=self.state, save_state=self._save_state))
        self.cluster = cluster
        self.endpoints = endpoints
        self.rules = [RULES_DIR, *(rules or [])]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval

    # -- state, ports, binaries --------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.ctx.root

    def state(self) -> dict[str, Any]:
        return read_state(self.root / STATE)

    def _save_state(self, **fields: Any) -> None:
        merge_state(self.root / STATE, **fields)

    @property
    def ports(self) -> KindMonitoringPorts:
        stored = {k: v for k, v in (self.state().get("ports") or {}).items() if k in KindMonitoringPorts.names()}
        if len(stored) == len(KindMonitoringPorts.names()):
            return KindMonitoringPorts(**stored)
        start = 23000 + (zlib.crc32(f"kind:{self.cluster}".encode()) % 1000) * 4
        ports = KindMonitoringPorts(*process.free_ports(4, start=start))
        if self.root.is_dir():  # asking never makes the folder (`dirt plan` touches nothing)
            self._save_state(ports=asdict(ports))
        return ports

    def binaries(self, *, build_missing: bool = False, log: Log = quiet) -> Binaries:
        if self._binaries is None:
            self._binaries = locate(build_missing=build_missing, log=log)
        return self._binaries

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    def exists(self) -> bool:
        return (self.root / STATE).is_file()

    # -- the component -------------------------------------------------------------------------------
    def binary(self, name: str) -> Path | None:
        b = self.binaries()
        return {"prometheus": b.prometheus, "alertmanager": b.alertmanager, KSM: b.kube_state_metrics}[name]

    def answers(self, name: str) -> bool:
        if name == KSM:
            return answers(f"http://127.0.0.1:{self.ports.kube_state_metrics}/healthz")
        return answers(f"{self.prometheus_url if name == 'prometheus' else self.alertmanager_url}/-/ready")

    def status(self) -> dict[str, Any]:
        return {"prometheus_url": self.prometheus_url, "alertmanager_url": self.alertmanager_url}

    def start(self, *, log: Log = quiet) -> None:
        """Write the configuration and start what does not run (a running Prometheus reloads it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        b = self.binaries(build_missing=True, log=log)
        if b.kube_state_metrics is None:
            raise TargetError("kube-state-metrics is not built: run `dirt sandbox build`")
        p = self.ports
        self._save_state(cluster=self.cluster, ports=asdict(p))
        self._write_configuration()
        prom_dir, am_dir = self.root / "prometheus", self.root / "alertmanager"
        argvs = {
            KSM: [str(b.kube_state_metrics), f"--kubeconfig={self.root / 'kubeconfig'}", "--host=127.0.0.1",
                  f"--port={p.kube_state_metrics}", "--telemetry-host=127.0.0.1",
                  f"--telemetry-port={p.kube_state_metrics_telemetry}",
                  "--resources=deployments,daemonsets,statefulsets,replicasets,pods,nodes,namespaces,"
                  "services,configmaps,secrets,persistentvolumeclaims,jobs,poddisruptionbudgets"],
            "alertmanager": alertmanager_argv(b.alertmanager, am_dir, p.alertmanager),
            "prometheus": prometheus_argv(b.prometheus, prom_dir, p.prometheus),
        }
        self.record(argvs)
        for name, argv in argvs.items():
            if self.running(name):
                if name == "prometheus":
                    self.reload()
                continue
            log(f"starting {name} for kind cluster {self.cluster!r} on 127.0.0.1")
            self.launch(name, argv)
        self.wait_healthy(60.0)

    def refresh(self, *, log: Log = quiet) -> None:
        """The cluster was made again (new CA, port, credentials): configuration rewritten, Prometheus
        reloaded, kube-state-metrics restarted."""
        if not self.running("prometheus"):
            return
        self._write_configuration()
        self.reload()
        self.restart(KSM)
        log(f"kind cluster {self.cluster!r} is new: its monitoring follows it")

    def down(self, *, log: Log = quiet) -> None:
        self.stop(log=log)
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)

    def sync_rules(self, *, log: Log = quiet) -> bool:
        """The rules of the project about to run a drill, loaded when the running Prometheus holds others."""
        if rules_in(self.root / "prometheus" / "rules") == self.rendered_rules():
            return False
        log(f"loading this project's alert rules into the monitoring of kind cluster {self.cluster!r}")
        self._write_configuration()
        self.reload()
        return True

    def reload(self) -> None:
        reload_prometheus(self.prometheus_url, f"kind cluster {self.cluster!r}")

    def wait_scraping(self, timeout: float = 90.0, *, quiet_within: float = 30.0) -> list[str]:
        """Every target scraped and up, and the cluster's own start-up alerts given ``quiet_within`` to
        clear; the alerts still firing then are returned."""
        from dirt.clients import http

        deadline = time.monotonic() + timeout
        problems = ["Prometheus not answering"]
        since: float | None = None
        while time.monotonic() < deadline:
            targets = http.probe(f"{self.prometheus_url}/api/v1/targets")
            alerts = http.probe(f"{self.prometheus_url}/api/v1/alerts")
            try:
                active = targets.json()["data"]["activeTargets"] if targets is not None and targets.ok else None
                firing = sorted({a["labels"]["alertname"] for a in alerts.json()["data"]["alerts"]
                                 if a["labels"]["alertname"] != "Watchdog"}) if alerts is not None and alerts.ok else []
            except Exception:  # noqa: BLE001 - not an answer yet
                active = None
            if active is not None:
                problems = [f"{t['labels'].get('job')} {t['health']}" for t in active if t["health"] != "up"]
                if active and not problems:
                    since = since or time.monotonic()
                    noisy = [name for name in firing if name in INFRA_ALERTS]  # start-up noise, not the apps'
                    if not noisy or time.monotonic() - since > quiet_within:
                        return firing
            time.sleep(0.5)
        raise TargetError(f"the monitoring of kind cluster {self.cluster!r} is not working after {timeout:.0f}s: "
                          f"{', '.join(problems)}")

    # -- configuration -------------------------------------------------------------------------------
    def rendered_rules(self) -> dict[str, str]:
        """dirt's rules and the project's, without the KWOK controller's (a kind cluster has real kubelets)."""
        rendered = {}
        for name, text in render_rules(self.rules, None).items():
            data = yaml.safe_load(text) or {}
            for group in data.get("groups") or []:
                group["rules"] = [r for r in group.get("rules") or [] if "kwok" not in str(r.get("expr", ""))]
            data["groups"] = [g for g in data.get("groups") or [] if g["rules"]]
            if data["groups"]:
                rendered[name] = yaml.safe_dump(data, sort_keys=False)
        return rendered

    def _write_configuration(self) -> None:
        from dirt.sandbox.monitoring import write_rules

        where = self.endpoints()
        credentials = self._credentials(where.kubeconfig)
        prom_dir = self.root / "prometheus"
        written = write_rules([], prom_dir / "rules", None, rendered=self.rendered_rules())
        write_yaml(prom_dir / "prometheus.yml", self.config(credentials, where.control_plane_ip, written))
        write_yaml(self.root / "alertmanager" / "alertmanager.yml", alertmanager_config())

    def _credentials(self, kubeconfig: Path) -> dict[str, str]:
        """The kubeconfig's API server address and credentials, as files Prometheus reads."""
        try:
            config = yaml.safe_load(kubeconfig.read_text())
            cluster = config["clusters"][0]["cluster"]
            user = config["users"][0]["user"]
            files = {"ca.crt": cluster["certificate-authority-data"], "client.crt": user["client-certificate-data"],
                     "client.key": user["client-key-data"]}
        except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError) as exc:
            raise TargetError(f"kind cluster {self.cluster!r}: cannot read its kubeconfig {kubeconfig}: "
                              f"{type(exc).__name__}: {exc}") from None
        pki = self.root / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            path = pki / name
            path.write_bytes(base64.b64decode(data))
            path.chmod(0o600)
        copy = self.root / "kubeconfig"
        copy.write_text(kubeconfig.read_text())
        copy.chmod(0o600)
        return {"server": urlparse(cluster["server"]).netloc, "ca": str(pki / "ca.crt"),
                "cert": str(pki / "client.crt"), "key": str(pki / "client.key")}

    def config(self, credentials: dict[str, str], control_plane_ip: str, rule_files: list[Path]) -> dict[str, Any]:
        interval = prom_duration(self.scrape_interval)
        timeout = prom_duration(max(0.5, min(self.scrape_interval, 10.0) * 0.8))
        client = {"cert_file": credentials["cert"], "key_file": credentials["key"]}
        p = self.ports

        def job(name: str, target: str, *, scheme: str = "http", tls: dict[str, Any] | None = None) -> dict[str, Any]:
            entry: dict[str, Any] = {"job_name": name, "scheme": scheme, "scrape_interval": interval,
                                     "scrape_timeout": timeout, "static_configs": [{"targets": [target]}]}
            if tls is not None:
                entry["tls_config"] = tls
            return entry

        return {
            "global": {"scrape_interval": interval, "evaluation_interval": prom_duration(self.evaluation_interval),
                       "external_labels": {"cluster": f"kind-{self.cluster}"}},
            "rule_files": [str(path) for path in rule_files],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{p.alertmanager}"]}]}]},
            "scrape_configs": [
                job("apiserver", credentials["server"], scheme="https", tls={**client, "ca_file": credentials["ca"]}),
                # their serving certificates are self-signed: the client certificate is what matters
                job("kube-controller-manager", f"{control_plane_ip}:10257", scheme="https",
                    tls={**client, "insecure_skip_verify": True}),
                job("kube-scheduler", f"{control_plane_ip}:10259", scheme="https",
                    tls={**client, "insecure_skip_verify": True}),
                job("etcd", f"{control_plane_ip}:2381"),
                job("kube-state-metrics", f"127.0.0.1:{p.kube_state_metrics}"),
                job("prometheus", f"127.0.0.1:{p.prometheus}"),
                job("alertmanager", f"127.0.0.1:{p.alertmanager}"),
            ],
        }

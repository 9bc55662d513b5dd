"""The sandbox's monitoring: Prometheus, Alertmanager, kube-state-metrics, the volume provisioner and
(opt-in) a Pushgateway, as one component, with their configuration.

Prometheus scrapes every control-plane component the way a real cluster's
monitoring does — the API server over HTTPS with the client certificate the
sandbox generated, etcd and the KWOK controller over HTTP — and evaluates the
rules in ``dirt/sandbox/rules`` (plus any configured), with scrape and rule
evaluation every second and small ``for:`` so drills detect in seconds.
A sandbox with a Pushgateway has it scraped too, with ``honor_labels`` so that
what batch jobs (``dirt history export --pushgateway``) push keeps its own
``job`` and ``instance``.  Alertmanager receives the alerts with ``group_wait``
short so nothing is held.

The processes live beside the cluster, not in it: ``<sandbox>/prometheus/`` (its configuration,
rules and data), ``<sandbox>/alertmanager/``, ``<sandbox>/pushgateway/``, with their pid and log
files in ``<sandbox>/pids/`` and ``<sandbox>/logs/``.  A sandbox is shared by every project on the
machine, so ``sync_rules`` loads the rules of the project about to run a drill into a running
Prometheus.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dirt.clients import http
from dirt.core.errors import ConfigError, HttpError, TargetError
from dirt.core.safefile import MAX_RULES_BYTES
from dirt.documents import yamlpos
from dirt.documents.rules import as_prometheus
from dirt.sandbox.binaries import locate_pushgateway
from dirt.sandbox.component import Log, Ports, ProcessGroup, SandboxContext, answers, quiet, write_yaml

RULES_DIR = Path(__file__).parent / "rules"
KSM = "kube-state-metrics"
#: the monitoring processes every sandbox runs (kube-state-metrics unless switched off), as `status` lists them
MONITORS = (KSM, "volume-provisioner", "prometheus", "alertmanager")
#: Alerts about the sandbox itself: start-up noise is waited out (a while) before a drill.
INFRA_ALERTS = ("KubeAPIDown", "KubeControllerManagerDown", "KubeSchedulerDown", "KwokControllerDown",
                "etcdMembersDown", "etcdInsufficientMembers", "etcdNoLeader", "etcdDataLoss", "TargetDown")


def prom_duration(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{int(seconds * 1000)}ms"


def prometheus_config(*, ports: Ports, pki: Path, rule_files: list[Path], scrape_interval: float,
                      evaluation_interval: float, with_ksm: bool, with_pushgateway: bool = False) -> dict[str, Any]:
    tls_client = {"cert_file": str(pki / "admin.crt"), "key_file": str(pki / "admin.key")}
    interval = prom_duration(scrape_interval)
    timeout = prom_duration(max(0.5, min(scrape_interval, 10.0) * 0.8))

    def job(name: str, port: int, *, scheme: str = "http", tls: dict[str, Any] | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "job_name": name, "scheme": scheme, "scrape_interval": interval, "scrape_timeout": timeout,
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
        if tls is not None:
            entry["tls_config"] = tls
        return entry

    jobs = [
        # The API server's serving certificate is signed by the sandbox CA.
        job("apiserver", ports.kube_apiserver, scheme="https",
            tls={**tls_client, "ca_file": str(pki / "ca.crt")}),
        # controller-manager and scheduler serve a self-signed certificate of their own.
        job("kube-controller-manager", ports.kube_controller_manager, scheme="https",
            tls={**tls_client, "insecure_skip_verify": True}),
        job("kube-scheduler", ports.kube_scheduler, scheme="https",
            tls={**tls_client, "insecure_skip_verify": True}),
        job("etcd", ports.etcd),
        job("kwok-controller", ports.kwok_controller),
        job("prometheus", ports.prometheus),
        job("alertmanager", ports.alertmanager),
    ]
    if with_ksm:
        jobs.append(job("kube-state-metrics", ports.kube_state_metrics))
    if with_pushgateway:
        # The pushers' own job and instance labels are the point of a pushed metric: keep them.
        jobs.append(job("pushgateway", ports.pushgateway) | {"honor_labels": True})
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": prom_duration(evaluation_interval),
                   "external_labels": {"cluster": "dirt-sandbox"}},
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]}]},
        "scrape_configs": jobs,
    }


def prometheus_argv(binary: Path, folder: Path, port: int) -> list[str]:
    """Prometheus on 127.0.0.1:``port`` with its configuration and data in ``folder`` (and reloadable)."""
    return [str(binary), f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d", "--web.enable-lifecycle",
            "--log.level=warn",
            # send firing alerts to Alertmanager every second, not every minute
            "--rules.alert.resend-delay=1s"]


def alertmanager_argv(binary: Path, folder: Path, port: int) -> list[str]:
    """Alertmanager on 127.0.0.1:``port``, alone (no cluster), its configuration and data in ``folder``."""
    return [str(binary), f"--config.file={folder / 'alertmanager.yml'}", f"--storage.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]


def reload_prometheus(url: str, whose: str) -> None:
    """Ask the Prometheus at ``url`` to read its configuration and rules again (``whose``: for the error)."""
    try:
        answer = http.request("POST", f"{url}/-/reload", timeout=10)
    except HttpError as exc:
        raise TargetError(f"{whose}: Prometheus did not reload its configuration: {exc}") from None
    if not answer.ok:
        raise TargetError(f"{whose}: Prometheus did not reload its configuration (HTTP {answer.status})")


def alertmanager_config() -> dict[str, Any]:
    return {
        "route": {"receiver": "drill", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        # No notification integrations: a drill reads the alerts from the API v2.
        "receivers": [{"name": "drill"}],
    }


def render_rules(sources: list[Path], alert_for: float | None) -> dict[str, str]:
    """The sandbox's rule files, by name: each source as a plain rule file, every ``for:`` overridden when asked."""
    files: list[Path] = []
    for src in sources:
        files.extend(sorted(src.glob("*.y*ml")) if src.is_dir() else [src])
    rendered: dict[str, str] = {}
    for i, src in enumerate(files):
        data = as_prometheus(_read_rules(src))  # a PrometheusRule's spec is a plain rule file
        if alert_for is not None:
            for group in data.get("groups") or []:
                for rule in (group.get("rules") or []) if isinstance(group, dict) else []:
                    if isinstance(rule, dict) and "alert" in rule and rule.get("expr") != "vector(1)":
                        rule["for"] = prom_duration(alert_for)
        rendered[f"{i:02d}-{src.stem}.yaml"] = yaml.safe_dump(data, sort_keys=False)
    return rendered


def rules_in(dest: Path) -> dict[str, str]:
    """The rule files a sandbox's Prometheus has now, by name."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(dest.glob("*.yaml"))} if dest.is_dir() else {}


def write_rules(sources: list[Path], dest: Path, alert_for: float | None,
                rendered: dict[str, str] | None = None) -> list[Path]:
    """Copy rule files into the sandbox, overriding every ``for:`` when asked (``rendered``: what
    ``render_rules`` already made of them)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.yaml"):
        old.unlink()
    written = []
    for name, text in (rendered if rendered is not None else render_rules(sources, alert_for)).items():
        target = dest / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def _read_rules(src: Path) -> dict[str, Any]:
    """A rule file, read as safely as a scenario (bounded, located errors); Prometheus checks the rest."""
    try:
        data, _, _ = yamlpos.load_file(src, limit=MAX_RULES_BYTES)
    except yamlpos.YamlSyntaxError as exc:
        i = exc.issue
        raise ConfigError(f"{src}:{i.mark.line}:{i.mark.column}: cannot read rule file: {i.message}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{src}:1:1: a rule file is a mapping with 'groups:'")
    return data


class Monitoring(ProcessGroup):
    """Prometheus, Alertmanager, kube-state-metrics, the volume provisioner and (opt-in) a Pushgateway.

    ``processes`` lists kube-state-metrics even in a sandbox set to run without it (an earlier ``up``
    may have started it, and ``down`` stops it), but it is checked and shown by ``status`` only when
    these settings run it; the Pushgateway is listed when these settings or an earlier ``up`` ran one.
    """

    name = "monitoring"
    PROCESSES = (*MONITORS, "pushgateway")

    def __init__(self, ctx: SandboxContext, *, scrape_interval: float = 1.0, evaluation_interval: float = 1.0,
                 alert_for: float | None = None, rules: list[Path] | None = None, kube_state_metrics: bool = True,
                 pushgateway: bool = False) -> None:
        super().__init__(ctx)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.alert_for = alert_for
        self.extra_rules = list(rules or [])
        self.want_ksm = kube_state_metrics
        self.pushgateway = pushgateway

    @property
    def runs_pushgateway(self) -> bool:
        return self.pushgateway or bool(self.ctx.state().get("pushgateway"))  # or started by another configuration

    @property
    def processes(self) -> tuple[str, ...]:
        return (*MONITORS, *(("pushgateway",) if self.runs_pushgateway else ()))

    def checked(self) -> tuple[str, ...]:
        return tuple(name for name in self.processes if name != KSM or self.want_ksm)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ctx.ports().prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ctx.ports().alertmanager}"

    @property
    def pushgateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ctx.ports().pushgateway}"

    def status(self) -> dict[str, Any]:
        return {"prometheus_url": self.prometheus_url, "alertmanager_url": self.alertmanager_url,
                "pushgateway_url": self.pushgateway_url if self.runs_pushgateway else None}

    def binary(self, name: str) -> Path | None:
        if name == "pushgateway":
            return locate_pushgateway()
        b = self.ctx.binaries()
        return {"prometheus": b.prometheus, "alertmanager": b.alertmanager,
                KSM: b.kube_state_metrics, "volume-provisioner": Path(sys.executable)}[name]

    def answers(self, name: str) -> bool:
        if name == "volume-provisioner":
            return True  # no endpoint: running is healthy
        if name == KSM:
            return answers(f"http://127.0.0.1:{self.ctx.ports().kube_state_metrics}/healthz")
        return answers({"prometheus": f"{self.prometheus_url}/-/ready",
                        "alertmanager": f"{self.alertmanager_url}/-/ready",
                        "pushgateway": f"{self.pushgateway_url}/-/healthy"}[name])

    def prepare(self, *, log: Log = quiet) -> dict[str, str]:
        if self.pushgateway:
            locate_pushgateway()  # missing: say so before anything starts
        elif self.ctx.state().get("pushgateway") and self.stop_process("pushgateway"):
            log("stopped pushgateway (the sandbox no longer runs one)")
        return {}

    def start(self, *, log: Log = quiet) -> None:
        """Write the configuration and start what does not run; a running Prometheus reloads its own."""
        b = self.ctx.binaries()
        p = self.ctx.ports()
        root = self.ctx.root
        ksm = self.want_ksm and b.kube_state_metrics is not None
        prom_dir = root / "prometheus"
        rules = write_rules([RULES_DIR, *self.extra_rules], prom_dir / "rules", self.alert_for)
        write_yaml(prom_dir / "prometheus.yml", prometheus_config(
            ports=p, pki=self.ctx.pki, rule_files=rules, scrape_interval=self.scrape_interval,
            evaluation_interval=self.evaluation_interval, with_ksm=ksm, with_pushgateway=self.pushgateway))
        am_dir = root / "alertmanager"
        write_yaml(am_dir / "alertmanager.yml", alertmanager_config())
        commands: dict[str, list[str]] = {}
        if ksm:
            commands[KSM] = [
                str(b.kube_state_metrics), f"--kubeconfig={self.ctx.kubeconfig}", "--host=127.0.0.1",
                f"--port={p.kube_state_metrics}", "--telemetry-host=127.0.0.1",
                f"--telemetry-port={p.kube_state_metrics_telemetry}",
                "--resources=deployments,daemonsets,statefulsets,replicasets,pods,nodes,namespaces,"
                "services,configmaps,secrets,persistentvolumeclaims,jobs,poddisruptionbudgets",
            ]
        commands["volume-provisioner"] = [
            sys.executable, "-m", "dirt.sandbox.provisioner", f"--kubeconfig={self.ctx.kubeconfig}",
            f"--root={root / 'volumes'}",
        ]
        commands["prometheus"] = prometheus_argv(b.prometheus, prom_dir, p.prometheus)
        commands["alertmanager"] = alertmanager_argv(b.alertmanager, am_dir, p.alertmanager)
        if self.pushgateway:
            # Kept in the sandbox's folder (never the package's /var/lib one), so pushed metrics
            # outlive a restart of the sandbox but not `down`.
            (root / "pushgateway").mkdir(parents=True, exist_ok=True)
            commands["pushgateway"] = [
                str(locate_pushgateway()), f"--web.listen-address=127.0.0.1:{p.pushgateway}",
                f"--persistence.file={root / 'pushgateway' / 'metrics.data'}", "--persistence.interval=10s",
                "--log.level=info",  # a few lines: where it listens, what it restored
            ]
        self.record(commands)
        for name, argv in commands.items():
            if self.running(name):
                if name == "prometheus":
                    self.reload_prometheus()  # its configuration or rules may have changed
                continue
            port = getattr(p, name.replace("-", "_"), None)
            log(f"starting {name}" + (f" on 127.0.0.1:{port}" if port else ""))
            self.launch(name, argv)

    def reconnect(self) -> None:
        """kube-state-metrics started again if it runs: its client certificate came from a PKI, and its
        watches from an etcd, that the cluster no longer has (a new cluster, a restored snapshot)."""
        if self.running(KSM):
            self.restart(KSM)

    def reload_prometheus(self) -> None:
        reload_prometheus(self.prometheus_url, f"sandbox {self.ctx.name!r}")

    def sync_rules(self, *, log: Log = quiet) -> bool:
        """Load these settings' rules into the running Prometheus when it holds others (another
        project's, or an older version of these); True when they were changed.  A sandbox is shared by
        every project on the machine: the drill about to run must be judged by its own alerts."""
        prom_dir = self.ctx.root / "prometheus"
        wanted = render_rules([RULES_DIR, *self.extra_rules], self.alert_for)
        if rules_in(prom_dir / "rules") == wanted:
            return False
        log(f"loading the alert rules of this project into sandbox {self.ctx.name!r} "
            f"({', '.join(str(r) for r in self.extra_rules) or 'the built-in rules only'})")
        written = write_rules([RULES_DIR, *self.extra_rules], prom_dir / "rules", self.alert_for, rendered=wanted)
        config = yaml.safe_load((prom_dir / "prometheus.yml").read_text(encoding="utf-8"))
        config["rule_files"] = [str(path) for path in written]  # only the rules: the rest is the running sandbox's
        write_yaml(prom_dir / "prometheus.yml", config)
        self.reload_prometheus()
        return True

    def wait_settled(self, timeout: float = 60.0, *, quiet_within: float = 20.0, log: Log = quiet) -> list[str]:
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
            targets = http.probe(f"{self.prometheus_url}/api/v1/targets")
            rules = http.probe(f"{self.prometheus_url}/api/v1/rules?type=alert")
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
                    noisy = [n for n, st in states.items() if n in INFRA_ALERTS and st in ("pending", "firing")]
                    if not noisy or time.monotonic() - scraping_since > quiet_within:
                        firing = sorted(n for n, st in states.items() if st == "firing" and n != "Watchdog")
                        if firing:
                            log(f"alerts firing: {', '.join(firing)}")
                        return firing
            time.sleep(0.5)
        raise TargetError(f"sandbox {self.ctx.name!r}: monitoring not working after {timeout:.0f}s: "
                          f"{', '.join(problems)}")

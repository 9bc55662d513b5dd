"""Prometheus, Alertmanager and kube-state-metrics configuration for a sandbox.

Prometheus scrapes every control-plane component the way a real cluster's
monitoring does — the API server over HTTPS with the client certificate the
sandbox generated, etcd and the KWOK controller over HTTP — and evaluates the
rules in ``dirt/sandbox/rules`` (plus any configured), with scrape and rule
evaluation every second and small ``for:`` so drills detect in seconds.
A sandbox with a Pushgateway has it scraped too, with ``honor_labels`` so that
what batch jobs (``dirt history export --pushgateway``) push keeps its own
``job`` and ``instance``.  Alertmanager receives the alerts with ``group_wait``
short so nothing is held.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dirt.core.errors import ConfigError
from dirt.core.safefile import MAX_RULES_BYTES
from dirt.documents import yamlpos
from dirt.documents.rules import as_prometheus

RULES_DIR = Path(__file__).parent / "rules"


@dataclass(frozen=True)
class Ports:
    kube_apiserver: int
    etcd: int
    etcd_peer: int
    kube_controller_manager: int
    kube_scheduler: int
    kwok_controller: int
    prometheus: int
    alertmanager: int
    kube_state_metrics: int
    kube_state_metrics_telemetry: int
    # Velero's (sandboxes with velero: true); 0 in the state of a sandbox created before they existed
    object_store: int = 0
    velero_metrics: int = 0
    # the real node's (sandboxes with real_nodes: 1)
    kubelet: int = 0
    kubelet_healthz: int = 0
    containerd_metrics: int = 0
    # the Pushgateway's (sandboxes with pushgateway: true)
    pushgateway: int = 0

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.__dataclass_fields__)


def _duration(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{int(seconds * 1000)}ms"


def prometheus_config(*, ports: Ports, pki: Path, rule_files: list[Path], scrape_interval: float,
                      evaluation_interval: float, with_ksm: bool, with_pushgateway: bool = False) -> dict[str, Any]:
    tls_client = {"cert_file": str(pki / "admin.crt"), "key_file": str(pki / "admin.key")}
    interval = _duration(scrape_interval)
    timeout = _duration(max(0.5, min(scrape_interval, 10.0) * 0.8))

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
        "global": {"scrape_interval": interval, "evaluation_interval": _duration(evaluation_interval),
                   "external_labels": {"cluster": "dirt-sandbox"}},
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]}]},
        "scrape_configs": jobs,
    }


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
                        rule["for"] = _duration(alert_for)
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


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

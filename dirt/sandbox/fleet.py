"""A fleet on this machine: several sandboxes behind one entry point, drilled as one service.

The story dirt comes from is a service on several clusters behind one global entry point, with
backups in a location every cluster can read.  A fleet here is that, with real parts only:

* N member sandboxes (:class:`~dirt.sandbox.cluster.Sandbox`), each its own control plane, real
  node (the storefront runs there) and Velero server;
* one S3-compatible bucket (gofakes3) that every member's Velero uses as its backup location, as
  teams share one; it lives outside every member, so it survives any member's deletion;
* the entry point, a real HAProxy on 127.0.0.1 (:mod:`dirt.sandbox.entry`) health-checking each
  member's storefront; member ``i`` serves on ``app_port + i`` (each cluster its own address, as
  real ones have; the kubelet refuses a loopback node address, so the port is what differs);
* the fleet's own Prometheus and Alertmanager: Prometheus scrapes the entry point (job ``entry``)
  and *federates* each member's Prometheus (job ``federate``, labelled ``member``), and evaluates
  the fleet rules (``fleet_rules/fleet.yaml``).

Layout (under ``$DIRT_SANDBOX_HOME``)::

    <fleet>/fleet.json                  what the fleet is: members, ports, settings
    <fleet>/members/<fleet>-<member>/   each member's sandbox (its own layout)
    <fleet>/store/bucket/               the shared Velero bucket
    <fleet>/entry/                      HAProxy's config, admin socket and log
    <fleet>/prometheus/, alertmanager/  the fleet's monitoring
    <fleet>/pids/, <fleet>/logs/        the processes the fleet runs itself

``down`` stops every process of every part by its PID and removes the folder; two fleets of
different names never share a port, a folder or a cgroup (each member's real node has its own).
"""

from __future__ import annotations

import shutil
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dirt.core.errors import TargetError
from dirt.sandbox import process
from dirt.sandbox.binaries import Binaries, locate, locate_velero
from dirt.sandbox.cluster import Sandbox, sandbox_home
from dirt.sandbox.component import (
    Log,
    ProcessGroup,
    SandboxContext,
    answers,
    merge_state,
    quiet,
    read_state,
    wait_until_healthy,
    write_yaml,
)
from dirt.sandbox.entry import Backend, EntryPoint, EntrySettings
from dirt.sandbox.monitoring import (
    alertmanager_argv,
    alertmanager_config,
    prom_duration,
    prometheus_argv,
    reload_prometheus,
    render_rules,
    rules_in,
    write_rules,
)
from dirt.sandbox.velero import BUCKET

FLEET_RULES = Path(__file__).parent / "fleet_rules" / "fleet.yaml"
STATE = "fleet.json"


@dataclass(frozen=True)
class FleetPorts:
    """The fleet's own 127.0.0.1 ports (each member sandbox has its own ``Ports``)."""

    entry: int
    entry_metrics: int
    prometheus: int
    alertmanager: int
    object_store: int

    @classmethod
    def names(cls) -> list[str]:
        return list(cls.__dataclass_fields__)


class SharedStore(ProcessGroup):
    """The bucket every member's Velero backs up to: gofakes3 with a folder of the fleet's."""

    name = "store"
    PROCESSES = ("object-store",)

    def __init__(self, ctx: SandboxContext, port: int) -> None:
        super().__init__(ctx)
        self.port = port

    @property
    def bucket(self) -> Path:
        return self.ctx.root / "store" / "bucket"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def binary(self, name: str) -> Path | None:
        return locate_velero().gofakes3

    def answers(self, name: str) -> bool:
        return answers(f"{self.url}/")

    def start(self, *, log: Log = quiet) -> None:
        argv = [str(self.binary("object-store")), "-backend", "fs", "-fs.path", str(self.bucket), "-fs.create",
                "-initialbucket", BUCKET, "-host", f"127.0.0.1:{self.port}"]
        self.record({"object-store": argv})
        if not self.running("object-store"):
            self.bucket.mkdir(parents=True, exist_ok=True)
            log(f"starting the fleet's shared bucket on {self.url}")
            self.launch("object-store", argv)
        self.wait_healthy(30.0)

    def status(self) -> dict[str, Any]:
        return {"url": self.url, "bucket": BUCKET, "folder": str(self.bucket)}


class FleetMonitoring(ProcessGroup):
    """The fleet's Prometheus (the entry point's metrics, each member's Prometheus federated, the fleet
    rules) and Alertmanager."""

    name = "fleet-monitoring"
    PROCESSES = ("prometheus", "alertmanager")

    def __init__(self, ctx: SandboxContext, *, ports: FleetPorts, members: dict[str, Sandbox], rules: list[Path],
                 scrape_interval: float, evaluation_interval: float) -> None:
        super().__init__(ctx)
        self.ports = ports
        self.members = members
        self.rules = [FLEET_RULES, *rules]
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    def binary(self, name: str) -> Path | None:
        b = self.ctx.binaries()
        return b.prometheus if name == "prometheus" else b.alertmanager

    def answers(self, name: str) -> bool:
        return answers(f"{self.prometheus_url if name == 'prometheus' else self.alertmanager_url}/-/ready")

    def config(self, rule_files: list[Path]) -> dict[str, Any]:
        interval = prom_duration(self.scrape_interval)
        timeout = prom_duration(max(0.5, min(self.scrape_interval, 10.0) * 0.8))

        def job(name: str, targets: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {"job_name": name, "scrape_interval": interval, "scrape_timeout": timeout,
                    "static_configs": targets, **extra}

        alertmanager = [{"static_configs": [{"targets": [f"127.0.0.1:{self.ports.alertmanager}"]}]}]
        federated = [{"targets": [f"127.0.0.1:{box.ports.prometheus}"], "labels": {"member": member}}
                     for member, box in self.members.items()]
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": prom_duration(self.evaluation_interval),
                       "external_labels": {"fleet": self.ctx.name}},
            "rule_files": [str(p) for p in rule_files],
            "alerting": {"alertmanagers": alertmanager},
            "scrape_configs": [
                job("entry", [{"targets": [f"127.0.0.1:{self.ports.entry_metrics}"]}]),
                # Each member's alerts and the health of what it scrapes, under its own name.
                job("federate", federated, metrics_path="/federate", honor_labels=True,
                    params={"match[]": ['{__name__=~"ALERTS|up"}', '{__name__=~"kube_deployment_status_.+"}']}),
                job("prometheus", [{"targets": [f"127.0.0.1:{self.ports.prometheus}"]}]),
                job("alertmanager", [{"targets": [f"127.0.0.1:{self.ports.alertmanager}"]}]),
            ],
        }

    def start(self, *, log: Log = quiet) -> None:
        b = self.ctx.binaries()
        prom_dir, am_dir = self.ctx.root / "prometheus", self.ctx.root / "alertmanager"
        written = write_rules(self.rules, prom_dir / "rules", None)
        write_yaml(prom_dir / "prometheus.yml", self.config(written))
        write_yaml(am_dir / "alertmanager.yml", alertmanager_config())
        argvs = {"prometheus": prometheus_argv(b.prometheus, prom_dir, self.ports.prometheus),
                 "alertmanager": alertmanager_argv(b.alertmanager, am_dir, self.ports.alertmanager)}
        self.record(argvs)
        for name in ("alertmanager", "prometheus"):
            if not self.running(name):
                log(f"starting the fleet's {name} on 127.0.0.1:{getattr(self.ports, name)}")
                self.launch(name, argvs[name])
            elif name == "prometheus":
                self.reload()
        self.wait_healthy(30.0)

    def reload(self) -> None:
        reload_prometheus(self.prometheus_url, f"fleet {self.ctx.name!r}")

    def sync_rules(self, *, log: Log = quiet) -> bool:
        """The fleet rules of this project loaded, when the running Prometheus holds others."""
        prom_dir = self.ctx.root / "prometheus"
        wanted = render_rules(self.rules, None)
        if rules_in(prom_dir / "rules") == wanted:
            return False
        log("loading this project's fleet rules into the fleet's Prometheus")
        written = write_rules(self.rules, prom_dir / "rules", None, rendered=wanted)
        write_yaml(prom_dir / "prometheus.yml", self.config(written))
        self.reload()
        return True

    def wait_scraping(self, timeout: float = 60.0) -> None:
        """Every target (the entry point, each member's Prometheus) scraped and up."""
        from dirt.clients import http

        deadline = time.monotonic() + timeout
        problems = ["Prometheus not answering"]
        while time.monotonic() < deadline:
            response = http.probe(f"{self.prometheus_url}/api/v1/targets")
            try:
                active = response.json()["data"]["activeTargets"] if response is not None and response.ok else None
            except Exception:  # noqa: BLE001 - not an answer yet
                active = None
            if active is not None:
                problems = [f"{t['labels'].get('job')} {t['labels'].get('member', '')} {t['health']}".replace("  ", " ")
                            for t in active if t["health"] != "up"]
                if active and not problems:
                    return
            time.sleep(0.5)
        raise TargetError(f"the fleet's monitoring is not working after {timeout:.0f}s: {', '.join(problems)}")

    def status(self) -> dict[str, Any]:
        return {"prometheus_url": self.prometheus_url, "alertmanager_url": self.alertmanager_url}


class Fleet:
    """N member sandboxes, a shared bucket, an entry point and the fleet's monitoring."""

    #: each member has one real node (its storefront runs there)
    real_nodes = 1

    def __init__(self, name: str = "fleet", members: list[str] | tuple[str, ...] = ("east", "west"), *,
                 home: Path | None = None, nodes: int = 1, velero: bool = True, rules: list[Path] | None = None,
                 fleet_rules: list[Path] | None = None, app_port: int = 18181, app_health: str = "/healthz",
                 entry_port: int = 18180, entry: EntrySettings | None = None, scrape_interval: float = 1.0,
                 evaluation_interval: float = 1.0) -> None:
        if len(members) < 2 or len(set(members)) != len(members):
            raise TargetError(f"fleet {name!r}: at least two members, each named once (got {', '.join(members)})")
        self.name = name
        self.root = (home or sandbox_home()) / name
        self.member_names = list(members)
        self.velero = velero
        self.app_port = app_port
        self.app_health = app_health
        self.entry_port = entry_port
        self.entry_settings = entry or EntrySettings(check_path=app_health)
        self._binaries: Binaries | None = None
        self.members: dict[str, Sandbox] = {
            member: Sandbox(f"{name}-{member}", nodes=nodes, velero=velero, real_nodes=1, rules=list(rules or []),
                            scrape_interval=scrape_interval, evaluation_interval=evaluation_interval,
                            home=self.root / "members", shared_store=self._store_port if velero else None)
            for member in self.member_names}
        ctx = SandboxContext(name=name, root=self.root, cluster_dir=self.root, ports=lambda: None,  # type: ignore
                             binaries=self.binaries, state=self.state, save_state=self._save_state)
        self.ctx = ctx
        self._fleet_rules = list(fleet_rules or [])
        self._scrape_interval = scrape_interval
        self._evaluation_interval = evaluation_interval

    # -- state and ports ------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.root / STATE

    def state(self) -> dict[str, Any]:
        return read_state(self.state_file)

    def _save_state(self, **fields: Any) -> None:
        merge_state(self.state_file, **fields)

    @property
    def ports(self) -> FleetPorts:
        stored = {k: v for k, v in (self.state().get("ports") or {}).items() if k in FleetPorts.names() and v}
        if len(stored) == len(FleetPorts.names()) and stored["entry"] == self.entry_port:
            return FleetPorts(**stored)
        start = 21000 + (zlib.crc32(f"fleet:{self.name}".encode()) % 1000) * 6
        free = iter(p for p in process.free_ports(8, start=start) if p != self.entry_port)
        ports = FleetPorts(entry=self.entry_port, **{n: stored.get(n) or next(free)
                                                     for n in FleetPorts.names() if n != "entry"})
        if self.root.is_dir():  # asking never makes a fleet (`dirt plan` touches nothing)
            self._save_state(ports=asdict(ports))
        return ports

    def _store_port(self) -> int:
        return self.ports.object_store

    def binaries(self, *, build_missing: bool = False, log: Log = quiet) -> Binaries:
        if self._binaries is None:
            self._binaries = locate(build_missing=build_missing, log=log)
        return self._binaries

    # -- parts --------------------------------------------------------------------------------------
    def member(self, name: str) -> Sandbox:
        try:
            return self.members[name]
        except KeyError:
            raise TargetError(f"fleet {self.name!r} has no member {name!r} "
                              f"(its members: {', '.join(self.member_names)})") from None

    def member_port(self, name: str) -> int:
        """Where member ``name`` serves the app (the entry point checks it there)."""
        return self.app_port + self.member_names.index(name)

    def member_variables(self, name: str) -> dict[str, Any]:
        return {"app_port": self.member_port(name), "member": name}

    @property
    def store(self) -> SharedStore:
        return SharedStore(self.ctx, self.ports.object_store)

    @property
    def entry(self) -> EntryPoint:
        p = self.ports
        return EntryPoint(self.root / "entry", port=p.entry, metrics_port=p.entry_metrics,
                          backends=[Backend(m, "127.0.0.1", self.member_port(m)) for m in self.member_names],
                          settings=self.entry_settings)

    @property
    def monitoring(self) -> FleetMonitoring:
        return FleetMonitoring(self.ctx, ports=self.ports, members=self.members, rules=self._fleet_rules,
                               scrape_interval=self._scrape_interval, evaluation_interval=self._evaluation_interval)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    def entry_urls(self) -> dict[str, Any]:
        p = self.ports
        return {"url": f"http://127.0.0.1:{p.entry}/", "metrics": f"http://127.0.0.1:{p.entry_metrics}/metrics"}

    def exists(self) -> bool:
        return self.state_file.is_file()

    # -- up / down / status ---------------------------------------------------------------------
    def up(self, *, log: Log = print, timeout: float = 300.0) -> dict[str, Any]:
        """Create (or resume) every part; the fleet's status once all of it is healthy."""
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.binaries(build_missing=True, log=log)
        self._save_state(name=self.name, members=self.member_names, velero=self.velero, app_port=self.app_port,
                         ports=asdict(self.ports))
        if self.velero:
            locate_velero(build_missing=True, log=log)
            self.store.start(log=log)
        for member, box in self.members.items():
            log(f"fleet {self.name!r}: member {member}")
            box.up(log=lambda m, member=member: log(f"  [{member}] {m}"), timeout=timeout)
        entry = self.entry
        entry.start(log=log)
        self.sync_entry(log=log)  # running already, perhaps with another target's settings
        monitoring = self.monitoring
        monitoring.start(log=log)
        monitoring.wait_scraping(60.0)
        self._save_state(up_seconds=round(time.monotonic() - started, 2))
        log(f"fleet {self.name!r} is up in {time.monotonic() - started:.1f}s: users come in at {entry.url}")
        return self.status()

    def down(self, *, log: Log = print) -> None:
        """Stop every process of every part, by PID, and remove the fleet's folder."""
        self.entry.stop(log=log)
        self.monitoring.stop(log=log)
        for box in reversed(list(self.members.values())):
            box.down(log=log)
        self.store.stop(log=log)
        shutil.rmtree(self.root, ignore_errors=True)
        log(f"fleet {self.name!r} removed")

    def own_parts(self) -> list[ProcessGroup]:
        return [*([self.store] if self.velero else []), self.monitoring]

    def healthy(self) -> bool:
        if not self.exists():
            return False
        if not all(all(c["healthy"] for c in box.status()["components"]) for box in self.members.values()):
            return False
        return all(all(part.healthy().values()) for part in self.own_parts()) and all(self.entry.healthy().values())

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def health() -> dict[str, bool]:
            found = {f"{part.name}/{n}": ok for part in self.own_parts() for n, ok in part.healthy().items()}
            found |= {f"entry/{n}": ok for n, ok in self.entry.healthy().items()}
            return found

        wait_until_healthy(self.name, health, timeout)

    def sync_rules(self, *, log: Log = quiet) -> bool:
        changed = [box.sync_rules(log=log) for box in self.members.values()]
        return self.monitoring.sync_rules(log=log) or any(changed)

    def sync_entry(self, *, log: Log = quiet) -> bool:
        """The running entry point given these settings (two targets may drill one fleet through entry points
        set up differently: with health checks and without); True when it was reloaded."""
        entry = self.entry
        if entry.pid is None or (entry.config_path.is_file() and entry.config_path.read_text() == entry.config()):
            return False
        log(f"the entry point of fleet {self.name!r} takes this target's settings "
            f"(health checks {'on' if self.entry_settings.health_check else 'off'}, "
            f"redispatch {'on' if self.entry_settings.redispatch else 'off'})")
        entry.reconfigure(entry.backends, log=log)
        return True

    def status(self) -> dict[str, Any]:
        """What ``dirt sandbox status --json`` shows for a fleet: its own parts, then each member's status."""
        allocated = bool(self.state().get("ports"))
        components = []
        if allocated:
            for part in self.own_parts():
                components.extend({**c, "name": f"{part.name}/{c['name']}"} for c in part.process_status())
            entry = self.entry
            components.append({"name": "entry/haproxy", "pid": entry.pid, "healthy": all(entry.healthy().values())})
        members = {m: box.status() for m, box in self.members.items()}
        for member, data in members.items():
            components.extend({**c, "name": f"{member}/{c['name']}"} for c in data["components"])
        return {
            "kind": "fleet", "name": self.name, "exists": self.exists(), "root": str(self.root),
            "members": members,
            "entry": self.entry.status() if allocated else None,
            "entry_url": self.entry_urls()["url"] if allocated else None,
            "prometheus_url": self.prometheus_url if allocated else None,
            "alertmanager_url": self.alertmanager_url if allocated else None,
            "object_store_url": self.store.url if allocated and self.velero else None,
            "app_ports": {m: self.member_port(m) for m in self.member_names},
            "components": components,
            "up_seconds": self.state().get("up_seconds"),
        }

    def log_path(self, name: str) -> Path:
        """``MEMBER/PROCESS`` for a member's process; ``haproxy``, ``prometheus``, ``alertmanager`` or
        ``object-store`` for the fleet's own."""
        member, _, process_name = name.rpartition("/")
        if member:
            return self.member(member).log_path(process_name)
        if name == "haproxy":
            return self.entry.log_path
        for part in self.own_parts():
            if name in part.processes:
                return part.log_path(name)
        raise TargetError(f"fleet {self.name!r} has no process {name!r}: haproxy, prometheus, alertmanager, "
                          f"object-store, or MEMBER/PROCESS (members: {', '.join(self.member_names)})")

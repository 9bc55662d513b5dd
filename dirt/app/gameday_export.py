"""``dirt gameday export``: a game day handed to a real scheduler, not a home-made daemon.

Three schedulers, one question each answers differently — where does the run live?

- ``cronjob``: a Kubernetes CronJob in the cluster (the plan in a ConfigMap, a
  ServiceAccount with the rights the drills need).  A runner inside the cluster
  it destroys dies with it, so a plan with control-plane, etcd or cluster drills
  is refused unless the CronJob runs in a separate *management* cluster and
  reaches the drilled one through a kubeconfig Secret.
- ``github_actions``: a scheduled workflow on a kind cluster.  GitHub's cron is
  UTC only: the game day's cron is converted, once per UTC offset its time zone
  has in a year; with daylight saving time both crons are emitted and a guard
  step lets through only the one whose offset holds on the day, and only when
  ``dirt gameday due`` finds a real slot (before the kind cluster is made).
- ``systemd``: a oneshot service and its timer (``OnCalendar`` in the game day's
  zone, ``Persistent=true``; no ``RandomizedDelaySec``: the run itself waits the
  deterministic jitter ``dirt gameday next`` shows, as under every scheduler).

A cron a scheduler cannot read (``2#1``, ``L``, ``15W``) is exported as a superset
it can (``dirt.gameday.cron``), said in the file's header.  Kubernetes' and GitHub's
cron know nothing of blackouts or jitter either: the job itself starts with ``dirt
gameday run --trigger schedule``, which runs only for a real slot of the game day's
cron (``dirt.gameday.schedule.due``), waits its jitter, checks the blackouts
(``blackout_now``) and skips the day inside one.  Secrets never reach the
output: dirt.yaml names environment variables, and the CronJob takes them from a
Secret the user names (``env_secret``).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shlex
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from dirt.config import TargetConfig
from dirt.core.errors import GuardrailError, UsageError
from dirt.drivers import fault_family
from dirt.drivers.registry import Registry, default_registry
from dirt.core.durations import format_duration
from dirt.gameday.cron import CronError
from dirt.gameday.cron import compact as _compact
from dirt.gameday.cron import parse as parse_cron
from dirt.gameday.model import Blackout, DrillEntry, GameDay, Schedule
from dirt.scenario import LoadOptions, Scenario, load_scenario
from dirt.scenario.loader import project_root

#: Fault families that take the cluster's API, its data or the cluster itself away:
#: a CronJob in that cluster would be killed by its own drill.
CLUSTER_DESTROYING = ("control-plane", "etcd", "cluster")
PLAN_MOUNT = "/plan"
REPORTS_MOUNT = "/reports"
KUBECONFIG_MOUNT = "/kubeconfig"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IN_CLUSTER_KUBECONFIG = "in-cluster.kubeconfig"
#: A ConfigMap may hold at most 1 MiB; leave room for its metadata.
CONFIGMAP_LIMIT = 1_000_000
#: Extra time a job gets beyond the sum of its drills' deadlines (pulling the image, reports).
DEADLINE_MARGIN = 600.0
NON_ROOT_UID = 65532
LABEL = "app.kubernetes.io"


class ExportError(UsageError):
    """The game day cannot be said in the scheduler's terms (no schedule, a cron that has no UTC form...)."""


class ExportRefused(GuardrailError):
    """A CronJob inside the cluster its own drills destroy (exit 2): the drills and faults are named."""


# -- the drills of the day, loaded ------------------------------------------------------


@dataclass(frozen=True)
class PlannedDrill:
    """A drill of the day with its scenario loaded and each fault's guardrail family."""

    entry: DrillEntry
    scenario: Scenario
    faults: tuple[tuple[str, str], ...]  # (fault driver, family)

    @property
    def families(self) -> set[str]:
        return {family for _, family in self.faults}


def plan_drills(gameday: GameDay, registry: Registry | None = None) -> list[PlannedDrill]:
    """Load every drill's scenario with the day's and the drill's variables (errors: ``ScenarioError``)."""
    registry = registry or default_registry()
    drills = []
    for entry in gameday.order():
        options = LoadOptions(registry=registry, variables={**gameday.document.vars, **entry.vars})
        scenario = load_scenario(gameday.drill_paths[entry.id], options)
        faults = tuple((spec.driver, fault_family(registry.get("fault", spec.driver), spec.params))
                       for spec in scenario.inject)
        drills.append(PlannedDrill(entry, scenario, faults))
    return drills


def refuse_in_cluster(gameday: GameDay, drills: list[PlannedDrill]) -> None:
    """Refuse a plan whose drills destroy the cluster a CronJob would run in, naming each."""
    found = [f"{d.entry.id} ({d.scenario.path.name}): {driver} [{family}]"
             for d in drills for driver, family in d.faults if family in CLUSTER_DESTROYING]
    if found:
        raise ExportRefused(
            f"{gameday.path}: a CronJob in the cluster these drills break would die with it: "
            + "; ".join(found)
            + ". Run the CronJob in a separate management cluster instead: --management-cluster and "
              "--kubeconfig-secret: the name of the Secret holding the drilled cluster's kubeconfig (key 'kubeconfig')")


#: Checks that read alerts (any monitoring will do) or PromQL (Prometheus only).
ALERT_CHECKS = ("alert.firing", "alert.absent")
PROMQL_CHECKS = ("promql",)


def monitoring_needs(gameday: GameDay, drills: list[PlannedDrill]) -> tuple[list[str], list[str]]:
    """What in the plan watches alerts, and what queries Prometheus: (alert uses, PromQL uses), each named."""
    alerts: list[str] = []
    promql: list[str] = []
    for d in drills:
        where = f"{d.entry.id} ({d.scenario.path.name})"
        expect = d.scenario.expect
        if expect.alerts:
            alerts.append(f"{where} expects {', '.join(a.name for a in expect.alerts)}")
        if expect.silent:
            alerts.append(f"{where} expects silence from {len(expect.silent)} alert(s)")
        for spec in d.scenario.steps():
            if spec.kind == "check" and spec.driver in ALERT_CHECKS:
                alerts.append(f"{where} checks {spec.driver} ({spec.name})")
            if spec.kind == "check" and spec.driver in PROMQL_CHECKS:
                promql.append(f"{where} checks {spec.driver} ({spec.name})")
        for guard in d.scenario.abort_when:
            (promql if guard.promql is not None else alerts).append(f"{where} aborts on {guard.name or 'a guard'}")
    schedule = gameday.document.schedule
    if schedule is not None and schedule.skip_when_firing:
        alerts.append(f"the schedule skips the day while {', '.join(schedule.skip_when_firing)} fires")
    return alerts, promql


def refuse_unwatched_alerts(gameday: GameDay, drills: list[PlannedDrill], *, target_config: TargetConfig | None,
                            prometheus_url: str | None, alertmanager_url: str | None) -> None:
    """A plan that watches alerts, exported for a job with nothing to watch them on, would fail at run time
    ("has no Prometheus or Alertmanager"): refuse it now (exit 2), naming what needs them and the options."""
    alerts, promql = monitoring_needs(gameday, drills)
    copied_prometheus = target_config.prometheus if target_config is not None else None
    copied_alertmanager = target_config.alertmanager if target_config is not None else None
    prometheus = prometheus_url or (copied_prometheus.url if copied_prometheus else None)
    alertmanager = alertmanager_url or (copied_alertmanager.url if copied_alertmanager else None)
    missing: list[str] = []
    if promql and not prometheus:
        missing = promql + [u for u in alerts if not alertmanager]
        wanted = "--prometheus URL"
    elif alerts and not (prometheus or alertmanager):
        missing = alerts
        wanted = "--prometheus URL and/or --alertmanager URL"
    if missing:
        raise ExportError(f"{gameday.path}: the job would have nothing to watch alerts on: " + "; ".join(missing)
                          + f". Say where the job reaches them: {wanted} (as seen from the pod), or --target a "
                            "kubeconfig target of dirt.yaml that names them")


def blackout_now(gameday: GameDay, now: datetime) -> Blackout | None:
    """The blackout ``now`` falls in, if any: what ``dirt gameday run --trigger schedule`` checks first,
    since neither Kubernetes' nor GitHub's cron can skip dates."""
    from dirt.gameday.schedule import in_blackout  # written alongside; imported when used

    schedule = gameday.document.schedule
    return in_blackout(schedule, now) if schedule is not None else None


def drill_deadline(scenario: Scenario) -> float:
    """The longest a drill may take when every step uses its whole deadline (seconds)."""
    timing = scenario.timing
    default = {"setup": timing.step_within, "backups": timing.step_within,
               "steady_state": timing.steady_state_within, "inject": timing.inject_within,
               "recover": timing.step_within, "verify": timing.verify_within,
               "rollback": timing.step_within, "cleanup": timing.step_within}
    total = sum(spec.within if spec.within is not None else default[section]
                for section in default for spec in getattr(scenario, section))
    alerts = scenario.expect.alerts
    total += max((a.fires_within for a in alerts), default=0.0)
    total += max((a.resolves_within or 0.0 for a in alerts), default=0.0)
    return float(total)


def day_deadline(gameday: GameDay, drills: list[PlannedDrill]) -> int:
    """Seconds a whole game day may take: its drills back to back, the approval, the jitter, a margin."""
    schedule = gameday.document.schedule
    approval = gameday.document.approval
    total = sum(drill_deadline(d.scenario) for d in drills) + DEADLINE_MARGIN
    total += (approval.timeout if approval else 0.0) + (schedule.jitter if schedule else 0.0)
    return int(math.ceil(total))


def _schedule(gameday: GameDay) -> Schedule:
    schedule = gameday.document.schedule
    if schedule is None:
        raise ExportError(f"{gameday.path}: the game day has no schedule; add 'schedule: {{cron: \"0 10 * * 2\", "
                          "timezone: Europe/Berlin}' to export it to a scheduler")
    return schedule


# -- the files the plan needs, in the mounted layout --------------------------------------


@dataclass
class PlanFiles:
    """Every file the game day needs, by its path under the mount (POSIX, relative to the root)."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    gameday: str = ""

    def add(self, path: Path) -> str:
        rel = PurePosixPath(path.resolve().relative_to(self.root).as_posix())
        self.files[str(rel)] = path.resolve()
        return str(rel)


def plan_files(gameday: GameDay, drills: list[PlannedDrill]) -> PlanFiles:
    """The game day, its scenarios, their playbooks and the files their steps name, under one root.

    The root is the game day's project folder (or the common folder of everything, when
    a drill lives elsewhere), so each file keeps its place relative to the others and the
    links inside scenarios (playbooks, manifests) resolve in the pod as they do here.
    """
    needed: list[Path] = [gameday.path.resolve()]
    for drill in drills:
        needed.append(drill.scenario.path)
        needed.extend(_referenced_files(drill.scenario))
    root = Path(os.path.commonpath([project_root(gameday.path.parent), *(p.parent for p in needed)]))
    plan = PlanFiles(root)
    for path in needed:
        plan.add(path)
    plan.gameday = str(PurePosixPath(gameday.path.resolve().relative_to(root).as_posix()))
    return plan


def _referenced_files(scenario: Scenario) -> list[Path]:
    """Playbooks the steps link, and files or folders a step parameter names relative to the scenario.

    A parameter counts when its text (no ``{{ }}`` template) is an existing path from the
    scenario's folder: manifests to redeploy, a script an exec step runs.  Paths inside a
    command line are not found: keep such files next to a parameter that names them, or
    give them as a step's ``path``.
    """
    found: list[Path] = []
    books = [scenario.playbook] + [spec.playbook for spec in scenario.steps()]
    found.extend(Path(book.path) for book in books if book is not None)
    for spec in scenario.steps():
        for value in _strings(spec.params.model_dump()):
            if "{{" in value or "\n" in value or len(value) > 512:
                continue
            candidate = (scenario.path.parent / value).resolve()  # '../apps/x' is a folder, not a hidden one
            if not Path(value).is_absolute() and candidate.exists():
                found.extend(_walk(candidate))
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _walk(path: Path) -> list[Path]:
    """The file, or the files of the folder, hidden ones (``.git``, ``.terraform``) left out below it."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))


def _rewritten_gameday(gameday: GameDay, plan: PlanFiles, drills: list[PlannedDrill]) -> str:
    """The game-day file with each drill's scenario path as it lies in the mounted layout."""
    data = yaml.safe_load(gameday.path.read_text(encoding="utf-8"))
    folder = PurePosixPath(plan.gameday).parent
    by_id = {d.entry.id: d for d in drills}
    for raw, entry in zip(data.get("drills", []), gameday.drills, strict=False):
        rel = PurePosixPath(plan.add(by_id[entry.id].scenario.path))
        raw["scenario"] = os.path.relpath(rel, folder) if str(folder) != "." else str(rel)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120)


def _config_key(rel: str, taken: set[str]) -> str:
    """A ConfigMap key for a file path: keys may not hold '/', so folders are flattened with '__'."""
    key = re.sub(r"[^-._a-zA-Z0-9]", "_", rel.replace("/", "__"))[-200:].lstrip(".") or "file"
    unique, n = key, 1
    while unique in taken:
        n += 1
        unique = f"{n}-{key}"
    taken.add(unique)
    return unique


# -- RBAC derived from the drills ---------------------------------------------------------

Rule = tuple[str, str, tuple[str, ...]]  # (apiGroup, resource, verbs)
_READ = ("get", "list", "watch")
_WRITE = ("get", "list", "watch", "create", "update", "patch", "delete")
#: What the checks and waits of every drill read.
BASE_RULES: tuple[Rule, ...] = (
    ("", "pods", _READ), ("", "nodes", _READ), ("", "namespaces", _READ), ("", "services", _READ),
    ("", "endpoints", _READ), ("", "events", _READ), ("", "configmaps", _READ),
    ("apps", "deployments", _READ), ("apps", "statefulsets", _READ), ("apps", "daemonsets", _READ),
    ("apps", "replicasets", _READ),
)
#: Driver (kind, name) -> the rules it needs in the drilled cluster.
DRIVER_RULES: dict[tuple[str, str], tuple[Rule, ...]] = {
    ("fault", "pods.delete"): (("", "pods", ("delete",)),),
    ("fault", "deployment.scale"): (("apps", "deployments", ("patch", "update")), ("apps", "statefulsets",
                                    ("patch", "update")), ("apps", "deployments/scale", ("get", "patch", "update")),
                                    ("apps", "statefulsets/scale", ("get", "patch", "update"))),
    ("fault", "namespace.delete"): (("", "namespaces", ("delete", "create")),),
    ("fault", "node.cordon"): (("", "nodes", ("patch", "update")),),
    ("fault", "node.drain"): (("", "nodes", ("patch", "update")), ("", "pods/eviction", ("create",)),
                              ("", "pods", ("delete",))),
    ("fault", "node.delete"): (("", "nodes", ("delete", "create", "patch", "update")),),
    ("fault", "network.deny"): (("networking.k8s.io", "networkpolicies", _WRITE),),
    ("step", "namespace.delete"): (("", "namespaces", ("delete",)),),
    ("step", "redeploy"): (("*", "*", _WRITE),),
    ("step", "backup.restore"): (("*", "*", _WRITE),),
    ("backup", "resources"): (("*", "*", _READ),),
    ("backup", "velero"): (("velero.io", "*", _WRITE),),
    ("check", "objects.match_backup"): (("*", "*", _READ),),
    ("check", "controllers.responsive"): (("apps", "deployments", ("create", "delete")),),  # its canary
}
#: Drivers whose rights cannot be read from their parameters: named in the RBAC notes.
OPAQUE_DRIVERS = ("exec", "ctk", "playbook.run", "container.kill", "node.poweroff")
LOCK_RULES = (  # the drill lock (dirt.engine.lock): a Lease kube-system/dirt-drill-lock
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["dirt-drill-lock"],
     "verbs": ["get", "update", "patch", "delete"]},
)


def rbac_rules(drills: list[PlannedDrill]) -> tuple[list[dict[str, Any]], list[str]]:
    """ClusterRole rules for what the drills' steps do, and notes on what could not be derived."""
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for group, resource, verbs in BASE_RULES:
        wanted[(group, resource)].update(verbs)
    notes: list[str] = []
    for drill in drills:
        for spec in drill.scenario.steps():
            for group, resource, verbs in DRIVER_RULES.get((spec.kind, spec.driver), ()):
                wanted[(group, resource)].update(verbs)
            if spec.driver in OPAQUE_DRIVERS:
                notes.append(f"{drill.entry.id}: {spec.kind} {spec.driver!r} ({spec.name}) does what its command "
                             "or playbook says; grant what that needs by hand")
    if ("*", "*") in wanted:  # one wildcard rule covers the rest
        wanted = {("*", "*"): wanted[("*", "*")] | {v for verbs in wanted.values() for v in verbs}}
    rules = []
    order = {v: i for i, v in enumerate(_WRITE)}
    for (group, resource), verbs in sorted(wanted.items()):
        rules.append({"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs, key=order.get)})
    return _merged_rules(rules), sorted(set(notes))


def _merged_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rules of one API group with the same verbs, as one rule (shorter to read and review)."""
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for rule in rules:
        merged.setdefault((rule["apiGroups"][0], tuple(rule["verbs"])), []).extend(rule["resources"])
    return [{"apiGroups": [group], "resources": resources, "verbs": list(verbs)}
            for (group, verbs), resources in merged.items()]


# -- the CronJob ---------------------------------------------------------------------------


def _object_name(name: str, limit: int = 52) -> str:
    """``dirt-gameday-<name>`` within a CronJob name's 52 characters (a hash keeps long ones apart)."""
    full = f"dirt-gameday-{name}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{full[:limit - 9].rstrip('-')}-{digest}"


def _target_names(gameday: GameDay, drills: list[PlannedDrill]) -> list[str]:
    names = [gameday.document.target] + [d.entry.target or d.scenario.target for d in drills]
    seen = [n for n in dict.fromkeys(names) if n]
    return seen or ["in-cluster"]


def _dirt_yaml(gameday: GameDay, drills: list[PlannedDrill], *, kubeconfig: str, management_cluster: bool,
               through_secret: bool,
               target_config: TargetConfig | None, prometheus_url: str | None,
               alertmanager_url: str | None, history: str | None, history_password_env: str | None) -> str:
    """dirt.yaml for the pod: each target the plan names, pointing at the drilled cluster.

    ``confirm`` is off (nobody is there to type the cluster's name); ``allow`` is the
    families the drills use, unless the named target has its own list (then it stays the
    user's guardrail).  Only references to secrets are copied, never their values.
    """
    families = sorted({f for d in drills for f in d.families} - {"none"})
    target: dict[str, Any] = {"provider": "kubeconfig",
                              "description": ("the drilled cluster, through the kubeconfig Secret" if through_secret
                                              else "this cluster, as the CronJob's ServiceAccount"),
                              "allow": families, "confirm": False}
    settings: dict[str, Any] = {}
    if target_config is not None:
        if target_config.provider != "kubeconfig":
            raise ExportError(f"target provider {target_config.provider!r} cannot run inside a pod; "
                              "name a 'kubeconfig' target (its commands, Prometheus and allow list are copied)")
        dumped = target_config.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        target.update({k: v for k, v in dumped.items() if k in ("allow", "prometheus", "alertmanager", "description")})
        settings = {k: v for k, v in target_config.settings.items() if k != "kubeconfig"}
        if not management_cluster:
            settings.pop("context", None)
    for key, url in (("prometheus", prometheus_url), ("alertmanager", alertmanager_url)):
        if url:
            target[key] = {**target.get(key, {}), "url": url}
    settings["kubeconfig"] = kubeconfig
    target["settings"] = settings
    names = _target_names(gameday, drills)
    document: dict[str, Any] = {"default_target": names[0], "reports_dir": REPORTS_MOUNT}
    if history:  # a shared store (PostgreSQL): the default SQLite file would live in the reports volume
        document["history"] = history
        if history_password_env:
            document["history_password_env"] = history_password_env
    document["targets"] = {name: target for name in names}
    head = ("# dirt.yaml for the scheduled game day (written by dirt gameday export; secrets by reference only)\n")
    return head + yaml.safe_dump(document, sort_keys=False, width=120)


def _in_cluster_kubeconfig(namespace: str) -> str:
    """A kubeconfig that reads the pod's ServiceAccount token from its file: no secret in the ConfigMap."""
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "in-cluster",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": "https://kubernetes.default.svc", "certificate-authority": f"{SERVICE_ACCOUNT_DIR}/ca.crt"}}],
        "users": [{"name": "dirt", "user": {"tokenFile": f"{SERVICE_ACCOUNT_DIR}/token"}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "dirt",
                                                        "namespace": namespace}}],
    }, sort_keys=False)


def _secret_envs(gameday: GameDay, target_config: TargetConfig | None) -> list[str]:
    """Environment variables the run reads secrets from (webhooks, tokens): for the Secret the user names."""
    names: list[str | None] = []
    for notify in gameday.document.notify:
        names += [notify.url_env, notify.bearer_token_env]
    if gameday.document.approval:
        names += [gameday.document.approval.webhook_env, gameday.document.approval.bearer_token_env]
    if target_config is not None:
        for endpoint in (target_config.prometheus, target_config.alertmanager):
            if endpoint is not None:
                names += [endpoint.bearer_token_env, endpoint.password_env]
    return sorted({n for n in names if n})


@dataclass(frozen=True)
class Placement:
    """Where the job's pod runs and how it reaches things: nodes, tolerations, the host's network."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, str], ...] = ()
    host_network: bool = False


def cronjob(gameday: GameDay, *, image: str, namespace: str = "dirt", management_cluster: bool = False,
            kubeconfig_secret: str | None = None, reports_pvc: str | None = None, reports_host_path: str | None = None,
            env_secret: str | None = None, target_config: TargetConfig | None = None,
            prometheus_url: str | None = None, alertmanager_url: str | None = None,
            history: str | None = None, history_password_env: str | None = None,
            starting_deadline: int | None = None, history_limits: tuple[int, int] = (3, 5),
            placement: Placement | None = None, registry: Registry | None = None) -> str:
    """The game day as Kubernetes objects (YAML, several documents), ready for ``kubectl apply -n NAMESPACE``.

    ConfigMap (the plan and dirt.yaml), ServiceAccount, RBAC derived from the drills
    (only when the job acts as its ServiceAccount: through a kubeconfig Secret the
    kubeconfig's identity holds the rights), and the CronJob.  Reports and the run
    history (SQLite beside them unless dirt.yaml names PostgreSQL) go to the PVC
    ``reports_pvc`` or the node's folder ``reports_host_path``, else to an emptyDir
    that is lost with the pod.  The cron is the game day's where Kubernetes can say
    it, else a superset (``dirt.gameday.cron``) whose extra times the job itself
    declines (``dirt gameday run --trigger schedule``).  A plan whose drills expect
    alerts is refused unless the job has a Prometheus or Alertmanager to watch.
    """
    schedule = _schedule(gameday)
    if management_cluster and not kubeconfig_secret:
        raise ExportError("--management-cluster needs --kubeconfig-secret: the name of the Secret (in the CronJob's "
                          "namespace) that holds the drilled cluster's kubeconfig under the key 'kubeconfig'")
    if reports_pvc and reports_host_path:
        raise ExportError("give --reports-pvc or --reports-host-path, not both")
    if reports_host_path is not None and not PurePosixPath(reports_host_path).is_absolute():
        raise ExportError(f"--reports-host-path {reports_host_path!r}: give an absolute path on the node")
    drills = plan_drills(gameday, registry)
    if not management_cluster:
        refuse_in_cluster(gameday, drills)
    refuse_unwatched_alerts(gameday, drills, target_config=target_config, prometheus_url=prometheus_url,
                            alertmanager_url=alertmanager_url)
    through_secret = kubeconfig_secret is not None
    placement = placement or Placement()
    plan = plan_files(gameday, drills)
    name = _object_name(gameday.name)
    labels = {f"{LABEL}/name": "dirt", f"{LABEL}/component": "gameday", f"{LABEL}/instance": gameday.name[:63]}
    kubeconfig = (f"{KUBECONFIG_MOUNT}/kubeconfig" if through_secret
                  else f"{PLAN_MOUNT}/{IN_CLUSTER_KUBECONFIG}")
    rules, notes = rbac_rules(drills)

    data: dict[str, str] = {}
    items: list[dict[str, str]] = []
    taken = {"dirt.yaml", IN_CLUSTER_KUBECONFIG}
    gameday_text = _rewritten_gameday(gameday, plan, drills)
    for rel, path in sorted(plan.files.items()):
        key = _config_key(rel, taken)
        data[key] = gameday_text if rel == plan.gameday else _text(path)
        items.append({"key": key, "path": rel})
    data["dirt.yaml"] = _dirt_yaml(gameday, drills, kubeconfig=kubeconfig, management_cluster=management_cluster,
                                   through_secret=through_secret, target_config=target_config,
                                   prometheus_url=prometheus_url,
                                   alertmanager_url=alertmanager_url, history=history,
                                   history_password_env=history_password_env)
    items.append({"key": "dirt.yaml", "path": "dirt.yaml"})
    if not through_secret:
        data[IN_CLUSTER_KUBECONFIG] = _in_cluster_kubeconfig(namespace)
        items.append({"key": IN_CLUSTER_KUBECONFIG, "path": IN_CLUSTER_KUBECONFIG})
    size = sum(len(v.encode()) + len(k) for k, v in data.items())
    if size > CONFIGMAP_LIMIT:
        raise ExportError(f"{gameday.path}: the plan's files come to {size} bytes; a ConfigMap holds at most "
                          f"{CONFIGMAP_LIMIT} (bake them into the image instead)")

    meta = {"name": name, "namespace": namespace, "labels": labels}
    documents: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta,
         "automountServiceAccountToken": not through_secret},
    ]
    if not through_secret:
        documents += _rbac_documents(name, namespace, labels, rules)
    deadline = starting_deadline if starting_deadline is not None else int(math.ceil(schedule.starting_deadline))
    documents.append(_cronjob_document(
        gameday, schedule, meta, labels, image=image, plan=plan, items=items, reports_pvc=reports_pvc,
        reports_host_path=reports_host_path, kubeconfig_secret=kubeconfig_secret, env_secret=env_secret,
        deadline=day_deadline(gameday, drills), starting_deadline=deadline, history_limits=history_limits,
        placement=placement))
    header = _cronjob_header(gameday, schedule, namespace, management_cluster=management_cluster,
                             kubeconfig_secret=kubeconfig_secret,
                             reports_pvc=reports_pvc, reports_host_path=reports_host_path,
                             secret_envs=_secret_envs(gameday, target_config) + ([history_password_env]
                                                                                 if history_password_env else []),
                             env_secret=env_secret, notes=notes, rules=rules)
    return header + yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ExportError(f"{path}: not UTF-8 text; a plan's files go in a ConfigMap as text") from None


def _rbac_documents(name: str, namespace: str, labels: dict[str, str],
                    rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]
    cluster_meta = {"name": name, "labels": labels}
    lock_meta = {"name": name, "namespace": "kube-system", "labels": labels}
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": cluster_meta,
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": cluster_meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": subject},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": lock_meta,
         "rules": list(LOCK_RULES)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": lock_meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": subject},
    ]


def _cronjob_document(gameday: GameDay, schedule: Schedule, meta: dict[str, Any], labels: dict[str, str], *,
                      image: str, plan: PlanFiles, items: list[dict[str, str]], reports_pvc: str | None,
                      reports_host_path: str | None, kubeconfig_secret: str | None, env_secret: str | None,
                      deadline: int, starting_deadline: int, history_limits: tuple[int, int],
                      placement: Placement) -> dict[str, Any]:
    mounts = [{"name": "plan", "mountPath": PLAN_MOUNT, "readOnly": True},
              {"name": "reports", "mountPath": REPORTS_MOUNT},
              {"name": "tmp", "mountPath": "/tmp"},
              {"name": "state", "mountPath": "/state"}]
    volumes: list[dict[str, Any]] = [
        {"name": "plan", "configMap": {"name": meta["name"], "items": items}},
        {"name": "reports", **_reports_volume(reports_pvc, reports_host_path)},
        {"name": "tmp", "emptyDir": {}},
        {"name": "state", "emptyDir": {}},
    ]
    if kubeconfig_secret:
        mounts.append({"name": "kubeconfig", "mountPath": KUBECONFIG_MOUNT, "readOnly": True})
        volumes.append({"name": "kubeconfig", "secret": {"secretName": kubeconfig_secret,
                                                         "items": [{"key": "kubeconfig", "path": "kubeconfig"}]}})
    container: dict[str, Any] = {
        "name": "dirt", "image": image, "imagePullPolicy": "IfNotPresent", "workingDir": PLAN_MOUNT,
        "command": ["dirt", "gameday", "run", f"{PLAN_MOUNT}/{plan.gameday}", "--trigger", "schedule"],
        "env": [{"name": "DIRT_CONFIG", "value": f"{PLAN_MOUNT}/dirt.yaml"}, {"name": "HOME", "value": "/tmp"},
                {"name": "XDG_STATE_HOME", "value": "/state"}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    if env_secret:
        container["envFrom"] = [{"secretRef": {"name": env_secret}}]
    pod: dict[str, Any] = {
        "serviceAccountName": meta["name"], "automountServiceAccountToken": not kubeconfig_secret,
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": NON_ROOT_UID, "runAsGroup": NON_ROOT_UID,
                            "fsGroup": NON_ROOT_UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container], "volumes": volumes,
    }
    if placement.host_network:  # e.g. an API server, Prometheus and Alertmanager on the node's 127.0.0.1
        pod["hostNetwork"] = True
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    if placement.node_selector:
        pod["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod["tolerations"] = [dict(t) for t in placement.tolerations]
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
        "spec": {
            "schedule": kubernetes_cron(schedule), "timeZone": schedule.timezone, "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": starting_deadline,
            "successfulJobsHistoryLimit": history_limits[0], "failedJobsHistoryLimit": history_limits[1],
            "jobTemplate": {"metadata": {"labels": labels}, "spec": {
                "backoffLimit": 0, "activeDeadlineSeconds": deadline,
                "template": {"metadata": {"labels": labels}, "spec": pod}}},
        },
    }


def _reports_volume(pvc: str | None, host_path: str | None) -> dict[str, Any]:
    if pvc:
        return {"persistentVolumeClaim": {"claimName": pvc}}
    if host_path:
        return {"hostPath": {"path": host_path, "type": "DirectoryOrCreate"}}
    return {"emptyDir": {}}


def kubernetes_cron(schedule: Schedule) -> str:
    """The CronJob's schedule: the game day's cron where Kubernetes can read it, else its superset."""
    cron = parse_cron(schedule.cron)
    return schedule.cron if cron.exact else cron.standard()


def _superset_lines(schedule: Schedule, scheduler_cron: str, special: list[str]) -> list[str]:
    return [f"{schedule.cron!r} uses {', '.join(special)}, which this scheduler's cron cannot say: it fires on "
            f"{scheduler_cron!r}, a superset,",
            "and `dirt gameday run --trigger schedule` runs only for a real slot (within the jitter and "
            f"starting_deadline {format_duration(schedule.starting_deadline)}); at other times it exits 0, "
            "'not a scheduled slot'."]


def _cronjob_header(gameday: GameDay, schedule: Schedule, namespace: str, *, management_cluster: bool,
                    kubeconfig_secret: str | None,
                    reports_pvc: str | None, reports_host_path: str | None, secret_envs: list[str],
                    env_secret: str | None, notes: list[str],
                    rules: list[dict[str, Any]]) -> str:
    lines = [f"dirt game day {gameday.name!r} as a Kubernetes CronJob (dirt gameday export --cronjob)",
             f"Apply: kubectl create namespace {namespace}; kubectl apply -f THIS_FILE",
             f"Schedule: {schedule.cron} in {schedule.timezone}. Blackouts are checked by the job itself at start",
             "(dirt gameday run --trigger schedule skips inside one); Kubernetes applies no jitter.",
             "concurrencyPolicy Forbid; a run more than startingDeadlineSeconds late is skipped, not started."]
    cron = parse_cron(schedule.cron)
    if not cron.exact:
        lines += _superset_lines(schedule, cron.standard(), cron.special)
    if reports_pvc:
        lines.append(f"Reports and run history: PVC {reports_pvc!r}.")
    elif reports_host_path:
        lines.append(f"Reports and run history: {reports_host_path} on the node (hostPath; the folder must be "
                     f"writable by uid {NON_ROOT_UID}).")
    else:
        lines.append("Reports: an emptyDir, lost with the pod: name a PVC (--reports-pvc) or keep the history in "
                     "PostgreSQL (history: in dirt.yaml) to keep them.")
    if kubeconfig_secret:
        where = "in a management cluster" if management_cluster else "in the drilled cluster"
        lines += [f"Runs {where}: the drilled cluster is reached through the kubeconfig in Secret "
                  f"{kubeconfig_secret!r} (key 'kubeconfig'); its identity there needs these rights:"]
        lines += [f"  {rule['apiGroups'][0] or 'core'}: {', '.join(rule['resources'])}: {', '.join(rule['verbs'])}"
                  for rule in rules]
        lines += ["  coordination.k8s.io leases kube-system/dirt-drill-lock (the drill lock)"]
    if secret_envs:
        where = f"from Secret {env_secret!r} (envFrom)" if env_secret else "NOT SET: pass --env-secret NAME"
        lines.append(f"Secrets read from the environment ({where}): {', '.join(secret_envs)}")
    if notes:
        lines += ["RBAC not derived from parameters:"] + [f"  {n}" for n in notes]
    return "".join(f"# {line}\n" for line in lines)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the plan's files) as literal blocks, readable in the ConfigMap; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str_block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_block)


# -- cron in other terms: UTC (GitHub) and OnCalendar (systemd) -------------------------


@dataclass(frozen=True)
class CronFields:
    """A five-field cron expression, each field a sorted list of values, None for '*'."""

    minutes: list[int] | None
    hours: list[int] | None
    days: list[int] | None
    months: list[int] | None
    weekdays: list[int] | None  # 0 = Sunday


def cron_fields(cron: str) -> CronFields:
    """The fields of the plain cron a scheduler gets: the game day's, or its superset where the game day's
    uses what plain cron cannot say (``2#1``, ``L``, ``15W``: see ``dirt.gameday.cron``)."""
    try:
        fields = parse_cron(cron).standard_fields()
    except CronError as exc:
        raise ExportError(str(exc)) from None
    return CronFields(*(list(values) if values is not None else None for values in fields))


@dataclass(frozen=True)
class UtcCron:
    """A UTC cron and the UTC offsets (minutes east) of the zone for which it is the game day's time."""

    cron: str
    offsets: tuple[int, ...]


def zone_offsets(timezone_name: str, *, now: datetime | None = None) -> list[int]:
    """The UTC offsets (minutes east) a zone has over the year from ``now``: two with DST, else one."""
    try:
        zone = ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ExportError(f"time zone {timezone_name!r} is not an IANA zone (e.g. Europe/Berlin)") from None
    start = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(hour=12, minute=0, second=0,
                                                                                 microsecond=0)
    seen = set()
    for day in range(367):
        offset = (start + timedelta(days=day)).astimezone(zone).utcoffset()
        seen.add(int(offset.total_seconds() // 60) if offset is not None else 0)
    return sorted(seen)


def utc_crons(schedule: Schedule, *, now: datetime | None = None) -> list[UtcCron]:
    """The schedule's cron in UTC, for each offset its zone has; crons equal for both offsets are merged.

    A time that moves to another day in UTC moves its day-of-week (or day-of-month) too;
    where that cannot be said in cron (a restricted month, the first or the last days of a
    month) the export is refused with the reason rather than run on the wrong day.
    """
    fields = cron_fields(schedule.cron)
    by_cron: dict[str, list[int]] = {}
    for offset in zone_offsets(schedule.timezone, now=now):
        for cron in _shifted(fields, offset, schedule.cron):
            by_cron.setdefault(cron, []).append(offset)
    return [UtcCron(cron, tuple(offsets)) for cron, offsets in by_cron.items()]


def _shifted(fields: CronFields, offset: int, original: str) -> list[str]:
    """The crons (UTC) that fire when ``fields`` fire in a zone ``offset`` minutes east of UTC."""
    grouped: dict[tuple[str, str, str], dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for hour in fields.hours or range(24):
        for minute in fields.minutes or range(60):
            shift, utc = divmod(hour * 60 + minute - offset, 1440)
            grouped[_shifted_days(fields, shift, original)][utc % 60].add(utc // 60)
    crons = []
    for (days, months, weekdays), by_minute in grouped.items():
        by_hours: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for minute, hours in sorted(by_minute.items()):
            by_hours[tuple(sorted(hours))].append(minute)
        for hours, minutes in by_hours.items():
            crons.append(f"{_compact(minutes, range(60))} {_compact(list(hours), range(24))} {days} {months} "
                         f"{weekdays}")
    return crons


def _shifted_days(fields: CronFields, shift: int, original: str) -> tuple[str, str, str]:
    months = _compact(fields.months, range(1, 13))
    if shift == 0 or (fields.days is None and fields.weekdays is None):
        if shift and fields.months is not None:
            raise ExportError(f"cron {original!r}: in UTC its time falls on another day, and with a restricted "
                              "month the first or last day would be wrong; choose a time that stays on the same "
                              "day in UTC")
        return _compact(fields.days, range(1, 32)), months, _compact(fields.weekdays, range(7))
    if fields.months is not None:
        raise ExportError(f"cron {original!r}: in UTC its time falls on another day, which a restricted month "
                          "cannot follow across month ends; choose a time that stays on the same day in UTC")
    days = fields.days
    if days is not None:
        if (shift > 0 and max(days) >= 28) or (shift < 0 and min(days) <= 1):
            raise ExportError(f"cron {original!r}: in UTC its time falls on another day, and a day of month near "
                              "the month's end or start has no UTC day-of-month; choose a time that stays on the "
                              "same day in UTC")
        days = [d + shift for d in days]
    weekdays = sorted({(d + shift) % 7 for d in fields.weekdays}) if fields.weekdays is not None else None
    return _compact(days, range(1, 32)), months, _compact(weekdays, range(7))


def on_calendar(cron: str, timezone_name: str) -> list[str]:
    """systemd ``OnCalendar=`` values for a cron in a time zone: one per group of days (cron ORs its day
    fields, systemd ANDs them); ``2#1`` and ``L`` exactly, ``15W`` as a superset (``dirt.gameday.cron``)."""
    try:
        parsed = parse_cron(cron)
    except CronError as exc:
        raise ExportError(str(exc)) from None
    return parsed.on_calendar(ZoneInfo(timezone_name).key if timezone_name else "UTC")


# -- GitHub Actions ------------------------------------------------------------------------


def github_actions(gameday: GameDay, *, python_version: str = "3.11", dirt_requirement: str = "dirt",
                   kind_cluster: str = "dirt", report_dir: str = "reports", now: datetime | None = None,
                   registry: Registry | None = None) -> str:
    """A scheduled workflow: the game day on a kind cluster in a GitHub runner, reports as an artifact.

    The game day's path is taken relative to its project folder, which is the repository's
    root in the checkout; dirt.yaml there must define the game day's target (a ``kind``
    target named after ``kind_cluster``).  GitHub's cron is UTC only and plain: the
    workflow fires on a superset of the game day's times (both seasons' crons, every
    Tuesday for ``2#1``), and a guard step, before any kind cluster is made, lets a
    scheduled run through only when its cron is the one of today's UTC offset and
    ``dirt gameday due`` finds a real slot.  The run is told the moment the guard
    checked (``--started-at``), so a slow setup does not push it out of its slot.
    """
    schedule = _schedule(gameday)
    crons = utc_crons(schedule, now=now)
    drills = plan_drills(gameday, registry)
    repo_root = project_root(gameday.path.parent)
    path = gameday.path.resolve().relative_to(repo_root).as_posix()
    offsets = sorted({o for c in crons for o in c.offsets})
    run_if = "steps.guard.outputs.run == 'true'"

    def step(**fields: Any) -> dict[str, Any]:
        return {**fields, "if": run_if}

    guard = ["set -euo pipefail",
             'if [ "$EVENT" != "schedule" ]; then echo "run=true" >> "$GITHUB_OUTPUT"; exit 0; fi']
    if len(offsets) > 1:
        cases = "\n".join(f"  '{c.cron}') want='{' '.join(_offset_text(o, compact=True) for o in c.offsets)}' ;;"
                          for c in crons)
        guard += ['case "$SCHEDULE" in', cases, "  *) want='' ;;", "esac",
                  'now=$(TZ="$ZONE" date +%z)',
                  'if [[ " $want " != *" $now "* ]]; then',
                  '  echo "UTC offset $now: this cron is the other season\'s"',
                  '  echo "run=false" >> "$GITHUB_OUTPUT"; exit 0',
                  "fi"]
    guard += ['echo "started_at=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)" >> "$GITHUB_OUTPUT"',
              f"status=0; dirt gameday due {_sh(path)} || status=$?",
              'case "$status" in',
              '  0) echo "run=true" >> "$GITHUB_OUTPUT" ;;',
              '  1) echo "run=false" >> "$GITHUB_OUTPUT" ;;',
              '  *) exit "$status" ;;',
              "esac"]
    steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": python_version}},
        {"name": "Install dirt", "shell": "bash", "env": {"DIRT_REQUIREMENT": dirt_requirement},
         "run": 'set -euo pipefail\npython -m pip install "$DIRT_REQUIREMENT"\n'},
        {"name": "Run only in a real slot of the game day's schedule", "id": "guard", "shell": "bash",
         "env": {"EVENT": "${{ github.event_name }}", "SCHEDULE": "${{ github.event.schedule }}",
                 "ZONE": schedule.timezone},
         "run": "\n".join(guard) + "\n"},
        step(name="Create the kind cluster", uses="helm/kind-action@v1", **{"with": {"cluster_name": kind_cluster}}),
        step(name="Run the game day", shell="bash",
             env={"TRIGGER": "${{ github.event_name == 'schedule' && 'schedule' || 'manual' }}",
                  "STARTED_AT": "${{ steps.guard.outputs.started_at }}",
                  "APPROVED_BY": "${{ inputs.approved_by }}"},
             run="set -euo pipefail\nargs=(--trigger \"$TRIGGER\")\n"
                 'if [ "$TRIGGER" = schedule ]; then args+=(--started-at "$STARTED_AT"); fi\n'
                 'if [ -n "${APPROVED_BY:-}" ]; then args+=(--approved-by "$APPROVED_BY"); fi\n'
                 f"dirt gameday run {_sh(path)} --report-dir {_sh(report_dir)} \"${{args[@]}}\"\n"),
        {"name": "Upload the reports", "uses": "actions/upload-artifact@v4",
         "if": f"always() && {run_if}",
         "with": {"name": f"dirt-gameday-{gameday.name}", "path": report_dir, "if-no-files-found": "warn"}},
    ]
    workflow = {
        "name": f"dirt game day {gameday.name}",
        "on": {"schedule": [{"cron": c.cron} for c in crons],
               "workflow_dispatch": {"inputs": {"approved_by": {
                   "description": "Who approves this run (recorded in the report)", "required": False,
                   "type": "string"}}}},
        "permissions": {"contents": "read"},
        "concurrency": {"group": f"dirt-gameday-{gameday.name}", "cancel-in-progress": False},
        "jobs": {"gameday": {"runs-on": "ubuntu-latest",
                             "timeout-minutes": math.ceil(day_deadline(gameday, drills) / 60),
                             "steps": steps}},
    }
    lines = [f"dirt game day {gameday.name!r} as a scheduled GitHub Actions workflow (dirt gameday export "
             "--github-actions)",
             f"The game day's schedule: {schedule.cron} in {schedule.timezone}. GitHub's cron is UTC only:"]
    for c in crons:
        lines.append(f"  {c.cron:<20} UTC is that time while {schedule.timezone} is at "
                     + " or ".join(_offset_text(o) for o in c.offsets))
    cron = parse_cron(schedule.cron)
    if not cron.exact:
        lines += _superset_lines(schedule, cron.standard(), cron.special)
    if len(offsets) > 1:
        lines.append("Both seasons' crons are listed; the guard step lets through only the one whose UTC offset "
                     "holds that day (github.event.schedule says which cron fired).")
    lines += ["The guard asks `dirt gameday due` before the kind cluster is made: GitHub may start a scheduled run",
              f"late under load; later than starting_deadline ({format_duration(schedule.starting_deadline)}) the "
              "day is not run. Blackouts are checked by the run itself; GitHub applies no jitter."]
    header = "".join(f"# {line}\n" for line in lines)
    return header + yaml.dump(workflow, Dumper=_Dumper, sort_keys=False, width=120)


def _offset_text(minutes: int, *, compact: bool = False) -> str:
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{rest:02d}" if compact else f"UTC{sign}{hours:02d}:{rest:02d}"


def _sh(text: str) -> str:
    return shlex.quote(text)


# -- systemd ------------------------------------------------------------------------------


def systemd(gameday: GameDay, *, executable: str | None = None, user: str | None = None,
            config: Path | None = None, registry: Registry | None = None) -> dict[str, str]:
    """``dirt-gameday-<name>.service`` (oneshot) and its ``.timer``, by file name.

    The service runs in the game day's project folder, as ``user`` when given (a
    dedicated account with the drilled cluster's kubeconfig is the intent).
    """
    schedule = _schedule(gameday)
    calendars = on_calendar(schedule.cron, schedule.timezone)
    drills = plan_drills(gameday, registry)
    root = project_root(gameday.path.parent)
    program = executable or shutil.which("dirt") or "/usr/local/bin/dirt"
    command = [program] + (["--config", str(config.resolve())] if config else []) + \
        ["gameday", "run", str(gameday.path.resolve()), "--trigger", "schedule"]
    unit = f"dirt-gameday-{gameday.name}"
    service = [
        "[Unit]",
        f"Description=dirt game day {gameday.name}",
        "Documentation=man:systemd.timer(5)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        *([f"User={user}"] if user else []),
        f"WorkingDirectory={_unit_quote(str(root))}",
        f"ExecStart={' '.join(_unit_quote(part) for part in command)}",
        f"TimeoutStartSec={day_deadline(gameday, drills)}",
        "NoNewPrivileges=yes",
        "",
    ]
    cron = parse_cron(schedule.cron)
    note = ([f"# {line}" for line in _superset_lines(schedule, "the OnCalendar values below", cron.special)]
            if not cron.exact_in_systemd else [])
    timer = [
        *note,
        "[Unit]",
        f"Description=dirt game day {gameday.name}: {schedule.cron} in {schedule.timezone}"
        " (blackouts: checked by the run)",
        "",
        "[Timer]",
        *(f"OnCalendar={value}" for value in calendars),
        "Persistent=true",
        f"Unit={unit}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return {f"{unit}.service": "\n".join(service), f"{unit}.timer": "\n".join(timer)}


def _unit_quote(text: str) -> str:
    """A word of ExecStart=: quoted when it holds spaces or quotes, '%' doubled (systemd specifiers)."""
    text = text.replace("%", "%%")
    if re.search(r"[\s\"'\\;]", text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


__all__ = ["CLUSTER_DESTROYING", "ExportError", "ExportRefused", "PlannedDrill", "UtcCron", "CronFields",
           "plan_drills", "refuse_in_cluster", "blackout_now", "drill_deadline", "day_deadline", "plan_files",
           "rbac_rules", "cronjob", "cron_fields", "utc_crons", "zone_offsets", "on_calendar", "github_actions",
           "systemd"]

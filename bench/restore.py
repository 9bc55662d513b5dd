"""Benchmark: how fast a namespace's objects come back — kubectl vs dirt vs Velero, against the API server's ceiling.

A namespace-restore drill is only as quick as the restore it runs, so this measures
restores on the real sandbox (a real kube-apiserver and etcd, KWOK nodes), each from
the same empty state (the namespaces deleted and gone, the CRD kept):

* ``kubectl apply -R -f DIR`` and ``kubectl apply --server-side -R -f DIR``: what a
  person restoring from a folder of YAML does;
* dirt's ``resources`` backup: its export and its restore (server-side apply fanned
  out over the driver's default concurrency), timed separately;
* Velero: a Backup and a Restore (both to phase Completed), when the sandbox runs a
  Velero server (``Sandbox(velero=True)``); otherwise that row says why it is missing;
* the ceiling: plain concurrent POSTs of the same objects (as many workers as dirt's
  restore, the same client) — the fastest this API server takes these objects in;
  and the same loop with server-side apply for POST, which tells what server-side
  apply costs from what dirt's restore adds (reading files, waves, waits).

The objects: N of them (``--objects``) spread over ``--namespaces`` namespaces, 30 %
ConfigMaps, 30 % Secrets, 10 % headless Services (the sandbox's Service range has
only ~250 cluster IPs), 10 % Deployments and 20 % Widgets (custom resources of a CRD
this script installs).  Deployments have ``replicas: 0``: their Pods are the
controllers' work after any restore, not the restore's, and on a 2-core machine the
scheduling and KWOK status writes of N/10 Pods would land in whichever method runs
next (their ReplicaSets, one write each, are still made during every method).  DIR
holds one YAML file per object (as dirt's export does), Namespaces first.  An untimed
round of POSTs runs first, while the API server is still busy with the new CRD.

After every restore each namespace's count of each kind must equal what was
generated (a restore that brings back nothing is fast and worthless): any
difference stops the benchmark.  The CPU the client, kube-apiserver and etcd spent
in each method, and etcd's WAL fsyncs, are shown beside it; dirt's restore is then
broken into its phases (reading the export, CRDs, Namespaces, the apply fan-out) and
run once more under cProfile (every worker thread) to show where its time goes.
Memory: dirt's export and its restore each run once more in a process of their own
(this script's ``--memory-child``), whose peak RSS is shown against a process that
only made the client and did its API discovery; the MiB per 1,000 objects above that
baseline says whether a restore's memory grows with the backup (``make bench-sandbox``
runs 20,000 objects for it).

The sandbox: the one in ``$DIRT_SANDBOX_HOME`` when that is set (used as it is if it
runs; else brought up, and down at the end), otherwise a new one in a temp folder.
Only the binary cache is shared.  It runs Velero when this dirt's ``Sandbox`` can
and Velero's binaries are built (``dirt sandbox build --velero``).

Run: .venv/bin/python bench/restore.py [--objects 2000] [--namespaces 4] [--skip velero,kubectl,memory]
                                       [--runs 3] [--sweep 16,32] [--json]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import inspect
import json
import os
import pstats
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the scripts' shared helpers

import dirt.drivers.resources as resources  # noqa: E402
from dirt.clients import http  # noqa: E402
from dirt.clients.commands import run  # noqa: E402
from dirt.clients.kube import KubeClient  # noqa: E402
from dirt.core.errors import APINotFoundError, DirtError, KubeError  # noqa: E402
from dirt.recovery.resources import ResourcesParams  # noqa: E402
from dirt.sandbox.cluster import Sandbox  # noqa: E402
from measure import module_run  # noqa: E402

GROUP = "bench.dirt.dev"
LABEL = f"{GROUP}/object"
NS_PREFIX = "dirt-bench"
#: The mix, one kind per object in turn: 30 % ConfigMap, 30 % Secret, 10 % Service, 10 % Deployment, 20 % Widget.
MIX = ("ConfigMap", "ConfigMap", "ConfigMap", "Secret", "Secret", "Secret", "Service", "Deployment", "Widget",
       "Widget")
API_VERSIONS = {"ConfigMap": "v1", "Secret": "v1", "Service": "v1", "Deployment": "apps/v1", "Widget": f"{GROUP}/v1"}
#: dirt's restore concurrency, as a drill gets it unless the scenario says otherwise.
CONCURRENCY = ResourcesParams.model_fields["concurrency"].default
SKIPPABLE = ("kubectl", "velero", "ceiling", "profile", "memory")
#: The first argument of this script run as the child whose peak RSS ``memory`` measures.
MEMORY_CHILD = "--memory-child"
#: Where a profiled thread blocks rather than works: shown as totals, not among the top items.
WAITS = {"waiting for the API server (socket reads, poll)": {"<method 'read' of '_ssl._SSLSocket' objects>",
                                                              "<method 'poll' of 'select.poll' objects>"},
         "waiting for a lock (the main thread for its workers)": {"<method 'acquire' of '_thread.lock' objects>"}}
VELERO_NS = "velero"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {"group": GROUP, "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "properties": {
                     "size": {"type": "integer"}, "colour": {"type": "string"},
                     "parts": {"type": "array", "items": {"type": "string"}}}}}}}}]},
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class BenchFailed(Exception):
    """The benchmark cannot give a true figure (a restore lost objects, a step failed or ran out of time)."""


# -- the objects ------------------------------------------------------------------------------
def namespace_names(count: int) -> list[str]:
    return [f"{NS_PREFIX}-{i}" for i in range(count)]


def build(kind: str, name: str, namespace: str, i: int) -> dict[str, Any]:
    """One object of ``kind``, a few hundred bytes, labelled so it can be counted."""
    meta = {"name": name, "namespace": namespace, "labels": {LABEL: "yes", "app": "bench"}}
    obj: dict[str, Any] = {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": meta}
    if kind == "ConfigMap":
        obj["data"] = {"settings.ini": f"[bench]\nindex = {i}\n" + "value = x\n" * 20, "mode": "restore"}
    elif kind == "Secret":
        obj["type"] = "Opaque"
        obj["data"] = {"password": base64.b64encode(f"secret-{i}".encode() * 8).decode()}
    elif kind == "Service":
        obj["spec"] = {"clusterIP": "None", "selector": {"app": "bench"}, "ports": [{"name": "http", "port": 80}]}
    elif kind == "Deployment":
        labels = {"app": "bench", "bench-deployment": name}
        obj["spec"] = {"replicas": 0, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": "bench-app:1", "ports": [{"containerPort": 80}]}]}}}
    else:
        obj["spec"] = {"size": i, "colour": ("red", "green", "blue")[i % 3], "parts": [f"part-{j}" for j in range(5)]}
    return obj


def generate(count: int, namespaces: list[str]) -> list[dict[str, Any]]:
    """``count`` objects, the namespaces taking consecutive blocks so each gets the whole mix."""
    objects = []
    for i in range(count):
        kind = MIX[i % len(MIX)]
        namespace = namespaces[i * len(namespaces) // count]
        objects.append(build(kind, f"{kind.lower()}-{i:05d}", namespace, i))
    return objects


def namespace_object(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {LABEL: "yes"}}}


def write_folder(folder: Path, objects: list[dict[str, Any]], namespaces: list[str]) -> None:
    """One file per object; ``00-namespaces/`` sorts (and so is applied) before the namespaces' folders."""
    for name in namespaces:
        path = folder / "00-namespaces" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(namespace_object(name), sort_keys=False))
    for obj in objects:
        meta = obj["metadata"]
        path = folder / meta["namespace"] / obj["kind"] / f"{meta['name']}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(obj, sort_keys=False))


def expected_census(objects: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for obj in objects:
        counts.setdefault(obj["metadata"]["namespace"], Counter())[obj["kind"]] += 1
    return {ns: dict(sorted(c.items())) for ns, c in sorted(counts.items())}


def census(kube: KubeClient, namespaces: list[str]) -> dict[str, dict[str, int]]:
    """What the cluster holds now: the generated objects of each kind in each namespace."""
    found: dict[str, dict[str, int]] = {}
    for ns in namespaces:
        counts = {kind: len(kube.list(API_VERSIONS[kind], kind, ns, label_selector=f"{LABEL}=yes", timeout=60.0))
                  for kind in sorted(set(MIX))}
        found[ns] = {kind: n for kind, n in counts.items() if n}
    return found


def verify(kube: KubeClient, namespaces: list[str], expected: dict[str, dict[str, int]], method: str) -> None:
    found = census(kube, namespaces)
    if found != expected:
        diff = [f"{ns}/{kind}: {found.get(ns, {}).get(kind, 0)} of {n}"
                for ns, kinds in expected.items() for kind, n in kinds.items() if found.get(ns, {}).get(kind, 0) != n]
        raise BenchFailed(f"{method}: objects missing after the restore: {'; '.join(diff) or found}")
    log(f"  {method}: every object is back ({sum(sum(k.values()) for k in found.values())})")


# -- the cluster ----------------------------------------------------------------------------
def install_crd(kube: KubeClient, timeout: float) -> None:
    kube.apply(CRD)
    resources.wait_established(kube, [CRD["metadata"]["name"]], timeout)
    kube.refresh_discovery()


def empty(kube: KubeClient, namespaces: list[str], timeout: float) -> None:
    """Delete the namespaces and wait until they are gone (the CRD stays)."""
    for name in namespaces:
        with contextlib.suppress(APINotFoundError):
            kube.delete("v1", "Namespace", name)
    deadline = time.monotonic() + timeout
    while any(kube.find("v1", "Namespace", name) is not None for name in namespaces):
        if time.monotonic() > deadline:
            raise BenchFailed(f"namespaces still terminating after {timeout:.0f}s")
        time.sleep(0.5)


class CpuMeter:
    """CPU seconds spent by this process (and the kubectl it ran), the Velero server, kube-apiserver and
    etcd, and etcd's WAL fsyncs (each write the API server accepts waits for one; on a slow disk they
    would set the ceiling)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.pids: dict[str, int] = {}
        self.find_servers(sandbox)
        self.metrics_url = f"http://127.0.0.1:{sandbox.ports.etcd}/metrics"
        self.tick = os.sysconf("SC_CLK_TCK")

    def find_servers(self, sandbox: Sandbox) -> None:
        """The servers' PIDs (again after one was restarted)."""
        self.pids = {c["name"]: c["pid"] for c in sandbox.status()["components"]
                     if c["name"] in ("kube-apiserver", "etcd", "velero") and c["pid"]}

    def _fsyncs(self) -> dict[str, float]:
        response = http.probe(self.metrics_url, timeout=5.0)
        if response is None or not response.ok:
            return {}
        found = {}
        for line in response.text.splitlines():
            for suffix in ("sum", "count"):
                if line.startswith(f"etcd_disk_wal_fsync_duration_seconds_{suffix} "):
                    found[f"etcd_fsync_{suffix}"] = float(line.split()[1])
        return found

    def _proc(self, pid: int) -> float:
        try:
            with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.tick
        except (OSError, IndexError, ValueError):
            return 0.0

    def read(self) -> dict[str, float]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        client = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
        return {"client": client} | {name: self._proc(pid) for name, pid in self.pids.items()} | self._fsyncs()

    @contextlib.contextmanager
    def spent(self, into: dict[str, float]) -> Iterator[None]:
        before = self.read()
        try:
            yield
        finally:
            into.update({k: round(v - before.get(k, 0.0), 3) for k, v in self.read().items()})


@dataclass
class Row:
    method: str
    seconds: float
    objects: int
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.objects / self.seconds if self.seconds else 0.0


# -- the methods ------------------------------------------------------------------------------
def kubectl_apply(sandbox: Sandbox, folder: Path, *, server_side: bool, timeout: float) -> float:
    argv = [str(sandbox.binaries().kubectl), "--kubeconfig", str(sandbox.kubeconfig), "apply", "-R", "-f", str(folder)]
    if server_side:
        argv.append("--server-side")
    result = run(argv, timeout=timeout, what="kubectl apply")
    if not result.ok:
        raise BenchFailed(f"{result.argv} failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
    return result.seconds


def post_all(kube: KubeClient, objects: list[dict[str, Any]], namespaces: list[str], workers: int, *,
             apply: bool = False) -> float:
    """The ceiling: Namespaces, then every object as a plain POST (or, with ``apply``, a server-side
    apply: what that costs the server alone) from ``workers`` threads (client warm)."""
    for kind in sorted(set(MIX)):
        kube.resource(API_VERSIONS[kind], kind)  # discovery done before the clock starts
    write = kube.apply if apply else kube.create

    def post(obj: dict[str, Any]) -> str | None:
        try:
            write(obj)
        except KubeError as exc:
            return str(exc)
        return None

    start = time.perf_counter()
    for name in namespaces:
        kube.create(namespace_object(name))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = [e for e in pool.map(post, objects) if e]
    seconds = time.perf_counter() - start
    if errors:
        raise BenchFailed(f"ceiling: {len(errors)} POST(s) failed, e.g. {errors[0]}")
    return seconds


@dataclass
class Phases:
    """Wall-clock marks inside one dirt restore, and what its workers spent per request."""

    marks: dict[str, float] = field(default_factory=dict)
    applies: list[float] = field(default_factory=list)
    requests: list[tuple[str, float]] = field(default_factory=list)  # (HTTP method, seconds)
    fanout_cpu: float = 0.0

    def table(self, total: float) -> list[tuple[str, float]]:
        m = self.marks
        rows = [("list the export (manifest + file names)", m["read_end"] - m["start"]),
                ("CRDs: find, wait Established, rediscover", m["crds_end"] - m["crds_start"]),
                ("Namespaces: apply, wait Active", m["fanout_start"] - m["crds_end"]),
                ("apply fan-out (each file read as its wave applies it)", m["end"] - m["fanout_start"])]
        other = total - sum(s for _, s in rows)
        return rows + [("other (sorting, filtering)", other)]

    def details(self) -> dict[str, float]:
        applies = self.applies or [0.0]
        patches = [s for method, s in self.requests if method == "PATCH"] or [0.0]
        gets = [s for method, s in self.requests if method == "GET"]
        wall = self.marks["end"] - self.marks["fanout_start"]
        return {"applies": len(self.applies), "apply_ms_mean": round(1000 * sum(applies) / len(applies), 2),
                "patch_ms_mean": round(1000 * sum(patches) / len(patches), 2),
                "gets": len(gets), "get_seconds": round(sum(gets), 3),
                "busy_workers_mean": round(sum(self.applies) / wall, 2) if wall else 0.0,
                "client_cpu_in_fanout": round(self.fanout_cpu, 2)}


@contextlib.contextmanager
def patched(owner: Any, name: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, wrapper(original))
    try:
        yield
    finally:
        if isinstance(owner, type) or inspect.ismodule(owner):
            setattr(owner, name, original)
        else:
            delattr(owner, name)  # an instance attribute shadowing the class's method


def _timed(into: list[float]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - start)  # list.append is atomic: safe from the workers
        return timed
    return wrap


def _marking(phases: Phases, before: str | None,
             after: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def marked(*args: Any, **kwargs: Any) -> Any:
            if before:
                phases.marks.setdefault(before, time.perf_counter())
                if before == "fanout_start":
                    phases.fanout_cpu = -time.process_time()
            result = fn(*args, **kwargs)
            if after:
                phases.marks[after] = time.perf_counter()
            return result
        return marked
    return wrap


def _requests(into: list[tuple[str, float]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(method: str, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(method, *args, **kwargs)
            finally:
                into.append((method, time.perf_counter() - start))
        return timed
    return wrap


def dirt_restore(kubeconfig: Path, export: Path, namespaces: list[str], timeout: float,
                 concurrency: int = CONCURRENCY) -> tuple[float, Phases]:
    """dirt's restore of ``export`` with a fresh client (its API discovery counted), phases marked."""
    kube = KubeClient.from_kubeconfig(str(kubeconfig))
    phases = Phases()
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(resources, "backup_entries", _marking(phases, None, "read_end")))
        stack.enter_context(patched(resources, "_restore_crds", _marking(phases, "crds_start", "crds_end")))
        stack.enter_context(patched(resources, "_waves", _marking(phases, "fanout_start", None)))
        stack.enter_context(patched(kube, "apply", _timed(phases.applies)))
        stack.enter_context(patched(kube.api_client.rest_client, "request", _requests(phases.requests)))
        start = time.perf_counter()
        phases.marks["start"] = start
        summary = resources.restore_folder(kube, export, namespaces=namespaces, concurrency=concurrency,
                                           timeout=timeout)
        phases.marks["end"] = time.perf_counter()
        phases.fanout_cpu += time.process_time()
    kube.close()
    log(f"  dirt restore (concurrency {concurrency}): applied {summary['applied']}, "
        f"{summary['skipped_owned']} controller-owned left to controllers")
    return phases.marks["end"] - start, phases


def profiled_restore(kubeconfig: Path, export: Path, namespaces: list[str], timeout: float,
                     top: int = 14) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """dirt's restore under cProfile, the main thread and every worker thread merged: the time spent
    waiting (summed over the threads), and the top items by own time among the rest."""
    kube = KubeClient.from_kubeconfig(str(kubeconfig))
    profiles: list[cProfile.Profile] = []
    local = threading.local()
    main = cProfile.Profile()

    def per_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
        def profiled(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                return fn(*args, **kwargs)  # already under ``main``
            prof = getattr(local, "prof", None)
            if prof is None:
                prof = local.prof = cProfile.Profile()
                profiles.append(prof)
            prof.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                prof.disable()
        return profiled

    with patched(resources, "_apply_one", per_thread):
        main.enable()
        try:
            resources.restore_folder(kube, export, namespaces=namespaces, concurrency=CONCURRENCY, timeout=timeout)
        finally:
            main.disable()
    kube.close()
    stats = pstats.Stats(main)
    for prof in profiles:
        stats.add(prof)
    items = stats.stats.items()  # type: ignore[attr-defined]
    waits = {label: round(sum(v[2] for k, v in items if k[2] in names), 3) for label, names in WAITS.items()}
    working = [(k, v) for k, v in items if not any(k[2] in names for names in WAITS.values())]
    for package in sorted({_package(k) for k, _ in working}):
        waits[f"own time in {package}"] = round(sum(v[2] for k, v in working if _package(k) == package), 3)
    rows = sorted(working, key=lambda item: item[1][2], reverse=True)[:top]
    return waits, [{"function": _where(key), "calls": value[1], "own_s": round(value[2], 3),
                    "cumulative_s": round(value[3], 3)} for key, value in rows]


def _package(key: tuple[str, int, str]) -> str:
    """What a profiled function belongs to: a top-level package, dirt, or Python (its library and built-ins)."""
    path = key[0]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    return "dirt" if path.startswith(str(REPO / "dirt")) else "Python (stdlib, built-ins: ssl, json, threads...)"


def _where(key: tuple[str, int, str]) -> str:
    """``file:line(function)``, the file relative to site-packages or the repository."""
    path, line, name = key
    if path == "~":
        return name  # a built-in
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(str(REPO)):
        path = str(Path(path).relative_to(REPO))
    else:
        path = Path(path).name
    return f"{path}:{line}({name})"


# -- Velero -------------------------------------------------------------------------------------
def velero_missing(kube: KubeClient, sandbox: Sandbox) -> str | None:
    """Why Velero cannot be measured here, or None when its server is running."""
    served = {(api, kind) for api, kind, _ in kube.served_kinds()}
    if ("velero.io/v1", "Backup") not in served:
        return "the velero.io/v1 Backup kind is not served"
    component = next((c for c in sandbox.status()["components"] if c["name"] == "velero"), None)
    if component is not None and not component["healthy"]:
        return "the sandbox's velero component is not healthy"
    location = kube.find("velero.io/v1", "BackupStorageLocation", "default", VELERO_NS)
    if location is None:
        return f"no BackupStorageLocation default in namespace {VELERO_NS}"
    status = location.get("status") or {}
    if status.get("phase") != "Available":
        return f"BackupStorageLocation default is {status.get('phase') or 'not yet validated by a Velero server'}"
    checked = status.get("lastValidationTime")
    if checked and time.time() - datetime.fromisoformat(checked.replace("Z", "+00:00")).timestamp() > 300:
        return f"BackupStorageLocation default last validated at {checked}: no live Velero server"
    return None


def velero_run(kube: KubeClient, kind: str, name: str, spec: dict[str, Any], timeout: float) -> tuple[float, dict]:
    """Create a Velero Backup or Restore; the seconds until its phase is Completed."""
    start = time.perf_counter()
    kube.create({"apiVersion": "velero.io/v1", "kind": kind, "metadata": {"name": name, "namespace": VELERO_NS},
                 "spec": spec})
    while True:
        obj = kube.get("velero.io/v1", kind, name, VELERO_NS)
        phase = (obj.get("status") or {}).get("phase") or "New"
        if phase == "Completed":
            seconds = time.perf_counter() - start
            status = obj.get("status") or {}
            log(f"  Velero {kind} {name} Completed: {status.get('progress') or {}}, "
                f"{status.get('warnings') or 0} warning(s), {status.get('errors') or 0} error(s)")
            return seconds, obj
        if phase in ("Failed", "PartiallyFailed", "FailedValidation", "FinalizingPartiallyFailed"):
            raise BenchFailed(f"Velero {kind} {name} {phase}: {json.dumps(obj.get('status'))[:500]}")
        if time.perf_counter() - start > timeout:
            raise BenchFailed(f"Velero {kind} {name} still {phase} after {timeout:.0f}s")
        time.sleep(0.2)


# -- the run ------------------------------------------------------------------------------------
@dataclass
class Results:
    objects: int
    namespaces: list[str]
    census: dict[str, dict[str, int]]
    runs: int = 1
    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    phases: list[tuple[str, float]] = field(default_factory=list)
    phase_details: dict[str, float] = field(default_factory=dict)
    profile: list[dict[str, Any]] = field(default_factory=list)
    profile_waits: dict[str, float] = field(default_factory=dict)
    sweep: list[Row] = field(default_factory=list)
    memory: dict[str, tuple[float, int]] = field(default_factory=dict)  # action -> (seconds, peak RSS bytes)

    def row(self, method: str) -> Row | None:
        return next((r for r in self.rows if r.method == method), None)

    def ratios(self) -> list[tuple[str, float, str]]:
        dirt = self.row("dirt restore")
        out: list[tuple[str, float, str]] = []
        if dirt is None:
            return out
        for method, label, goal in (("kubectl apply", "kubectl apply / dirt restore", "goal >= 10x"),
                                    ("kubectl apply --server-side", "kubectl server-side / dirt restore", ""),
                                    ("velero restore", "velero restore / dirt restore", "goal > 1x")):
            other = self.row(method)
            if other is not None:
                out.append((label, other.seconds / dirt.seconds, goal))
        ceiling = self.row("ceiling (concurrent POST)")
        if ceiling is not None:
            out.append(("dirt restore speed / ceiling speed", ceiling.seconds / dirt.seconds, "1.0 = the ceiling"))
            kubectl = self.row("kubectl apply")
            if kubectl is not None:  # no restore can beat kubectl by more than this on this API server
                out.append(("kubectl apply / ceiling", kubectl.seconds / ceiling.seconds,
                            "the most any restore can gain over kubectl here"))
        applies = self.row("concurrent server-side apply")
        if applies is not None:
            out.append(("dirt restore speed / plain concurrent apply", applies.seconds / dirt.seconds,
                        "below 1.0: dirt's own overhead"))
        return out


class Bench:
    """The objects, the cluster and the clock: each method timed from the same starting state."""

    def __init__(self, sandbox: Sandbox, args: argparse.Namespace, work: Path) -> None:
        self.sandbox, self.runs, self.timeout = sandbox, args.runs, args.timeout
        self.kube = KubeClient.from_kubeconfig(str(sandbox.kubeconfig))
        self.namespaces = namespace_names(args.namespaces)
        self.objects = generate(args.objects, self.namespaces)
        self.expected = expected_census(self.objects)
        self.folder = work / "objects"
        self.work = work
        write_folder(self.folder, self.objects, self.namespaces)
        self.results = Results(args.objects, self.namespaces, self.expected, args.runs)
        self.meter = CpuMeter(sandbox)

    def empty(self) -> None:
        empty(self.kube, self.namespaces, self.timeout)

    def verify(self, method: str) -> None:
        verify(self.kube, self.namespaces, self.expected, method)

    def timed(self, method: str, action: Callable[[], float], note: str = "") -> Row:
        cpu: dict[str, float] = {}
        with self.meter.spent(cpu):
            seconds = action()
        log(f"  {method}: {seconds:.2f}s")
        return Row(method, seconds, self.results.objects, cpu, note)

    def keep(self, rows: list[Row]) -> Row:
        """The fastest of the runs (the least disturbed by anything else on the machine)."""
        best = min(rows, key=lambda r: r.seconds)
        self.results.rows.append(best)
        return best

    def restore(self, method: str, action: Callable[[], float], note: str = "") -> Row:
        """``action`` from the empty state, every object verified back, best of the runs."""
        rows = []
        for _ in range(self.runs):
            self.empty()
            rows.append(self.timed(method, action, note))
            self.verify(method)
        return self.keep(rows)

    def backup_then_restore(self, names: tuple[str, str], backup: Callable[[int], float],
                            restore: Callable[[int], float], notes: tuple[str, str] = ("", "")) -> tuple[Row, Row]:
        """Back up (objects present), empty, restore, verify; per run; best of each."""
        backups, restores = [], []
        for run_index in range(self.runs):
            backups.append(self.timed(names[0], lambda: backup(run_index), notes[0]))
            self.empty()
            restores.append(self.timed(names[1], lambda: restore(run_index), notes[1]))
            self.verify(names[1])
        return self.keep(backups), self.keep(restores)


def measure(sandbox: Sandbox, args: argparse.Namespace, work: Path, skip: set[str]) -> Results:
    bench = Bench(sandbox, args, work)
    kube, namespaces, results, timeout = bench.kube, bench.namespaces, bench.results, args.timeout
    log(f"{args.objects} objects in {len(namespaces)} namespaces written to {bench.folder} (one file per object)")
    install_crd(kube, timeout)
    # An untimed round first: after a CRD is installed the API server builds its handlers and
    # OpenAPI for a while, and whichever method ran first would pay for it (3x slower, measured).
    log("warm-up: one untimed round of POSTs ...")
    bench.empty()
    post_all(kube, bench.objects, namespaces, CONCURRENCY)
    bench.verify("warm-up")
    if "ceiling" not in skip:
        log("ceiling: concurrent POSTs ...")
        bench.restore("ceiling (concurrent POST)", lambda: post_all(kube, bench.objects, namespaces, CONCURRENCY),
                      f"{CONCURRENCY} workers, warm client")
        bench.restore("concurrent server-side apply", lambda: post_all(kube, bench.objects, namespaces, CONCURRENCY,
                                                                        apply=True), "the same, apply for POST")

    log("dirt: export, then restore ...")
    phases: dict[float, Phases] = {}

    def export(run_index: int) -> float:
        export_kube = KubeClient.from_kubeconfig(str(sandbox.kubeconfig))
        start = time.perf_counter()
        resources.export_namespaces(export_kube, namespaces, work / f"export-{run_index}")
        seconds = time.perf_counter() - start
        export_kube.close()
        return seconds

    def restore(run_index: int) -> float:
        seconds, marks = dirt_restore(sandbox.kubeconfig, work / f"export-{run_index}", namespaces, timeout)
        phases[seconds] = marks
        return seconds

    _, dirt_row = bench.backup_then_restore(("dirt export", "dirt restore"), export, restore,
                                            ("fresh client, discovery included", f"concurrency {CONCURRENCY}, "
                                                                                 "fresh client"))
    results.phases = phases[dirt_row.seconds].table(dirt_row.seconds)
    results.phase_details = phases[dirt_row.seconds].details()
    export_folder = work / "export-0"

    for concurrency in args.sweep:
        log(f"dirt restore at concurrency {concurrency} ...")
        row = bench.restore(f"dirt restore, concurrency {concurrency}", lambda: dirt_restore(
            sandbox.kubeconfig, export_folder, namespaces, timeout, concurrency)[0])
        results.rows.remove(row)
        results.sweep.append(row)

    if "velero" not in skip:
        reason = args.no_velero or velero_missing(kube, sandbox)
        if reason:
            results.skipped["velero"] = f"not running in this sandbox ({reason})"
            log(f"velero: {results.skipped['velero']}")
        else:
            # Velero reads the API's kinds at start and then every 5 minutes: without a restart its
            # backup would silently leave out the Widgets of the CRD installed a moment ago.
            log("velero: restarting the server so its discovery knows the Widget CRD ...")
            sandbox.start_velero(restart=True)
            bench.meter.find_servers(sandbox)
            log("velero: Backup, then Restore ...")
            stamp = time.strftime("%H%M%S")
            spec = {"includedNamespaces": namespaces, "storageLocation": "default", "ttl": "1h0m0s",
                    "snapshotVolumes": False}
            bench.backup_then_restore(
                ("velero backup", "velero restore"),
                lambda i: velero_run(kube, "Backup", f"dirt-bench-{stamp}-{i}", spec, timeout)[0],
                lambda i: velero_run(kube, "Restore", f"dirt-bench-{stamp}-{i}", {
                    "backupName": f"dirt-bench-{stamp}-{i}", "includedNamespaces": namespaces}, timeout)[0],
                ("to phase Completed", "to phase Completed"))

    if "memory" not in skip:
        log("dirt export and restore, each in a process of its own (peak RSS) ...")
        results.memory = memory(sandbox, bench, timeout)

    if "profile" not in skip:
        bench.empty()
        log("dirt restore under cProfile (not a timed figure) ...")
        results.profile_waits, results.profile = profiled_restore(sandbox.kubeconfig, export_folder, namespaces,
                                                                  timeout)
        bench.verify("profiled dirt restore")

    if "kubectl" not in skip:
        for server_side in (False, True):
            method = "kubectl apply --server-side" if server_side else "kubectl apply"
            log(f"{method} ...")
            bench.restore(method, lambda: kubectl_apply(sandbox, bench.folder, server_side=server_side,
                                                        timeout=timeout), "-R -f DIR")
    for name in sorted(skip):
        results.skipped.setdefault(name, "skipped (--skip)")

    bench.empty()
    kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD["metadata"]["name"])
    if "velero" not in skip and "velero" not in results.skipped:
        # Velero would go on listing the Widgets it knows until its next discovery, 5 minutes away,
        # and every backup would end PartiallyFailed ("the server could not find the requested resource").
        sandbox.start_velero(restart=True)
    kube.close()
    return results


# -- memory --------------------------------------------------------------------------------------


def memory(sandbox: Sandbox, bench: Bench, timeout: float) -> dict[str, tuple[float, int]]:
    """Seconds and peak RSS of dirt's export and of its restore, each run alone in a new process, and of
    the baseline: a process with the same imports and a client that did its API discovery, nothing more."""
    folder = bench.work / "export-memory"
    out = {}
    for action in ("idle", "export", "restore"):
        if action == "restore":
            bench.empty()
        out[action] = module_run(sys.executable, __file__, [MEMORY_CHILD, action, str(sandbox.kubeconfig),
                                                            str(folder), ",".join(bench.namespaces), str(timeout)],
                                 REPO)
        log(f"  {action}: {out[action][0]:.2f}s, peak RSS {out[action][1] / 2**20:.1f} MiB")
    bench.verify("dirt restore in its own process")
    return out


def memory_child(action: str, kubeconfig: str, folder: str, namespaces: str, timeout: str) -> None:
    """In the child: one export or restore (or nothing, the baseline), as a drill's step runs it."""
    kube = KubeClient.from_kubeconfig(kubeconfig)
    kube.served_kinds()
    if action == "export":
        resources.export_namespaces(kube, namespaces.split(","), Path(folder))
    elif action == "restore":
        resources.restore_folder(kube, Path(folder), namespaces=namespaces.split(","), concurrency=CONCURRENCY,
                                 timeout=float(timeout))
    kube.close()


# -- output --------------------------------------------------------------------------------------
def print_table(results: Results) -> None:
    print(f"{results.objects} objects in {len(results.namespaces)} namespaces; per namespace: "
          f"{next(iter(results.census.values()))}")
    print(f"{'method':30} {'seconds':>8} {'objects/s':>10} {'CPU s: client/apiserver/etcd':>29} "
          f"{'etcd fsyncs (mean)':>19}  note")
    for row in results.rows:
        client = row.cpu.get("client", 0.0) + row.cpu.get("velero", 0.0)  # Velero's server is its client
        cpu = " / ".join(f"{v:.1f}" for v in (client, row.cpu.get("kube-apiserver", 0.0), row.cpu.get("etcd", 0.0)))
        count, total = row.cpu.get("etcd_fsync_count", 0.0), row.cpu.get("etcd_fsync_sum", 0.0)
        fsyncs = f"{count:.0f} ({1000 * total / count:.1f} ms)" if count else "-"
        print(f"{row.method:30} {row.seconds:8.2f} {row.per_second:10.0f} {cpu:>29} {fsyncs:>19}  {row.note}")
    for name, why in results.skipped.items():
        print(f"{name}: {why}")
    if results.ratios():
        print(f"\n{'ratio':42} {'value':>8}")
        for label, value, goal in results.ratios():
            print(f"{label:42} {value:7.2f}x  {goal}")
    if results.phases:
        total = sum(s for _, s in results.phases)
        print(f"\n{'where dirt restore spends its time':48} {'seconds':>8} {'share':>6}")
        for label, seconds in results.phases:
            print(f"{label:48} {seconds:8.2f} {seconds / total:6.0%}")
        d = results.phase_details
        print(f"  {d['applies']} applies, mean {d['apply_ms_mean']:.1f} ms each, of which the PATCH round trip "
              f"{d['patch_ms_mean']:.1f} ms; busy workers (mean) {d['busy_workers_mean']:.1f} of {CONCURRENCY}; "
              f"this process's CPU in the fan-out {d['client_cpu_in_fanout']:.2f}s; {d['gets']} GETs "
              f"(discovery, CRD and Namespace reads) {d['get_seconds']:.2f}s in all")
    for row in results.sweep:
        print(f"{row.method:42} {row.seconds:8.2f}s {row.per_second:8.0f} objects/s")
    if results.profile:
        print(f"\n{'cProfile of dirt restore, all threads summed':70} {'seconds':>7}")
        for label, seconds in results.profile_waits.items():
            print(f"{label:70} {seconds:7.2f}")
        print(f"{'the rest, top by own time':70} {'calls':>7} {'own s':>7} {'cum s':>7}")
        for item in results.profile:
            print(f"{item['function'][:70]:70} {item['calls']:7d} {item['own_s']:7.3f} {item['cumulative_s']:7.3f}")
    if results.memory:
        idle = results.memory["idle"][1]
        print(f"\n{'dirt in a process of its own':42} {'seconds':>8} {'objects/s':>10} {'peak MiB':>9} {'ratio':>9}")
        print(f"{'client after discovery, nothing done':42} {results.memory['idle'][0]:8.2f} {'':>10} "
              f"{idle / 2**20:9.1f} {1.0:9.2f}")
        for action in ("export", "restore"):
            seconds, peak = results.memory[action]
            print(f"{f'dirt {action}':42} {seconds:8.2f} {results.objects / seconds:10.0f} {peak / 2**20:9.1f} "
                  f"{peak / idle:8.2f}x  {(peak - idle) / 2**20 / results.objects * 1000:.1f} MiB per 1,000 objects "
                  "above the baseline")
    runs = f"best of {results.runs} runs" if results.runs > 1 else "one run each"
    print(f"({os.cpu_count()} CPUs; {runs}; the sandbox's monitoring and any other load on the machine "
          "run at the same time)")


def as_json(results: Results) -> dict[str, Any]:
    return {
        "objects": results.objects, "namespaces": results.namespaces, "per_namespace": results.census,
        "concurrency": CONCURRENCY, "runs": results.runs,
        "rows": [asdict(r) | {"per_second": round(r.per_second, 1), "seconds": round(r.seconds, 3)}
                 for r in results.rows],
        "skipped": results.skipped,
        "ratios": {label: round(value, 3) for label, value, _ in results.ratios()},
        "dirt_restore_phases": {label: round(s, 3) for label, s in results.phases},
        "dirt_restore_details": results.phase_details,
        "concurrency_sweep": [{"method": r.method, "seconds": round(r.seconds, 3)} for r in results.sweep],
        "profile_waits": results.profile_waits, "profile_top": results.profile,
        "memory": {action: {"seconds": round(seconds, 3), "peak_rss_bytes": peak}
                   for action, (seconds, peak) in results.memory.items()},
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2000, help="objects to generate (default 2000)")
    parser.add_argument("--namespaces", type=int, default=4, help="namespaces to spread them over (default 4)")
    parser.add_argument("--skip", default="", help=f"comma-separated: {', '.join(SKIPPABLE)}")
    parser.add_argument("--sweep", default="", help="also time dirt's restore at these concurrencies, e.g. 16,32")
    parser.add_argument("--runs", type=int, default=1, help="time each method this many times, keep the best")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one step may take (default 600)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (progress goes to stderr)")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(SKIPPABLE):
        parser.error(f"--skip: unknown {', '.join(sorted(skip - set(SKIPPABLE)))} (choose from {', '.join(SKIPPABLE)})")
    args.skip = skip
    try:
        args.sweep = [int(s) for s in args.sweep.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sweep: not a list of numbers: {args.sweep!r}")
    if any(not 1 <= c <= 64 for c in args.sweep):
        parser.error("--sweep: concurrencies go from 1 to 64 (as the resources backup allows)")
    if args.objects < 1 or args.namespaces < 1 or args.namespaces > args.objects:
        parser.error("--objects and --namespaces must be at least 1, and no more namespaces than objects")
    if not 1 <= args.runs <= 10:
        parser.error("--runs goes from 1 to 10")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def velero_option(skip: set[str]) -> tuple[dict[str, bool], str]:
    """``velero=True`` for a sandbox this script creates, when this dirt's Sandbox can run Velero and its
    binaries are already built (building them is ``dirt sandbox build --velero``'s job, not a benchmark's);
    otherwise why not.  A running sandbox is used as it was started: its state says whether it runs Velero."""
    if "velero" in skip:
        return {}, ""
    if "velero" not in inspect.signature(Sandbox).parameters:
        return {}, "this dirt's Sandbox cannot run Velero"
    try:
        from dirt.sandbox.binaries import locate_velero

        locate_velero(build_missing=False)
    except (ImportError, DirtError) as exc:
        return {}, str(exc)
    return {"velero": True}, ""


def start_sandbox(home: Path | None, skip: set[str], timeout: float) -> tuple[Sandbox, bool, str]:
    """The sandbox to measure on, whether this script brought it up, and why it runs no Velero (if known)."""
    options, no_velero = velero_option(skip)
    sandbox = Sandbox(home=home, **options)
    if sandbox.exists():
        sandbox.wait_api(60.0)
        log(f"using the running sandbox at {sandbox.root}")
        return sandbox, False, ""
    try:
        _up(sandbox, timeout)
    except DirtError as exc:
        if not options:
            raise
        # Velero is one row of the table: measure the rest without it rather than nothing.
        log(f"the sandbox did not come up with Velero ({exc}); starting it without")
        sandbox = Sandbox(home=home)
        _up(sandbox, timeout)
        no_velero = f"the sandbox could not start it: {exc}"
    return sandbox, True, no_velero


def _up(sandbox: Sandbox, timeout: float) -> None:
    """Bring the sandbox up, or leave nothing of it running."""
    try:
        sandbox.up(log=log, timeout=timeout)
    except BaseException:
        sandbox.down(log=log)
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [MEMORY_CHILD]:
        memory_child(*argv[1:])
        return 0
    args = parse_args(argv)
    home = None if os.environ.get("DIRT_SANDBOX_HOME") else Path(tempfile.mkdtemp(prefix="dirt-bench-restore-sbx-"))
    work = Path(tempfile.mkdtemp(prefix="dirt-bench-restore-"))
    sandbox: Sandbox | None = None
    brought_up = False
    try:
        sandbox, brought_up, args.no_velero = start_sandbox(home, args.skip, min(args.timeout, 300.0))
        results = measure(sandbox, args, work, args.skip)
    except (BenchFailed, DirtError) as exc:
        log(f"bench/restore.py: {exc}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if brought_up and sandbox is not None:
            sandbox.down(log=log)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
    if args.json:
        print(json.dumps(as_json(results), indent=2))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

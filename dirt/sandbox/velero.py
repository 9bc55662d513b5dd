"""Velero in the sandbox: a real Velero server, its AWS object-store plugin, and an S3-compatible store.

Opt-in per sandbox (``settings: {velero: true}``).  Three parts, all built from
Go modules (``dirt/sandbox/gomodules/velero``) and all bound to 127.0.0.1:

* ``object-store``: gofakes3, an S3 API server with a filesystem backend under
  ``<sandbox>/velero/bucket``; the bucket ``velero`` holds the backups.  It
  lives outside the cluster, as a real bucket does, so it survives the cluster's
  deletion and a fresh Velero finds the old backups there (backup sync).
* ``velero``: ``velero server`` run out of cluster ("run locally" in Velero's
  docs) with the sandbox's kubeconfig, the plugin from ``<sandbox>/velero/plugins``
  and a dummy credentials file.
* In the cluster: Velero's CRDs (from ``velero install --crds-only``), the
  ``velero`` namespace, the ``default`` BackupStorageLocation pointing at the
  store, and a ``velero`` Deployment scaled to zero.

That Deployment is the one workaround: Velero's pod-volume restore action reads
its own server Deployment (to find the restore helper image) for every restore,
and fails the restore with ``deployments.apps "velero" not found`` when the
server runs outside the cluster.  Scaled to zero it runs nothing and satisfies
the lookup.  Only resource backups work here: file-system volume backups need the
node agent, and snapshots a CSI driver.

The ``Velero`` component at the end starts, checks and restarts the two processes (pid and log
files in ``<sandbox>/pids/`` and ``<sandbox>/logs/``) with the functions above.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dirt.clients import http
from dirt.clients.commands import run
from dirt.core.errors import CommandError, DirtError, TargetError
from dirt.sandbox import process
from dirt.sandbox.binaries import VeleroBinaries, locate_velero
from dirt.sandbox.component import Log, ProcessGroup, SandboxContext, quiet

NAMESPACE = "velero"
BUCKET = "velero"
LOCATION = "default"
#: the processes, in start order (stopped in reverse)
COMPONENTS = ("object-store", "velero")
API = "velero.io/v1"


def folder(root: Path) -> Path:
    return root / "velero"


def commands(binaries: VeleroBinaries, *, root: Path, kubeconfig: Path, store_port: int,
             metrics_port: int) -> dict[str, list[str]]:
    """The command line of each process (``object-store`` first: Velero validates its location at start)."""
    base = folder(root)
    return {
        "object-store": [str(binaries.gofakes3), "-backend", "fs", "-fs.path", str(base / "bucket"), "-fs.create",
                         "-initialbucket", BUCKET, "-host", f"127.0.0.1:{store_port}"],
        "velero": [str(binaries.velero), "server", f"--kubeconfig={kubeconfig}", f"--namespace={NAMESPACE}",
                   f"--plugin-dir={base / 'plugins'}", f"--metrics-address=127.0.0.1:{metrics_port}",
                   # Drills want Velero to notice a location, a backup in the bucket or a schedule in
                   # seconds, not its production minutes.
                   "--store-validation-frequency=5s", "--backup-sync-period=5s", "--log-level=info",
                   "--profiler-address=",  # pprof off: it would take localhost:6060 for every sandbox
                   "--default-backup-storage-location=" + LOCATION],
    }


def environment(root: Path) -> dict[str, str]:
    """Velero's AWS plugin reads credentials from a file; the store accepts any."""
    return {**os.environ, "AWS_SHARED_CREDENTIALS_FILE": str(folder(root) / "credentials")}


def prepare_files(binaries: VeleroBinaries, root: Path) -> None:
    """The plugin folder (Velero runs every executable in it as a plugin) and the credentials file."""
    base = folder(root)
    plugins = base / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / binaries.aws_plugin.name
    if not link.exists() or link.resolve() != binaries.aws_plugin.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(binaries.aws_plugin.resolve())
    credentials = base / "credentials"
    if not credentials.exists():
        credentials.write_text("[default]\naws_access_key_id = dirt\naws_secret_access_key = dirt-sandbox\n")
    (base / "bucket").mkdir(exist_ok=True)


def crds(binaries: VeleroBinaries, root: Path) -> list[dict[str, Any]]:
    """Velero's CRDs as its own installer prints them (cached beside the sandbox: they never change per build)."""
    cached = folder(root) / f"crds-{binaries.versions()['velero']}.yaml"
    if not cached.is_file():
        try:
            out = run([str(binaries.velero), "install", "--crds-only", "--dry-run", "-o", "yaml"], timeout=60,
                      what="velero install --crds-only")
        except CommandError as exc:
            raise TargetError(f"velero install --crds-only: {exc}") from None
        if out.returncode != 0:
            raise TargetError(f"velero install --crds-only failed (exit {out.returncode}): {out.stderr.strip()[-300:]}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(out.stdout)
    docs = [d for d in yaml.safe_load_all(cached.read_text()) if isinstance(d, dict)]
    items: list[dict[str, Any]] = []
    for doc in docs:  # `velero install -o yaml` prints a List
        items.extend(doc.get("items") or [] if doc.get("kind") == "List" else [doc])
    return [i for i in items if i.get("kind") == "CustomResourceDefinition"]


def cluster_objects(store_port: int) -> list[dict[str, Any]]:
    """What Velero needs in the cluster besides its CRDs."""
    labels = {"app.kubernetes.io/name": "velero", "app.kubernetes.io/managed-by": "dirt-sandbox"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": labels}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "velero", "namespace": NAMESPACE, "labels": labels,
                      "annotations": {"dirt.dev/why": "Velero's pod-volume restore action reads its server "
                                                      "Deployment; the server runs outside the cluster"}},
         "spec": {"replicas": 0, "selector": {"matchLabels": {"app.kubernetes.io/name": "velero"}},
                  "template": {"metadata": {"labels": {"app.kubernetes.io/name": "velero"}},
                               "spec": {"containers": [{"name": "velero", "image": "velero/velero:" + "v1.18.3",
                                                        "command": ["/velero"]}]}}}},
        {"apiVersion": API, "kind": "BackupStorageLocation",
         "metadata": {"name": LOCATION, "namespace": NAMESPACE, "labels": labels},
         "spec": {"provider": "aws", "default": True, "objectStorage": {"bucket": BUCKET},
                  "config": {"region": "minio", "s3ForcePathStyle": "true",
                             "s3Url": f"http://127.0.0.1:{store_port}"}}},
    ]


def install(kube: Any, binaries: VeleroBinaries, root: Path, store_port: int, *, timeout: float = 60.0) -> None:
    """CRDs first (and wait until they are served), then the namespace, the Deployment and the location."""
    definitions = crds(binaries, root)
    for crd in definitions:
        kube.apply(crd)
    deadline = time.monotonic() + timeout
    for crd in definitions:
        name = crd["metadata"]["name"]
        while True:
            live = kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
            conditions = {c["type"]: c["status"] for c in (live.get("status") or {}).get("conditions") or []}
            if conditions.get("Established") == "True":
                break
            if time.monotonic() > deadline:
                raise TargetError(f"Velero's CRD {name} not Established after {timeout:.0f}s")
            time.sleep(0.2)
    kube.refresh_discovery()
    for obj in cluster_objects(store_port):
        kube.apply(obj)


def store_healthy(port: int) -> bool:
    answer = http.probe(f"http://127.0.0.1:{port}/", timeout=2.0)
    return answer is not None and answer.status == 200


def server_healthy(port: int) -> bool:
    answer = http.probe(f"http://127.0.0.1:{port}/metrics", timeout=2.0)
    return answer is not None and answer.status == 200


def location_phase(kube: Any) -> str | None:
    obj = kube.find(API, "BackupStorageLocation", LOCATION, NAMESPACE)
    return ((obj or {}).get("status") or {}).get("phase")


def server_answers(kube: Any, name: str) -> bool:
    """Has the server processed the ServerStatusRequest ``name`` (creating it first)?  What
    ``velero version`` asks: only a server whose controllers run answers it."""
    request = kube.find(API, "ServerStatusRequest", name, NAMESPACE)
    if request is None:
        kube.create({"apiVersion": API, "kind": "ServerStatusRequest",
                     "metadata": {"name": name, "namespace": NAMESPACE}})
        return False
    return ((request.get("status") or {}).get("phase")) == "Processed"


def wait_ready(kube: Any, *, store_port: int, metrics_port: int, timeout: float = 90.0,
               pids: dict[str, int | None] | None = None) -> None:
    """Both processes answer, Velero has validated the backup location (``Available``) and its
    controllers answer a status request.  The location's phase alone may be the word of a server
    that was just stopped; the request is answered only by the one running now."""
    deadline = time.monotonic() + timeout
    phase: str | None = None
    request = f"dirt-ready-{os.getpid()}-{time.monotonic_ns()}"
    answered = False
    try:
        while time.monotonic() < deadline:
            for name, pid in (pids or {}).items():
                if pid is not None and not process.alive(pid):
                    raise TargetError(f"Velero's {name} exited at start (see `dirt sandbox logs {name}`)")
            if store_healthy(store_port) and server_healthy(metrics_port):
                try:
                    phase = location_phase(kube)
                    answered = answered or server_answers(kube, request)
                except DirtError:  # the API may be restarting; retried until the deadline
                    phase = None
                if phase == "Available" and answered:
                    return
            time.sleep(0.5)
    finally:
        try:
            kube.delete(API, "ServerStatusRequest", request, NAMESPACE)
        except DirtError:
            pass  # the server deletes processed requests after a minute anyway
    what = "did not answer a status request" if phase == "Available" else \
        f"backup location {LOCATION!r} is {phase or 'not validated'}"
    raise TargetError(f"Velero not ready after {timeout:.0f}s: {what} (see `dirt sandbox logs velero`)")


class Velero(ProcessGroup):
    """Velero's object store and server, run beside the sandbox's cluster (``settings: {velero: true}``).

    ``shared_store`` (a fleet's members, :mod:`dirt.sandbox.fleet`): the port of a bucket the sandbox
    shares with others, as teams share one backup location; the sandbox then runs no store of its own.
    """

    name = "velero"
    PROCESSES = COMPONENTS

    def __init__(self, ctx: SandboxContext, *, shared_store: Callable[[], int] | None = None) -> None:
        super().__init__(ctx)
        self._binaries: VeleroBinaries | None = None
        self.shared_store = shared_store

    @property
    def processes(self) -> tuple[str, ...]:
        return ("velero",) if self.shared_store is not None else self.PROCESSES

    def store_port(self) -> int:
        return self.shared_store() if self.shared_store is not None else self.ctx.ports().object_store

    def binaries(self, *, build_missing: bool = False, log: Log = quiet) -> VeleroBinaries:
        if self._binaries is None:
            self._binaries = locate_velero(build_missing=build_missing, log=log)
        return self._binaries

    def prepare(self, *, log: Log = quiet) -> dict[str, str]:
        return self.binaries(build_missing=True, log=log).versions()

    def binary(self, name: str) -> Path | None:
        v = self.binaries()
        return v.gofakes3 if name == "object-store" else v.velero

    def answers(self, name: str) -> bool:
        return store_healthy(self.store_port()) if name == "object-store" else \
            server_healthy(self.ctx.ports().velero_metrics)

    def environment(self, name: str) -> dict[str, str]:
        return environment(self.ctx.root)

    def status(self) -> dict[str, Any]:
        """Where Velero's parts are: its namespace, location, object store and bucket folder."""
        p = self.ctx.ports()
        return {"namespace": NAMESPACE, "backup_storage_location": LOCATION,
                "object_store_url": f"http://127.0.0.1:{self.store_port()}", "bucket": BUCKET,
                "bucket_folder": None if self.shared_store is not None else str(folder(self.ctx.root) / "bucket"),
                "shared": self.shared_store is not None,
                "metrics_url": f"http://127.0.0.1:{p.velero_metrics}/metrics"}

    def start(self, *, log: Log = quiet, restart: bool = False, timeout: float = 90.0) -> None:
        """Velero's object store and server running, its objects in the cluster, its location Available.

        Idempotent; ``restart`` restarts the server (a recreated cluster: new PKI, no CRDs).
        """
        from dirt.clients.kube import KubeClient

        binaries = self.binaries(build_missing=True, log=log)
        p = self.ctx.ports()
        root = self.ctx.root
        prepare_files(binaries, root)
        store = self.store_port()
        argvs = {name: argv for name, argv in commands(binaries, root=root, kubeconfig=self.ctx.kubeconfig,
                                                         store_port=store, metrics_port=p.velero_metrics).items()
                 if name in self.processes}
        self.record(argvs)
        kube = KubeClient.from_kubeconfig(str(self.ctx.kubeconfig))
        try:
            install(kube, binaries, root, store)
            if restart:
                self.stop_process("velero")
            for name, argv in argvs.items():
                if self.running(name):
                    continue
                log(f"starting {name} on 127.0.0.1:{store if name == 'object-store' else p.velero_metrics}")
                self.launch(name, argv, env=self.environment(name))
            wait_ready(kube, store_port=store, metrics_port=p.velero_metrics, timeout=timeout,
                       pids={n: self.pid(n) for n in argvs})
        finally:
            kube.close()

"""The ``velero`` backup: Velero ``Backup`` and ``Restore`` objects, judged strictly.

Taking it creates a ``velero.io/v1`` Backup of the chosen namespaces and waits
for Velero to finish; or (the point of a DR drill) it names an existing backup —
``existing: latest`` takes the newest Completed one, optionally of one schedule,
and its age is the RPO.  Restoring creates a Restore from it and waits.

Only ``Completed`` with no warnings and no errors counts as success: a
``PartiallyFailed``, ``Failed`` or ``FailedValidation`` phase, or any warning or
error count, fails the step with the phase and the counts named — a restore that
"mostly worked" is exactly what a drill is there to catch.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pydantic import Field

from dirt.core.durations import Duration
from dirt.core.errors import StepFailed
from dirt.drivers import Backup, BackupRecord, Params, StepOutcome
from dirt.journal.faults import FaultLife
from dirt.recovery.resources import restore_resolves

API = "velero.io/v1"
FAILED_PHASES = {"PartiallyFailed", "Failed", "FailedValidation", "FinalizingPartiallyFailed"}


def _time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def judge(obj: dict[str, Any], what: str) -> tuple[bool | None, str]:
    """(True: done and clean / False: failed / None: still running, detail)."""
    status = obj.get("status") or {}
    phase = status.get("phase") or "New"
    warnings, errors = int(status.get("warnings") or 0), int(status.get("errors") or 0)
    counts = f"{warnings} warning(s), {errors} error(s)"
    if phase in FAILED_PHASES:
        reasons = status.get("validationErrors") or status.get("failureReason") or ""
        if isinstance(reasons, list):
            reasons = "; ".join(reasons)
        return False, f"{what} {obj['metadata']['name']} {phase} ({counts})" + (f": {reasons}" if reasons else "")
    if phase == "Completed":
        if warnings or errors:
            return False, f"{what} {obj['metadata']['name']} Completed with {counts}"
        return True, f"{what} {obj['metadata']['name']} Completed"
    return None, f"{what} {obj['metadata']['name']} {phase}"


class VeleroParams(Params):
    namespace: str = Field("velero", description="Namespace Velero runs in (where Backups live).")
    included_namespaces: list[str] = Field(default_factory=list, description="Namespaces to back up / restore.")
    existing: str | None = Field(None, description="'latest' (newest Completed) or a Backup's name.")
    schedule: str | None = Field(None, description="With existing: latest, only backups of this Schedule.")
    storage_location: str | None = None
    ttl: str = Field("72h0m0s", description="Backup TTL for backups the drill creates.")
    timeout: Duration = Field(900.0, description="How long Velero may take.")


class VeleroBackup(Backup):
    """Create (or find) a Velero Backup; restore it with a Velero Restore. Warnings count as failure."""

    name = "velero"
    Params = VeleroParams

    def plan(self) -> list[str]:
        p = self.params
        scope = ", ".join(p.included_namespaces) or "every namespace"
        if p.existing == "latest":
            return [f"use the newest Completed Velero backup{' of schedule ' + p.schedule if p.schedule else ''} "
                    f"in {p.namespace} (its age is the RPO)"]
        if p.existing:
            return [f"use Velero backup {p.existing} in {p.namespace}"]
        return [f"create a Velero Backup of {scope} in {p.namespace} and wait for Completed"]

    def _create_and_wait(self, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Create a Backup or Restore, then wait for Velero to finish it (strictly judged)."""
        self.ctx.target.kube().create({
            "apiVersion": API, "kind": kind,
            "metadata": {"name": name, "namespace": self.params.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "dirt"}},
            "spec": spec,
        })
        return self._wait(name, kind)

    def _wait(self, name: str, kind: str) -> dict[str, Any]:
        kube = self.ctx.target.kube()
        start = time.monotonic()
        while True:
            obj = kube.get(API, kind, name, self.params.namespace)
            done, detail = judge(obj, kind)
            if done is True:
                return obj
            if done is False:
                raise StepFailed(detail)
            elapsed = time.monotonic() - start
            if elapsed > self.params.timeout:
                raise StepFailed(f"{detail} after {self.params.timeout:g}s (is the Velero server running?)")
            self.ctx.waiting(detail, elapsed, self.params.timeout)
            self.ctx.sleep(1.0)

    def _existing(self) -> dict[str, Any]:
        kube = self.ctx.target.kube()
        p = self.params
        if p.existing != "latest":
            obj = kube.get(API, "Backup", p.existing or "", p.namespace)
            ok, detail = judge(obj, "Backup")
            if not ok:
                raise StepFailed(f"{detail}: not a backup to restore from")
            return obj
        selector = f"velero.io/schedule-name={p.schedule}" if p.schedule else None
        backups = [b for b in kube.list(API, "Backup", p.namespace, label_selector=selector)
                   if judge(b, "Backup")[0] is True]
        if not backups:
            raise StepFailed(f"no Completed Velero backup{' of schedule ' + p.schedule if p.schedule else ''} "
                             f"in {p.namespace}")
        return max(backups, key=lambda b: _time((b.get("status") or {}).get("completionTimestamp")) or 0.0)

    def take(self, name: str) -> BackupRecord:
        p = self.params
        if p.existing:
            obj = self._existing()
        else:
            backup_name = f"dirt-{name}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
            spec: dict[str, Any] = {"includedNamespaces": p.included_namespaces or ["*"], "ttl": p.ttl}
            if p.storage_location:
                spec["storageLocation"] = p.storage_location
            obj = self._create_and_wait("Backup", backup_name, spec)
        status = obj.get("status") or {}
        created = _time(status.get("completionTimestamp")) or _time(obj["metadata"].get("creationTimestamp")) or time.time()
        progress = status.get("progress") or {}
        return BackupRecord(name=name, type=self.name, location=f"{p.namespace}/{obj['metadata']['name']}",
                            created_at=created, objects=progress.get("itemsBackedUp"),
                            data={"backup": obj["metadata"]["name"], "phase": status.get("phase"),
                                  "schedule": (obj["metadata"].get("labels") or {}).get("velero.io/schedule-name")})

    def restore(self, record: BackupRecord) -> StepOutcome:
        p = self.params
        backup_name = record.data["backup"]
        restore_name = f"dirt-restore-{backup_name}-{time.strftime('%H%M%S', time.gmtime())}"[:63]
        spec: dict[str, Any] = {"backupName": backup_name}
        if p.included_namespaces:
            spec["includedNamespaces"] = p.included_namespaces
        obj = self._create_and_wait("Restore", restore_name, spec)
        progress = (obj.get("status") or {}).get("progress") or {}
        return StepOutcome(f"Velero restore {restore_name} Completed from backup {backup_name}",
                           {"restore": restore_name, "items_restored": progress.get("itemsRestored")})

    def resolves(self, fault: FaultLife, record: BackupRecord | None) -> str | None:
        return restore_resolves(fault, self.params.included_namespaces)


DRIVERS = [VeleroBackup]

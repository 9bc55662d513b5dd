"""The ``velero`` backup: Velero ``Backup`` and ``Restore`` objects, judged strictly.

Taking it creates a ``velero.io/v1`` Backup of the chosen namespaces and waits
for Velero to finish; or (the point of a DR drill) it names an existing backup —
``existing: latest`` takes the newest Completed one, optionally of one schedule,
and its age is the RPO.  Restoring creates a Restore from it and waits.

Only ``Completed`` with no warnings and no errors counts as success: a
``PartiallyFailed``, ``Failed`` or ``FailedValidation`` phase, or any warning or
error count, fails the step with the phase and the counts named — a restore that
"mostly worked" is exactly what a drill is there to catch.  The reasons are named
too: Velero keeps a backup's or restore's warnings and errors in its object store,
and dirt reads them the way ``velero restore describe`` does (a ``DownloadRequest``,
then the presigned URL Velero answers with).  Warnings a team has decided to live
with are listed in ``accept_warnings`` (regular expressions); they are reported as
accepted, and any other warning still fails.  Errors are never accepted.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from dirt.clients import http
from dirt.core.durations import Duration
from dirt.core.errors import DirtError, StepFailed
from dirt.drivers import Backup, BackupRecord, Params, StepOutcome
from dirt.journal.faults import FaultLife
from dirt.recovery.resources import restore_resolves

API = "velero.io/v1"
#: Final phases that are failures (FinalizingPartiallyFailed is not final yet: its results file comes after).
FAILED_PHASES = {"PartiallyFailed", "Failed", "FailedValidation"}
#: How many of Velero's own messages a failure names (the journal keeps them all).
NAMED = 5


def result_messages(results: dict[str, Any], kind: str) -> list[str]:
    """Velero's ``{"velero": [...], "cluster": [...], "namespaces": {ns: [...]}}`` for ``kind``
    (``errors`` or ``warnings``) as flat lines, each saying where it applies."""
    section = results.get(kind) or {}
    lines = [f"velero: {m}" for m in section.get("velero") or []]
    lines += [f"cluster: {m}" for m in section.get("cluster") or []]
    for namespace, messages in sorted((section.get("namespaces") or {}).items()):
        lines += [f"namespace {namespace}: {m}" for m in messages or []]
    return lines


def split_accepted(warnings: list[str], patterns: list[str]) -> tuple[list[str], list[str]]:
    """(accepted, not accepted): a warning is accepted when one of ``patterns`` matches it (re.search)."""
    compiled = [re.compile(p) for p in patterns]
    accepted = [w for w in warnings if any(c.search(w) for c in compiled)]
    return accepted, [w for w in warnings if w not in accepted]


def _time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _finished_at(backup: dict[str, Any]) -> float:
    """When a backup finished (when it was created, if Velero did not say)."""
    return (_time((backup.get("status") or {}).get("completionTimestamp"))
            or _time(backup["metadata"].get("creationTimestamp")) or 0.0)


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
    max_age: Duration | None = Field(
        None, description="With existing: latest, the newest backup must have finished within this long "
                          "(the RPO a schedule promises); older fails.")
    wait: Duration = Field(0.0, description="With existing: latest, wait up to this long for a finished backup "
                                            "(younger than max_age) to appear, e.g. of a schedule created in setup.")
    accept_warnings: list[str] = Field(
        default_factory=list,
        description="Regular expressions of Velero warnings to accept (reported, not failed), e.g. "
                    "'ConfigMap:kube-root-ca.crt already exists'. Errors are never accepted.")
    existing_resource_policy: str | None = Field(
        None, pattern="^(none|update)$",
        description="Restore: what Velero does with objects that already exist ('none': warn; 'update': patch).")

    @field_validator("accept_warnings")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
        return patterns


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

    def _create_and_wait(self, kind: str, name: str, spec: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Create a Backup or Restore, then wait for Velero to finish it (strictly judged)."""
        self.ctx.target.kube().create({
            "apiVersion": API, "kind": kind,
            "metadata": {"name": name, "namespace": self.params.namespace,
                         "labels": {"app.kubernetes.io/managed-by": "dirt"}},
            "spec": spec,
        })
        return self._wait(name, kind)

    def _wait(self, name: str, kind: str) -> tuple[dict[str, Any], list[str]]:
        """The finished object and the warnings accepted (anything else fails the step)."""
        kube = self.ctx.target.kube()
        start = time.monotonic()
        while True:
            obj = kube.get(API, kind, name, self.params.namespace)
            done, detail = judge(obj, kind)
            if done is not None:
                return obj, self._verdict(obj, kind, done, detail)
            elapsed = time.monotonic() - start
            if elapsed > self.params.timeout:
                raise StepFailed(f"{detail} after {self.params.timeout:g}s (is the Velero server running?)")
            self.ctx.waiting(detail, elapsed, self.params.timeout)
            self.ctx.sleep(1.0)

    def _wait_synced(self, backup_name: str) -> None:
        """The Backup known to the cluster's Velero.  A cluster rebuilt since the backup has a new Velero that
        finds the backups in its location by itself, but only at its next sync (``--backup-sync-period``):
        a Restore created before then fails validation ("can't find backup")."""
        kube = self.ctx.target.kube()
        start = time.monotonic()
        while kube.find(API, "Backup", backup_name, self.params.namespace) is None:
            elapsed = time.monotonic() - start
            if elapsed > self.params.timeout:
                raise StepFailed(f"Velero does not know backup {backup_name} after {self.params.timeout:g}s: its "
                                 "backup location does not hold it, or Velero has not synced it (see `velero "
                                 "backup-location get` and the server's log)")
            self.ctx.waiting(f"Velero to sync backup {backup_name} from its location", elapsed, self.params.timeout)
            self.ctx.sleep(1.0)

    def _verdict(self, obj: dict[str, Any], kind: str, done: bool, detail: str) -> list[str]:
        """Pass a clean ``Completed``; otherwise read Velero's own warnings and errors and fail naming
        them, unless every problem is a warning the scenario accepts (returned)."""
        status = obj.get("status") or {}
        if done:
            return []
        completed = status.get("phase") == "Completed" and not status.get("errors")
        warnings: list[str] = []
        errors: list[str] = []
        results, why_not = self._results(kind, obj["metadata"]["name"])
        if results is not None:
            warnings, errors = result_messages(results, "warnings"), result_messages(results, "errors")
        accepted, unaccepted = split_accepted(warnings, self.params.accept_warnings)
        if completed and results is not None and not unaccepted and not errors:
            return accepted
        named = errors + unaccepted
        reasons = "; ".join(named[:NAMED]) + (f" (and {len(named) - NAMED} more)" if len(named) > NAMED else "")
        if accepted:
            reasons += f"{'; ' if reasons else ''}{len(accepted)} accepted warning(s)"
        if results is None:
            reasons = f"Velero's reasons not readable: {why_not}"
        raise StepFailed(f"{detail}" + (f": {reasons}" if reasons else ""),
                         data={"velero_errors": errors[:200], "velero_warnings": warnings[:200],
                               "accepted_warnings": accepted[:200]})

    def _results(self, kind: str, name: str) -> tuple[dict[str, Any] | None, str]:
        """Velero's results file of a Backup or Restore (its warnings and errors), or None and why not."""
        kube = self.ctx.target.kube()
        request = f"dirt-{name}-{time.strftime('%H%M%S', time.gmtime())}"[:63].rstrip("-")
        try:
            kube.create({"apiVersion": API, "kind": "DownloadRequest",
                         "metadata": {"name": request, "namespace": self.params.namespace,
                                      "labels": {"app.kubernetes.io/managed-by": "dirt"}},
                         "spec": {"target": {"kind": f"{kind}Results", "name": name}}})
            deadline = time.monotonic() + 30.0
            while True:
                status = kube.get(API, "DownloadRequest", request, self.params.namespace).get("status") or {}
                if status.get("phase") == "Processed" and status.get("downloadURL"):
                    break
                if time.monotonic() > deadline:
                    return None, "Velero did not answer the DownloadRequest within 30s"
                self.ctx.sleep(0.2)
            body = http.download(status["downloadURL"], timeout=30.0)
            return json.loads(gzip.decompress(body)), ""
        except (DirtError, OSError, ValueError, EOFError) as exc:
            return None, str(exc) or type(exc).__name__
        finally:
            try:
                kube.delete(API, "DownloadRequest", request, self.params.namespace)
            except DirtError:
                pass  # Velero expires them itself

    def _existing(self) -> tuple[dict[str, Any], list[str]]:
        """The backup named, or the newest finished one (of the schedule): judged like one the drill made.

        The newest *finished* backup is the one a restore would use in a real incident, so a newest
        backup that failed or warned fails the drill; an older clean one is not silently used instead.
        """
        kube = self.ctx.target.kube()
        p = self.params
        if p.existing != "latest":
            obj = kube.get(API, "Backup", p.existing or "", p.namespace)
            done, detail = judge(obj, "Backup")
            if done is None:
                raise StepFailed(f"{detail}: not finished, not a backup to restore from")
            return obj, self._verdict(obj, "Backup", done, detail)
        selector = f"velero.io/schedule-name={p.schedule}" if p.schedule else None
        what = f"Velero backup{' of schedule ' + p.schedule if p.schedule else ''} in {p.namespace}"
        start = time.monotonic()
        while True:
            finished = [b for b in kube.list(API, "Backup", p.namespace, label_selector=selector)
                        if judge(b, "Backup")[0] is not None]
            newest = max(finished, key=_finished_at) if finished else None
            age = time.time() - _finished_at(newest) if newest is not None else None
            if age is not None and (p.max_age is None or age <= p.max_age):
                break
            elapsed = time.monotonic() - start
            if elapsed >= p.wait:
                if newest is None:
                    raise StepFailed(f"no finished {what}" + (f" after waiting {p.wait:g}s" if p.wait else ""))
                raise StepFailed(f"the newest {what}, {newest['metadata']['name']}, finished {age:.0f}s ago: "
                                 f"older than max_age {p.max_age:g}s (is the schedule running?)")
            self.ctx.waiting(f"waiting for a {what}" + (f" younger than {p.max_age:g}s" if p.max_age else ""),
                             elapsed, p.wait)
            self.ctx.sleep(1.0)
        done, detail = judge(newest, "Backup")
        return newest, self._verdict(newest, "Backup", bool(done), detail)

    def take(self, name: str) -> BackupRecord:
        p = self.params
        if p.existing:
            obj, accepted = self._existing()
        else:
            backup_name = f"dirt-{name}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
            spec: dict[str, Any] = {"includedNamespaces": p.included_namespaces or ["*"], "ttl": p.ttl}
            if p.storage_location:
                spec["storageLocation"] = p.storage_location
            obj, accepted = self._create_and_wait("Backup", backup_name, spec)
        status = obj.get("status") or {}
        created = _finished_at(obj) or time.time()
        progress = status.get("progress") or {}
        return BackupRecord(name=name, type=self.name, location=f"{p.namespace}/{obj['metadata']['name']}",
                            created_at=created, objects=progress.get("itemsBackedUp"),
                            data={"backup": obj["metadata"]["name"], "phase": status.get("phase"),
                                  "schedule": (obj["metadata"].get("labels") or {}).get("velero.io/schedule-name"),
                                  "accepted_warnings": accepted})

    def restore(self, record: BackupRecord) -> StepOutcome:
        p = self.params
        backup_name = record.data["backup"]
        restore_name = f"dirt-restore-{backup_name}-{time.strftime('%H%M%S', time.gmtime())}"[:63]
        spec: dict[str, Any] = {"backupName": backup_name}
        if p.included_namespaces:
            spec["includedNamespaces"] = p.included_namespaces
        if p.existing_resource_policy:
            spec["existingResourcePolicy"] = p.existing_resource_policy
        self._wait_synced(backup_name)
        obj, accepted = self._create_and_wait("Restore", restore_name, spec)
        progress = (obj.get("status") or {}).get("progress") or {}
        return StepOutcome(f"Velero restore {restore_name} Completed from backup {backup_name}"
                           + (f" ({len(accepted)} accepted warning(s))" if accepted else ""),
                           {"restore": restore_name, "backup": backup_name,
                            "items_restored": progress.get("itemsRestored"),
                            "items_total": progress.get("totalItems"), "accepted_warnings": accepted})

    def resolves(self, fault: FaultLife, record: BackupRecord | None) -> str | None:
        return restore_resolves(fault, self.params.included_namespaces)


DRIVERS = [VeleroBackup]

"""The ``resources`` backup: namespaces exported as YAML, restored by server-side apply.

The export and restore themselves (their layout, order and digests) are in
``dirt.drivers.resources``, shared with the namespace fault's safety export and
the ``objects.match_backup`` check; this module is the backup driver.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from dirt.drivers import Backup, BackupRecord, Params, StepOutcome
from dirt.drivers.resources import export_namespaces, latest_version, read_manifest, restore_folder
from dirt.journal.faults import FaultLife


class ResourcesParams(Params):
    namespaces: list[str] = Field(min_length=1, description="Namespaces to export.")
    kinds: list[str] | None = Field(None, description="Only these kinds (default: every listable namespaced kind).")
    cluster_kinds: list[str] = Field(default_factory=list, description="Cluster-scoped kinds too, e.g. CustomResourceDefinition.")
    existing: str | None = Field(None, description="Use an existing export folder (its latest version) instead of taking one.")
    folder: str | None = Field(None, description="Where new exports go (default: the run's backups folder).")
    concurrency: int = Field(8, ge=1, le=64, description="Parallel applies on restore.")


class ResourcesBackup(Backup):
    """Export namespaces to a versioned folder; restore by concurrent server-side apply."""

    name = "resources"
    Params = ResourcesParams

    def plan(self) -> list[str]:
        p = self.params
        if p.existing:
            return [f"use the latest export under {p.existing} (its age is the RPO)"]
        what = ", ".join(p.kinds) if p.kinds else "every namespaced kind"
        name = self.ctx.step.name if self.ctx.step is not None else "<backup name>"
        return [f"export {what} in namespace(s) {', '.join(p.namespaces)}"
                + (f" plus {', '.join(p.cluster_kinds)}" if p.cluster_kinds else ""),
                f"into {self._base(name)}/<UTC time>/"]

    def _base(self, name: str) -> Path:
        if self.params.folder:
            folder = Path(self.params.folder)
            return folder if folder.is_absolute() else self.ctx.scenario_dir / folder
        return self.ctx.run_dir / "backups" / name

    def take(self, name: str) -> BackupRecord:
        p = self.params
        if p.existing:
            source = Path(p.existing)
            source = source if source.is_absolute() else self.ctx.scenario_dir / source
            version = latest_version(source)
            manifest = read_manifest(version)
        else:
            version = self._base(name) / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            manifest = export_namespaces(self.ctx.target.kube(), p.namespaces, version, kinds=p.kinds,
                                         cluster_kinds=p.cluster_kinds)
        return BackupRecord(name=name, type=self.name, location=str(version), created_at=manifest["created_at"],
                            objects=manifest["count"], data={"counts": manifest.get("counts", {}),
                                                             "namespaces": manifest.get("namespaces", [])})

    def restore(self, record: BackupRecord) -> StepOutcome:
        summary = restore_folder(self.ctx.target.kube(), Path(record.location), namespaces=self.params.namespaces,
                                 concurrency=self.params.concurrency)
        return StepOutcome(f"applied {summary['applied']} object(s) from {Path(record.location).name} "
                           f"({summary['skipped_owned']} controller-owned left to their controllers)",
                           {"applied": summary["applied"]})


    def resolves(self, fault: FaultLife, record: BackupRecord | None) -> str | None:
        return restore_resolves(fault, self.params.namespaces)


def restore_resolves(fault: FaultLife, namespaces: list[str]) -> str | None:
    """What a restore of ``namespaces`` (every namespace when empty) undoes: the deletion of one
    of them, and a deleted cluster once it exists again (a restore into it succeeded)."""
    if fault.driver == "namespace.delete" and (not namespaces or fault.params.get("namespace") in namespaces):
        return f"namespace {fault.params.get('namespace')} restored from the backup"
    if fault.driver == "cluster.delete":
        return "the recreated cluster restored from the backup"
    return None


DRIVERS = [ResourcesBackup]

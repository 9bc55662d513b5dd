"""The ``etcd_snapshot`` backup: an etcd snapshot, verified, restored by the documented procedure.

Taking it: ``etcdctl snapshot save`` through the target, then ``etcdutl snapshot
status`` (hash, revision, total keys) — a snapshot that cannot be read is a
failed backup, found in preflight rather than during the disaster.  Restoring
it is the target's job (stop the API server, restore into a fresh data dir,
start etcd on it, start the API server); or name an existing snapshot file
(``existing:``) to prove the real backups restore.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dirt.core.errors import StepFailed
from dirt.drivers import Backup, BackupRecord, Params, StepOutcome
from dirt.journal.faults import FaultLife

#: What restoring a snapshot undoes.  The documented procedure restarts every
#: control-plane component on the restored data (the target protocol requires it),
#: so components a fault stopped run again too.
UNDONE_BY_RESTORE = {
    "etcd.wipe": "etcd's data restored from the snapshot",
    "cluster.delete": "the recreated cluster's etcd restored from the snapshot",
    "etcd.stop": "etcd restarted on the restored data",
    "control_plane.stop": "the restore procedure restarted the control plane",
}


class EtcdSnapshotParams(Params):
    existing: str | None = Field(None, description="Use this snapshot file instead of taking one.")
    min_keys: int = Field(1, ge=0, le=1_000_000_000, description="A snapshot with fewer keys is refused as empty.")


class EtcdSnapshot(Backup):
    """Save and verify an etcd snapshot; restore it by the etcd disaster-recovery procedure."""

    name = "etcd_snapshot"
    Params = EtcdSnapshotParams
    requires = frozenset({"etcd_snapshot"})

    def plan(self) -> list[str]:
        if self.params.existing:
            return [f"verify the existing etcd snapshot {self.params.existing} (its age is the RPO)"]
        name = self.ctx.step.name if self.ctx.step is not None else "<backup name>"
        return [f"save an etcd snapshot to {self.ctx.run_dir / 'backups' / f'{name}.etcd.db'} and verify it "
                "(hash, revision, key count)"]

    def take(self, name: str) -> BackupRecord:
        target = self.ctx.target
        if self.params.existing:
            path = Path(self.params.existing)
            path = path if path.is_absolute() else self.ctx.scenario_dir / path
            if not path.is_file():
                raise StepFailed(f"etcd snapshot {path} not found")
            status = getattr(target, "etcd_snapshot_status", None)
            info = status(path) if status else None
            created = path.stat().st_mtime
        else:
            path = self.ctx.run_dir / "backups" / f"{name}.etcd.db"
            info = target.etcd_snapshot_save(path)
            created = info.created_at
        known = info is not None and (info.hash != 0 or info.total_keys != 0)  # 0/0: status unavailable
        if known and info.total_keys < self.params.min_keys:
            raise StepFailed(f"etcd snapshot {path.name} holds {info.total_keys} keys: refusing an empty backup")
        data = info.to_dict() if info is not None else {}
        return BackupRecord(name=name, type=self.name, location=str(path), created_at=created,
                            objects=info.total_keys if info is not None else None, data=data)

    def restore(self, record: BackupRecord) -> StepOutcome:
        self.ctx.target.etcd_snapshot_restore(Path(record.location))
        return StepOutcome(f"etcd restored from {Path(record.location).name} (revision {record.data.get('revision')}, "
                           f"{record.objects} keys)", {"revision": record.data.get("revision")})

    def resolves(self, fault: FaultLife, record: BackupRecord | None) -> str | None:
        return UNDONE_BY_RESTORE.get(fault.driver)


DRIVERS = [EtcdSnapshot]

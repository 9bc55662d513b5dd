"""The sandbox's volume provisioner: which claims get a volume, and what that volume is."""

from __future__ import annotations

from pathlib import Path

from dirt.sandbox.provisioner import STORAGE_CLASS, volume_for, wants_volume


def claim(**spec) -> dict:
    return {"metadata": {"name": "data-db-0", "namespace": "shop", "uid": "u-1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}, **spec},
            "status": {"phase": "Pending"}}


def test_pending_claims_of_the_sandbox_class_or_none_get_a_volume() -> None:
    assert wants_volume(claim(storageClassName=STORAGE_CLASS))
    assert wants_volume(claim())
    assert not wants_volume(claim(storageClassName="fast-ssd"))
    assert not wants_volume(claim(storageClassName=STORAGE_CLASS, volumeName="pv-x"))


def test_the_volume_matches_the_claim_and_is_pre_bound_to_it() -> None:
    pv = volume_for(claim(storageClassName=STORAGE_CLASS), Path("/state/volumes"))
    assert pv["spec"]["capacity"] == {"storage": "5Gi"}
    assert pv["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pv["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "shop",
                                      "name": "data-db-0", "uid": "u-1"}
    assert pv["spec"]["hostPath"]["path"] == "/state/volumes/shop/data-db-0"

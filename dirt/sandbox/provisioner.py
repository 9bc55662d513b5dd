"""A tiny volume provisioner for the sandbox, so manifests with PersistentVolumeClaims work.

The sandbox has no storage: without a provisioner every PVC stays Pending and a
StatefulSet never becomes ready.  This process keeps a default StorageClass
(``standard``) and, for every Pending claim of it, creates a hostPath
PersistentVolume pre-bound to the claim (under the sandbox's folder); the
controller-manager's PV controller then binds them as on a real cluster.  KWOK
runs no containers, so nothing is ever written to those folders.

Run by ``dirt sandbox up`` as ``python -m dirt.sandbox.provisioner``; it polls
once a second, survives the API server going away (and the cluster being
recreated with a new PKI: it reloads the kubeconfig after an error), and stops
with the sandbox.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

STORAGE_CLASS = "standard"
PROVISIONER = "dirt.sandbox/hostpath"


def storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
    }


def volume_for(claim: dict[str, Any], root: Path) -> dict[str, Any]:
    meta = claim["metadata"]
    spec = claim.get("spec", {})
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    name = f"pv-{meta['namespace']}-{meta['name']}"[:253]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "dirt-sandbox"},
                     "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS,
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": str(root / meta["namespace"] / meta["name"]), "type": "DirectoryOrCreate"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
        },
    }


def wants_volume(claim: dict[str, Any]) -> bool:
    spec = claim.get("spec", {})
    return (claim.get("status", {}).get("phase") == "Pending" and not spec.get("volumeName")
            and spec.get("storageClassName") in (STORAGE_CLASS, None))


def reconcile(kube: Any, root: Path) -> int:
    """One pass: the StorageClass exists, every Pending claim has a volume. Returns volumes created."""
    from dirt.core.errors import APIConflictError

    if kube.find("storage.k8s.io/v1", "StorageClass", STORAGE_CLASS) is None:
        kube.apply(storage_class())
    created = 0
    for claim in kube.list("v1", "PersistentVolumeClaim"):
        if not wants_volume(claim):
            continue
        try:
            kube.create(volume_for(claim, root))
            created += 1
        except APIConflictError:
            pass  # created on an earlier pass; the PV controller binds it
    for volume in kube.list("v1", "PersistentVolume", label_selector="app.kubernetes.io/managed-by=dirt-sandbox"):
        if volume.get("status", {}).get("phase") == "Released":  # its claim is gone: reclaim
            kube.delete("v1", "PersistentVolume", volume["metadata"]["name"])
    return created


def main(argv: list[str] | None = None) -> int:
    from dirt.clients.kube import KubeClient
    from dirt.core.errors import DirtError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root", required=True, help="folder for the volumes' hostPath directories")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    kube = None
    last_error = ""
    while not stopping:
        try:
            if kube is None:
                kube = KubeClient.from_kubeconfig(args.kubeconfig)
            created = reconcile(kube, Path(args.root))
            if created:
                print(f"provisioned {created} volume(s)", flush=True)
            last_error = ""
        except DirtError as exc:
            if str(exc) != last_error:  # once per outage, not once per second
                print(f"waiting for the API: {exc}", file=sys.stderr, flush=True)
                last_error = str(exc)
            kube = None  # the cluster may have been recreated with new certificates
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

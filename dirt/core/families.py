"""Fault families: the unit of a target's guardrails (``allow: [...]`` in dirt.yaml).

A fault declares its family; a target allows families.  The vocabulary lives
here, below both, because ``dirt.yaml`` is validated against it before any
driver is loaded.
"""

from __future__ import annotations

#: Family name -> what a fault of that family does, as ``dirt targets`` and ``dirt plan`` say it.
FAMILIES: dict[str, str] = {
    "pods": "delete pods",
    "container": "kill a container's process through its runtime (the kubelet restarts it)",
    "workload": "scale or change Deployments/StatefulSets",
    "namespace": "delete a namespace and everything in it",
    "node": "delete, cordon, drain or power off nodes",
    "network": "deny traffic with NetworkPolicies",
    "control-plane": "stop kube-apiserver, controller-manager or scheduler",
    "etcd": "stop etcd or lose its data",
    "cluster": "delete the whole cluster",
    "command": "run an arbitrary command as a fault",
    "none": "harmless (sleeps, test doubles)",
}

#: The family of a fault that declares none: the most destructive, so that it needs the
#: target's explicit allowance everywhere but the sandbox.
HARMLESS = "none"

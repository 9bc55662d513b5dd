"""Faults done through the nodes themselves, beneath the API: a container's process killed by its
runtime, a node's machine powered off.

Both need a node that runs containers (capability ``containers`` / ``node_power``): the sandbox's
real node, a kind worker's node container, or a real cluster's machines through the kubeconfig
target's configured commands.  A KWOK node has no process to kill and no machine to lose, and the
target says so.

``container.kill`` is what a crashing process looks like: the runtime signals the container's main
process, the kubelet sees it exit and restarts it (``restartPolicy``), its probes fail meanwhile.
It is not reverted: the kubelet's restart is the recovery the drill watches.
``node.poweroff`` loses a node's machine: its containers killed, its kubelet and runtime stopped,
so the node goes NotReady and its pods are evicted after their toleration; revert powers it on.
"""

from __future__ import annotations

import random
from typing import Any

from pydantic import Field, model_validator

from dirt.core.errors import StepFailed
from dirt.drivers import CheckResult, Fault, Params
from dirt.drivers.kube import Selector, selector_text


class ContainerKillParams(Params):
    namespace: str
    pod: str | None = Field(None, description="A pod by name.")
    selector: Selector | None = Field(None, description="Or: pods matching a label selector ('app=web' or {app: web}).")
    container: str | None = Field(None, description="The container (default: the pod's first).")
    count: int = Field(1, ge=1, le=1_000, description="How many of the matching pods.")
    signal: str = Field("SIGKILL", pattern=r"^SIG[A-Z0-9]+$",
                        description="The signal sent to the container's main process (SIGKILL: a crash).")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Seed for choosing pods (default: random).")

    @model_validator(mode="after")
    def _which(self) -> ContainerKillParams:
        if (self.pod is None) == (self.selector is None):
            raise ValueError("give a 'pod' or a 'selector' (exactly one)")
        return self


def _container_status(pod: dict[str, Any], container: str) -> dict[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return dict(status)
    return None


class ContainerKill(Fault):
    """Kill a container's process through the node's runtime (a crash); the kubelet restarts it."""

    name = "container.kill"
    family = "container"
    Params = ContainerKillParams
    requires = frozenset({"containers"})
    reversible = False
    heals = "the kubelet restarts the container (its restartPolicy)"

    def _where(self) -> str:
        p = self.params
        return f"pod {p.pod}" if p.pod else f"{p.count} pod(s) matching {selector_text(p.selector)!r}"

    def plan(self) -> list[str]:
        p = self.params
        return [f"send {p.signal} to container {p.container or '(first)'} of {self._where()} in namespace "
                f"{p.namespace}, through the node's container runtime",
                f"no rollback: {self.heals}"]

    def _pods(self) -> list[dict[str, Any]]:
        kube = self.ctx.target.kube()
        p = self.params
        if p.pod:
            return [kube.get("v1", "Pod", p.pod, p.namespace)]
        pods = sorted((pod for pod in kube.list("v1", "Pod", p.namespace, label_selector=selector_text(p.selector))
                       if not pod["metadata"].get("deletionTimestamp")), key=lambda pod: pod["metadata"]["name"])
        if len(pods) < p.count:
            raise StepFailed(f"{len(pods)} pod(s) match {selector_text(p.selector)!r} in {p.namespace}, "
                             f"{p.count} wanted")
        return random.Random(p.seed).sample(pods, p.count)

    def inject(self) -> None:
        killed = []
        for pod in self._pods():
            container = self.params.container or pod["spec"]["containers"][0]["name"]
            before = _container_status(pod, container) or {}
            cid = self.ctx.target.kill_container(pod, container, signal=self.params.signal)
            killed.append({"pod": pod["metadata"]["name"], "uid": pod["metadata"]["uid"], "container": container,
                           "container_id": cid, "node": pod["spec"].get("nodeName"),
                           "restarts_before": int(before.get("restartCount", 0))})
        self.state = {"killed": killed}

    def verify_injected(self) -> CheckResult:
        """The kubelet saw the process end: the container restarted, or is not running now."""
        kube = self.ctx.target.kube()
        waiting = []
        for item in self.state.get("killed", []):
            pod = kube.find("v1", "Pod", item["pod"], self.params.namespace)
            if pod is None or pod["metadata"]["uid"] != item["uid"]:
                continue  # the pod itself is gone: its process certainly ended
            status = _container_status(pod, item["container"]) or {}
            ended = (int(status.get("restartCount", 0)) > item["restarts_before"]
                     or "running" not in (status.get("state") or {})
                     or str(status.get("containerID", "")).removeprefix("containerd://") != item["container_id"])
            if not ended:
                waiting.append(f"{item['pod']}/{item['container']}")
        killed = ", ".join(f"{i['pod']}/{i['container']} on {i['node']}" for i in self.state.get("killed", []))
        return CheckResult(not waiting, f"killed: {killed}" if not waiting
                           else f"the kubelet has not seen the process end yet: {', '.join(waiting)}")

    def in_effect(self) -> CheckResult:
        """Until every killed container runs again and is ready (or its pod was replaced)."""
        kube = self.ctx.target.kube()
        down = []
        for item in self.state.get("killed", []):
            pod = kube.find("v1", "Pod", item["pod"], self.params.namespace)
            if pod is None or pod["metadata"]["uid"] != item["uid"]:
                continue  # replaced by its controller: the new pod is not this fault's
            status = _container_status(pod, item["container"]) or {}
            if not (status.get("ready") and "running" in (status.get("state") or {})):
                down.append(f"{item['pod']}/{item['container']}")
        return CheckResult(bool(down), f"not running and ready yet: {', '.join(down)}" if down
                           else "every killed container runs again and is ready")


class NodePowerParams(Params):
    node: str = Field(description="The node whose machine is lost (the sandbox's real node real-0, a kind "
                                  "worker, or a real cluster's node).")


class NodePowerOff(Fault):
    """A node's machine lost: its containers killed, its kubelet and runtime stopped; revert powers it on."""

    name = "node.poweroff"
    family = "node"
    Params = NodePowerParams
    requires = frozenset({"node_power"})
    reversible = True

    def plan(self) -> list[str]:
        return [f"power off node {self.params.node}: its containers killed, its kubelet and container runtime "
                "stopped; the node goes NotReady and its pods are evicted after their tolerations",
                "rollback: power it on (runtime and kubelet started; the node registers and runs its pods again)"]

    def inject(self) -> None:
        self.state = {"node": self.params.node}
        self.ctx.target.stop_node(self.params.node)

    def verify_injected(self) -> CheckResult:
        off = not self.ctx.target.node_running(self.params.node)
        return CheckResult(off, f"node {self.params.node} is powered off" if off
                           else f"node {self.params.node} still runs its kubelet")

    def revert(self) -> str:
        if self.ctx.target.node_running(self.params.node):
            return f"node {self.params.node} already runs"
        self.ctx.target.start_node(self.params.node)
        return f"node {self.params.node} powered on and Ready"


DRIVERS = [ContainerKill, NodePowerOff]

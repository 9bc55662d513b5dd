"""Recovery steps done by the target: start components, start etcd, create the cluster."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import Field

from dirt.core.errors import StepFailed
from dirt.drivers import Params, RecoveryStep, StepOutcome
from dirt.journal.faults import FaultLife

#: The faults that stop components, and so are undone by starting them.
STOPPING_FAULTS = ("control_plane.stop", "etcd.stop")

Component = Literal["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok-controller"]


def stopped_by(fault: FaultLife) -> list[str]:
    """The components a stopping fault stopped (from its record, else its parameters)."""
    if fault.driver == "etcd.stop":
        return ["etcd"]
    return list(fault.state.get("stopped") or fault.params.get("components") or [])


def wait_api(step: RecoveryStep, timeout: float) -> float:
    """Wait until the API server answers /readyz; return the seconds it took.

    When the API server is not running at all (another fault still stops it),
    there is nothing to wait for: a drill of compound faults starts its
    components in any order.
    """
    target = step.ctx.target
    if "components" in target.capabilities and not target.component_running("kube-apiserver"):
        return 0.0
    start = time.monotonic()
    while not target.kube().readyz():
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise StepFailed(f"the API server is not ready {timeout:.0f}s after {step.name}")
        step.ctx.waiting("waiting for the API server", elapsed, timeout)
        step.ctx.sleep(0.5)
    return time.monotonic() - start


class ComponentsParams(Params):
    components: list[Component] = Field(min_length=1)
    wait_api: bool = Field(True, description="Wait until the API server is ready afterwards.")


class ControlPlaneStart(RecoveryStep):
    """Start control-plane components (and wait until the API server is ready)."""

    name = "control_plane.start"
    Params = ComponentsParams
    requires = frozenset({"components"})

    def plan(self) -> list[str]:
        return [f"start {', '.join(self.params.components)}"]

    def run(self) -> StepOutcome:
        started = []
        for component in self.params.components:
            if not self.ctx.target.component_running(component):
                self.ctx.target.start_component(component)
                started.append(component)
        waited = wait_api(self, self.ctx.remaining(120.0)) if self.params.wait_api else 0.0
        return StepOutcome(f"started {', '.join(started) or 'nothing (already running)'}; "
                           f"API ready after {waited:.1f}s", {"started": started})

    def resolves(self, fault: FaultLife) -> str | None:
        stopped = stopped_by(fault) if fault.driver in STOPPING_FAULTS else []
        if stopped and set(stopped) <= set(self.params.components):
            return f"started {', '.join(stopped)}"
        return None


class EtcdStartParams(Params):
    wait_api: bool = True


class EtcdStart(RecoveryStep):
    """Start etcd again (and wait until the API server can use it)."""

    name = "etcd.start"
    Params = EtcdStartParams
    requires = frozenset({"components"})

    def run(self) -> StepOutcome:
        if not self.ctx.target.component_running("etcd"):
            self.ctx.target.start_component("etcd")
        waited = wait_api(self, self.ctx.remaining(120.0)) if self.params.wait_api else 0.0
        return StepOutcome(f"etcd running; API ready after {waited:.1f}s")

    def resolves(self, fault: FaultLife) -> str | None:
        return "started etcd" if fault.driver == "etcd.stop" else None


class ClusterCreateParams(Params):
    wait_api: bool = True


class ClusterCreate(RecoveryStep):
    """Create the cluster again, with the same name (fresh etcd: empty)."""

    name = "cluster.create"
    Params = ClusterCreateParams
    requires = frozenset({"cluster"})

    def plan(self) -> list[str]:
        return [f"create cluster {self.ctx.target.cluster_name()} again (fresh and empty)"]

    def run(self) -> StepOutcome:
        if self.ctx.target.cluster_exists():
            return StepOutcome("the cluster exists already")
        self.ctx.target.create_cluster()
        waited = wait_api(self, self.ctx.remaining(180.0)) if self.params.wait_api else 0.0
        return StepOutcome(f"cluster {self.ctx.target.cluster_name()} created; API ready after {waited:.1f}s")


DRIVERS = [ControlPlaneStart, EtcdStart, ClusterCreate]

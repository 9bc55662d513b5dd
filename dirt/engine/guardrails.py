"""Guardrails: what a target refuses, and the one confirmation destructive work needs.

Off the sandbox, a destructive fault runs only if its family is in the target's
``allow`` list *and* a person confirmed (``--yes``, or typing the cluster's name
when asked).  ``dirt rollback`` asks the same way before it touches a real
cluster.  A target also refuses every step (fault, recovery step, backup) that
needs a capability it lacks (``Driver.requirements`` against
``Target.capabilities``): a kubeconfig target without a command to stop the
control plane cannot run ``control_plane.stop``, and finding that out at inject
would leave a half-done drill.  ``refusals`` is what ``dirt plan`` shows and what
a run refuses in preflight, before anything is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dirt.core.errors import DrillAborted, GuardrailError
from dirt.core.families import HARMLESS
from dirt.drivers import Driver, fault_family
from dirt.drivers.registry import Registry
from dirt.scenario.model import Scenario, StepSpec
from dirt.targets.base import Target

#: Asked before destructive work on a target that is not disposable; True goes on.
Confirm = Callable[[Target, list[str]], bool]


@dataclass(frozen=True)
class Refusal:
    spec: StepSpec
    reason: str


def refusals(scenario: Scenario, target: Target, registry: Registry) -> list[Refusal]:
    """Steps this target will not perform: a fault family it does not allow, or anything
    that needs a capability it lacks; in the order of the scenario.

    On a fleet target each step is judged by the member it acts on (``member:``), with that
    member's own ``allow`` list and capabilities; a check or step without one by every member.
    A fault or backup must name its member: breaking every cluster of a fleet at once is not
    something to ask for by leaving a line out."""
    found = []
    members = target.members()
    for spec in scenario.steps():
        cls = registry.get(spec.kind, spec.driver)
        if spec.member is not None and spec.member not in members:
            found.append(Refusal(spec, f"'member: {spec.member}': " + (
                f"fleet {target.name!r} has no such member (its members: {', '.join(members)})" if members
                else f"target {target.name!r} ({target.provider}) is a single cluster, not a fleet")))
            continue
        if members and spec.member is None and spec.kind in ("fault", "backup"):
            found.append(Refusal(spec, f"on fleet {target.name!r} a {spec.kind} needs 'member:' naming the cluster "
                                       f"it acts on (one of {', '.join(members)})"))
            continue
        if members and (spec.member is not None or getattr(cls, "each_member", True)):
            for member in [spec.member] if spec.member else members:
                found.extend(_refused(spec, cls, target.member_target(member)))
        else:
            found.extend(_refused(spec, cls, target))
    return found


def _refused(spec: StepSpec, cls: type[Driver] | None, target: Target) -> list[Refusal]:
    """Why ``target`` will not run ``spec``: a fault family it does not allow, or missing capabilities."""
    if spec.kind == "fault":
        family = fault_family(cls, spec.params)
        if not target.allows(family):
            return [Refusal(spec, f"target {target.name!r} does not allow {family!r} faults; add "
                                  f"'{family}' to targets.{target.name}.allow in dirt.yaml if this is intended")]
    return [Refusal(spec, target.why_not(capability)) for capability in _lacking(cls, spec, target)]


def _lacking(cls: type[Driver] | None, spec: StepSpec, target: Target) -> list[str]:
    """The capabilities ``spec`` needs that ``target`` does not have, sorted."""
    if cls is None:
        return []
    return sorted(cls.requirements(spec.params) - target.capabilities)


def destructive(scenario: Scenario, registry: Registry) -> list[str]:
    """The scenario's faults that change the cluster, as '<driver> (<family>)'."""
    out = []
    for spec in scenario.inject:
        family = fault_family(registry.get("fault", spec.driver), spec.params)
        if family != HARMLESS:
            out.append(f"{spec.driver} ({family})")
    return out


def require_confirmation(target: Target, actions: list[str], *, assume_yes: bool, confirm: Confirm | None,
                         what: str) -> None:
    """The one confirmation: needed off the sandbox when the target asks for it; raises if refused."""
    if not actions or target.is_sandbox or not target.config.confirm or assume_yes:
        return
    if confirm is None or not confirm(target, actions):
        raise DrillAborted(f"not confirmed: {what} on target {target.name!r}: that needs --yes or typing "
                           f"the cluster name {target.cluster_name()!r}")


def check_guardrails(scenario: Scenario, target: Target, registry: Registry, *, assume_yes: bool,
                     confirm: Confirm | None) -> None:
    """Refuse what the target does not allow; ask before destructive faults off the sandbox."""
    refused = refusals(scenario, target, registry)
    if refused:
        raise GuardrailError("\n".join(f"{scenario.path.name}:{r.spec.line}: {r.spec.driver}: {r.reason}"
                                        for r in refused))
    require_confirmation(target, destructive(scenario, registry), assume_yes=assume_yes, confirm=confirm,
                         what="destructive faults")

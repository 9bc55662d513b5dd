"""``dirt plan``: what a drill would do, step by step, what it would break, and how each
fault's life is meant to end.

Nothing here connects to anything: drivers describe their blast radius from
their parameters alone (``plan()``), recovery steps say which faults they would
undo (``resolves``) from parameters alone, and the guardrail verdict comes from
dirt.yaml.  The output is meant to be pasted into a game-day announcement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dirt.clients.monitoring import safe_url
from dirt.config import LoadedConfig
from dirt.core.durations import format_limit
from dirt.core.errors import GuardrailError
from dirt.core.templating import substitute_value
from dirt.drivers import Context, RecoveryStep, fault_family
from dirt.drivers.registry import Registry, default_registry
from dirt.engine.guardrails import refusals
from dirt.journal.faults import FaultLife
from dirt.scenario import LoadOptions, Scenario, StepSpec, load_scenario
from dirt.scenario.model import AvailabilityExpectation
from dirt.targets.base import Target, make_target

TITLES = {
    "setup": "preflight: setup", "steady_state": "preflight: steady state", "backups": "preflight: backups",
    "inject": "inject", "recover": "recover", "verify": "verify", "rollback": "rollback (on failure)",
    "cleanup": "cleanup (always)",
}


def render_plan(path: Path, loaded: LoadedConfig, options: LoadOptions, target_name: str | None) -> str:
    scenario = load_scenario(path, options)
    registry = default_registry()
    name, tconfig = loaded.target(target_name or scenario.target)
    target = make_target(name, tconfig, loaded.root)
    # The run folder a run would make, for drivers to name where they would write (they write nothing here).
    ctx = Context(target=target, run_dir=Path(loaded.config.reports_dir) / "<run id>",
                  scenario_dir=scenario.path.parent)
    ctx.vars = {**scenario.vars, **options.variables}
    for spec in scenario.backups:  # so a backup.restore step can say what its restore would undo
        cls = registry.get("backup", spec.driver)
        if cls is not None:
            ctx.backup_drivers[spec.name] = cls(spec.params, ctx)  # type: ignore[assignment]
    out = [f"Drill {scenario.name} ({path})"]
    if scenario.metadata.description:
        out.append(f"  {scenario.metadata.description}")
    out.append(f"Target: {name} (provider {tconfig.provider}){' — sandbox' if target.is_sandbox else ''}")
    refused: dict[tuple[str, int], list[str]] = {}
    for refusal in refusals(scenario, target, registry):
        refused.setdefault((refusal.spec.section, refusal.spec.index), []).append(refusal.reason)
    for section, title in TITLES.items():
        specs: list[StepSpec] = getattr(scenario, section)
        if not specs:
            continue
        out.append(f"\n{title}:")
        for spec in specs:
            out.extend(_describe(spec, ctx, registry, target, refused.get((section, spec.index), [])))
    out.append("\nfault lives (planned):")
    out.extend(_lives(scenario, ctx, registry))
    expect = scenario.expect
    if expect.alerts or expect.silent or expect.mttr is not None or expect.availability:
        out.append("\nexpect:")
        for alert in expect.alerts:
            labels = "".join(f" {k}={v}" for k, v in alert.labels.items())
            resolve = f", resolves within {format_limit(alert.resolves_within)} of recovery" \
                if alert.resolves_within is not None else ""
            out.append(f"  - alert {alert.name}{labels} fires within {format_limit(alert.fires_within)}{resolve}"
                       f" ({', '.join(alert.sources or ['all sources'])})")
        for silent in expect.silent:
            out.append(f"  - alert {silent if isinstance(silent, str) else silent.name} stays silent")
        if expect.mttr is not None:
            out.append(f"  - MTTR within {format_limit(expect.mttr)}")
        for probe in expect.availability:
            out.append(f"  - availability {_availability(probe, ctx.vars)}")
    if scenario.abort_when:
        out.append("\nabort when:")
        for condition in scenario.abort_when:
            lasting = f" for {format_limit(condition.for_)}" if condition.for_ else ""
            out.append(f"  - {condition.title()}{lasting}")
    out.append("\n(dry run: nothing was touched)")
    if refused:
        raise PlanRefused("\n".join(out), sum(len(r) for r in refused.values()))
    return "\n".join(out)


class PlanRefused(GuardrailError):
    """The plan, printed in full, with steps the target refuses: ``dirt run`` would refuse it too (exit 2)."""

    def __init__(self, plan: str, count: int) -> None:
        self.plan = plan
        super().__init__(f"the target refuses {count} step(s) of this drill (marked REFUSED above)")


def _describe(spec: StepSpec, ctx: Context, registry: Registry, target: Target, refused: list[str]) -> list[str]:
    cls = registry.get(spec.kind, spec.driver)
    assert cls is not None  # the loader checked
    members = target.members()
    if spec.member in members:  # on a fleet, the blast radius is the member's
        ctx = ctx.for_member(spec.member)
        target = ctx.target
    driver = cls(spec.params, ctx)
    head = f"  - {spec.name}" + (f" [{spec.driver}]" if spec.name != spec.driver else "")
    if spec.member in members:
        head += f" on member {spec.member}"
    elif members and spec.kind in ("check", "step") and cls.each_member:
        head += f" on every member ({', '.join(members)})"
    if spec.within is not None:
        head += f" within {format_limit(spec.within)}"
    lines = [head]
    lines.extend(f"      REFUSED: {reason}" for reason in refused)
    if spec.kind == "fault" and not refused:
        family = fault_family(cls, spec.params)
        if family != "none" and not target.is_sandbox:
            lines.append(f"      destructive ({family}): needs --yes or typing the cluster name")
        else:
            lines.append(f"      family: {family}")
    if hasattr(driver, "plan"):
        ctx.step = spec
        try:
            lines.extend(f"      {line}" for line in driver.plan())
        finally:
            ctx.step = None
    elif hasattr(driver, "probe"):
        lines.append(f"      {cls.summary()}")
    if spec.playbook is not None:
        anchor = f"#{spec.playbook.anchor}" if spec.playbook.anchor else ""
        lines.append(f"      playbook: {spec.playbook.display}{anchor}"
                     + (f" ({spec.playbook.title})" if spec.playbook.title else ""))
    return lines


def _lives(scenario: Scenario, ctx: Context, registry: Registry) -> list[str]:
    """How each fault is meant to leave its in-effect states: which recovery step undoes it,
    else whether rollback can."""
    lines = []
    for spec in scenario.inject:
        cls = registry.get("fault", spec.driver)
        assert cls is not None  # the loader checked
        life = FaultLife(index=spec.index, name=spec.name, driver=spec.driver,
                         params=spec.params.model_dump(mode="json", by_alias=True),
                         reversible=bool(cls(spec.params, ctx).reversible),  # type: ignore[attr-defined]
                         rollback=spec.rollback)
        by = None
        for step in scenario.recover:
            how = _would_resolve(step, life, ctx, registry)
            if how:
                by = f"recovered by step {step.name!r} ({how})"
                break
        if by is None and cls.heals:
            by = (f"heals by itself: {cls.heals}; after verify dirt checks that it is no longer in effect"
                  + (", and rollback reverts it if it is" if life.reversible and life.rollback else ""))
        elif by is None:
            by = ("not undone by any recovery step: rollback reverts it" if life.reversible and life.rollback
                  else "not undone by any recovery step, and rollback cannot revert it: it stays in effect")
        lines.append(f"  - {spec.name}: planned → injected → verified → {by}")
    return lines


def _availability(probe: AvailabilityExpectation, variables: dict[str, Any]) -> str:
    """One availability probe: what it asks, how often, what a failed sample is, its objectives."""
    if probe.http is not None:
        url = str(substitute_value(probe.http, variables, keep_unknown=True))
        asks = f"GET {url if '{{' in url else safe_url(url)}"
        fails = [f"no answer within {format_limit(probe.timeout)}",
                 f"a status other than {', '.join(map(str, probe.expect_status))}" if probe.expect_status
                 else "a status other than 2xx or 3xx"]
        if probe.max_latency is not None:
            fails.append(f"an answer slower than {format_limit(probe.max_latency)}")
    else:
        asks = f"PromQL {' '.join(str(substitute_value(probe.promql or '', variables, keep_unknown=True)).split())}"
        fails = [f"a value below {probe.min_success if probe.min_success is not None else 1:g}", "no value"]
    line = f"{probe.title()}: {asks} every {format_limit(probe.every)}, from just before the first fault to the " \
           f"end of verify; a sample fails on {' or '.join(fails)}"
    objectives = []
    if probe.min_success is not None:
        objectives.append(f"at least {probe.min_success * 100:g}% of samples succeed")
    if probe.max_outage is not None:
        objectives.append(f"no outage longer than {format_limit(probe.max_outage)}")
    return line + (f"; objective: {', '.join(objectives)}" if objectives else "; measured only, no objective")


def _would_resolve(spec: StepSpec, life: FaultLife, ctx: Context, registry: Registry) -> str | None:
    cls = registry.get("step", spec.driver)
    try:
        step = cls(spec.params, ctx) if cls is not None else None
        return step.resolves(life) if isinstance(step, RecoveryStep) else None
    except Exception:  # noqa: BLE001 - a preview never fails the plan
        return None

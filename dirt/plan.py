"""``dirt plan``: what a drill would do, step by step, and what it would break.

Nothing here connects to anything: drivers describe their blast radius from
their parameters alone (``plan()``), and the guardrail verdict comes from
dirt.yaml.  The output is meant to be pasted into a game-day announcement.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dirt.config import LoadedConfig
from dirt.drivers import Context
from dirt.durations import format_duration
from dirt.engine.registry import default_registry
from dirt.scenario import LoadOptions, StepSpec, load_scenario
from dirt.targets.base import make_target

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
    ctx = Context(target=target, run_dir=Path(tempfile.gettempdir()) / "dirt-plan-never-written",
                  scenario_dir=scenario.path.parent)
    ctx.vars = {**scenario.vars, **options.variables}
    out = [f"Drill {scenario.name} ({path})"]
    if scenario.metadata.description:
        out.append(f"  {scenario.metadata.description}")
    out.append(f"Target: {name} (provider {tconfig.provider}){' — sandbox' if target.is_sandbox else ''}")
    for section, title in TITLES.items():
        specs: list[StepSpec] = getattr(scenario, section)
        if not specs:
            continue
        out.append(f"\n{title}:")
        for spec in specs:
            out.extend(_describe(spec, ctx, registry, target))
    expect = scenario.expect
    if expect.alerts or expect.silent or expect.mttr:
        out.append("\nexpect:")
        for alert in expect.alerts:
            labels = "".join(f" {k}={v}" for k, v in alert.labels.items())
            resolve = f", resolves within {format_duration(alert.resolves_within)} of recovery" \
                if alert.resolves_within is not None else ""
            out.append(f"  - alert {alert.name}{labels} fires within {format_duration(alert.fires_within)}{resolve}"
                       f" ({', '.join(alert.sources or ['all sources'])})")
        for silent in expect.silent:
            out.append(f"  - alert {silent if isinstance(silent, str) else silent.name} stays silent")
        if expect.mttr is not None:
            out.append(f"  - MTTR within {format_duration(expect.mttr)}")
    if scenario.abort_when:
        out.append("\nabort when:")
        for condition in scenario.abort_when:
            out.append(f"  - {condition.title()}" + (f" for {format_duration(condition.for_)}" if condition.for_ else ""))
    out.append("\n(dry run: nothing was touched)")
    return "\n".join(out)


def _describe(spec: StepSpec, ctx: Context, registry: object, target: object) -> list[str]:
    cls = registry.get(spec.kind, spec.driver)  # type: ignore[attr-defined]
    driver = cls(spec.params, ctx)
    head = f"  - {spec.name}" + (f" [{spec.driver}]" if spec.name != spec.driver else "")
    if spec.within is not None:
        head += f" within {format_duration(spec.within)}"
    lines = [head]
    if spec.kind == "fault":
        family = cls.family
        if not target.allows(family):  # type: ignore[attr-defined]
            lines.append(f"      REFUSED: target does not allow {family!r} faults")
        elif family != "none" and not target.is_sandbox:  # type: ignore[attr-defined]
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

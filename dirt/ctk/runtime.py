"""The in-process drill behind an exported experiment's activities.

``chaos run`` calls ``dirt.ctk.actions`` / ``probes`` / ``control`` one activity at a
time, all in one process.  What a dirt run keeps in its runner lives here instead,
module-level and keyed by the experiment's configuration: the target (built from
``dirt_config`` / ``dirt_target`` as the CLI builds it), the drivers' ``Context``, each
injected fault (so a rollback can revert it), when the first fault took effect, and what
the method measured (alerts, failed steps) for the final ``expectations`` probe.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dirt.config import LoadedConfig, load_config
from dirt.core.errors import GuardrailError, StepFailed
from dirt.core.families import HARMLESS
from dirt.core.templating import substitute_value
from dirt.drivers import Context, Driver, Fault, fault_family
from dirt.drivers.registry import default_registry
from dirt.scenario.model import PlaybookRef, StepSpec
from dirt.targets.base import Target, make_target

#: Configuration keys dirt writes into an exported experiment (not scenario variables).
CONFIG_KEYS = ("dirt_config", "dirt_target", "dirt_scenario", "dirt_confirm")


@dataclass
class Drill:
    """One experiment run's state, as a dirt runner would keep it."""

    loaded: LoadedConfig
    target: Target
    ctx: Context
    confirm: str = ""  # configuration dirt_confirm: the cluster name, as `dirt run` asks it off the sandbox
    faults: dict[str, Fault] = field(default_factory=dict)
    t_inject: float | None = None  # monotonic
    t_inject_wall: float | None = None
    t_recovered: float | None = None
    t_after: float | None = None  # first hypothesis probe after a fault: verify deadlines count from it
    verify_passed: dict[str, float] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


_DRILLS: dict[tuple[str, str], Drill] = {}


def drill(configuration: dict[str, Any] | None) -> Drill:
    """The drill of this experiment (built on first use: config, target prepared, context)."""
    configuration = configuration or {}
    config_path = str(configuration.get("dirt_config") or "")
    target_name = str(configuration.get("dirt_target") or "")
    key = (config_path, target_name)
    if key not in _DRILLS:
        loaded = load_config(config_path or None)
        name, tconfig = loaded.target(target_name or None, running=True)
        target = make_target(name, tconfig, loaded.root)
        target.prepare()
        target.secret_values()  # registered for redaction
        scenario = Path(str(configuration.get("dirt_scenario") or loaded.root / "scenario.yaml"))
        run_dir = Path(tempfile.mkdtemp(prefix="dirt-ctk-"))
        ctx = Context(target=target, run_dir=run_dir, scenario_dir=scenario.parent)
        ctx.vars = {k: v for k, v in configuration.items()
                    if k not in CONFIG_KEYS and isinstance(v, str | int | float | bool)}
        ctx.vars.update(target.variables())
        ctx.vars.update(run_id=run_dir.name, run_dir=str(run_dir), scenario_dir=str(scenario.parent))
        ctx.vars.setdefault("project_dir", str(loaded.root))
        _DRILLS[key] = Drill(loaded, target, ctx, confirm=str(configuration.get("dirt_confirm") or ""))
    return _DRILLS[key]


def reset() -> None:
    """Forget every drill (tests; a new experiment in the same process)."""
    for d in _DRILLS.values():
        d.target.close()
    _DRILLS.clear()


def build(d: Drill, kind: str, driver: str, params: dict[str, Any]) -> Driver:
    """A driver from the registry, its parameters substituted (``{{ name }}``) and validated."""
    cls = default_registry().get(kind, driver)  # type: ignore[arg-type]
    if cls is None:
        raise StepFailed(f"{kind} driver {driver!r} is not registered here (is the plugin installed?)")
    try:
        validated = cls.Params.model_validate(substitute_value(params, d.ctx.vars))
    except ValidationError as exc:
        raise StepFailed(f"{driver}: invalid parameters: {exc.errors()[0]['msg']}") from None
    if kind == "fault":
        family = fault_family(cls, validated)
        if not d.target.allows(family):
            raise GuardrailError(f"target {d.target.name!r} does not allow {family!r} faults; add '{family}' to "
                                 f"targets.{d.target.name}.allow in dirt.yaml if this is intended")
        if family != HARMLESS and not d.target.is_sandbox and d.target.config.confirm and \
                d.confirm != d.target.cluster_name():
            raise GuardrailError(f"destructive fault {driver} on {d.target.name!r}: run with "
                                 f"--var dirt_confirm={d.target.cluster_name()} to confirm")
    return cls(validated, d.ctx)


def step_spec(kind: str, driver: str, name: str, within: float | None, playbook: dict[str, Any] | None) -> StepSpec:
    """The ``StepSpec`` some drivers read from ``ctx.step`` (``playbook.run`` reads its link)."""
    from dirt.drivers import NoParams

    ref = PlaybookRef(**playbook) if playbook else None
    return StepSpec(section="ctk", index=0, kind=kind, driver=driver, name=name,  # type: ignore[arg-type]
                    params=NoParams(), playbook=ref, within=within)


def failed(exc: BaseException) -> Exception:
    """A dirt error as Chaos Toolkit's ``ActivityFailed`` (the activity fails, the experiment goes on)."""
    from chaoslib.exceptions import ActivityFailed

    from dirt.core.redact import redact_text
    from dirt.drivers.context import one_line

    return ActivityFailed(redact_text(one_line(exc)))


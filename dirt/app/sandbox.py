"""Which sandbox a command means: the one place that picks it, for ``dirt sandbox`` and the
pytest plugin's ``dirt_sandbox`` fixture.

``target`` picks a sandbox target of dirt.yaml by name; otherwise the default
target if it is a sandbox, else the first sandbox target, else the built-in
defaults.  ``name`` and ``nodes`` override that target's settings.

While a drill holds the sandbox (its drill lock, ``dirt.engine.lock``), ``up`` and
``down`` by hand are refused: ``up`` would restart the components the drill stopped,
``down`` would take the cluster from under it.
"""

from __future__ import annotations

from dirt.config import LoadedConfig, TargetConfig
from dirt.core.errors import ConfigError, DrillLocked
from dirt.engine.lock import LocalLock
from dirt.targets.fleet import FleetTarget
from dirt.targets.sandbox import SandboxTarget


def sandbox_target(loaded: LoadedConfig, target: str | None = None, *, name: str | None = None,
                   nodes: int | None = None) -> SandboxTarget | FleetTarget:
    """The sandbox meant, or the fleet dirt makes (``provider: fleet`` with ``settings.sandbox``) when
    ``target`` names one."""
    targets = loaded.config.targets
    chosen_name: str | None = None
    chosen: TargetConfig | None = None
    if target:
        chosen_name, chosen = loaded.target(target)
        if chosen.provider == "fleet" and "sandbox" in chosen.settings:
            if name or nodes is not None:
                raise ConfigError(f"target {target!r} is a fleet: its members' names and nodes are in its settings")
            fleet = FleetTarget(chosen_name, chosen, loaded.root)
            fleet.fleet  # noqa: B018 - a fleet of targets (not made here) is refused now, naming itself
            return fleet
        if chosen.provider != "sandbox":
            raise ConfigError(f"target {target!r} is a {chosen.provider} target, not a sandbox"
                              + (" (a fleet of other targets: manage its members)" if chosen.provider == "fleet"
                                 else ""))
    elif loaded.config.default_target in targets and targets[loaded.config.default_target].provider == "sandbox":
        chosen_name, chosen = loaded.config.default_target, targets[loaded.config.default_target]
    else:
        chosen_name, chosen = next(((n, t) for n, t in targets.items() if t.provider == "sandbox"), (None, None))
    if chosen is None or chosen_name is None:
        chosen_name, chosen = "sandbox", TargetConfig(provider="sandbox")
    settings = dict(chosen.settings)
    if name:
        settings["name"] = name
    if nodes is not None:
        settings["nodes"] = nodes
    return SandboxTarget(chosen_name, chosen.model_copy(update={"settings": settings}), loaded.root)


def refuse_while_drilling(target: SandboxTarget | FleetTarget, action: str) -> None:
    """``DrillLocked`` (exit 2) if a live drill holds the sandbox; a stale lock does not stop ``action``
    (starting what a killed drill stopped is a repair; its lock stays until ``dirt rollback``/``unlock``)."""
    state = LocalLock(target.drill_lock_path()).inspect()
    if not state.live:
        return
    who = state.holder.describe() if state.holder else "a drill that is starting"
    harm = ("would restart the components it stopped and corrupt the drill" if action == "up"
            else "would take the cluster from under it")
    what = f"fleet {target.fleet.name!r}" if isinstance(target, FleetTarget) else f"sandbox {target.sandbox.name!r}"
    raise DrillLocked(f"{what} is held by {who}: `dirt sandbox {action}` {harm}; "
                      "wait for the drill to end (or stop it with Ctrl-C: it rolls back by itself)",
                      holder=state.holder)

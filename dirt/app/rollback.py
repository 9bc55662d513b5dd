"""``dirt rollback RUN_DIR``: put back what a run left in effect, from its journal alone.

The journal is folded into each fault's life (``dirt.journal.faults``) and the
engine's one rollback path (``dirt.engine.rollback``) acts on the faults still
in effect, rebuilding each from its recorded parameters and state.  A finished,
passed run has none: "nothing to roll back", and nothing is written.  Reverts
that restore a safety snapshot say how old it is; off the sandbox every
rollback needs the same confirmation a destructive drill does.  A run whose
process is still alive is refused (it rolls back by itself on Ctrl-C).  Rollback holds
the run's drill lock while it works (taking it over from the killed run), so no other
drill starts on the target meanwhile, and frees it at the end.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dirt.clients.commands import running_since
from dirt.config import LoadedConfig
from dirt.core.errors import JournalError, ReportError, UsageError
from dirt.drivers import Context, Fault
from dirt.drivers.registry import default_registry
from dirt.engine.guardrails import Confirm, require_confirmation
from dirt.engine.lock import Holder, drill_lock
from dirt.engine.rollback import Rollback, RollbackResult, by_hand, snapshot_warning
from dirt.journal import FaultLedger, FaultLife, Journal, fold_faults, read_journal
from dirt.journal.events import RunEnded, RunStarted
from dirt.report import render_run, update_index
from dirt.targets.base import make_target


@dataclass
class RollbackOutcome:
    lines: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def rollback_run(run_dir: Path, loaded: LoadedConfig, target_name: str | None, *, assume_yes: bool = False,
                 confirm: Confirm | None = None, restore_snapshots: bool = False,
                 say: Callable[[str], None] | None = None) -> RollbackOutcome:
    contents = read_journal(run_dir)
    start = contents.first(RunStarted)
    if start is None:
        detail = f"; first unreadable line: {contents.problems[0]}" if contents.problems else ""
        raise JournalError(f"{contents.path}:1:1: the journal has no readable run.start event: "
                           f"not a dirt run, or damaged{detail}")
    ended = contents.last(RunEnded) is not None
    if not ended:
        _refuse_if_running(run_dir, start)
    ledger = fold_faults(contents.events)
    name, tconfig = loaded.target(target_name or start.target.get("name"))
    target = make_target(name, tconfig, loaded.root)
    registry = default_registry()
    scenario = Path(str(start.scenario.get("path") or ""))
    ctx = Context(target=target, run_dir=run_dir.resolve(),
                  scenario_dir=scenario.parent if scenario.name and scenario.parent.is_dir() else None)

    def driver_for(life: FaultLife) -> Fault:
        cls = registry.get("fault", life.driver)
        if cls is None:
            raise ReportError(f"fault driver {life.driver!r} is not registered here")
        fault = cls(cls.Params.model_validate(life.params), ctx.for_member(life.member))
        assert isinstance(fault, Fault)
        fault.state = dict(life.state)
        return fault

    path = Rollback(ledger, lambda event: None, driver_for, by="dirt rollback", restore_snapshots=restore_snapshots,
                    say=say, by_hand=by_hand(start.steps))
    chosen = path.candidates()
    left = [f"left in effect: {f.name} ({path.why(f)})" for f in path.left_alone()]
    if not chosen and ended:
        return RollbackOutcome([f"nothing to roll back in {run_dir}", *left])
    actions = [f"revert {f.name}" + (f" ({w})" if (w := snapshot_warning(f)) else "") for f in chosen]
    require_confirmation(target, actions, assume_yes=assume_yes, confirm=confirm, what="rolling back")
    # The run's own drill lock is taken over (it may be stale: the run was killed); a live
    # drill of another run on the target refuses the rollback, which would break it.
    holder = Holder.here(start.run_id, str(start.scenario.get("name") or "?"), target.name, run_dir,
                         by="dirt rollback")
    with drill_lock(target, holder, [f.family for f in ledger.all()], take_over=[start.run_id], say=say):
        return _roll_back(run_dir, ctx, ledger, path, chosen, left, ended)


def _roll_back(run_dir: Path, ctx: Context, ledger: FaultLedger, path: Rollback, chosen: list[FaultLife],
               left: list[str], ended: bool) -> RollbackOutcome:
    target = ctx.target
    journal = Journal.resume(run_dir)
    journal.subscribe(ledger)
    path.emit = journal.emit
    lines = [f"nothing to roll back in {run_dir}", *left]
    failed: list[str] = []
    if chosen:
        ctx.vars = target.variables()
        why = "the run was interrupted" if not ended else "asked for after the run ended"
        result: RollbackResult = path.run(f"dirt rollback: {why}")
        lines, failed = result.lines(), result.failed
    if not ended:  # the run's process died: close its journal so its report is final
        journal.emit(RunEnded(verdict="aborted", aborted="interrupted", interrupted=True,
                              failures=["the run was interrupted; ended by 'dirt rollback'"]))
    journal.close()
    target.close()
    render_run(run_dir)
    update_index(run_dir.resolve().parent)
    return RollbackOutcome(lines, failed)


def _refuse_if_running(run_dir: Path, start: RunStarted) -> None:
    """A run without run.end whose process still lives is not ours to roll back."""
    if not start.pid or start.host != socket.gethostname():
        return
    since = running_since(start.pid)
    begun = start.ts - start.t
    if since is not None and since <= begun + 5:
        raise UsageError(f"{run_dir}: the run is still going (pid {start.pid} on {start.host}); stop it "
                         "with Ctrl-C or SIGTERM and it rolls back by itself, or wait for it to end")

"""The live progress display: which phase, which step, what we are waiting for.

``RichDisplay`` (a terminal) keeps one live status line — ``detect · waiting for
KubeAPIDown 12s / 90s`` — above which finished steps scroll by; ``PlainDisplay``
(CI logs, pipes) prints one line per event and a waiting line at most every 10
seconds.  Both are fed by journal events plus ``waiting`` ticks; neither can
break a drill (the journal swallows listener errors).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from dirt.core.durations import format_duration
from dirt.core.redact import redact_text
from dirt.journal import events as ev
from dirt.journal.events import Event

_ICONS = {"passed": "✔", "failed": "✘", "aborted": "■", "interrupted": "■", "skipped": "·"}


def describe(event: Event) -> str | None:
    """One human line for the events worth showing; None for the rest."""
    match event:
        case ev.PhaseStarted():
            return f"── {event.phase}"
        case ev.StepEnded():
            icon = _ICONS.get(event.status, "?")
            detail = f" — {event.detail}" if event.detail else ""
            return f"  {icon} {event.name} ({format_duration(event.seconds)}){detail}"
        case ev.FaultInjected() if event.error is None:
            return f"  ⚡ fault {event.name} took effect"
        case ev.FaultRecovered():
            by = f" by {event.step.get('name')}" if event.step else ""
            return f"  ✚ fault {event.name} recovered{by}" + (f" — {event.detail}" if event.detail else "")
        case ev.FaultReverted():
            return f"  ↺ fault {event.name} reverted" + (f" — {event.detail}" if event.detail else "")
        case ev.AlertFiring():
            tag = "expected" if event.expected else ("FORBIDDEN" if event.forbidden else "other")
            return f"  🔔 {event.name} firing in {event.source} ({tag})"
        case ev.AlertResolved():
            return f"  🔕 {event.name} resolved in {event.source}"
        case ev.ExpectationResult() if event.kind == "availability":
            icon = "✔" if event.passed else "✘"
            data = event.data or {}
            detail = f" — {event.detail}" if event.detail and not event.passed else ""
            return (f"  {icon} availability {event.name}: {data.get('measured', '-')} "
                    f"(objective {data.get('objective') or 'none: measured only'}){detail}")
        case ev.ExpectationResult():
            icon = "✔" if event.passed else "✘"
            measured = format_duration(event.measured_seconds)
            objective = format_duration(event.objective_seconds)
            detail = f" — {event.detail}" if event.detail and not event.passed else ""
            return f"  {icon} {event.kind} {event.name}: {measured} (objective {objective}){detail}"
        case ev.AbortBreach():
            return f"  ■ abort: {event.condition} value {event.value}"
        case ev.SignalReceived():
            return f"  ■ {event.signal}" + (f" ignored: {event.ignored}" if event.ignored else "")
        case ev.RollbackStarted():
            return "  ↺ rolling back"
        case ev.RollbackAction() if event.action != "revert" or event.status != "passed":
            return f"  ↺ {event.action} {event.name}: {event.detail or event.status}"
        case ev.ErrorRaised():
            return f"  ! {event.message}"
        case ev.Mttr() if event.seconds is not None:
            return f"  MTTR {format_duration(event.seconds)}"
    return None


class Display:
    def start(self, scenario: str, target: str) -> None: ...
    def event(self, event: Event) -> None: ...
    def waiting(self, what: str, elapsed: float, limit: float | None) -> None: ...
    def stop(self, verdict: str, run_dir: Path) -> None: ...


class PlainDisplay(Display):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._last_wait = 0.0
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        text = redact_text(text)  # events come redacted; a waiting line names a command as written
        with self._lock:
            print(text, file=self.stream, flush=True)

    def start(self, scenario: str, target: str) -> None:
        self._print(f"dirt: drill {scenario} on target {target}")

    def event(self, event: Event) -> None:
        line = describe(event)
        if line:
            self._print(line)

    def waiting(self, what: str, elapsed: float, limit: float | None) -> None:
        now = time.monotonic()
        if now - self._last_wait >= 10 and elapsed >= 5:
            self._last_wait = now
            self._print(f"  … {what} {elapsed:.0f}s" + (f" / {limit:.0f}s" if limit else ""))

    def stop(self, verdict: str, run_dir: Path) -> None:
        self._print(f"dirt: {verdict.upper()} — report: {run_dir / 'report.html'}")


class RichDisplay(Display):
    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.phase = "starting"
        self.status = ""
        self.title = ""
        self._live: Any = None
        self._started = time.monotonic()

    def _render(self) -> Any:
        from rich.text import Text

        text = Text()
        text.append(f" {self.title} ", style="bold reverse")
        text.append(f" {self.phase} ", style="bold cyan")
        text.append(f"+{time.monotonic() - self._started:.0f}s ", style="dim")
        text.append(self.status)
        return text

    def start(self, scenario: str, target: str) -> None:
        from rich.live import Live

        self.title = f"dirt {scenario} @ {target}"
        self._live = Live(get_renderable=self._render, console=self.console, refresh_per_second=4,
                          transient=True)
        self._live.start()

    def event(self, event: Event) -> None:
        if isinstance(event, ev.PhaseStarted):
            self.phase = event.phase
            self.status = ""
        elif isinstance(event, ev.StepStarted):
            self.status = redact_text(event.name)
        line = describe(event)
        if line:
            self.console.print(redact_text(line), highlight=False, markup=False)

    def waiting(self, what: str, elapsed: float, limit: float | None) -> None:
        self.status = redact_text(f"{what} {elapsed:.0f}s" + (f" / {limit:.0f}s" if limit else ""))

    def stop(self, verdict: str, run_dir: Path) -> None:
        if self._live is not None:
            self._live.stop()
        style = {"passed": "bold green", "failed": "bold red", "aborted": "bold yellow"}.get(verdict, "bold")
        self.console.print(f"[{style}]{verdict.upper()}[/] — report: {run_dir / 'report.html'}")


def make_display(mode: str = "auto") -> Display | None:
    """``auto``: rich on a terminal, plain otherwise; ``plain``; ``none``."""
    if mode == "none":
        return None
    if mode == "rich" or (mode == "auto" and sys.stderr.isatty()):
        return RichDisplay()
    return PlainDisplay()

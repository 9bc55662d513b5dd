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

from dirt.durations import format_duration

_ICONS = {"passed": "✔", "failed": "✘", "aborted": "■", "interrupted": "■", "skipped": "·"}


def describe(event: dict[str, Any]) -> str | None:
    """One human line for the events worth showing; None for the rest."""
    kind = event["event"]
    if kind == "phase.start":
        return f"── {event['phase']}"
    if kind == "step.end":
        icon = _ICONS.get(event.get("status", ""), "?")
        detail = f" — {event['detail']}" if event.get("detail") else ""
        return f"  {icon} {event.get('name')} ({format_duration(event.get('seconds'))}){detail}"
    if kind == "fault.injected":
        return f"  ⚡ fault {event.get('name')} took effect"
    if kind == "alert.firing":
        tag = "expected" if event.get("expected") else ("FORBIDDEN" if event.get("forbidden") else "other")
        return f"  🔔 {event.get('name')} firing in {event.get('source')} ({tag})"
    if kind == "alert.resolved":
        return f"  🔕 {event.get('name')} resolved in {event.get('source')}"
    if kind == "expectation":
        icon = "✔" if event.get("passed") else "✘"
        measured = format_duration(event.get("measured_seconds"))
        objective = format_duration(event.get("objective_seconds"))
        detail = f" — {event['detail']}" if event.get("detail") and not event.get("passed") else ""
        return f"  {icon} {event.get('kind')} {event.get('name')}: {measured} (objective {objective}){detail}"
    if kind == "abort.breach":
        return f"  ■ abort: {event.get('condition')} value {event.get('value')}"
    if kind == "signal":
        return f"  ■ {event.get('signal')}" + (f" ignored: {event['ignored']}" if event.get("ignored") else "")
    if kind == "rollback.start":
        return "  ↺ rolling back"
    if kind == "rollback.action":
        return f"  ↺ {event.get('action')} {event.get('name')}: {event.get('status') or event.get('detail')}"
    if kind == "error":
        return f"  ! {event.get('message')}"
    if kind == "mttr" and event.get("seconds") is not None:
        return f"  MTTR {format_duration(event['seconds'])}"
    return None


class Display:
    def start(self, scenario: str, target: str) -> None: ...
    def event(self, event: dict[str, Any]) -> None: ...
    def waiting(self, what: str, elapsed: float, limit: float | None) -> None: ...
    def stop(self, verdict: str, run_dir: Path) -> None: ...


class PlainDisplay(Display):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._last_wait = 0.0
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def start(self, scenario: str, target: str) -> None:
        self._print(f"dirt: drill {scenario} on target {target}")

    def event(self, event: dict[str, Any]) -> None:
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

    def event(self, event: dict[str, Any]) -> None:
        if event["event"] == "phase.start":
            self.phase = event["phase"]
            self.status = ""
        elif event["event"] == "step.start":
            self.status = f"{event.get('name')}"
        line = describe(event)
        if line:
            self.console.print(line, highlight=False, markup=False)

    def waiting(self, what: str, elapsed: float, limit: float | None) -> None:
        self.status = f"{what} {elapsed:.0f}s" + (f" / {limit:.0f}s" if limit else "")

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

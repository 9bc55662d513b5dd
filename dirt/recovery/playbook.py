"""``playbook.run``: run the executable steps of a playbook section, so a drill proves
the written procedure works (see ``dirt.documents.playbooks`` for the format)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from dirt.core.durations import Duration
from dirt.core.errors import PlaybookError, StepFailed
from dirt.core.templating import substitute
from dirt.documents.playbooks import SHELLS, STEP_MARKER, PlaybookStep, load_playbook
from dirt.drivers import Params, RecoveryStep, StepOutcome
from dirt.journal.events import PlaybookStepRun


class PlaybookRunParams(Params):
    only: list[str] = Field(
        default_factory=list, description="Run only these step ids (default: every step in the section)."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    timeout: Duration | None = Field(None, description="Override each block's own timeout.")


class PlaybookRun(RecoveryStep):
    """Run the executable steps of the linked playbook section, in order."""

    name = "playbook.run"
    Params = PlaybookRunParams

    def steps(self) -> list[PlaybookStep]:
        spec = self.ctx.step
        if spec is None or spec.playbook is None or spec.playbook.anchor is None:
            raise PlaybookError("playbook.run needs 'playbook:' linking a section")
        book = load_playbook(Path(spec.playbook.path))
        steps = book.steps_in(spec.playbook.anchor)
        if self.params.only:
            steps = [s for s in steps if s.id in self.params.only]
        return steps

    def plan(self) -> list[str]:
        try:
            return [f"run playbook step {s.id!r} ({s.language}, line {s.line})" for s in self.steps()]
        except PlaybookError as exc:
            return [str(exc)]

    def run(self) -> StepOutcome:
        ran = []
        for step in self.steps():
            try:
                code = substitute(step.code, self.ctx.vars)
            except KeyError as exc:
                raise StepFailed(f"playbook step {step.id!r} uses unknown variable {exc.args[0]!r}") from None
            timeout = self.params.timeout or step.timeout
            self.ctx.emit(PlaybookStepRun(id=step.id, line=step.line, section=step.section))
            result = self.ctx.run_command(
                code,
                shell=SHELLS.get(step.language, "bash"),
                timeout=min(timeout, self.ctx.remaining(timeout)),
                env=self.params.env,
                check=False,
                what=f"playbook step {step.id}",
            )
            ran.append({"id": step.id, "seconds": round(result.seconds, 3), "returncode": result.returncode,
                        "output": result.tail(20)})
            if result.returncode != 0:
                raise StepFailed(
                    f"playbook step {step.id!r} (line {step.line}) exited with {result.returncode}: "
                    f"{result.tail(1) or '(no output)'}"
                )
        return StepOutcome(f"ran {len(ran)} playbook step(s): {', '.join(r['id'] for r in ran)}", {"steps": ran})

    @classmethod
    def check_spec(cls, spec: Any, resolve: Any) -> list[tuple[str, str]]:
        """Load-time check: the linked section exists and has the steps named."""
        if spec.playbook is None or spec.playbook.anchor is None:
            return [("playbook.run needs 'playbook:' linking a section", "add playbook: \"#section\"")]
        book = load_playbook(Path(spec.playbook.path))
        steps = book.steps_in(spec.playbook.anchor)
        if not steps:
            return [(
                f"section '#{spec.playbook.anchor}' of {spec.playbook.display} has no executable steps",
                f"mark a fenced block with {STEP_MARKER}=<id>, e.g. ```bash {STEP_MARKER}=restart",
            )]
        missing = [s for s in spec.params.only if s not in {st.id for st in steps}]
        if missing:
            return [(f"no playbook step {', '.join(map(repr, missing))} in that section",
                     f"steps there: {', '.join(s.id for s in steps)}")]
        return []


DRIVERS = [PlaybookRun]

"""A Chaos Toolkit control that runs a drill's ``setup`` before and ``cleanup`` after the experiment.

CTK has no setup or cleanup section; an experiment-level control is its place for
work around the whole run.  The steps come as the control's ``arguments`` (each
``{driver, params, name, within, playbook}`` as ``dirt.ctk.actions.run_step`` takes
them).  A setup step that fails interrupts the experiment: nothing is injected into a
system that is not set up.  Cleanup always runs; its failures are logged.
"""

from __future__ import annotations

import logging
from typing import Any

from dirt.ctk import actions

logger = logging.getLogger("dirt.ctk")


def before_experiment_control(context: Any, setup: list[dict[str, Any]] | None = None,
                              cleanup: list[dict[str, Any]] | None = None,
                              configuration: dict[str, Any] | None = None, **kwargs: Any) -> None:
    from chaoslib.exceptions import ActivityFailed, InterruptExecution

    for step in setup or []:
        try:
            actions.run_step(**step, recovery=False, configuration=configuration)
        except ActivityFailed as exc:
            raise InterruptExecution(f"dirt setup step {step.get('name') or step['driver']} failed: {exc}") from None


def after_experiment_control(context: Any, state: Any = None, setup: list[dict[str, Any]] | None = None,
                             cleanup: list[dict[str, Any]] | None = None,
                             configuration: dict[str, Any] | None = None, **kwargs: Any) -> None:
    from chaoslib.exceptions import ActivityFailed

    for step in cleanup or []:
        try:
            actions.run_step(**step, recovery=False, configuration=configuration)
        except ActivityFailed as exc:
            logger.error("dirt cleanup step %s failed: %s", step.get("name") or step["driver"], exc)

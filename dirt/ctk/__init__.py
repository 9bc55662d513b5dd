"""Chaos Toolkit interop: drills exported as CTK experiments, experiments imported as drills.

``export`` turns a scenario into an experiment that ``chaos run`` executes; ``importer``
turns an experiment into a scenario of ``ctk`` steps.  ``actions``, ``probes`` and
``control`` are what an exported experiment calls (python providers): they build the
target and dirt's own drivers from ``dirt.yaml`` the way the CLI does, inside the
``chaos`` process.  Chaos Toolkit is an optional extra (``pip install 'dirt[ctk]'``):
nothing here imports ``chaoslib`` at module level.
"""

from __future__ import annotations

from dirt.core.errors import UsageError

INSTALL_HINT = "Chaos Toolkit is not installed: pip install 'dirt[ctk]'"


def require_chaoslib() -> None:
    """Exit 2 with how to install the extra when ``chaoslib`` is missing."""
    try:
        import chaoslib  # noqa: F401
    except ImportError:
        raise UsageError(INSTALL_HINT) from None

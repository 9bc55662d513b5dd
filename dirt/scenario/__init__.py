"""Scenario files: the format (``model``), loading with located errors (``loader``)
and the JSON Schema for editors (``schema``)."""

from dirt.scenario.loader import (
    Discovery,
    LoadOptions,
    classify,
    discover,
    load_options,
    load_scenario,
    looks_like_scenario,
    scenario_files,
)
from dirt.scenario.model import Scenario, StepSpec

__all__ = ["Discovery", "LoadOptions", "Scenario", "StepSpec", "classify", "discover", "load_options",
           "load_scenario", "looks_like_scenario", "scenario_files"]

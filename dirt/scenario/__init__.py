"""Scenario files: the format (``model``), loading with located errors (``loader``)
and the JSON Schema for editors (``schema``)."""

from dirt.scenario.loader import LoadOptions, load_scenario, looks_like_scenario, scenario_files
from dirt.scenario.model import Scenario, StepSpec

__all__ = ["LoadOptions", "Scenario", "StepSpec", "load_scenario", "looks_like_scenario", "scenario_files"]

"""``dirt export SCENARIO --format chaostoolkit``: a drill as a Chaos Toolkit experiment.

``chaos run`` plays an experiment as: steady-state hypothesis, method, the hypothesis
again, rollbacks.  A drill maps onto it so that a broken recovery *deviates*:

- ``setup`` / ``cleanup`` → an experiment-level control (``dirt.ctk.control``);
- ``steady_state`` → hypothesis probes; ``verify`` → hypothesis probes that only judge
  after the fault (so the re-run hypothesis proves recovery), then the expected alerts'
  resolution and an ``expectations`` probe (failed steps, MTTR objective, silent alerts);
- ``inject`` → method actions; each expected alert → a method probe after the faults
  (time to detect); ``recover`` → method actions after them;
- each fault's revert (and the scenario's ``rollback`` steps) → ``rollbacks``, played
  always (``runtime.rollbacks.strategy``): a revert touches only what is still in effect.

dirt's drivers run through ``dirt.ctk.actions`` / ``probes`` (python providers).  A
scenario's own ``ctk`` steps go through them too, their activity unchanged inside: run
bare, a ``chaosk8s`` activity would act on whatever cluster the ``chaos`` process's
``KUBECONFIG`` names, not the target, and without the step's deadline or guardrail family.  ``{{ var }}`` of a scenario
variable becomes ``${var}`` with the value in ``configuration``; run-time names
(``{{ kubeconfig }}``...) are filled in by dirt inside the ``chaos`` process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from dirt.config import LoadedConfig
from dirt.core import safefile
from dirt.drivers import COMMON_KEYS, DRIVER_KEY
from dirt.drivers.registry import default_registry
from dirt.scenario import LoadOptions, Scenario, load_scenario
from dirt.scenario.model import StepSpec

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def export_scenario(path: Path, loaded: LoadedConfig, options: LoadOptions,
                    target_name: str | None = None) -> dict[str, Any]:
    """The experiment for the scenario at ``path`` (validated first: a bad scenario exits 2)."""
    scenario = load_scenario(path, options)
    raw = yaml.safe_load(safefile.read_text(path)) or {}
    return _Exporter(scenario, raw, loaded, target_name).experiment()


def dump_experiment(experiment: dict[str, Any], out: Path | None) -> str:
    """JSON, or YAML when the output file ends in .yaml/.yml."""
    if out is not None and out.suffix.lower() in (".yaml", ".yml"):
        return yaml.safe_dump(experiment, sort_keys=False, allow_unicode=True)
    return json.dumps(experiment, indent=2, ensure_ascii=False) + "\n"


def to_ctk(value: Any, names: set[str]) -> Any:
    """``{{ name }}`` of a scenario variable → ``${name}``, in nested data."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: f"${{{m.group(1)}}}" if m.group(1) in names else m.group(0), value)
    if isinstance(value, list):
        return [to_ctk(v, names) for v in value]
    if isinstance(value, dict):
        return {k: to_ctk(v, names) for k, v in value.items()}
    return value


def _python(kind: str, name: str, module: str, func: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": kind, "name": name,
            "provider": {"type": "python", "module": module, "func": func, "arguments": arguments}, **extra}


class _Exporter:
    def __init__(self, scenario: Scenario, raw: dict[str, Any], loaded: LoadedConfig, target_name: str | None):
        self.scenario = scenario
        self.raw = raw
        self.loaded = loaded
        self.target_name = target_name or scenario.target or loaded.config.default_target
        self.names = set(scenario.vars)
        self.timing = scenario.timing
        self.notes: list[str] = []
        self.rollbacks: list[dict[str, Any]] = []

    # -- the pieces of one step -----------------------------------------------------------
    def _item(self, spec: StepSpec) -> dict[str, Any]:
        return dict(self.raw[spec.section][spec.index])

    def _params(self, spec: StepSpec) -> dict[str, Any]:
        """The step's own parameters as written (``{{ var }}`` kept, then made ``${var}``)."""
        item = self._item(spec)
        common = dict(COMMON_KEYS[spec.kind])
        cls = default_registry().get(spec.kind, spec.driver)
        if cls is not None and "name" in {f.alias or n for n, f in cls.Params.model_fields.items()}:
            common.pop("name", None)
        params = {k: v for k, v in item.items() if k != DRIVER_KEY[spec.kind] and k not in common}
        return to_ctk(params, self.names)

    def _playbook(self, spec: StepSpec) -> dict[str, Any] | None:
        return spec.playbook.model_dump(mode="json") if spec.playbook else None

    # -- sections -----------------------------------------------------------------------
    def _check(self, spec: StepSpec, after_fault: bool, within: float) -> dict[str, Any]:
        return _python("probe", spec.name, "dirt.ctk.probes", "run_check",
                       {"driver": spec.driver, "params": self._params(spec), "name": spec.name,
                        "within": spec.within or within, "interval": spec.interval, "after_fault": after_fault,
                        "playbook": self._playbook(spec)},
                       tolerance=True)

    def _step(self, spec: StepSpec, *, recovery: bool = True, only_on_failure: bool = False) -> dict[str, Any]:
        return _python("action", spec.name, "dirt.ctk.actions", "run_step",
                       self._step_arguments(spec) | {"recovery": recovery, "only_on_failure": only_on_failure})

    def _step_arguments(self, spec: StepSpec) -> dict[str, Any]:
        return {"driver": spec.driver, "params": self._params(spec), "name": spec.name,
                "within": spec.within or self.timing.step_within, "playbook": self._playbook(spec),
                "objective": spec.within}

    def _fault(self, spec: StepSpec) -> list[dict[str, Any]]:
        key = f"inject-{spec.index}"
        if spec.rollback:
            self.rollbacks.append(_python("action", f"revert {spec.name}", "dirt.ctk.actions", "revert_fault",
                                          {"key": key}))
        return [_python("action", spec.name, "dirt.ctk.actions", "run_fault",
                        {"driver": spec.driver, "params": self._params(spec), "key": key, "name": spec.name,
                         "within": spec.within or self.timing.inject_within, "interval": spec.interval,
                         "playbook": self._playbook(spec)})]

    def _hypothesis(self) -> dict[str, Any]:
        s, expect = self.scenario, self.scenario.expect
        probes = [self._check(c, False, self.timing.steady_state_within) for c in s.steady_state]
        probes += [self._check(c, True, self.timing.verify_within) for c in s.verify]
        resolving = [a for a in expect.alerts if a.resolves_within is not None]
        if resolving:
            probes.append(_python("probe", "expected alerts resolved", "dirt.ctk.probes", "alerts_resolve",
                                  {"names": [a.name for a in resolving],
                                   "within": max(a.resolves_within or 0.0 for a in resolving)}, tolerance=True))
        silent = [a if isinstance(a, str) else a.name for a in expect.silent]
        arguments: dict[str, Any] = {"mttr": expect.mttr, "silent": silent}
        if expect.availability:  # carried for the way back (dirt import); Chaos Toolkit does not sample it
            arguments["availability"] = [a.model_dump(mode="json", exclude_none=True) for a in expect.availability]
        probes.append(_python("probe", "dirt expectations met", "dirt.ctk.probes", "expectations",
                              arguments, tolerance=True))
        return {"title": f"{s.name}: the steady state holds, and holds again after recovery", "probes": probes}

    def _method(self) -> list[dict[str, Any]]:
        s = self.scenario
        method = [a for spec in s.inject for a in self._fault(spec)]
        for alert in s.expect.alerts:
            method.append(_python("probe", f"alert {alert.name} fires", "dirt.ctk.probes", "alert_fires",
                                  {"name": alert.name, "within": alert.fires_within, "labels": dict(alert.labels)},
                                  tolerance=True))
        method += [self._step(spec) for spec in s.recover]
        return method

    def _controls(self) -> list[dict[str, Any]]:
        s = self.scenario
        if not (s.setup or s.cleanup):
            return []
        return [{"name": "dirt setup and cleanup",
                 "provider": {"type": "python", "module": "dirt.ctk.control",
                              "arguments": {"setup": [self._step_arguments(x) for x in s.setup],
                                            "cleanup": [self._step_arguments(x) for x in s.cleanup]}}}]

    def _configuration(self) -> dict[str, Any]:
        s = self.scenario
        config: dict[str, Any] = {
            "dirt_config": str(Path(self.loaded.path).resolve()) if self.loaded.path else "",
            "dirt_target": self.target_name,
            "dirt_scenario": str(s.path),
        }
        config.update(s.vars)
        return config

    def _unexpressed(self) -> list[str]:
        s = self.scenario
        notes = []
        if s.backups:
            notes.append("backups (taken in dirt's preflight): not exported; steps restoring them will fail")
        for condition in s.abort_when:
            notes.append(f"abort condition '{condition.title()}': not checked while the method runs")
        if s.expect.availability:
            notes.append("availability probes (expect.availability): not sampled while the method runs; "
                         "kept in the expectations probe's arguments for `dirt import`")
        if s.expect.silent:
            notes.append("silent alerts are checked once after the method (Prometheus ALERTS since the fault), "
                         "not watched continuously")
        notes.append("the report, the journal and the timeline of dirt: Chaos Toolkit writes its own journal")
        return notes

    def experiment(self) -> dict[str, Any]:
        s = self.scenario
        hypothesis = self._hypothesis()
        method = self._method()
        rollbacks = list(self.rollbacks)
        rollbacks += [self._step(spec, recovery=False, only_on_failure=True) for spec in s.rollback]
        description = s.metadata.description.strip()
        objectives = [f"alert {a.name} fires within {a.fires_within:g}s" for a in s.expect.alerts]
        if s.expect.mttr is not None:
            objectives.append(f"MTTR within {s.expect.mttr:g}s")
        text = "\n\n".join(filter(None, [
            description,
            f"Exported by dirt from {s.path.name}. Objectives (checked by probes): " + "; ".join(objectives)
            if objectives else f"Exported by dirt from {s.path.name}.",
            "Not expressed in Chaos Toolkit: " + "; ".join(self._unexpressed()) + ".",
        ]))
        experiment: dict[str, Any] = {
            "version": "1.0.0",
            "title": f"{s.name}: {description.splitlines()[0]}" if description else s.name,
            "description": text,
            "tags": ["dirt", *s.metadata.tags],
            "configuration": self._configuration(),
        }
        # what `dirt import` needs to give the drill back as it was
        experiment["extensions"] = [{"name": "dirt", "scenario": s.name, "owner": s.metadata.owner,
                                     "playbook": s.metadata.playbook, "description": s.metadata.description}]
        controls = self._controls()
        if controls:
            experiment["controls"] = controls
        experiment["steady-state-hypothesis"] = hypothesis
        experiment["method"] = method
        experiment["rollbacks"] = rollbacks
        experiment["runtime"] = {"rollbacks": {"strategy": "always"}}
        return experiment

"""``dirt import EXPERIMENT``: a Chaos Toolkit experiment as a dirt scenario of ``ctk`` steps.

The mapping, in CTK's order of play:

- hypothesis probes → ``steady_state`` checks, and the same checks again under ``verify``
  (CTK re-runs its hypothesis after the method; dirt's verify is that second pass);
- method: the actions before the first probe of the method are the faults (``inject``);
  the method's probes become ``verify`` checks (after the hypothesis ones); the actions
  after the first probe are ``recover`` steps.  A method without a probe is all faults.
  Each fault's guardrail ``family`` comes from its provider (``chaosk8s.pod`` → pods,
  ``chaosk8s.deployment`` → workload, a process → command...), else the most destructive;
- rollbacks → the faults' ``revert``, in order (rollback k reverts fault k); rollbacks
  left over → the scenario's ``rollback`` steps;
- configuration: plain values → ``vars`` with ``${x}`` → ``{{ x }}``; values read from the
  environment (``{type: env, ...}``) stay CTK configuration on the steps that use them, as
  do the experiment's ``secrets``; ``pauses`` and tolerances stay in the activities.

An experiment written by ``dirt export`` comes back as the drill it was: activities that
call ``dirt.ctk.actions`` / ``probes`` / ``control`` become dirt's own steps, alerts and
objectives again (the round trip).  Whatever does not map (controls, background
activities, ...) is listed in the scenario's header comment, and returned for the CLI
to print.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dirt.core import safefile
from dirt.core.errors import UsageError

#: Guardrail family by provider module prefix (dirt.core.families); the rest: "cluster".
FAMILY_BY_MODULE = {
    "chaosk8s.pod": "pods",
    "chaosk8s.node": "node",
    "chaosk8s.deployment": "workload",
    "chaosk8s.statefulset": "workload",
    "chaosk8s.replicaset": "workload",
    "chaosk8s.daemonset": "workload",
    "chaosk8s.service": "workload",
    "chaosk8s.namespace": "namespace",
    "chaosk8s.networking": "network",
}
_CTK_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DROPPED_KEYS = ("controls", "extensions", "contributions", "runtime", "secrets-providers")


def family_of(activity: dict[str, Any]) -> str:
    provider = activity.get("provider") or {}
    if provider.get("type") == "process":
        return "command"
    module = str(provider.get("module") or "")
    for prefix, family in FAMILY_BY_MODULE.items():
        if module == prefix or module.startswith(prefix + "."):
            return family
    return "cluster"


def scenario_name(title: str, fallback: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:63].strip("-")
    return name or re.sub(r"[^a-z0-9]+", "-", fallback.lower()).strip("-")[:63] or "imported-experiment"


class _Importer:
    def __init__(self, experiment: dict[str, Any], path: Path) -> None:
        self.experiment = experiment
        self.path = path
        self.unmapped: list[str] = []
        config = experiment.get("configuration") or {}
        self.vars = {k: v for k, v in config.items() if isinstance(v, str | int | float | bool)}
        self.dynamic = {k: v for k, v in config.items() if k not in self.vars}
        self.secrets = experiment.get("secrets") or {}
        self.by_name = {a.get("name"): a for a in self._all_activities() if isinstance(a, dict) and "ref" not in a}

    def _all_activities(self) -> list[Any]:
        hypothesis = self.experiment.get("steady-state-hypothesis") or {}
        return [*(hypothesis.get("probes") or []), *(self.experiment.get("method") or []),
                *(self.experiment.get("rollbacks") or [])]

    # -- one activity ------------------------------------------------------------------
    def _activity(self, activity: dict[str, Any], where: str) -> dict[str, Any] | None:
        if "ref" in activity:
            found = self.by_name.get(activity["ref"])
            if found is None:
                self.unmapped.append(f"{where}: ref {activity['ref']!r} names no activity: left out")
                return None
            activity = found
        activity = dict(activity)
        if activity.pop("background", False):
            self.unmapped.append(f"{where} {activity.get('name')!r}: ran in the background in CTK; "
                                 "dirt runs it in order")
        for key in ("controls",):
            if activity.pop(key, None) is not None:
                self.unmapped.append(f"{where} {activity.get('name')!r}: its {key} are not imported")
        return self._to_dirt(activity)

    def _to_dirt(self, value: Any) -> Any:
        if isinstance(value, str):
            return _CTK_VAR.sub(lambda m: f"{{{{ {m.group(1)} }}}}" if m.group(1) in self.vars else m.group(0), value)
        if isinstance(value, list):
            return [self._to_dirt(v) for v in value]
        if isinstance(value, dict):
            return {k: self._to_dirt(v) for k, v in value.items()}
        return value

    def _step(self, key: str, kind: str, activity: dict[str, Any], **extra: Any) -> dict[str, Any]:
        step: dict[str, Any] = {key: "ctk", "name": str(activity.get("name") or kind), **extra, "activity": activity}
        used = set(_CTK_VAR.findall(repr(activity)))
        configuration = {k: v for k, v in self.dynamic.items() if k in used}
        if configuration:
            step["configuration"] = configuration
        provider = activity.get("provider") or {}
        if self.secrets and provider.get("secrets"):
            wanted = provider["secrets"] if isinstance(provider["secrets"], list) else [provider["secrets"]]
            secrets = {k: v for k, v in self.secrets.items() if k in wanted}
            if secrets:
                step["secrets"] = secrets
        return step

    def _check(self, activity: dict[str, Any]) -> dict[str, Any]:
        return self._step("check", "check", activity)

    # -- activities written by `dirt export` ---------------------------------------------
    @staticmethod
    def _dirt_call(activity: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        provider = activity.get("provider") or {}
        if provider.get("type") == "python" and provider.get("module") in ("dirt.ctk.actions", "dirt.ctk.probes"):
            return str(provider.get("func")), dict(provider.get("arguments") or {})
        return None

    def _native(self, key: str, arguments: dict[str, Any], objective: str = "within") -> dict[str, Any]:
        """A dirt step back from the arguments ``dirt export`` gave it."""
        params = dict(arguments.get("params") or {})
        step: dict[str, Any] = {key: arguments["driver"]}
        label = arguments.get("name")
        if label and label != arguments["driver"]:
            step["label" if "name" in params else "name"] = label
        step.update(params)
        book = arguments.get("playbook")
        if isinstance(book, dict) and book.get("display"):
            step["playbook"] = book["display"] + (f"#{book['anchor']}" if book.get("anchor") else "")
        if arguments.get(objective) is not None:
            step["within"] = f"{arguments[objective]:g}s"
        return step

    def _native_sections(self, scenario: dict[str, Any], hypothesis: list[dict[str, Any]],
                         method: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Take dirt's own activities out of the hypothesis and method into ``scenario``;
        return the activities left (CTK's own)."""
        expect: dict[str, Any] = {}
        rest_h: list[dict[str, Any]] = []
        for activity in hypothesis:
            call = self._dirt_call(activity)
            if call is None:
                rest_h.append(activity)
            elif call[0] == "run_check":
                section = "verify" if call[1].get("after_fault") else "steady_state"
                scenario.setdefault(section, []).append(self._native("check", call[1]))
            elif call[0] == "alerts_resolve":
                expect["resolves"] = call[1]
            elif call[0] == "expectations":
                if call[1].get("mttr") is not None:
                    expect["mttr"] = f"{call[1]['mttr']:g}s"
                if call[1].get("silent"):
                    expect["silent"] = list(call[1]["silent"])
                if call[1].get("availability"):
                    expect["availability"] = list(call[1]["availability"])
        rest_m: list[dict[str, Any]] = []
        for activity in method:
            call = self._dirt_call(activity)
            if call is None:
                rest_m.append(activity)
            elif call[0] == "run_fault":
                scenario.setdefault("inject", []).append(self._native("fault", call[1]))
            elif call[0] == "run_step":
                scenario.setdefault("recover", []).append(self._native("step", call[1], "objective"))
            elif call[0] == "alert_fires":
                alert: dict[str, Any] = {"name": call[1]["name"], "fires_within": f"{call[1]['within']:g}s"}
                if call[1].get("labels"):
                    alert["labels"] = call[1]["labels"]
                expect.setdefault("alerts", []).append(alert)
        resolves = expect.pop("resolves", None)
        for alert in expect.get("alerts", []):
            if resolves and alert["name"] in resolves.get("names", []):
                alert["resolves_within"] = f"{resolves['within']:g}s"
        if expect:
            scenario["expect"] = {k: expect[k] for k in ("alerts", "silent", "mttr", "availability") if k in expect}
        return rest_h, rest_m

    def _dirt_metadata(self) -> dict[str, Any]:
        """An exported drill's own metadata, from the ``dirt`` extension ``dirt export`` wrote."""
        extensions = self.experiment.get("extensions") or []
        for extension in list(extensions):
            if isinstance(extension, dict) and extension.get("name") == "dirt":
                extensions.remove(extension)
                found = {"name": extension.get("scenario"), "description": extension.get("description"),
                         "owner": extension.get("owner"), "playbook": extension.get("playbook")}
                return {k: v for k, v in found.items() if v and isinstance(v, str)}
        return {}

    def _dirt_control(self, scenario: dict[str, Any]) -> None:
        controls = self.experiment.get("controls") or []
        for control in list(controls):
            provider = control.get("provider") or {} if isinstance(control, dict) else {}
            if provider.get("module") != "dirt.ctk.control":
                continue
            arguments = provider.get("arguments") or {}
            for section in ("setup", "cleanup"):
                steps = [self._native("step", self._to_dirt(a), "objective") for a in arguments.get(section) or []]
                if steps:
                    scenario[section] = steps
            controls.remove(control)

    # -- sections ----------------------------------------------------------------------
    def scenario(self) -> dict[str, Any]:
        e = self.experiment
        exported: dict[str, Any] = {}
        self._dirt_control(exported)
        dirt_metadata = self._dirt_metadata()
        for key in _DROPPED_KEYS:
            if e.get(key) and not (key == "runtime" and dirt_metadata):
                self.unmapped.append(f"experiment {key}: not imported (dirt has no equivalent)")
        hypothesis = e.get("steady-state-hypothesis") or {}
        checks = [a for i, p in enumerate(hypothesis.get("probes") or [])
                  if isinstance(p, dict) and (a := self._activity(p, f"hypothesis probe {i}")) is not None]
        method = []
        for i, m in enumerate(e.get("method") or []):
            if not isinstance(m, dict) or (a := self._activity(m, f"method activity {i}")) is None:
                continue
            if "ref" in m and any(a == c for c in checks):  # verify checks every hypothesis probe already
                self.unmapped.append(f"method activity {i}: ref {m['ref']!r} repeats a hypothesis probe, which "
                                     "verify checks after the fault anyway: not repeated")
                continue
            method.append(a)
        checks, method = self._native_sections(exported, checks, method)
        faults: list[dict[str, Any]] = []
        recover: list[dict[str, Any]] = []
        method_checks: list[dict[str, Any]] = []
        seen_probe = bool(exported.get("inject"))
        for activity in method:
            if activity.get("type") == "probe":
                seen_probe = True
                method_checks.append(activity)
            elif seen_probe:
                recover.append(activity)
            else:
                faults.append(activity)
        if not faults and not exported.get("inject"):
            raise UsageError(f"{self.path}: the experiment's method has no action before its first probe: "
                             "nothing to inject (a dirt scenario needs at least one fault)")
        rollbacks = [a for i, r in enumerate(e.get("rollbacks") or [])
                     if isinstance(r, dict) and (a := self._activity(r, f"rollback {i}")) is not None]
        extra_dirt = [self._native("step", call[1], "objective") for r in rollbacks
                      if (call := self._dirt_call(r)) and call[0] == "run_step"]
        rollbacks = [r for r in rollbacks if self._dirt_call(r) is None]  # dirt reverts its own faults
        inject = []
        for i, activity in enumerate(faults):
            step = self._step("fault", "fault", activity, family=family_of(activity))
            if i < len(rollbacks):
                step["revert"] = rollbacks[i]
            inject.append(step)
        extra = rollbacks[len(faults):]
        if rollbacks:
            self.unmapped.append("rollbacks: CTK plays them after every run; dirt reverts a fault only while "
                                 "it is still in effect (on failure or abort)")
        title = str(e.get("title") or "")
        description = "\n\n".join(filter(None, [title, str(e.get("description") or "").strip()]))
        metadata: dict[str, Any] = {
            "name": scenario_name(title, self.path.stem),
            "description": description or f"Imported from {self.path.name}",
            "tags": [t for t in (e.get("tags") or []) if isinstance(t, str)
                     and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", t) and t != "dirt"],
        }
        metadata.update(dirt_metadata)
        scenario: dict[str, Any] = {"apiVersion": "dirt/v1", "kind": "Scenario", "metadata": metadata}
        config_keys = ("dirt_config", "dirt_target", "dirt_scenario", "dirt_confirm")
        variables = {k: v for k, v in self.vars.items() if k not in config_keys}
        if variables:
            scenario["vars"] = variables
        if exported.get("setup"):
            scenario["setup"] = exported["setup"]
        steady = exported.get("steady_state", []) + [self._check(a) for a in checks]
        if steady:
            scenario["steady_state"] = steady
        scenario["inject"] = exported.get("inject", []) + inject
        if exported.get("expect"):
            scenario["expect"] = exported["expect"]
        recovery = exported.get("recover", []) + [self._step("step", "step", a) for a in recover]
        if recovery:
            scenario["recover"] = recovery
        verify = exported.get("verify", []) + [self._check(a) for a in checks + method_checks]
        if verify:
            scenario["verify"] = verify
        rollback = extra_dirt + [self._step("step", "step", a) for a in extra]
        if rollback:
            scenario["rollback"] = rollback
        if exported.get("cleanup"):
            scenario["cleanup"] = exported["cleanup"]
        for section in ("setup", "steady_state", "inject", "recover", "verify", "rollback", "cleanup"):
            _unique_names(scenario.get(section) or [])
        return scenario


def _unique_names(steps: list[dict[str, Any]]) -> None:
    """Two steps of a section never share a name (a report row, a journal line each): the second
    of a name becomes ``name (2)``, and so on."""
    seen: dict[str, int] = {}
    for step in steps:
        name = step.get("name")
        if not isinstance(name, str):
            continue
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            step["name"] = f"{name} ({seen[name]})"


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases: an imported check shared by two sections is written twice,
    so editing one never edits the other."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def load_experiment_file(path: Path) -> dict[str, Any]:
    """A CTK experiment, JSON or YAML (JSON is read as YAML); a bad one is a usage error."""
    try:
        data = yaml.safe_load(safefile.read_text(path))
    except safefile.UnreadableFile as exc:
        raise UsageError(f"{path}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise UsageError(f"{where}: not valid JSON or YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("method"), list):
        raise UsageError(f"{path}: not a Chaos Toolkit experiment (a mapping with a 'method' list)")
    return data


def import_experiment(path: Path) -> tuple[str, list[str]]:
    """The scenario's YAML text (with a header comment) and what did not map."""
    importer = _Importer(load_experiment_file(path), path)
    scenario = importer.scenario()
    header = [f"# Imported by `dirt import` from {path.name} (a Chaos Toolkit experiment).",
              "# Hypothesis probes -> steady_state and verify; method actions before its first probe -> inject,",
              "# after it -> recover; method probes -> verify; rollbacks -> the faults' revert."]
    if importer.unmapped:
        header.append("# Not mapped:")
        header += [f"#   - {line}" for line in importer.unmapped]
    body = yaml.dump(scenario, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=110)
    return "\n".join(header) + "\n" + body, importer.unmapped

"""Chaos Toolkit activities inside a drill: what the ``ctk`` fault, check and step share.

A team with Chaos Toolkit experiments (or an extension such as ``chaosk8s``) can
use any CTK activity as a step of a drill: the step carries the activity exactly
as an experiment would, and dirt adds what a drill has and CTK lacks — a
deadline, cancellation, the target, guardrails and the journal.

* ``CtkActivity`` validates one activity with Chaos Toolkit's own rules
  (``chaoslib.activity.ensure_activity_is_valid``, the hypothesis' tolerance
  rules), so ``dirt validate`` reports CTK's complaint at the right line.
* ``ActivityRunner`` runs it: a python provider in-process (CTK's model; dirt
  stops *waiting* at the deadline or an abort, it cannot kill a thread), a process
  provider as a subprocess through ``ctx.run_command`` (killed at the deadline or
  an abort), an http provider with its timeout bounded by the deadline.  Every
  activity gets the target as CTK configuration (``CONFIGURATION_KEYS``), and
  ``chaosk8s`` finds the target's kubeconfig.

Chaos Toolkit is an optional extra: nothing here imports ``chaoslib`` until an
activity is validated or run, and then its absence is a clear message
(``INSTALL_HINT``), never a traceback.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from dirt.clients.extensions import default_kubeconfig
from dirt.core.errors import StepFailed
from dirt.core.redact import redact, register_secret
from dirt.drivers.base import Params
from dirt.drivers.context import Context, one_line

INSTALL_HINT = "the ctk driver needs Chaos Toolkit: pip install 'dirt[ctk]'"

#: What dirt passes to every activity as CTK configuration (the step's ``configuration`` wins).
CONFIGURATION_KEYS = {
    "kubeconfig_path": "the target's kubeconfig (chaosk8s also gets it as KUBECONFIG)",
    "kubernetes_context": "the target's kubeconfig context, when it names one (KUBERNETES_CONTEXT)",
    "prometheus_base_url": "the target's Prometheus URL (chaostoolkit-prometheus reads this key)",
    "alertmanager_url": "the target's Alertmanager URL",
}

#: How long an activity may run when neither it nor the step says.
DEFAULT_TIMEOUT = 60.0
#: Longest text kept of any one string in a recorded output.
MAX_TEXT = 2000

T = TypeVar("T")


class ChaosToolkitMissing(StepFailed):
    """The ``ctk`` extra is not installed."""

    exit_code = 2


def chaoslib() -> Any:
    """The ``chaoslib`` package, or ``ChaosToolkitMissing`` saying how to install it."""
    try:
        import chaoslib
        import chaoslib.activity
        import chaoslib.configuration
        import chaoslib.exceptions
        import chaoslib.hypothesis
        import chaoslib.secret
    except ImportError:
        raise ChaosToolkitMissing(INSTALL_HINT) from None
    return chaoslib


def _ctk_check(check: Callable[[], None]) -> None:
    """Run one of chaoslib's validators; its complaint becomes a pydantic error (a located problem)."""
    try:
        lib = chaoslib()
    except ChaosToolkitMissing as exc:
        raise ValueError(str(exc)) from None
    try:
        check()
    except lib.exceptions.ChaosException as exc:
        raise ValueError(str(exc).strip() or type(exc).__name__) from None
    except Exception as exc:  # noqa: BLE001 - chaoslib's validators assume well-typed input
        raise ValueError(f"Chaos Toolkit cannot check this activity: {one_line(exc)}") from None


# -- the activity -------------------------------------------------------------------------


class CtkActivity(BaseModel):
    """One Chaos Toolkit activity, as in an experiment: ``type``, ``name``, ``provider``, and
    optionally ``tolerance`` (probes), ``pauses``, ``timeout``; other CTK keys are kept as is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Literal["action", "probe"] = Field(description="'action' or 'probe'.")
    name: str = Field(min_length=1, description="The activity's name (CTK's).")
    provider: dict[str, Any] = Field(
        description="python (module, func, arguments) | process (path, arguments, timeout) | "
                    "http (url, method, headers, expected_status, timeout)."
    )
    tolerance: Any = Field(None, description="CTK tolerance a probe's value must meet (checks only).")
    pauses: dict[str, Any] | None = Field(None, description="Seconds to pause 'before' and 'after' it.")
    timeout: float | None = Field(None, gt=0, description="Seconds it may run (bounded by the step's deadline).")

    @field_validator("provider")
    @classmethod
    def _provider_valid(cls, provider: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "type" not in info.data or "name" not in info.data:
            return provider  # already reported
        _provider_shape(provider)
        activity = {"type": info.data["type"], "name": info.data["name"], "provider": _checkable(provider)}
        _ctk_check(lambda: _validate_provider(activity))
        return provider

    @field_validator("tolerance")
    @classmethod
    def _tolerance_valid(cls, tolerance: Any) -> Any:
        if tolerance is not None:
            _ctk_check(lambda: chaoslib().hypothesis.ensure_hypothesis_tolerance_is_valid(copy.deepcopy(tolerance)))
        return tolerance

    @model_validator(mode="after")
    def _activity_valid(self) -> CtkActivity:
        activity = self.as_ctk()
        activity["provider"] = _checkable(self.provider)
        _ctk_check(lambda: chaoslib().activity.ensure_activity_is_valid(activity))
        return self

    def as_ctk(self) -> dict[str, Any]:
        """The activity as Chaos Toolkit takes it (a fresh copy: chaoslib mutates what it gets)."""
        # a key left out and a key set to null are the same to CTK (and the runner's re-validation
        # after substituting runtime variables sets every field)
        return copy.deepcopy(self.model_dump(mode="json", exclude_unset=True, exclude_none=True))

    @property
    def has_tolerance(self) -> bool:
        return self.tolerance is not None

    def describe(self) -> str:
        """The activity in a few words, for ``dirt plan``."""
        p = self.provider
        kind = p.get("type")
        if kind == "python":
            how = f"{p.get('module')}.{p.get('func')}({_args(p.get('arguments'))})"
        elif kind == "process":
            how = f"{p.get('path')} {_args(p.get('arguments'))}".strip()
        else:
            how = f"{str(p.get('method', 'GET')).upper()} {p.get('url')}"
        return f"Chaos Toolkit {self.type} {self.name!r}: {how}"[:200]


#: The provider keys chaoslib's validators take for granted, and the types they must have.
_PROVIDER_TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "python": {"module": (str,), "func": (str,), "arguments": (dict,), "secrets": (list,)},
    "process": {"path": (str,), "arguments": (str, list, dict), "timeout": (int, float)},
    "http": {"url": (str,), "method": (str,), "headers": (dict,), "arguments": (dict, str),
             "timeout": (int, float, list)},
}
_TYPE_WORDS = {str: "a string", dict: "a mapping", list: "a list", int: "a number", float: "a number"}


def _provider_shape(provider: dict[str, Any]) -> None:
    """Types first, so a malformed provider gets a plain sentence rather than a chaoslib crash."""
    for key, types in _PROVIDER_TYPES.get(str(provider.get("type")), {}).items():
        value = provider.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
            wanted = " or ".join(dict.fromkeys(_TYPE_WORDS[t] for t in types))
            raise ValueError(f"the {provider['type']} provider's '{key}' must be {wanted}")
    timeout = provider.get("timeout")
    if provider.get("type") == "http" and isinstance(timeout, list) and _timeout_pair(timeout) is None:
        raise ValueError("the http provider's 'timeout' must be seconds, or a [connect, read] pair of seconds "
                         f"(as requests takes it), got {timeout!r}")


def _timeout_pair(value: Any) -> tuple[float, float] | None:
    """An http provider's ``[connect, read]`` timeout (chaoslib hands it to requests as a tuple)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        connect, read = (_number(v) for v in value)
        if connect is not None and read is not None:
            return connect, read
    return None


def _http_timeout(provider: dict[str, Any]) -> float | None:
    """The longest an http provider may take by its own ``timeout``: the number, or connect + read."""
    pair = _timeout_pair(provider.get("timeout"))
    return sum(pair) if pair else _number(provider.get("timeout"))


def _validate_provider(activity: dict[str, Any]) -> None:
    from chaoslib.exceptions import InvalidActivity
    from chaoslib.provider import http, process, python

    validators = {"python": python.validate_python_activity, "process": process.validate_process_activity,
                  "http": http.validate_http_activity}
    kind = activity["provider"].get("type")
    if kind not in validators:
        raise InvalidActivity(f"unknown provider type {kind!r}: python, process or http")
    validators[kind](activity)


def _checkable(provider: dict[str, Any]) -> dict[str, Any]:
    """``provider`` as validation can check it now: a process ``path`` that is a runtime
    ``{{ variable }}`` or relative to the scenario's folder is found at run time instead."""
    path = provider.get("path")
    if provider.get("type") == "process" and isinstance(path, str) and ("{{" in path or _relative(path)):
        return {**provider, "path": shutil.which("sh") or "/bin/sh"}
    return provider


def _relative(path: str) -> bool:
    return "/" in path and not os.path.isabs(os.path.expanduser(path))


def _args(arguments: Any) -> str:
    if isinstance(arguments, dict):
        return ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    if isinstance(arguments, list):
        return " ".join(map(str, arguments))
    return str(arguments or "")


class CtkParams(Params):
    """A ``ctk`` step: one activity, and the CTK configuration and secrets it needs."""

    activity: CtkActivity = Field(description="One Chaos Toolkit activity, exactly as in a CTK experiment.")
    configuration: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra CTK configuration, merged over what dirt passes (kubeconfig_path, "
                    "prometheus_base_url, alertmanager_url); {type: env, key: X} values are read at run time.",
    )
    secrets: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="CTK secrets, e.g. {k8s: {token: {type: env, key: K8S_TOKEN}}}; read at run time, "
                    "masked in the journal.",
    )


# -- running it ---------------------------------------------------------------------------


class ActivityRunner:
    """Runs the activities of one ``ctk`` step within the step's deadline and the drill's
    cancellation; configuration and secrets are read once, on first use."""

    def __init__(self, ctx: Context, params: CtkParams) -> None:
        self.ctx = ctx
        self.params = params
        self._loaded: tuple[dict[str, Any], dict[str, Any]] | None = None

    # -- configuration --------------------------------------------------------------------
    def configuration(self) -> dict[str, Any]:
        return self._load()[0]

    def secrets(self) -> dict[str, Any]:
        return self._load()[1]

    def _load(self) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._loaded is None:
            lib = chaoslib()
            configuration = dirt_configuration(self.ctx)
            try:
                configuration.update(lib.configuration.load_configuration(copy.deepcopy(self.params.configuration)))
                secrets = lib.secret.load_secrets(copy.deepcopy(self.params.secrets), configuration)
            except lib.exceptions.ChaosException as exc:
                raise StepFailed(f"Chaos Toolkit configuration or secrets: {exc}") from None
            _register_leaves(secrets)
            self._loaded = (configuration, secrets)
        return self._loaded

    # -- running ----------------------------------------------------------------------------
    def run(self, activity: CtkActivity) -> Any:
        """Run ``activity`` (with its pauses); its value, or ``StepFailed`` saying why not."""
        lib = chaoslib()
        configuration, secrets = self._load()
        pauses = lib.substitute(dict(activity.pauses or {}), configuration, secrets)
        self._pause(pauses.get("before"))
        what = f"{activity.type} {activity.name!r}"
        limit = self._limit(activity)
        try:
            if activity.provider.get("type") == "process":
                value = self._process(activity, limit, what)
            else:
                value = self._in_process(activity, limit, what)
        except lib.exceptions.ChaosException as exc:
            raise StepFailed(f"Chaos Toolkit {what} failed: {_first_line(exc)}") from None
        self._pause(pauses.get("after"))
        return value

    def within_tolerance(self, activity: CtkActivity, value: Any) -> bool:
        """CTK's own verdict on a probe's ``value`` (``chaoslib.hypothesis.within_tolerance``)."""
        lib = chaoslib()
        tolerance = copy.deepcopy(activity.tolerance)  # a probe tolerance is mutated by chaoslib
        configuration, secrets = self._load()
        with default_kubeconfig(self.ctx.target.kubeconfig_path(), self.ctx.target.kube_context()):
            return bool(self._bounded(lambda: lib.hypothesis.within_tolerance(tolerance, value, configuration,
                                                                               secrets),
                                      self._limit(activity), f"tolerance of {activity.name!r}"))

    def _limit(self, activity: CtkActivity) -> float:
        own = activity.timeout or _http_timeout(activity.provider) or DEFAULT_TIMEOUT
        return max(0.0, min(own, self.ctx.remaining(own)))

    def _pause(self, seconds: Any) -> None:
        pause = _number(seconds)
        if pause:
            self.ctx.sleep(min(pause, self.ctx.remaining(pause)))

    def _in_process(self, activity: CtkActivity, limit: float, what: str) -> Any:
        """python and http providers, through chaoslib, in a thread dirt waits on."""
        lib = chaoslib()
        ctk = activity.as_ctk()
        if ctk["provider"].get("type") == "http":  # requests' own timeouts, within the step's deadline
            pair = _timeout_pair(ctk["provider"].get("timeout"))
            own = _number(ctk["provider"].get("timeout"))
            if pair:
                ctk["provider"]["timeout"] = [max(min(pair[0], limit), 0.1), max(min(pair[1], limit), 0.1)]
            else:
                ctk["provider"]["timeout"] = min(own, limit) if own else max(limit, 0.1)
        configuration, secrets = self._load()
        with default_kubeconfig(self.ctx.target.kubeconfig_path(), self.ctx.target.kube_context()):
            return self._bounded(lambda: lib.activity.run_activity(ctk, configuration, secrets), limit, what)

    def _bounded(self, call: Callable[[], T], limit: float, what: str) -> T:
        """``call()`` in a daemon thread; dirt stops waiting at ``limit`` seconds or an abort.
        A Python function cannot be stopped from outside: it may still finish in the background."""
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["value"] = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name=f"ctk {what}", daemon=True).start()
        start = time.monotonic()
        while not done.wait(0.1):
            self.ctx.cancel.raise_if_cancelled()
            elapsed = time.monotonic() - start
            self.ctx.waiting(f"Chaos Toolkit {what}", elapsed, limit)
            if elapsed >= limit:
                raise StepFailed(f"Chaos Toolkit {what} did not finish within {limit:g}s (it may go on running "
                                 "in the background: a python activity cannot be stopped)")
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    def _process(self, activity: CtkActivity, limit: float, what: str) -> dict[str, Any]:
        """A process provider, as chaoslib runs it, but killed at the deadline or an abort."""
        lib = chaoslib()
        provider = activity.provider
        configuration, secrets = self._load()
        arguments = provider.get("arguments", [])
        if arguments and (configuration or secrets):
            arguments = lib.substitute(copy.deepcopy(arguments), configuration, secrets)
        path = self._executable(str(provider["path"]))
        env = {"KUBERNETES_CONTEXT": context} if (context := self.ctx.target.kube_context()) else {}
        if isinstance(arguments, str):
            result = self.ctx.run_command(f"{shlex.quote(path)} {arguments}", shell="sh", timeout=limit, env=env,
                                          check=False, what=f"Chaos Toolkit {what}")
        else:
            items = arguments.items() if isinstance(arguments, dict) else [(a,) for a in arguments or []]
            argv = [path] + [str(a) for pair in items for a in pair if a not in (None, "")]
            result = self.ctx.run_command(argv, timeout=limit, env=env, check=False, what=f"Chaos Toolkit {what}")
        return {"status": result.returncode, "stdout": result.stdout, "stderr": result.stderr}

    def _executable(self, path: str) -> str:
        expanded = os.path.expanduser(path)
        if _relative(expanded):
            expanded = str(Path(self.ctx.scenario_dir) / expanded)
        found = shutil.which(expanded, path=self.ctx.environment().get("PATH"))  # the target's tools first
        if found is None:
            raise StepFailed(f"Chaos Toolkit process provider: {path!r} is not an executable program")
        return found


def dirt_configuration(ctx: Context) -> dict[str, Any]:
    """The target, as CTK configuration (``CONFIGURATION_KEYS``)."""
    target = ctx.target
    found = {
        "kubeconfig_path": target.kubeconfig_path(),
        "kubernetes_context": target.kube_context(),
        "prometheus_base_url": target.prometheus.url if target.prometheus else None,
        "alertmanager_url": target.alertmanager.url if target.alertmanager else None,
    }
    return {key: value for key, value in found.items() if value}


def recorded(value: Any) -> Any:
    """An activity's value as the journal keeps it: JSON, long texts cut, secrets masked."""
    try:
        plain = json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        plain = str(value)
    return redact(_cut(plain))


def shown(value: Any, limit: int = 120) -> str:
    """A value in one short line, for a step's detail: a process or http provider's result as its
    status and the start of its output (the whole of it is in the step's data)."""
    plain = recorded(value)
    if isinstance(plain, dict) and "status" in plain and ("body" in plain or "stdout" in plain):
        said = plain.get("body") if "body" in plain else (plain.get("stdout") or plain.get("stderr"))
        said = said if isinstance(said, str) else json.dumps(said, ensure_ascii=False)
        text = f"status {plain['status']}: " + " ".join(said.split())
    else:
        text = " ".join(json.dumps(plain, ensure_ascii=False).split())
    return text if len(text) <= limit else text[:limit] + " …"


def _cut(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + f" … ({len(value) - MAX_TEXT} more characters)"
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut(v) for v in value]
    return value


def _register_leaves(secrets: Any) -> None:
    """Every secret value read from the environment or a vault is masked from now on."""
    if isinstance(secrets, dict):
        for value in secrets.values():
            _register_leaves(value)
    elif isinstance(secrets, (str, bytes)):
        register_secret(secrets)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value > 0 else None


def _first_line(exc: BaseException) -> str:
    return one_line(exc).removeprefix(f"{type(exc).__name__}: ") or type(exc).__name__

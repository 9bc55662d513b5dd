"""``dirt.yaml``: the named targets a scenario can run against, and their guardrails.

Found by ``--config``, then ``$DIRT_CONFIG``, then the nearest ``dirt.yaml`` in the
current folder or above it; without one, a built-in configuration with just the
local ``sandbox`` target applies.  Example::

    default_target: sandbox
    playbook_base_url: https://git.example.com/platform/dirt/blob/main/
    rules: [dirt/sandbox/rules]          # alert rule files for `dirt coverage`
    history: postgresql://dirt@db.internal:5432/dirt  # run history (default: SQLite in reports/)
    history_password_env: DIRT_HISTORY_PASSWORD
    targets:
      sandbox:
        provider: sandbox                  # destructive faults always allowed
      staging:
        provider: kubeconfig
        context: staging-eu
        allow: [pods, node, control-plane] # fault families this target accepts
        prometheus: {url: https://prom.staging, bearer_token_env: PROM_TOKEN}

Secrets are never written here: only the names of environment variables or
files that hold them.

Everything is checked when the file is loaded, so ``dirt validate`` and ``dirt
targets`` find what a drill would trip over, all of it at once and each located
``dirt.yaml:line:col``: the document's own fields, each target's provider
settings against that provider's ``Settings`` model, URLs, durations, and the
files the settings name (read through ``dirt.core.safefile``: a FIFO named
as a CA file is refused, not waited on).  Relative file paths are relative to
dirt.yaml's folder.  An environment variable named for a secret that is not set
is only a warning here (CI may set it), and an error when a drill runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from dirt.clients.monitoring import Endpoint, url_problem
from dirt.core import safefile
from dirt.core.errors import ConfigError, Problem
from dirt.core.families import FAMILIES
from dirt.core.plugins import load_target_provider, target_providers
from dirt.documents.base import Model
from dirt.documents.problems import did_you_mean, problems_from_validation
from dirt.documents.yamlpos import Path_, Positions, YamlSyntaxError, load, load_file

CONFIG_NAME = "dirt.yaml"
#: URL schemes of the run-history store (dirt.history maps postgresql to the psycopg 3 driver).
HISTORY_SCHEMES = ("sqlite", "postgresql", "postgres", "postgresql+psycopg")
#: Providers whose clusters are local and disposable: every fault family is allowed by default.
DISPOSABLE_PROVIDERS = ("sandbox", "fake")


class TargetConfig(Model):
    provider: str = Field(description="sandbox, kind, kubeconfig, or a provider a plugin registers.")
    description: str = ""
    allow: list[str] | Literal["all"] | None = Field(
        None,
        description="Destructive fault families this target accepts; sandbox and fake: all by default.",
    )
    confirm: bool = Field(True, description="Ask for confirmation before destructive faults (non-sandbox).")
    prometheus: Endpoint | None = None
    alertmanager: Endpoint | None = None
    settings: dict[str, Any] = Field(default_factory=dict, description="Provider-specific settings.")
    vars: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="Values for the {{ name }} of scenarios run on this target (when it is chosen by --target, "
        "the scenario's target: or the default): they override the scenario's own vars; --var overrides them.")

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not name.isidentifier()]
        if bad:
            raise ValueError(f"variable names are identifiers (letters, digits, _): {', '.join(map(repr, bad))}")
        return value

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        known = list(target_providers())
        if value not in known:
            hint = did_you_mean(value, known)
            names = ", ".join(repr(k) for k in known[:-1]) + f" or {known[-1]!r}" if len(known) > 1 else repr(known[0])
            raise ValueError(f"must be {names}" + (f"; {hint}" if hint else ""))
        return value

    @field_validator("allow")
    @classmethod
    def _known_families(cls, value: Any) -> Any:
        if isinstance(value, list):
            for family in value:
                if family not in FAMILIES:
                    hint = did_you_mean(family, FAMILIES)
                    raise ValueError(
                        f"unknown fault family {family!r}"
                        + (f", {hint}" if hint else f"; known: {', '.join(FAMILIES)}")
                    )
        return value

    def allowed_families(self) -> set[str]:
        if self.allow == "all" or (self.allow is None and self.provider in DISPOSABLE_PROVIDERS):
            return set(FAMILIES)
        return set(self.allow or []) | {"none"}


class DirtConfig(Model):
    default_target: str = "sandbox"
    playbook_base_url: str | None = Field(
        None, description="Prefix for playbook links in reports (e.g. a repository's web URL)."
    )
    reports_dir: str = "reports"
    report_base_url: str | None = Field(
        None, description="Where the reports folder is published (a web server, CI artifacts): notifications "
        "link reports there, not by their path on the runner.")
    rules: list[str] = Field(default_factory=list, description="Alert rule files or folders, for coverage.")
    targets: dict[str, TargetConfig] = Field(
        default_factory=lambda: {"sandbox": TargetConfig(provider="sandbox")}
    )
    history: str | None = Field(
        None, description="Run-history store: sqlite:///PATH (relative to dirt.yaml) or "
        "postgresql://USER@HOST:PORT/DB shared by many runners; default: SQLite in the reports folder.")
    history_password_env: str | None = Field(
        None, description="Environment variable holding the history database's password (never in dirt.yaml).")

    @field_validator("history")
    @classmethod
    def _a_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in HISTORY_SCHEMES:
            raise ValueError(f"{value!r} is not a history database URL: write sqlite:///PATH or "
                             "postgresql://USER@HOST:PORT/DATABASE")
        if "@" in rest and ":" in rest.split("@", 1)[0]:
            raise ValueError("a password does not belong in dirt.yaml: name the environment variable that holds "
                             "it with history_password_env")
        return value

    @field_validator("playbook_base_url", "report_base_url")
    @classmethod
    def _a_web_url(cls, value: str | None) -> str | None:
        problem = url_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


@dataclass(frozen=True)
class LoadedConfig:
    config: DirtConfig
    path: Path | None  # None: built-in defaults
    root: Path  # folder of dirt.yaml (or the current folder)
    #: what may still be fine by the time a drill runs (an unset environment variable), located
    warnings: tuple[Problem, ...] = ()
    #: the warnings of each target, which are errors when a drill runs on it
    run_problems: dict[str, list[Problem]] = field(default_factory=dict)

    def target(self, name: str | None, *, running: bool = False) -> tuple[str, TargetConfig]:
        """A target by name (default: ``default_target``); ``running``: it must be usable now."""
        name = name or self.config.default_target
        if name not in self.config.targets:
            hint = did_you_mean(name, self.config.targets)
            where = str(self.path) if self.path else "the built-in configuration"
            raise ConfigError(
                f"unknown target {name!r} (targets in {where}: "
                f"{', '.join(sorted(self.config.targets))}{'; ' + hint if hint else ''})"
            )
        blockers = self.run_problems.get(name, []) if running else []
        if blockers:
            raise ConfigError("\n".join(str(replace(p, severity="error")) for p in blockers))
        return name, self.config.targets[name]

    def rule_paths(self) -> list[Path]:
        return [(self.root / p) for p in self.config.rules]


def state_home() -> Path:
    """dirt's folder in the user's state directory (``${XDG_STATE_HOME:-~/.local/state}/dirt``):
    sandboxes and drill locks live there."""
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "dirt"


def find_config(start: Path | None = None) -> Path | None:
    env = os.environ.get("DIRT_CONFIG")
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.exists() or candidate.is_symlink():  # a FIFO or a folder is reported, not skipped
            return candidate
    return None


def load_config(path: Path | str | None = None, *, start: Path | None = None) -> LoadedConfig:
    """Load dirt.yaml (or the built-in default) and check all of it; raise ``ConfigError``
    listing every problem, located, when anything is wrong."""
    found = Path(path) if path else find_config(start)
    if found is None:
        return LoadedConfig(DirtConfig(), None, (start or Path.cwd()).resolve())
    try:
        data, positions, issues = load_file(found)
    except YamlSyntaxError as exc:
        i = exc.issue
        raise ConfigError(str(Problem(str(found), i.mark.line, i.mark.column, i.message, i.hint))) from None
    root = found.resolve().parent
    checker = _Checker(str(found), positions, root)
    checker.problems += [Problem(str(found), i.mark.line, i.mark.column, i.message, i.hint) for i in issues]
    config: DirtConfig | None = None
    try:
        config = DirtConfig.model_validate(data or {})
    except ValidationError as exc:
        checker.problems += problems_from_validation(exc, path=str(found), positions=positions, model=DirtConfig,
                                                     data=data)
    if config is not None and config.default_target not in config.targets:
        checker.at(("default_target",), f"default_target {config.default_target!r} is not one of the targets",
                   did_you_mean(config.default_target, config.targets) or "add it under 'targets:'", key=False)
    _check_documents(checker, data)
    if config is not None:
        _check_fleets(checker, config)
    errors = [p for p in checker.problems if p.severity == "error"]
    if errors or config is None:
        raise ConfigError("\n".join(str(p) for p in checker.in_order()))
    targets = {name: _with_absolute_files(t, root) for name, t in config.targets.items()}
    return LoadedConfig(config.model_copy(update={"targets": targets}), found.resolve(), root,
                        tuple(checker.in_order()), checker.by_target)


# -- checks beyond the models: providers' settings, files, environment ---------------------------

#: Endpoint fields naming files, and those naming environment variables.
ENDPOINT_FILES = ("ca_file", "bearer_token_file", "password_file")
ENDPOINT_ENVS = ("bearer_token_env", "password_env")


class _Checker:
    """Collects located problems for one dirt.yaml."""

    def __init__(self, path: str, positions: Positions, root: Path) -> None:
        self.path = path
        self.positions = positions
        self.root = root
        self.problems: list[Problem] = []
        self.by_target: dict[str, list[Problem]] = {}

    def at(self, where: Path_, message: str, hint: str = "", *, severity: str = "error", key: bool = False,
           target: str | None = None) -> None:
        mark = self.positions.of_key(where) if key else self.positions.of_value(where)
        problem = Problem(self.path, mark.line, mark.column, message, hint, severity)
        self.problems.append(problem)
        if target is not None and severity == "warning":
            self.by_target.setdefault(target, []).append(problem)

    def in_order(self) -> list[Problem]:
        """dirt.yaml's problems by line, then those of the files it names (kubeconfigs)."""
        unique = {(p.path, p.line, p.column, p.message): p for p in reversed(self.problems)}  # a shared kubeconfig
        return sorted(unique.values(), key=lambda p: (p.path != self.path, p.path, p.line, p.column))


class SettingsCheck:
    """What a provider's ``check_settings`` (and the endpoint checks) report to.

    ``where`` paths are relative to ``base`` (``targets.<name>.settings`` for a
    provider); each problem is located in dirt.yaml and worded like the model's
    own (``targets.prod.settings.kubeconfig: ...``).  Files are read through
    ``safefile`` (special files refused, size bounded); ``warn=True`` makes a
    problem a warning that becomes an error when a drill runs on this target.
    """

    def __init__(self, checker: _Checker, target: str, base: Path_, *, warnings: bool = True) -> None:
        self._checker = checker
        self._warnings = warnings
        self.target = target
        self.base = base
        self.root = checker.root

    def error(self, where: Path_, message: str, hint: str = "") -> None:
        self._say(where, message, hint, "error")

    def warning(self, where: Path_, message: str, hint: str = "") -> None:
        self._say(where, message, hint, "warning")

    def problem(self, problem: Problem) -> None:
        """A problem located in another file (a kubeconfig the settings name)."""
        if problem.severity == "warning" and not self._warnings:
            return
        self._checker.problems.append(problem)
        if problem.severity == "warning":
            self._checker.by_target.setdefault(self.target, []).append(problem)

    def resolve(self, value: str) -> Path:
        """A path from dirt.yaml: ``~`` expanded, relative to dirt.yaml's folder."""
        return self.root / Path(value).expanduser()

    def file(self, where: Path_, value: str, *, warn: bool = False) -> bytes | None:
        """The bytes of the regular, readable file ``value`` names; None (and a problem) otherwise."""
        path = self.resolve(value)
        special = safefile.special_kind(path)
        if special:
            self._say(where, f"{path}: is {special}, not a regular file; refused without reading it",
                      "name the file itself", "warning" if warn else "error")
            return None
        try:
            return safefile.read_bytes(path)
        except safefile.UnreadableFile as exc:
            self._say(where, f"{path}: {exc.message}", exc.hint, "warning" if warn else "error")
            return None

    def folder(self, where: Path_, value: str, *, warn: bool = False) -> Path | None:
        """The folder ``value`` names, if it is one this user can list; None (and a problem) otherwise."""
        path = self.resolve(value)
        severity = "warning" if warn else "error"
        if not path.is_dir():
            what = "does not exist" if not path.exists() else "is not a folder"
            self._say(where, f"{path}: {what}", "check the path", severity)
            return None
        if not os.access(path, os.R_OK | os.X_OK):
            self._say(where, f"{path}: cannot list this folder", "fix its permissions", severity)
            return None
        return path

    def file_or_folder(self, where: Path_, value: str) -> None:
        if self.resolve(value).is_dir():
            self.folder(where, value)
        else:
            self.file(where, value)

    def yaml_file(self, where: Path_, value: str, *, warn: bool = False) -> tuple[Any, Positions, Path] | None:
        """A YAML file the settings name, parsed with positions; its own problems located in it."""
        data = self.file(where, value, warn=warn)
        if data is None:
            return None
        path = self.resolve(value)
        severity = "warning" if warn else "error"
        try:
            parsed, positions, issues = load(safefile.decode(data))
        except safefile.UnreadableFile as exc:
            self.problem(Problem(str(path), exc.line, exc.column, exc.message, exc.hint, severity))
            return None
        except YamlSyntaxError as exc:
            i = exc.issue
            self.problem(Problem(str(path), i.mark.line, i.mark.column, i.message, i.hint, severity))
            return None
        for i in issues:
            self.problem(Problem(str(path), i.mark.line, i.mark.column, i.message, i.hint, severity))
        return parsed, positions, path

    def env(self, where: Path_, name: str, when: str = "when a drill runs on this target") -> None:
        """An environment variable a secret comes from: a warning now if unset, an error at run."""
        if name not in os.environ:
            self.warning(where, f"environment variable {name} is not set", f"it must be set {when}")

    def _say(self, where: Path_, message: str, hint: str, severity: str) -> None:
        if severity == "warning" and not self._warnings:
            return
        full = self.base + tuple(where)
        dotted = ".".join(str(p) for p in full)
        self._checker.at(full, f"{dotted}: {message}", hint, severity=severity, target=self.target)


def _check_documents(checker: _Checker, data: Any) -> None:
    """The checks pydantic cannot do: files named, provider settings, environment variables."""
    if not isinstance(data, dict):
        return
    top = SettingsCheck(checker, "", ())
    if isinstance(data.get("history_password_env"), str):
        top.env(("history_password_env",), data["history_password_env"],
                when="wherever drills run or `dirt history` reads the history")
    rules = data.get("rules")
    if isinstance(rules, list):
        for i, rule in enumerate(rules):
            if isinstance(rule, str):
                top.file_or_folder(("rules", i), rule)
    targets = data.get("targets")
    if not isinstance(targets, dict):
        return
    for name, raw in targets.items():
        if isinstance(raw, dict):
            _check_target(checker, str(name), raw)


def _check_target(checker: _Checker, name: str, raw: dict[str, Any]) -> None:
    """Each part on its own, so that one bad field does not hide the problems of another
    (the fields' own problems were reported with the document's)."""
    for key in ("prometheus", "alertmanager"):
        try:
            endpoint = Endpoint.model_validate(raw[key]) if raw.get(key) is not None else None
        except ValidationError:
            continue
        if endpoint is None:
            continue
        check = SettingsCheck(checker, name, ("targets", name, key))
        for file_field in ENDPOINT_FILES:
            value = getattr(endpoint, file_field)
            if value:
                check.file((file_field,), value)
        for env_field in ENDPOINT_ENVS:
            value = getattr(endpoint, env_field)
            if value:
                check.env((env_field,), value)
    provider = raw.get("provider")
    if not isinstance(provider, str) or provider not in target_providers():
        return
    try:
        cls = load_target_provider(provider)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is a configuration problem, said in one line
        checker.at(("targets", name, "provider"), f"targets.{name}.provider: provider {provider!r} cannot "
                   f"be loaded: {type(exc).__name__}: {exc}", "reinstall the plugin that provides it")
        return
    model = getattr(cls, "Settings", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return
    base: Path_ = ("targets", name, "settings")
    raw_settings = raw.get("settings", {})
    if not isinstance(raw_settings, dict):
        return  # reported with the document's problems
    check = SettingsCheck(checker, name, base)
    try:
        settings = model.model_validate(raw_settings)
    except ValidationError as exc:
        checker.problems += problems_from_validation(exc, path=checker.path, positions=checker.positions, base=base,
                                                     model=model, data=raw_settings)
        # The files the good settings name are still checked; what a bad one would have
        # named is unknown, so a default standing in for it is not warned about.
        bad = {err["loc"][0] for err in exc.errors() if err["loc"]}
        try:
            settings = model.model_validate({k: v for k, v in raw_settings.items() if k not in bad})
        except ValidationError:
            return
        check = SettingsCheck(checker, name, base, warnings=False)
    check_settings = getattr(cls, "check_settings", None)
    if callable(check_settings):
        try:
            check_settings(settings, check)
        except Exception as exc:  # noqa: BLE001 - a plugin's own check failing is said in one line
            checker.at(base, f"targets.{name}.settings: provider {provider!r} could not check its settings: "
                       f"{type(exc).__name__}: {exc}")


def _check_fleets(checker: _Checker, config: DirtConfig) -> None:
    """A fleet's ``members`` name other targets of this file, each a single cluster."""
    for name, target in config.targets.items():
        members = target.settings.get("members") if target.provider == "fleet" else None
        if not isinstance(members, list):
            continue
        for i, member in enumerate(members):
            where: Path_ = ("targets", name, "settings", "members", i)
            if not isinstance(member, str):
                continue  # the settings' model said so
            if member not in config.targets:
                checker.at(where, f"fleet {name!r}: no target {member!r} to be its member",
                           did_you_mean(member, config.targets) or f"targets: {', '.join(sorted(config.targets))}")
            elif config.targets[member].provider == "fleet":
                checker.at(where, f"fleet {name!r}: member {member!r} is a fleet; a member is one cluster",
                           "name a sandbox, kind or kubeconfig target")


def _with_absolute_files(target: TargetConfig, root: Path) -> TargetConfig:
    """Endpoint files made absolute (relative to dirt.yaml's folder), as they were checked."""
    update: dict[str, Any] = {}
    for key in ("prometheus", "alertmanager"):
        endpoint: Endpoint | None = getattr(target, key)
        if endpoint is None:
            continue
        files = {f: str(root / Path(v).expanduser()) for f in ENDPOINT_FILES if (v := getattr(endpoint, f))}
        if files:
            update[key] = endpoint.model_copy(update=files)
    return target.model_copy(update=update) if update else target

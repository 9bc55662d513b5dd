"""``dirt.yaml``: the named targets a scenario can run against, and their guardrails.

Found by ``--config``, then ``$DIRT_CONFIG``, then the nearest ``dirt.yaml`` in the
current folder or above it; without one, a built-in configuration with just the
local ``sandbox`` target applies.  Example::

    default_target: sandbox
    playbook_base_url: https://git.example.com/platform/dirt/blob/main/
    rules: [dirt/sandbox/rules]          # alert rule files for `dirt coverage`
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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from dirt.clients.monitoring import Endpoint
from dirt.core.errors import ConfigError, Problem
from dirt.core.families import FAMILIES
from dirt.core.plugins import target_providers
from dirt.documents.base import Model
from dirt.documents.problems import did_you_mean, problems_from_validation
from dirt.documents.yamlpos import YamlSyntaxError, load

CONFIG_NAME = "dirt.yaml"
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
    rules: list[str] = Field(default_factory=list, description="Alert rule files or folders, for coverage.")
    targets: dict[str, TargetConfig] = Field(
        default_factory=lambda: {"sandbox": TargetConfig(provider="sandbox")}
    )


@dataclass(frozen=True)
class LoadedConfig:
    config: DirtConfig
    path: Path | None  # None: built-in defaults
    root: Path  # folder of dirt.yaml (or the current folder)

    def target(self, name: str | None) -> tuple[str, TargetConfig]:
        name = name or self.config.default_target
        if name not in self.config.targets:
            hint = did_you_mean(name, self.config.targets)
            where = str(self.path) if self.path else "the built-in configuration"
            raise ConfigError(
                f"unknown target {name!r} (targets in {where}: "
                f"{', '.join(sorted(self.config.targets))}{'; ' + hint if hint else ''})"
            )
        return name, self.config.targets[name]

    def rule_paths(self) -> list[Path]:
        return [(self.root / p) for p in self.config.rules]


def find_config(start: Path | None = None) -> Path | None:
    env = os.environ.get("DIRT_CONFIG")
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path | str | None = None, *, start: Path | None = None) -> LoadedConfig:
    """Load dirt.yaml (or the built-in default); raise ``ConfigError`` with lines."""
    found = Path(path) if path else find_config(start)
    if found is None:
        return LoadedConfig(DirtConfig(), None, (start or Path.cwd()).resolve())
    try:
        text = found.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{found}: cannot read: {exc.strerror or exc}") from None
    try:
        data, positions, issues = load(text)
    except YamlSyntaxError as exc:
        i = exc.issue
        raise ConfigError(str(Problem(str(found), i.mark.line, i.mark.column, i.message, i.hint))) from None
    problems = [Problem(str(found), i.mark.line, i.mark.column, i.message, i.hint) for i in issues]
    config: DirtConfig | None = None
    try:
        config = DirtConfig.model_validate(data or {})
    except ValidationError as exc:
        problems += problems_from_validation(exc, path=str(found), positions=positions, model=DirtConfig)
    if config is not None and config.default_target not in config.targets:
        mark = positions.of_value(("default_target",))
        problems.append(
            Problem(
                str(found), mark.line, mark.column,
                f"default_target {config.default_target!r} is not one of the targets",
                did_you_mean(config.default_target, config.targets) or "add it under 'targets:'",
            )
        )
    if problems or config is None:
        raise ConfigError("\n".join(str(p) for p in problems))
    return LoadedConfig(config, found.resolve(), found.resolve().parent)

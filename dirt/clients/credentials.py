"""The credentials in a kubeconfig, found so that redaction can mask them.

A drill's commands run with the target's ``KUBECONFIG``; one that prints it
(``kubectl config view --raw``), or a tool that echoes a token in an error, would
put the cluster's credentials in the journal and every report.  Whoever reads a
kubeconfig for dirt hands its credentials to ``dirt.core.redact``: the static
ones from the file (every user entry, since any context may be used), and
``KubeClient`` adds the token an ``exec`` or ``auth-provider`` plugin returned.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import yaml

from dirt.core.redact import is_secret_key, register_basic_auth, register_secrets

#: Files a kubeconfig names (token and key files) bigger than this are not credentials.
MAX_CREDENTIAL_FILE = 64 * 1024


def kubeconfig_secrets(paths: str) -> list[str]:
    """Every credential of every user in the kubeconfig file(s) ``paths`` (``os.pathsep``-joined,
    like $KUBECONFIG), registered with the redaction as a side effect.  Never raises: a file
    that cannot be read holds no credential dirt could leak."""
    values: list[str] = []
    for path in (p for p in paths.split(os.pathsep) if p):
        try:
            data = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        users = data.get("users") if isinstance(data, dict) else None
        for entry in users if isinstance(users, list) else []:
            user = entry.get("user") if isinstance(entry, dict) else None
            if isinstance(user, dict):
                values += _user_secrets(user, Path(path).expanduser().parent)
    register_secrets(values)
    return values


def _user_secrets(user: dict[str, Any], folder: Path) -> list[str]:
    values = [str(user[k]) for k in ("token", "password") if user.get(k)]
    if user.get("password"):
        register_basic_auth(str(user.get("username") or ""), str(user["password"]))
    for key in ("client-key-data",):
        if isinstance(user.get(key), str):
            values += [user[key], _decoded(user[key])]
    for key in ("tokenFile", "client-key"):
        if isinstance(user.get(key), str):
            values.append(_small_file(folder / Path(user[key]).expanduser()))
    provider = user.get("auth-provider")
    config = provider.get("config") if isinstance(provider, dict) else None
    if isinstance(config, dict):  # oidc and the old cloud providers: id-token, refresh-token, client-secret...
        values += [str(v) for k, v in config.items() if is_secret_key(str(k)) and isinstance(v, str)]
    plugin = user.get("exec")
    env = plugin.get("env") if isinstance(plugin, dict) else None
    for item in env if isinstance(env, list) else []:  # an exec plugin's env: AWS_SECRET_ACCESS_KEY...
        if isinstance(item, dict) and is_secret_key(str(item.get("name", ""))) and isinstance(item.get("value"), str):
            values.append(item["value"])
    return [v for v in values if v]


def _decoded(data: str) -> str:
    try:
        return base64.b64decode(data, validate=False).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _small_file(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_CREDENTIAL_FILE:
            return ""
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def client_secrets(configuration: Any) -> list[str]:
    """What a loaded kubernetes-client ``Configuration`` authenticates with (the bearer token
    an exec or auth-provider plugin returned, a basic-auth password), registered likewise."""
    values: list[str] = []
    for value in (getattr(configuration, "api_key", None) or {}).values():
        if isinstance(value, str):
            values.append(value.removeprefix("Bearer ").removeprefix("bearer "))
    if getattr(configuration, "password", None):
        register_basic_auth(getattr(configuration, "username", "") or "", configuration.password)
        values.append(configuration.password)
    register_secrets(values)
    return values

"""Keep secrets out of journals, reports and logs.

Two nets: values under keys that name a secret (``token``, ``password``,
``client-key-data``...) are replaced whole, and text anywhere is scanned for
shapes that are secrets whatever their key (bearer tokens, JWTs, PEM private
keys, base64 kubeconfig credential fields, ``password=...`` pairs).
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|private[-_]?key|credential|authorization|"
    r"client[-_]key|client[-_]certificate[-_]data|certificate[-_]authority[-_]data|bearer|cookie)",
    re.IGNORECASE,
)
# Keys that contain those words but hold no secret (names of env vars or files).
_SAFE_KEY = re.compile(r"(_env|_file|_path|_name|_names|_count|_keys|^total_keys$)$", re.IGNORECASE)

_PATTERNS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S), MASK),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), MASK),  # JWTs
    (
        re.compile(
            r"(?i)((?:client-key-data|client-certificate-data|token|password|passwd|secret)"
            r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]{3,})"
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)(https?://[^:/\s@]+:)([^@\s/]+)(@)"), r"\1" + MASK + r"\3"),  # user:pass@host
]


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) and not _SAFE_KEY.search(key)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with secrets masked (dicts, lists, strings; others as is)."""
    if key and _is_secret_key(key) and isinstance(value, (str, bytes)) and value:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value

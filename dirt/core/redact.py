"""Keep secrets out of journals, reports, logs and the terminal.

Three nets:

* **the values dirt is configured with** — a process-wide registry: whoever reads a
  credential (a monitoring endpoint's token or password, a kubeconfig's user
  credentials) calls ``register_secret`` with it, and ``redact_text`` masks that
  value (and its usual encodings: base64, URL-quoted; ``register_basic_auth`` adds
  the base64 of ``user:password``) wherever it shows up, whatever surrounds it —
  e.g. a step that echoes ``$PROM_TOKEN``;
* **values under keys that name a secret** (``token``, ``password``,
  ``client-key-data``...) in a dict are replaced whole (``redact``);
* **text shaped like a secret** whatever its key: PEM private keys, JWTs,
  ``Authorization:`` headers, bearer tokens, AWS keys, ``--password X``, curl's
  ``-u user:pass``, ``*-api-key`` headers and parameters, ``user:pass@`` in URLs,
  ``password=...`` pairs, well-known token prefixes (GitHub, GitLab, Slack).

The shapes are deliberately narrow: a message *about* a secret ("token file not
found: /path", "secret 'db' missing", "password: environment variable PW is not
set") must stay readable, so a ``key: value`` pair is masked only where it looks
like data (a quoted value, or one word ending the line or the field), never prose.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

MASK = "***"
#: Shorter registered values are ignored: masking "admin" or "abc" everywhere would hide far more than it protects.
MIN_SECRET_LENGTH = 6

# -- the registry of configured values ---------------------------------------------------------

_lock = threading.Lock()
_values: set[str] = set()
_matcher: re.Pattern[str] | None = None


def register_secret(value: str | bytes | None) -> None:
    """Mask ``value`` (and its base64 and URL-quoted forms) in every text redacted from now on.

    Values shorter than ``MIN_SECRET_LENGTH`` are ignored; a multi-line value (a PEM
    key) also registers each of its lines, since a command may print only part of it.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not value or not value.strip():
        return
    found = _forms(value.strip())
    global _matcher
    with _lock:
        if found - _values:
            _values.update(found)
            _matcher = None


def register_secrets(values: Iterable[str | bytes | None]) -> None:
    for value in values:
        register_secret(value)


def register_basic_auth(username: str | None, password: str | None) -> None:
    """A password, and the ``Authorization: Basic`` credentials built from it."""
    if not password:
        return
    register_secret(password)
    register_secret(base64.b64encode(f"{username or ''}:{password}".encode()).decode())


def clear_secrets() -> None:
    """Forget every registered value (tests start from nothing)."""
    global _matcher
    with _lock:
        _values.clear()
        _matcher = None


def _forms(value: str) -> set[str]:
    forms: set[str] = set()
    lines = [ln.strip() for ln in value.splitlines()]
    parts = [value] + ([ln for ln in lines if not ln.startswith("-----")] if len(lines) > 1 else [])
    for part in parts:
        if len(part) < MIN_SECRET_LENGTH:
            continue
        raw = part.encode()
        encoded = {encode(data).decode() for data in (raw, raw + b"\n")  # `echo $TOKEN | base64` too
                   for encode in (base64.b64encode, base64.urlsafe_b64encode)}
        forms.update({part, quote(part, safe=""), *encoded, *(e.rstrip("=") for e in encoded)})
    return forms


def _registered() -> re.Pattern[str] | None:
    global _matcher
    with _lock:
        if _matcher is None and _values:
            # longest first: a value that contains another is masked whole
            _matcher = re.compile("|".join(re.escape(v) for v in sorted(_values, key=len, reverse=True)))
        return _matcher


# -- the shapes of secrets ---------------------------------------------------------------------

#: Schemes of ``Authorization`` headers whose credentials are masked whatever they look like.
_AUTH_SCHEMES = {
    "basic", "bearer", "token", "digest", "apikey", "api-key", "key", "negotiate", "ntlm", "hoba", "mutual",
    "jwt", "oauth", "dpop", "ssws", "geniekey", "splunk", "hawk", "vapid", "aws4-hmac-sha256", "scram-sha-1",
    "scram-sha-256",
}
_QUOTES = "\"'"


def _looks_random(word: str) -> bool:
    """A credential rather than a word of prose: long, or mixing digits, case or symbols into letters."""
    if word.startswith(("/", "~/", "./", "<", "$")):  # a path, a placeholder, a variable
        return False
    if len(word) >= 16:
        return True
    if len(word) < 6:
        return False
    mixed_case = any(c.isupper() for c in word[1:]) and any(c.islower() for c in word)
    return any(c.isdigit() for c in word) or mixed_case or any(c in "+/=_~!@#%^*" for c in word)


_AUTHORIZATION = re.compile(r"(?i)\b((?:proxy-)?authorization([\"']?)[ \t]*[:=][ \t]*([\"']?))([^\r\n]*)")
_SCHEME = re.compile(r"([A-Za-z][\w-]*)[ \t]+")
#: One credential token, or the ``key="value", ...`` parameters of Digest, AWS4-HMAC-SHA256, OAuth...
_CREDENTIAL = re.compile(r"[^\s\"',;]+")
_PARAMETERS = re.compile(r'[\w-]+=(?:"[^"\n]*"|[^\s,"]*)(?:[ \t]*,[ \t]*[\w-]+=(?:"[^"\n]*"|[^\s,"]*))*')


def _authorization(match: re.Match[str]) -> str:
    """``Authorization: <scheme> <credentials>``: the scheme stays, the credentials go."""
    head, value = match.group(1), match.group(4)
    quote_char = match.group(3) or match.group(2)
    if quote_char and (end := value.find(quote_char)) >= 0:  # a quoted value (JSON, YAML, a repr)
        value, rest = value[:end], value[end:]
        scheme = _SCHEME.match(value)
        if scheme and value[scheme.end():]:
            return f"{head}{scheme.group(1)} {MASK}{rest}"
        return f"{head}{MASK}{rest}" if value.strip() else match.group(0)
    scheme = _SCHEME.match(value)
    if scheme:
        after = value[scheme.end():]
        found = [m for m in (_PARAMETERS.match(after), _CREDENTIAL.match(after)) if m]
        credential = max(found, key=lambda m: m.end()) if found else None
        if credential and (scheme.group(1).lower() in _AUTH_SCHEMES or _looks_random(credential.group(0))):
            return f"{head}{scheme.group(1)} {MASK}{after[credential.end():]}"
    credential = _CREDENTIAL.match(value)
    if credential and credential.group(0).lower() not in _AUTH_SCHEMES and _looks_random(credential.group(0)):
        return f"{head}{MASK}{value[credential.end():]}"
    return match.group(0)


def _key_value(match: re.Match[str]) -> str:
    """``password=x`` always; ``password: x`` only when ``x`` is data, not prose ("token: expired",
    "password: environment variable PW is not set"): quoted, or one secret-looking word ending its field."""
    head, value, after = match.group("head"), match.group("value"), match.group("after").lstrip(" \t")
    if value == MASK:
        return match.group(0)
    if "=" in match.group("sep") or head[-1:] in _QUOTES:
        return head + MASK
    if (after == "" or after[0] in ",;}]\"'") and _looks_random(value):
        return head + MASK
    return match.group(0)


_VALUE = r"(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s\"']+)"
_SECRET_KEY_WORDS = (
    r"client-key-data|client-certificate-data|token|password|passwd|\bpwd|private[-_]?key|"
    r"(?:aws_?)?secret(?:_?access_?key)?|api[-_]?key|client[-_]secret"
)

_PATTERNS: list[tuple[re.Pattern[str], Any]] = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S), MASK),
    (_AUTHORIZATION, _authorization),
    (re.compile(r"(?i)\b(bearer)\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), MASK),  # JWTs
    (re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"), MASK),  # AWS access key ids
    # tokens whose prefix says what they are: GitHub, GitLab, Slack
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{22,}|glpat-[\w-]{20,}|xox[abposr]-[\w-]{10,})"),
     MASK),
    # command-line options: --password X, --password=X, --token "X"...; never --password-file X
    (
        re.compile(r"(?i)(?<![\w-])(--(?:[a-z0-9]+-)*(?:password|passwd|pass|token|secret|api-?key|secret-key|"
                   r"access-key)(?:[ \t]+|=))(?!-)(" + _VALUE + ")"),
        lambda m: m.group(1) + (m.group(2)[0] + MASK + m.group(2)[0] if m.group(2)[:1] in _QUOTES else MASK),
    ),
    # mysql's -pSECRET (only there: to most tools -p is a port)
    (re.compile(r"(\b(?:mysql|mysqldump|mysqladmin|mariadb|mariadb-dump)\b[^\n]*?[ \t]-p)([^\s\"']+)"),
     r"\1" + MASK),
    # curl-style user:password (-u, --user, --proxy-user, -U); a uid:gid (docker -u 1000:1000) stays
    (
        re.compile(r"((?<![\w-])(?:-u|--user|--proxy-user|-U)(?:[ \t]+|=)[\"']?[^\s:\"'/]+:)(?!\d+\b)([^\s\"']+)"),
        r"\1" + MASK,
    ),
    # key=value and key: value pairs (headers, parameters, YAML, JSON) whose key names a secret:
    # password=..., AWS_SECRET_ACCESS_KEY=..., x-api-key: ..., "token": "..."; never token_file: ...
    (
        re.compile(
            r"(?i)(?P<head>(?:" + _SECRET_KEY_WORDS + r")[\"']?(?P<sep>[ \t]*[:=])[ \t]*[\"']?)"
            r"(?P<value>[^\s\"',;&}\]]+)(?=(?P<after>[^\S\n]*.?))"
        ),
        _key_value,
    ),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/\s@]*:)([^@\s/]+)(@)"), r"\1" + MASK + r"\3"),  # user:pass@host
]


def redact_text(text: str) -> str:
    """``text`` with every registered value and every secret shape masked."""
    registered = _registered()
    if registered is not None:
        text = registered.sub(MASK, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret (``token``, ``DB_PASSWORD``), not a reference to one (``token_file``)."""
    return bool(_SECRET_KEY.search(key)) and not _SAFE_KEY.search(key)


_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|private[-_]?key|credential|authorization|"
    r"client[-_]key|client[-_]certificate[-_]data|certificate[-_]authority[-_]data|bearer|cookie)",
    re.IGNORECASE,
)
# Keys that contain those words but hold no secret (names of env vars or files).
_SAFE_KEY = re.compile(r"(_env|_file|_path|_name|_names|_count|_keys|^total_keys$)$", re.IGNORECASE)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` with secrets masked (dicts, lists, strings; others as is)."""
    if key and is_secret_key(key) and isinstance(value, (str, bytes)) and value:
        return MASK
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value

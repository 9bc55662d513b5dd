"""Talking to Prometheus and Alertmanager: active alerts with server timestamps, PromQL.

Two alert sources, one shape (``ActiveAlert``):

* ``PrometheusSource`` reads ``/api/v1/rules?type=alert``: each alerting rule with
  its ``for`` duration and its alerts; a firing alert fired at ``activeAt + for``
  by Prometheus' own clock.
* ``AlertmanagerSource`` reads Alertmanager's API v2 ``/api/v2/alerts``: an alert
  there was *routed*, not just evaluated; it started at ``startsAt``.

PromQL goes through prometheus-api-client (``MonitoringClient``), without the
library's hidden retries (callers poll again anyway).  Every failure becomes one
``MonitoringError`` line: unreachable, credentials refused, or Prometheus' own
error text; never a raw response body.  Credentials come from environment
variables or files named in ``dirt.yaml`` and live only in the HTTP session:
never in an error message, the journal or a report.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from dirt.core.durations import Duration
from dirt.core.errors import MonitoringError
from dirt.core.redact import register_basic_auth, register_secret
from dirt.documents.base import Model

Source = Literal["prometheus", "alertmanager"]


class Endpoint(Model):
    """How to reach Prometheus or Alertmanager; credentials by reference only."""

    url: str
    bearer_token_env: str | None = None
    bearer_token_file: str | None = None
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False
    timeout: Duration = Field(10.0, gt=0, le=300, description="Limit for each request (at most 5m).")

    @field_validator("url")
    @classmethod
    def _a_web_url(cls, value: str) -> str:
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def url_problem(url: str, *, shown: str | None = None) -> str | None:
    """What is wrong with ``url`` as the address of a web service (None: nothing).

    Checked when dirt.yaml is loaded, so a typo such as ``http://[::1`` is a located
    problem there rather than a ``ValueError`` from the HTTP library mid-drill.
    ``shown``: how messages name the URL (a secret's value is never repeated).
    """
    shown = _short(url) if shown is None else shown
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "a URL cannot contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # parsed lazily: a bad port raises only here
    except ValueError as exc:
        return f"{shown} is not a valid URL" + ("" if shown != _short(url) else f" ({exc})")
    if parts.scheme not in ("http", "https"):
        return f"{shown} must start with http:// or https://"
    if not parts.hostname:
        return f"{shown} has no host"
    if port == 0:
        return f"{shown} has port 0; give a port from 1 to 65535"
    return None


def _short(text: str) -> str:
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


@dataclass(frozen=True)
class ActiveAlert:
    name: str
    labels: dict[str, str]
    source: Source
    state: str  # prometheus: firing|pending; alertmanager: active|suppressed|unprocessed
    fired_at: float | None  # server time it started firing (unix seconds)
    active_at: float | None = None  # prometheus: when the expression first held
    for_seconds: float | None = None
    value: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def firing(self) -> bool:
        return self.state in ("firing", "active", "suppressed")

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return (self.source, self.name, tuple(sorted(self.labels.items())))

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        return self.name == name and all(self.labels.get(k) == v for k, v in labels.items())

    def to_event(self) -> dict[str, Any]:
        return {"name": self.name, "labels": self.labels, "source": self.source, "state": self.state,
                "server_time": self.fired_at, "active_at": self.active_at, "for_seconds": self.for_seconds,
                "value": self.value}


def parse_time(text: str | None) -> float | None:
    """RFC 3339 with any fraction (Prometheus gives nanoseconds) -> unix seconds."""
    if not text or text.startswith("0001-01-01"):
        return None
    head, _, rest = text.partition(".")
    zone = ""
    fraction = ""
    if rest:
        digits = ""
        for i, ch in enumerate(rest):
            if ch.isdigit():
                digits += ch
            else:
                zone = rest[i:]
                break
        fraction = "." + (digits[:6] or "0")
    else:
        for marker in ("Z", "+", "-"):
            idx = head.rfind(marker)
            if idx > 10:
                head, zone = head[:idx], head[idx:]
                break
    zone = "+00:00" if zone in ("Z", "z", "") else zone
    return datetime.fromisoformat(f"{head}{fraction}{zone}").timestamp()


def safe_url(url: str) -> str:
    """The URL without user:password, for messages; never raises, even on a malformed URL."""
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:
        return "(malformed URL)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _read_secret(env: str | None, file: str | None, what: str) -> str | None:
    """The credential an endpoint names, registered for redaction the moment it is read."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise MonitoringError(f"{what}: environment variable {env} is not set")
        register_secret(value)
        return value.strip()
    if file:
        try:
            value = Path(file).expanduser().read_text()
        except OSError as exc:
            raise MonitoringError(f"{what}: cannot read {file}: {exc.strerror or exc}") from None
        register_secret(value)
        return value.strip()
    return None


def endpoint_secrets(endpoint: Endpoint) -> list[str]:
    """The token and password ``endpoint`` names, read now and registered for redaction (a drill's
    command may print them before any request is made); one that cannot be read is left out —
    the request that needs it says why."""
    values: list[str] = []
    for env, file, what in ((endpoint.bearer_token_env, endpoint.bearer_token_file, "bearer token"),
                            (endpoint.password_env, endpoint.password_file, "password")):
        try:
            value = _read_secret(env, file, what)
        except MonitoringError:
            continue
        if value:
            values.append(value)
            if what == "password":
                register_basic_auth(endpoint.username, value)
    try:
        parts = urlsplit(endpoint.url)
        if parts.password:  # https://user:pass@host written into dirt.yaml after all
            register_basic_auth(parts.username, parts.password)
            values.append(parts.password)
    except ValueError:
        pass
    return values


def session_for(endpoint: Endpoint) -> Any:
    """A requests session carrying the endpoint's auth and TLS settings."""
    import requests

    session = requests.Session()
    token = _read_secret(endpoint.bearer_token_env, endpoint.bearer_token_file, "bearer token")
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    if endpoint.username:
        password = _read_secret(endpoint.password_env, endpoint.password_file, "password") or ""
        register_basic_auth(endpoint.username, password)
        session.auth = (endpoint.username, password)
    if endpoint.ca_file:
        session.verify = str(Path(endpoint.ca_file).expanduser())
    elif endpoint.insecure_skip_verify:
        session.verify = False
    return session


class _Http:
    def __init__(self, endpoint: Endpoint, what: str) -> None:
        self.endpoint = endpoint
        self.what = what
        self.base = endpoint.url.rstrip("/")
        self._session: Any = None

    @property
    def session(self) -> Any:
        if self._session is None:
            self._session = session_for(self.endpoint)
        return self._session

    def get_json(self, path: str, params: Any = None) -> Any:
        import requests

        url = f"{self.base}{path}"
        try:
            response = self.session.get(url, params=params, timeout=self.endpoint.timeout)
        except requests.RequestException as exc:
            reason = type(exc).__name__
            raise MonitoringError(f"{self.what} at {safe_url(self.base)} unreachable ({reason})") from None
        if response.status_code in (401, 403):
            raise MonitoringError(f"{self.what} at {safe_url(self.base)} refused the credentials "
                                  f"(HTTP {response.status_code})")
        if response.status_code >= 400:
            raise MonitoringError(f"{self.what} {path} answered HTTP {response.status_code}: "
                                  f"{response.text[:200]}")
        try:
            return response.json()
        except ValueError:
            raise MonitoringError(f"{self.what} {path} did not answer JSON") from None


class AlertSource:
    source: Source

    def active(self) -> list[ActiveAlert]:
        raise NotImplementedError


class PrometheusSource(_Http, AlertSource):
    source: Source = "prometheus"

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint, "Prometheus")

    def rules(self) -> list[dict[str, Any]]:
        body = self.get_json("/api/v1/rules", {"type": "alert"})
        return [r for g in body.get("data", {}).get("groups", []) for r in g.get("rules", [])
                if r.get("type") == "alerting"]

    def active(self) -> list[ActiveAlert]:
        alerts = []
        for rule in self.rules():
            for_seconds = float(rule.get("duration") or 0.0)
            for alert in rule.get("alerts", []):
                labels = dict(alert.get("labels", {}))
                active_at = parse_time(alert.get("activeAt"))
                state = alert.get("state", "")
                fired = active_at + for_seconds if (active_at is not None and state == "firing") else None
                alerts.append(ActiveAlert(
                    name=labels.get("alertname", rule.get("name", "")), labels=labels, source="prometheus",
                    state=state, fired_at=fired, active_at=active_at, for_seconds=for_seconds,
                    value=alert.get("value"),
                ))
        return alerts


class AlertmanagerSource(_Http, AlertSource):
    source: Source = "alertmanager"

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__(endpoint, "Alertmanager")

    def active(self) -> list[ActiveAlert]:
        body = self.get_json("/api/v2/alerts", {"active": "true", "silenced": "true",
                                                 "inhibited": "true", "unprocessed": "true"})
        alerts = []
        for alert in body if isinstance(body, list) else []:
            labels = dict(alert.get("labels", {}))
            status = alert.get("status", {}) or {}
            alerts.append(ActiveAlert(
                name=labels.get("alertname", ""), labels=labels, source="alertmanager",
                state=status.get("state", "active"), fired_at=parse_time(alert.get("startsAt")),
                # endsAt of a firing alert is only how long Alertmanager trusts it without
                # news from Prometheus, not a resolution time.
                extra={"valid_until": parse_time(alert.get("endsAt")),
                       "receivers": [r.get("name") for r in alert.get("receivers", [])],
                       "silenced_by": status.get("silencedBy", []),
                       "inhibited_by": status.get("inhibitedBy", [])},
            ))
        return alerts

    def status(self) -> dict[str, Any]:
        return self.get_json("/api/v2/status")


class MonitoringClient:
    """PromQL against the target's Prometheus, through prometheus-api-client."""

    def __init__(self, endpoint: Endpoint) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.endpoint = endpoint
        # No retries inside the client: its default (3 tries, 1 s backoff) would stall an
        # abort condition for seconds while Prometheus is down; callers poll again anyway.
        self._prom = PrometheusConnect(url=endpoint.url.rstrip("/"), session=session_for(endpoint),
                                       disable_ssl=endpoint.insecure_skip_verify, timeout=endpoint.timeout,
                                       retry=Retry(total=0, raise_on_status=False))

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """Instant query; each sample as (labels, value).  Scalars come back with {} labels."""
        import requests
        from prometheus_api_client import PrometheusApiClientException

        try:
            result = self._prom.custom_query(query=promql)
        except PrometheusApiClientException as exc:
            raise MonitoringError(self._refusal(promql, str(exc))) from None
        except requests.RequestException as exc:
            raise MonitoringError(f"Prometheus at {safe_url(self.endpoint.url)} unreachable "
                                  f"({type(exc).__name__})") from None
        samples = []
        if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
            return [({}, float(result[1]))]  # a scalar result: [time, "value"]
        for item in result or []:
            if "value" not in item:
                raise MonitoringError(f"PromQL {promql!r} returned a range vector; "
                                      "give an instant query (no [range] at the end)")
            samples.append((dict(item.get("metric", {})), float(item["value"][1])))
        return samples

    def _refusal(self, promql: str, text: str) -> str:
        """One line for a non-200 answer: the status and Prometheus' own error, no raw body.

        prometheus-api-client words it ``HTTP Status Code 400 (b'{"status":"error",...}')``.
        """
        import ast
        import json
        import re

        match = re.match(r"HTTP Status Code (\d+) \((b['\"].*['\"])\)$", text, re.S)
        code = int(match.group(1)) if match else 0
        if code in (401, 403):
            return f"Prometheus at {safe_url(self.endpoint.url)} refused the credentials (HTTP {code})"
        reason = ""
        if match:
            try:
                reason = str(json.loads(ast.literal_eval(match.group(2))).get("error", ""))
            except (ValueError, SyntaxError, AttributeError):
                reason = ""
        return f"PromQL {promql!r} failed (HTTP {code or '?'}){': ' + reason[:200] if reason else ''}"

    def ready(self) -> bool:
        return bool(self._prom.check_prometheus_connection())

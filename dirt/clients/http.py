"""Plain HTTP for the parts that are not Prometheus or Kubernetes: the ``http`` check,
the sandbox's health endpoints and availability probes (``timed_get``).  One error,
no response bodies in messages."""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from dirt.core.errors import HttpError

#: Keep at most this much of a body (a health page or an app's answer, not a download).
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class HttpResponse:
    status: int
    text: str
    seconds: float
    #: The response's headers, names lower-cased (read-only).
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            raise HttpError(f"the answer (HTTP {self.status}) is not JSON") from None


def request(method: str, url: str, *, timeout: float, headers: dict[str, str] | None = None,
            verify: bool | str = True, cert: tuple[str, str] | None = None, json_body: Any = None,
            secret_url: bool = False) -> HttpResponse:
    """One request; a connection failure or timeout is an ``HttpError`` naming its kind only.

    ``timeout`` bounds the whole exchange (connecting, the headers and the body), not each read:
    a server that drips a byte now and then would otherwise hold a check or a notification for
    as long as it likes (see ``_bounded``).

    ``json_body`` is sent as JSON; ``secret_url`` (a webhook's address may be a secret: Slack's
    are) shows only its scheme and host in errors, and follows no redirect.
    """
    import requests
    import urllib3

    shown = safe_origin(url) if secret_url else _safe(url)
    start = time.monotonic()

    def exchange() -> HttpResponse:
        try:
            with warnings.catch_warnings():  # self-signed sandbox endpoints are asked with verify=False on purpose
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                with requests.request(method, url, headers=headers, timeout=timeout, verify=verify, cert=cert,
                                      json=json_body, allow_redirects=not secret_url, stream=True) as response:
                    body = _read_body(response, start + timeout)
                    encoding = response.encoding or "utf-8"
                    return HttpResponse(response.status_code, body.decode(encoding, errors="replace"),
                                        time.monotonic() - start, _headers(response))
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError, AnswerTimeout) as exc:
            kind = _late(timeout) if isinstance(exc, AnswerTimeout) else type(exc).__name__
            raise HttpError(f"{method} {shown}: {kind}") from None

    answer = _bounded(timeout, exchange)
    if answer is None:
        raise HttpError(f"{method} {shown}: {_late(timeout)}")
    return answer


def post_json(url: str, payload: Any, *, timeout: float, headers: dict[str, str] | None = None) -> HttpResponse:
    """POST ``payload`` as JSON to a webhook whose URL may be a secret; the answer whatever its status,
    an ``HttpError`` naming only the URL's scheme and host when none came."""
    return request("POST", url, timeout=timeout, headers=headers, json_body=payload, secret_url=True)


def safe_origin(url: str) -> str:
    """Only scheme and host (and port) of a URL: what may be shown of a secret webhook address."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{parts.scheme or '?'}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "(malformed URL)"


def download(url: str, *, timeout: float, limit: int = MAX_BODY, verify: bool | str = True) -> bytes:
    """A small file's bytes (a presigned object-store URL, say); more than ``limit`` is an error."""
    import requests
    import urllib3

    try:
        with requests.get(url, timeout=timeout, verify=verify, stream=True) as response:
            if not response.ok:
                raise HttpError(f"GET {_safe(url)}: HTTP {response.status_code}")
            body = response.raw.read(limit + 1, decode_content=True) or b""
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
        raise HttpError(f"GET {_safe(url)}: {type(exc).__name__}") from None
    if len(body) > limit:
        raise HttpError(f"GET {_safe(url)}: more than {limit} bytes")
    return body


def probe(url: str, *, timeout: float = 2.0, verify: bool | str = False,
          cert: tuple[str, str] | None = None, method: str = "GET") -> HttpResponse | None:
    """A health probe: the response, or None when nothing answered."""
    try:
        return request(method, url, timeout=timeout, verify=verify, cert=cert)
    except HttpError:
        return None


@dataclass(frozen=True)
class Answer:
    """What a user asking ``url`` got: a status (None: no answer at all) and how long it took."""

    status: int | None
    seconds: float
    error: str = ""  # the kind of failure when nothing answered: ConnectionError, ReadTimeout...
    header: str | None = None  # the value of the header ``timed_get`` was asked for (None: absent, or no answer)


def timed_get(url: str, *, timeout: float, verify: bool | str = True, header: str | None = None) -> Answer:
    """One GET as a user would make it, on a fresh connection, body read (up to ``MAX_BODY``).

    Never raises for what the server does: refusals, resets and timeouts are answers too
    (an availability probe counts them).  ``timeout`` bounds the whole exchange, as in ``request``.
    ``header`` names one response header whose value the answer carries (a fleet entry
    point's ``X-Served-By``, say).
    """
    import requests
    import urllib3

    start = time.monotonic()

    def get() -> Answer:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                with requests.get(url, timeout=(timeout, timeout), verify=verify, stream=True,
                                  headers={"Connection": "close"}) as response:
                    _read_body(response, start + timeout)
                    value = response.headers.get(header) if header else None
                    return Answer(response.status_code, time.monotonic() - start, header=value)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, ValueError, AnswerTimeout) as exc:
            return Answer(None, time.monotonic() - start, type(exc).__name__)

    answer = _bounded(timeout, get)
    return answer if answer is not None else Answer(None, time.monotonic() - start, AnswerTimeout.__name__)


#: How long past its deadline an exchange may take to say why it failed (a read timing out just then).
_GRACE = 0.5
#: A body is read in pieces of this size, the deadline checked between them.
_CHUNK = 64 * 1024


class AnswerTimeout(Exception):
    """The whole answer did not come within the timeout (a server dripping it)."""


def _late(timeout: float) -> str:
    return f"no complete answer within {timeout:g}s"


def _headers(response: Any) -> Mapping[str, str]:
    return MappingProxyType({name.lower(): value for name, value in response.headers.items()})


def _read_body(response: Any, deadline: float) -> bytes:
    """The body, up to ``MAX_BODY``; ``AnswerTimeout`` once ``deadline`` has passed between two pieces."""
    body = bytearray()
    while len(body) < MAX_BODY:
        if time.monotonic() > deadline:
            raise AnswerTimeout()
        piece = response.raw.read(min(_CHUNK, MAX_BODY - len(body)), decode_content=True)
        if not piece:
            break
        body += piece
    return bytes(body)


T = TypeVar("T")


def _bounded(timeout: float, work: Callable[[], T]) -> T | None:
    """``work()`` on a daemon thread, given up ``timeout`` (plus a grace) seconds on: None then.

    requests' timeouts apply to each read, so only a second thread can bound a whole exchange
    whose server sends the headers a byte at a time.  A thread given up ends at its next read
    timeout or with the process; its result is dropped.  What ``work`` raises is raised here.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # noqa: BLE001 - raised again on the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="dirt-http", daemon=True)
    worker.start()
    worker.join(timeout + _GRACE)
    if failure:
        raise failure[0]
    return outcome[0] if outcome else None


def _safe(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "(malformed URL)"

"""Checks that need no cluster: an HTTP endpoint, a command's exit status."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from dirt.clients import http
from dirt.core.durations import Duration
from dirt.core.errors import HttpError
from dirt.drivers import Check, CheckResult, Params
from dirt.drivers.commands import CommandParams, run

StatusCode = Annotated[int, Field(ge=100, le=599)]
#: A response header's value is the server's to choose: at most this much of it is recorded.
MAX_SHOWN = 64


class HttpParams(Params):
    url: str = Field(description="URL to request.")
    method: str = Field("GET", pattern="^(GET|HEAD|POST|PUT|OPTIONS)$")
    status: StatusCode | list[StatusCode] = Field(200, description="Expected status code(s).")
    body_contains: str | None = Field(None, description="Text the response body must contain.")
    max_latency: Duration | None = Field(None, description="The response must arrive within this.")
    timeout: Duration = Field(10.0)
    headers: dict[str, str] = Field(default_factory=dict)
    response_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers the answer must carry with exactly these values, names in any case, "
                    "e.g. {X-Served-By: west}: passes only on an answer from that member.")
    insecure_skip_verify: bool = False


class HttpCheck(Check):
    """Request a URL; pass on the expected status, body text and latency."""

    name = "http"
    each_member = False  # a URL, asked once (on a fleet: usually its entry point)
    Params = HttpParams

    def probe(self) -> CheckResult:
        p = self.params
        try:
            response = http.request(p.method, p.url, headers=p.headers, timeout=p.timeout,
                                    verify=not p.insecure_skip_verify)
        except HttpError as exc:
            return CheckResult(False, str(exc))
        latency = response.seconds
        wanted = p.status if isinstance(p.status, list) else [p.status]
        data: dict[str, Any] = {"status": response.status, "latency_seconds": round(latency, 4)}
        if p.response_headers:
            data["headers"] = {name: _shown(response.headers.get(name.lower())) for name in p.response_headers}
        if response.status not in wanted:
            return CheckResult(False, f"status {response.status}, expected {', '.join(map(str, wanted))}", data)
        for name, expected in p.response_headers.items():
            got = response.headers.get(name.lower())
            if got != expected:
                seen = "absent" if got is None else f"is {_shown(got)!r}"
                return CheckResult(False, f"header {name} {seen}, expected {expected!r}", data)
        if p.body_contains is not None and p.body_contains not in response.text:
            return CheckResult(False, f"body does not contain {p.body_contains!r}", data)
        if p.max_latency is not None and latency > p.max_latency:
            return CheckResult(False, f"latency {latency * 1000:.0f}ms over {p.max_latency * 1000:.0f}ms", data)
        return CheckResult(True, f"status {response.status} in {latency * 1000:.0f}ms", data)


def _shown(value: str | None) -> str | None:
    """A header value as recorded: whatever the server sent, cut short."""
    return None if value is None else value[:MAX_SHOWN]


class ExecCheckParams(CommandParams):
    exit_code: int = Field(0, ge=0, le=255, description="Exit status that means the check passes.")
    stdout_contains: str | None = Field(None, description="Text the output must contain.")


class ExecCheck(Check):
    """Run a command; pass on the expected exit status (and output text)."""

    name = "exec"
    Params = ExecCheckParams

    def probe(self) -> CheckResult:
        p = self.params
        result = run(self.ctx, p.command, timeout=p.timeout, env=p.env, cwd=p.cwd, check=False, what="check command")
        data = {"returncode": result.returncode, "output": result.tail(5)}
        if result.returncode != p.exit_code:
            return CheckResult(False, f"exited {result.returncode}, expected {p.exit_code}: {result.tail(1)}", data)
        if p.stdout_contains is not None and p.stdout_contains not in result.stdout:
            return CheckResult(False, f"output does not contain {p.stdout_contains!r}", data)
        return CheckResult(True, f"exited {result.returncode}", data)


DRIVERS = [HttpCheck, ExecCheck]

"""``dirt.clients.http.request``: its timeout bounds the whole exchange, not each read.

Real local servers on 127.0.0.1 (threads of this test), no mocks: one answers at once, two drip
(the headers, or the body) a byte at a time, each read well inside the client's timeout, so only a
bound on the whole exchange stops the client.  Each dripping server gives up by itself after
``DRIP_FOR`` seconds, so without that bound the test fails (the request completes) instead of hanging.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from dirt.clients import http
from dirt.core.errors import HttpError

DRIP_FOR = 20.0  # seconds a dripping server keeps going, then finishes its answer


def _serve(answer: bytes, *, drip_from: int | None, every: float = 0.2) -> Iterator[str]:
    """Serve one connection with ``answer``; from byte ``drip_from`` on, one byte every ``every`` s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(30)
    stop = threading.Event()

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            cut = len(answer) if drip_from is None else drip_from
            try:
                conn.sendall(answer[:cut])
                ends = time.monotonic() + DRIP_FOR
                for i in range(cut, len(answer)):
                    if stop.is_set():
                        return
                    if time.monotonic() < ends:
                        time.sleep(every)
                        conn.sendall(answer[i:i + 1])
                    else:
                        conn.sendall(answer[i:])
                        break
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        listener.close()
        thread.join(5)


BODY = b'{"allow": true}' + b" " * 400
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


@pytest.fixture
def prompt_server() -> Iterator[str]:
    yield from _serve(ANSWER, drip_from=None)


@pytest.fixture
def dripping_headers() -> Iterator[str]:
    yield from _serve(ANSWER, drip_from=9)  # "HTTP/1.1 " and then a byte at a time


@pytest.fixture
def dripping_body() -> Iterator[str]:
    yield from _serve(ANSWER, drip_from=len(ANSWER) - len(BODY) + 5)


def test_a_prompt_answer_is_read_whole(prompt_server: str) -> None:
    answer = http.post_json(prompt_server, {"plan": []}, timeout=5)

    assert answer.status == 200 and answer.json() == {"allow": True}


@pytest.mark.parametrize("server", ["dripping_headers", "dripping_body"])
def test_a_server_that_drips_is_given_up_at_the_timeout(server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue(server)

    with pytest.raises(HttpError) as caught:
        http.post_json(url, {"plan": []}, timeout=1.0)

    assert str(caught.value) == f"POST {http.safe_origin(url)}: no complete answer within 1s"
    assert "/hook" not in str(caught.value), "a webhook's path may be its secret"


def test_what_goes_wrong_on_the_exchange_thread_is_raised_to_the_caller() -> None:
    with pytest.raises(HttpError, match=r"^GET http://127\.0\.0\.1:1/: ConnectionError$"):
        http.request("GET", "http://127.0.0.1:1/", timeout=2)


def test_an_availability_sample_of_a_dripping_server_is_a_failure_within_its_timeout(dripping_headers: str) -> None:
    answer = http.timed_get(dripping_headers, timeout=1.0)

    assert answer.status is None and answer.error == "AnswerTimeout"

"""A request Twisted cannot read as HTTP gets a 400 in the one error shape, then the connection
closes (``project/edge/daphne.py``); it was a bare ``400 Bad Request`` with no body."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

from tests.support import ManagedProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

MALFORMED = [
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n{}",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    # More digits than int() reads (4300): the connection was dropped without an answer.
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n{}",
    b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
]


def _exchange(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):  # the server closes after answering
            received += chunk
    return received


def test_a_request_that_is_not_http_gets_a_json_400_then_the_connection_closes(live_web: ManagedProcess) -> None:
    for request in MALFORMED:
        head, _, body = _exchange(live_web.url, request).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0] == "HTTP/1.1 400 Bad Request", (request[:60], head)
        assert "Content-Type: application/json" in lines and "Connection: close" in lines
        error = json.loads(body)["error"]
        assert error["code"] == "invalid_request" and error["request_id"].startswith("req_")


@pytest.mark.parametrize("size", [20_000, 200_000])
def test_headers_over_the_limit_get_a_json_431_that_reaches_the_client(live_web: ManagedProcess, size: int) -> None:
    # The client is still sending when the server answers: the answer must not be lost to a reset.
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + b"x" * size
        + b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    )
    for _ in range(2):
        head, _, body = _exchange(live_web.url, request).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large", head
        assert "Connection: close" in lines
        assert json.loads(body)["error"]["code"] == "request_headers_too_large"

"""A request no route could serve rightly is refused before anything reads it
(``project.edge.router.RequestGuard``): a URL holding a null character (PostgreSQL refuses the
character in any text a lookup compares it with), and an HTTP/1.1 request without a Host."""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from orchestration.access.keys import api_key_create
from tests.support import ManagedProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_a_null_character_in_a_path_or_query_is_a_400_everywhere(live_web: ManagedProcess, alice: Any) -> None:
    headers = {"Authorization": f"Bearer {api_key_create(user=alice)[1]}", "X-Request-ID": "mine-1"}
    with httpx.Client(base_url=live_web.url, headers=headers, timeout=30) as client:
        answers = [
            client.get("/v1/responses/resp_%00"),
            client.delete("/v1/responses/resp_%00"),
            client.get("/api/v1/conversations?search=a%00b"),
            client.get("/admin/orchestration/storedresponse/?id__exact=%00"),
            client.get("/api/v1/messages/1/stream?last_event_id=%00"),
        ]
        fine = client.get("/api/v1/conversations?search=a%20b")
    for answer in answers:
        assert answer.status_code == 400, (answer.request.url, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_request" and error["request_id"] == "mine-1"
        assert answer.headers["X-Request-ID"] == "mine-1"
    assert fine.status_code == 200


def _raw_answer(url: str, request: bytes) -> tuple[str, bytes]:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n")[0], body


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/api/v1/conversations"), ("GET", "/healthz")],
)
def test_an_http_1_1_request_without_a_host_is_a_400(live_web: ManagedProcess, method: str, path: str) -> None:
    request = f"{method} {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    status, body = _raw_answer(live_web.url, request.encode() + b"Connection: close\r\n\r\n{}")
    assert status == "HTTP/1.1 400 Bad Request"
    assert json.loads(body)["error"]["code"] == "invalid_request"
    # HTTP/1.0 has no Host requirement: such a request is still served.
    status, _ = _raw_answer(live_web.url, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status.endswith("200 OK")

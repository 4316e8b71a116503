"""Bodies that say they are forms reach Switchyard as they are: Twisted does not decode them first
(``project/edge/daphne.py``), so one it could not parse gets Switchyard's answer, not a bare 400."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orchestration.access.keys import api_key_create
from tests.support import ManagedProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

BROKEN_MULTIPART = {"Content-Type": "multipart/form-data; boundary=xx"}


def _is_our_error(response: httpx.Response) -> bool:
    body = response.json()
    return set(body) == {"error"} and body["error"]["request_id"] == response.headers["X-Request-ID"]


def test_a_form_twisted_could_not_parse_gets_switchyards_answer(live_web: ManagedProcess, alice: Any) -> None:
    headers = {"Authorization": f"Bearer {api_key_create(user=alice)[1]}", **BROKEN_MULTIPART}
    with httpx.Client(base_url=live_web.url, headers=headers, timeout=30) as client:
        chat = client.post("/api/v1/conversations", content=b"not a multipart body")
        gateway = client.post("/v1/chat/completions", content=b"not a multipart body")
        post = client.post("/api/v1/conversations/1/messages", content=b"--xx\r\nbroken")
    for response in (chat, gateway, post):
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
        assert _is_our_error(response), response.text


def test_a_browser_form_still_reaches_django(live_web: ManagedProcess, alice: Any) -> None:
    """The login form (URL-encoded) is parsed by Django, as before."""
    with httpx.Client(base_url=live_web.url, timeout=30) as client:
        page = client.get("/accounts/login/")
        token = client.cookies["csrftoken"]
        signed_in = client.post(
            "/accounts/login/",
            data={"username": "alice", "password": "alice-password-1", "csrfmiddlewaretoken": token},
            headers={"Referer": f"{live_web.url}/accounts/login/"},
        )
    assert page.status_code == 200
    assert signed_in.status_code == 302 and "sessionid" in signed_in.cookies

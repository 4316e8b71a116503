"""A URL holding a null character is refused before anything reads it (``project.edge.router.
NullCharacterGuard``): PostgreSQL refuses the character in any text a lookup compares it with."""

from __future__ import annotations

from typing import Any

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

"""Every status line a live daphne sends has its reason phrase, and ``/v1`` answers say how long they took."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel, Provider
from orchestration.registry import snapshot_invalidate
from tests.support import ManagedProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


@pytest.fixture
def one_rpm_key(alice: Any, simulator: Any) -> str:
    provider = Provider.objects.create(name="sim", kind=Provider.Kind.SIMULATOR, base_url=simulator.url + "/v1")
    LanguageModel.objects.create(name="gpt-sim", provider=provider, upstream="gpt-sim", capabilities=["chat"])
    snapshot_invalidate()
    return api_key_create(user=alice, rpm=1)[1]


def test_429_is_too_many_requests_not_unknown_status(live_web: ManagedProcess, one_rpm_key: str) -> None:
    body = {"model": "gpt-sim", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {one_rpm_key}"}
    with httpx.Client(base_url=live_web.url, headers=headers, timeout=30) as client:
        first = client.post("/v1/chat/completions", json=body)
        second = client.post("/v1/chat/completions", json=body)
        unknown = client.get("/v1/nowhere")
    assert (first.status_code, first.reason_phrase) == (200, "OK")
    assert int(first.headers["openai-processing-ms"]) >= 0
    assert (second.status_code, second.reason_phrase) == (429, "Too Many Requests")
    assert "openai-processing-ms" in second.headers
    assert (unknown.status_code, unknown.reason_phrase) == (404, "Not Found")

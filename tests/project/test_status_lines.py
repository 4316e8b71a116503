"""Every status line a live daphne sends has its reason phrase, and ``/v1`` answers say how long they took."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel, Provider
from orchestration.registry import snapshot_invalidate
from tests.support import ManagedProcess, start_web

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


def test_a_browser_preflight_passes_the_edge_when_its_origin_is_allowed(
    simulator: Any, one_rpm_key: str, transactional_db: None
) -> None:
    server = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, SWITCHYARD_CORS_ORIGINS="http://localhost:5173")
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            allowed = client.options("/v1/chat/completions", headers={"Origin": "http://localhost:5173", **asked})
            other = client.options("/v1/chat/completions", headers={"Origin": "https://elsewhere.example", **asked})
    finally:
        server.stop()
    assert (allowed.status_code, allowed.reason_phrase) == (204, "No Content")
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert allowed.headers["access-control-allow-headers"] == "authorization, content-type"
    assert "access-control-allow-origin" not in other.headers

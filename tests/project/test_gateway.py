"""/v1 is routed to the lean handler: Django's request handling without the site's middleware."""

from __future__ import annotations

import httpx
import pytest

from project.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://127.0.0.1")


async def test_v1_answers_without_the_sites_middleware() -> None:
    async with client() as http:
        v1 = await http.get("/v1/models", headers={"X-Request-ID": "req-lean-1"})
        page = await http.get("/accounts/login/")
    assert v1.status_code == 401 and v1.json()["error"]["code"] == "missing_api_key"
    assert v1.headers["X-Request-ID"] == "req-lean-1"
    assert "X-Frame-Options" in page.headers  # what the full stack adds (the admin is a full-stack page)...
    assert "X-Frame-Options" not in v1.headers  # ...and /v1 skips


async def test_v1_still_refuses_hosts_outside_allowed_hosts() -> None:
    async with client() as http:
        response = await http.get("/v1/models", headers={"Host": "evil.example"})
    assert response.status_code == 400

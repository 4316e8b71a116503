"""One admission for every door: the same scenario through ``/v1`` (whole and streamed), a chat post,
a task post and a WebSocket ``start_task`` gets the same verdict, code and headers, against a live
daphne process, real Redis and the simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from orchestration.access.keys import api_key_create
from orchestration.access.limits import Limits, limits_admit_sync
from orchestration.models import AccessPolicy, RequestLog
from tests.orchestration.access.doors import MODEL, Verdict, every_door, revoke_in_another_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def use_up(key: Any, **limits: Any) -> None:
    """Spend a limit through the limiter itself, as earlier calls would have."""
    limits_admit_sync(Limits(user_id=key.user_id, api_key_id=key.pk, **limits), token_cost=limits.get("tpm") or 0)


@dataclass
class Scenario:
    name: str
    prepare: Callable[[Any, Any], str]  # (alice, carol) -> the secret to call with
    expected: tuple[int, str]


def _rpm(alice: Any, carol: Any) -> str:
    key, secret = api_key_create(user=alice, rpm=1)
    use_up(key, rpm=1)
    return secret


def _tpm(alice: Any, carol: Any) -> str:
    key, secret = api_key_create(user=alice, tpm=1000)
    use_up(key, tpm=1000)
    return secret


def _budget(alice: Any, carol: Any) -> str:
    key, secret = api_key_create(user=alice, monthly_budget_usd=Decimal("0.0001"))
    RequestLog.objects.create(
        request_id="earlier", api_key=key, user=alice, endpoint="completion", model_requested=MODEL,
        cost_usd=Decimal("0.0001"), created_at=timezone.now(),
    )  # fmt: skip
    return secret


def _model(alice: Any, carol: Any) -> str:
    return api_key_create(user=alice, allowed_models=["another-model"])[1]


def _revoked(alice: Any, carol: Any) -> str:
    key, secret = api_key_create(user=alice)
    revoke_in_another_process(key.pk)
    return secret


def _expired(alice: Any, carol: Any) -> str:
    return api_key_create(user=alice, expires_at=timezone.now() - timedelta(seconds=1))[1]


def _disabled(alice: Any, carol: Any) -> str:
    secret = api_key_create(user=carol)[1]
    carol.is_active = False
    carol.save(update_fields=["is_active"])
    return secret


SCENARIOS = [
    Scenario("rpm limit", _rpm, (429, "rate_limit_exceeded")),
    Scenario("tpm limit", _tpm, (429, "rate_limit_exceeded")),
    Scenario("exhausted budget", _budget, (429, "budget_exceeded")),
    Scenario("model not allowed", _model, (403, "model_not_allowed")),
    Scenario("key revoked elsewhere", _revoked, (401, "key_revoked")),
    Scenario("expired key", _expired, (401, "key_expired")),
    Scenario("disabled user", _disabled, (401, "account_disabled")),
]


@pytest.fixture
def carol(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("carol", "carol@example.com", "carol-password-1")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_every_door_gives_the_same_verdict_code_and_headers(
    scenario: Scenario, live_web: Any, door_model: Any, alice: Any, carol: Any
) -> None:
    secret = await sync_to_async(scenario.prepare)(alice, carol)
    verdicts: dict[str, Verdict] = {}
    began = time.monotonic()
    for door in every_door(live_web.url, MODEL):
        verdicts[door.name] = await door.knock(secret, alice)
    knocking_s = time.monotonic() - began

    first = next(iter(verdicts.values())).comparable()
    for name, verdict in verdicts.items():
        assert (verdict.status, verdict.code) == scenario.expected, (name, verdict)
        assert verdict.comparable() == first, (name, verdict.comparable(), first)
        if verdict.status == 429:
            assert int(verdict.headers["retry-after"]) >= 1, name
        if verdict.status == 401 and name.startswith("WebSocket"):
            assert verdict.closed_with == 4401
    waits = [int(verdict.headers["retry-after"]) for verdict in verdicts.values() if "retry-after" in verdict.headers]
    if waits:  # one wait, counted down by the time the knocking took (and a second's rounding)
        assert max(waits) - min(waits) <= knocking_s + 1, waits


async def test_every_door_admits_a_good_key_and_reports_its_limits(live_web: Any, door_model: Any, alice: Any) -> None:
    _, secret = await sync_to_async(api_key_create)(user=alice, rpm=100, tpm=100_000)
    for door in every_door(live_web.url, MODEL):
        verdict = await door.knock(secret, alice)
        assert verdict.admitted, (door.name, verdict)
        if not door.name.startswith("WebSocket"):
            assert verdict.headers["x-ratelimit-limit-requests"] == "100", door.name
            assert verdict.headers["x-ratelimit-limit-tokens"] == "100000", door.name


async def test_a_person_in_the_browser_is_held_to_their_access_policy(
    live_web: Any, door_model: Any, alice: Any
) -> None:
    import httpx
    from django.test import Client

    await AccessPolicy.objects.acreate(user=alice, rpm=1)
    browser = Client()
    await sync_to_async(browser.force_login)(alice)
    await sync_to_async(browser.get)("/")  # the CSRF cookie, as the chat page sets it
    cookies = {name: morsel.value for name, morsel in browser.cookies.items()}
    headers = {"X-CSRFToken": cookies["csrftoken"], "Origin": live_web.url}
    async with httpx.AsyncClient(base_url=live_web.url, cookies=cookies, headers=headers, timeout=30) as http:
        urls = []
        for _ in range(2):
            conversation = (await http.post("/api/v1/conversations", json={"model": MODEL})).json()
            urls.append(f"/api/v1/conversations/{conversation['id']}/messages")
        first = await http.post(urls[0], json={"content": "Hello"})
        assert first.status_code == 201, first.text
        assert first.headers["x-ratelimit-limit-requests"] == "1"
        second = await http.post(urls[1], json={"content": "Again"})
        task = await http.post("/api/v1/tasks", json={"agent": "research-assistant", "input": "Hi", "model": MODEL})
    for refused in (second, task):
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.headers["x-ratelimit-limit-requests"] == "1" and int(refused.headers["Retry-After"]) >= 1

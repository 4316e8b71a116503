"""The limiter against real Redis, with an injected clock: GCRA for requests and tokens, budgets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

import pytest
from django.utils import timezone

from orchestration.keys import api_key_create
from orchestration.models import RequestLog
from project.budgets import spend_counter_key, units_to_usd, usd_to_units
from project.ratelimit import (
    KeyLimits,
    go_duration,
    ratelimit_admit,
    ratelimit_flush,
    ratelimit_headers,
    ratelimit_settle,
    token_estimate,
)
from tests.orchestration.gateway import close_thread_connections, in_thread

T = TypeVar("T")
T0 = 1_780_000_000.0  # a fixed wall-clock second


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def _no_session_left() -> Iterator[None]:
    yield
    close_thread_connections()


async def admit_many(limits: KeyLimits, n: int, clock: Callable[[], float], cost: int = 1) -> list[bool]:
    results = await asyncio.gather(*(ratelimit_admit(limits, cost, clock=clock) for _ in range(n)))
    return [r.allowed for r in results]


async def test_it_admits_exactly_the_rpm_of_fifty_concurrent_calls(clock: Clock) -> None:
    allowed = await admit_many(KeyLimits(api_key_id=1, rpm=20), 50, clock)
    assert allowed.count(True) == 20


async def test_a_refused_call_waits_one_emission_interval_then_passes(clock: Clock) -> None:
    limits = KeyLimits(api_key_id=1, rpm=20)
    await admit_many(limits, 20, clock)
    refused = await ratelimit_admit(limits, 1, clock=clock)
    assert not refused.allowed and refused.code == "rate_limit_exceeded"
    assert refused.retry_after_s == pytest.approx(3.0, abs=0.01)
    clock.now += 2.9
    assert not (await ratelimit_admit(limits, 1, clock=clock)).allowed
    clock.now += 0.1
    assert (await ratelimit_admit(limits, 1, clock=clock)).allowed


async def test_an_odd_limit_still_admits_its_full_burst(clock: Clock) -> None:
    allowed = await admit_many(KeyLimits(api_key_id=1, rpm=7), 8, clock)
    assert allowed.count(True) == 7


async def test_keys_are_limited_separately(clock: Clock) -> None:
    await admit_many(KeyLimits(api_key_id=1, rpm=2), 2, clock)
    assert (await ratelimit_admit(KeyLimits(api_key_id=2, rpm=2), 1, clock=clock)).allowed


async def test_a_token_refusal_does_not_spend_a_request(clock: Clock) -> None:
    limits = KeyLimits(api_key_id=1, rpm=2, tpm=1000)
    assert (await ratelimit_admit(limits, 900, clock=clock)).allowed
    refused = await ratelimit_admit(limits, 900, clock=clock)
    assert not refused.allowed
    assert "tokens" in refused.message
    requests = next(s for s in refused.states if s.name == "requests")
    assert requests.remaining == 1


async def test_settling_with_real_usage_gives_back_the_overestimate(clock: Clock) -> None:
    limits = KeyLimits(api_key_id=1, tpm=1000)
    first = await ratelimit_admit(limits, 900, clock=clock)
    assert not (await ratelimit_admit(limits, 900, clock=clock)).allowed
    await ratelimit_settle(limits, first, tokens_used=50, cost_usd=Decimal(0), clock=clock)
    second = await ratelimit_admit(limits, 900, clock=clock)
    assert second.allowed
    tokens = next(s for s in second.states if s.name == "tokens")
    assert tokens.remaining == 50


async def test_settling_with_more_usage_than_estimated_charges_the_difference(clock: Clock) -> None:
    limits = KeyLimits(api_key_id=1, tpm=1000)
    first = await ratelimit_admit(limits, 100, clock=clock)
    await ratelimit_settle(limits, first, tokens_used=800, cost_usd=Decimal(0), clock=clock)
    assert not (await ratelimit_admit(limits, 300, clock=clock)).allowed


async def test_a_request_larger_than_the_token_limit_is_refused_outright(clock: Clock) -> None:
    refused = await ratelimit_admit(KeyLimits(api_key_id=1, tpm=100), 101, clock=clock)
    assert not refused.allowed
    assert refused.code == "rate_limit_exceeded" and "too large" in refused.message


async def test_an_unlimited_key_never_touches_redis(redis_client, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    assert (await ratelimit_admit(KeyLimits(api_key_id=1), 10**9, clock=clock)).allowed
    assert redis_client.dbsize() == 0


def test_the_refusal_headers_follow_openai_and_the_ietf_draft(clock: Clock) -> None:
    limits = KeyLimits(api_key_id=1, rpm=2, tpm=1000)

    async def scenario():  # type: ignore[no-untyped-def]
        await admit_many(limits, 2, clock, cost=10)
        return await ratelimit_admit(limits, 10, clock=clock)

    headers = ratelimit_headers(asyncio.run(scenario()))
    assert headers["Retry-After"] == "30"
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert headers["x-ratelimit-limit-tokens"] == "1000"
    assert headers["x-ratelimit-remaining-tokens"] == "980"
    assert headers["x-ratelimit-reset-tokens"] == "1.2s"
    assert headers["RateLimit-Policy"] == '"requests";q=2;w=60, "tokens";q=1000;w=60;qu="tokens"'
    assert headers["RateLimit"] == '"requests";r=0;t=30, "tokens";r=980;t=2'


def test_durations_are_written_the_way_openai_writes_them() -> None:
    assert go_duration(0.017) == "17ms"
    assert go_duration(1) == "1s"
    assert go_duration(1.5) == "1.5s"
    assert go_duration(360) == "6m0s"
    assert go_duration(3723) == "1h2m3s"


def test_the_token_estimate_counts_the_prompt_and_the_output_allowed() -> None:
    assert token_estimate(400, 50) == 150
    assert token_estimate(1, None) == 1 + 1024


# --- budgets --------------------------------------------------------------------------------


def log_cost(key_id: int, usd: str, at: datetime) -> None:
    RequestLog.objects.create(
        request_id="r",
        api_key_id=key_id,
        endpoint="completion",
        model_requested="m",
        cost_usd=Decimal(usd),
        created_at=at,
    )


@pytest.mark.django_db(transaction=True)
async def test_the_spend_counter_is_rebuilt_from_the_request_log(alice, redis_client) -> None:  # type: ignore[no-untyped-def]
    key, _ = await in_thread(api_key_create, user=alice, monthly_budget_usd=Decimal("1.00"))
    now = timezone.now()
    last_month = now.replace(day=1) - timedelta(days=1)
    await in_thread(log_cost, key.pk, "0.60", now)
    await in_thread(log_cost, key.pk, "5.00", last_month)
    limits = KeyLimits(api_key_id=key.pk, monthly_budget_usd=Decimal("1.00"))
    assert (await ratelimit_admit(limits, 1, clock=now.timestamp)).allowed
    counter = redis_client.get(spend_counter_key(key.pk, now))
    assert units_to_usd(int(counter)) == Decimal("0.60")
    await in_thread(log_cost, key.pk, "0.50", now)
    await ratelimit_settle(limits, await ratelimit_admit(limits, 1), tokens_used=1, cost_usd=Decimal("0.50"))
    refused = await ratelimit_admit(limits, 1, clock=now.timestamp)
    assert not refused.allowed and refused.code == "budget_exceeded"
    assert refused.retry_after_s > 0


@pytest.mark.django_db(transaction=True)
async def test_spend_is_read_fresh_not_from_a_copy(redis_client) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    redis_client.set(spend_counter_key(7, now), usd_to_units(Decimal("0.99")))
    limits = KeyLimits(api_key_id=7, monthly_budget_usd=Decimal("1.00"))
    assert (await ratelimit_admit(limits, 1)).allowed
    redis_client.incrby(spend_counter_key(7, now), usd_to_units(Decimal("0.01")))
    assert (await ratelimit_admit(limits, 1)).code == "budget_exceeded"


@pytest.mark.django_db(transaction=True)
async def test_a_new_month_starts_a_new_counter(redis_client) -> None:  # type: ignore[no-untyped-def]
    november = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    december = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    redis_client.set(spend_counter_key(7, november), usd_to_units(Decimal("5")))
    limits = KeyLimits(api_key_id=7, monthly_budget_usd=Decimal("1.00"))
    assert (await ratelimit_admit(limits, 1, clock=november.timestamp)).code == "budget_exceeded"
    assert (await ratelimit_admit(limits, 1, clock=december.timestamp)).allowed


# --- Redis down -----------------------------------------------------------------------------


async def test_it_admits_and_logs_when_redis_is_down(settings, caplog, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:1/1"  # nothing listens there (a URL of this test's own)
    limits = KeyLimits(api_key_id=1, rpm=1, monthly_budget_usd=Decimal("0"))
    with caplog.at_level(logging.WARNING, logger="switchyard.ratelimit"):
        results = [await ratelimit_admit(limits, 1, clock=clock) for _ in range(3)]
    assert all(r.allowed and r.degraded for r in results)
    assert ratelimit_headers(results[0]) == {}
    assert "Redis unavailable" in caplog.text
    await ratelimit_settle(limits, results[0], tokens_used=5, cost_usd=Decimal("1"), clock=clock)


async def test_a_settlement_travels_with_the_next_admission_or_is_flushed(redis_client, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    limits = KeyLimits(api_key_id=1, tpm=1000)
    admitted = await ratelimit_admit(limits, 500, clock=clock)
    before = redis_client.get("sy:rl:{1}:tokens")
    await ratelimit_settle(limits, admitted, tokens_used=100, cost_usd=Decimal(0), clock=clock)
    assert redis_client.get("sy:rl:{1}:tokens") == before  # not sent on its own
    second = await ratelimit_admit(limits, 100, clock=clock)
    assert next(s for s in second.states if s.name == "tokens").remaining == 800
    await ratelimit_settle(limits, second, tokens_used=0, cost_usd=Decimal(0), clock=clock)
    await ratelimit_flush()
    assert float(redis_client.get("sy:rl:{1}:tokens")) == pytest.approx((T0 + 6.0) * 1000)

"""The limiter against real Redis, with an injected clock: GCRA for requests and tokens, budgets
with reservations, and spend counters rebuilt from the request log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.db.backends.signals import connection_created
from django.utils import timezone

from orchestration.access.budgets import EPOCH_KEY, spend_counter_key, units_to_usd, usd_to_units
from orchestration.access.keys import api_key_create
from orchestration.access.limits import (
    Limits,
    Verdict,
    go_duration,
    limit_headers,
    limits_admit,
    limits_admit_sync,
    limits_flush,
    limits_settle,
    limits_settle_sync,
)
from orchestration.models import RequestLog
from tests.orchestration.gateway import close_thread_connections, in_thread

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


def key_limits(key_id: int = 1, **limits: object) -> Limits:
    return Limits(user_id=1, api_key_id=key_id, **limits)  # type: ignore[arg-type]


async def admit(limits: Limits, cost: int, clock: Callable[[], float], **kwargs: object) -> Verdict:
    return await limits_admit(limits, token_cost=cost, clock=clock, **kwargs)  # type: ignore[arg-type]


async def admit_many(limits: Limits, n: int, clock: Callable[[], float], cost: int = 1) -> list[bool]:
    results = await asyncio.gather(*(admit(limits, cost, clock) for _ in range(n)))
    return [r.allowed for r in results]


# --- requests and tokens per minute ---------------------------------------------------------


async def test_it_admits_exactly_the_rpm_of_fifty_concurrent_calls(clock: Clock) -> None:
    allowed = await admit_many(key_limits(rpm=20), 50, clock)
    assert allowed.count(True) == 20


async def test_three_hundred_calls_at_once_are_all_counted(clock: Clock) -> None:
    # More calls in flight than redis-py's default pool holds (100): none may be admitted blindly.
    results = await asyncio.gather(*(admit(key_limits(rpm=250), 1, clock) for _ in range(300)))
    assert [r.degraded for r in results].count(True) == 0
    assert [r.allowed for r in results].count(True) == 250


async def test_calls_admitted_together_each_get_their_own_answer_though_one_of_them_left(clock: Clock) -> None:
    # The first goes to Redis alone; those that come while it is under way share the next
    # pipeline. Each is still decided alone.
    spent = key_limits(2, rpm=1)
    assert (await admit(spent, 1, clock)).allowed
    calls = [asyncio.ensure_future(admit(limits, 1, clock)) for limits in (spent, key_limits(3, rpm=1), spent)]
    await asyncio.sleep(0)  # the first is under way, the other two wait for it
    calls[2].cancel()  # its request is cancelled meanwhile
    first, second = await asyncio.gather(*calls[:2])
    assert (first.status, second.status) == ("requests", "ok")
    assert calls[2].cancelled()
    assert (await admit(key_limits(3, rpm=1), 1, clock)).status == "requests"  # the second was counted


async def test_a_refused_call_waits_one_emission_interval_then_passes(clock: Clock) -> None:
    limits = key_limits(rpm=20)
    await admit_many(limits, 20, clock)
    refused = await admit(limits, 1, clock)
    assert refused.status == "requests"
    assert refused.retry_after_s == pytest.approx(3.0, abs=0.01)
    clock.now += 2.9
    assert not (await admit(limits, 1, clock)).allowed
    clock.now += 0.1
    assert (await admit(limits, 1, clock)).allowed


async def test_an_odd_limit_still_admits_its_full_burst(clock: Clock) -> None:
    allowed = await admit_many(key_limits(rpm=7), 8, clock)
    assert allowed.count(True) == 7


async def test_keys_and_people_are_limited_separately(clock: Clock) -> None:
    await admit_many(key_limits(1, rpm=2), 2, clock)
    assert (await admit(key_limits(2, rpm=2), 1, clock)).allowed
    assert (await admit(Limits(user_id=1, rpm=2), 1, clock)).allowed  # the key's owner, without a key


async def test_a_token_refusal_does_not_spend_a_request(clock: Clock) -> None:
    limits = key_limits(rpm=2, tpm=1000)
    assert (await admit(limits, 900, clock)).allowed
    refused = await admit(limits, 900, clock)
    assert refused.status == "tokens"
    requests = next(s for s in refused.states if s.name == "requests")
    assert requests.remaining == 1


async def test_settling_with_real_usage_gives_back_the_overestimate(clock: Clock) -> None:
    limits = key_limits(tpm=1000)
    first = await admit(limits, 900, clock)
    assert not (await admit(limits, 900, clock)).allowed
    await limits_settle(limits, first, tokens_used=50, cost_usd=Decimal(0), clock=clock)
    second = await admit(limits, 900, clock)
    assert second.allowed
    tokens = next(s for s in second.states if s.name == "tokens")
    assert tokens.remaining == 50


async def test_settling_with_more_usage_than_estimated_charges_the_difference(clock: Clock) -> None:
    limits = key_limits(tpm=1000)
    first = await admit(limits, 100, clock)
    await limits_settle(limits, first, tokens_used=800, cost_usd=Decimal(0), clock=clock)
    assert not (await admit(limits, 300, clock)).allowed


async def test_a_request_larger_than_the_token_limit_is_refused_outright(clock: Clock) -> None:
    refused = await admit(key_limits(tpm=100), 101, clock)
    assert refused.status == "too_large"


async def test_an_unlimited_key_never_touches_redis(redis_client, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    assert (await admit(key_limits(), 10**9, clock)).allowed
    assert redis_client.dbsize() == 0


def test_the_limit_headers_follow_openai_and_the_ietf_draft(clock: Clock) -> None:
    limits = key_limits(rpm=2, tpm=1000)

    async def scenario() -> Verdict:
        await admit_many(limits, 2, clock, cost=10)
        return await admit(limits, 10, clock)

    refused = asyncio.run(scenario())
    headers = limit_headers(refused.states)
    assert refused.retry_after_s == pytest.approx(30.0)
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


# --- budgets and reservations ---------------------------------------------------------------


def log_cost(key_id: int, usd: str, at: datetime) -> None:
    RequestLog.objects.create(
        request_id="r",
        api_key_id=key_id,
        endpoint="completion",
        model_requested="m",
        cost_usd=Decimal(usd),
        created_at=at,
    )


def spend_of(redis_client, tag: str, now: datetime) -> Decimal:  # type: ignore[no-untyped-def]
    return units_to_usd(int(redis_client.hget(spend_counter_key(tag, now), "units")))


def budget(usd: str, key_id: int = 7) -> Limits:
    return key_limits(key_id, monthly_budget_usd=Decimal(usd))


@pytest.mark.django_db(transaction=True)
async def test_the_spend_counter_is_rebuilt_from_the_request_log(alice, redis_client) -> None:  # type: ignore[no-untyped-def]
    key, _ = await in_thread(api_key_create, user=alice, monthly_budget_usd=Decimal("1.00"))
    now = timezone.now()
    last_month = now.replace(day=1) - timedelta(days=1)
    await in_thread(log_cost, key.pk, "0.60", now)
    await in_thread(log_cost, key.pk, "5.00", last_month)
    limits = budget("1.00", key.pk)
    assert (await admit(limits, 1, now.timestamp)).allowed
    assert spend_of(redis_client, f"k{key.pk}", now) == Decimal("0.60")
    await in_thread(log_cost, key.pk, "0.50", now)
    await limits_settle(limits, await admit(limits, 1, now.timestamp), tokens_used=1, cost_usd=Decimal("0.50"))
    refused = await admit(limits, 1, now.timestamp)
    assert refused.status == "budget_spent"


@pytest.mark.django_db(transaction=True)
async def test_a_burst_that_finds_its_counter_missing_sums_the_request_log_once(alice, redis_client) -> None:  # type: ignore[no-untyped-def]
    key, _ = await in_thread(api_key_create, user=alice, monthly_budget_usd=Decimal("1.00"))
    now = timezone.now()
    await in_thread(log_cost, key.pk, "0.60", now)
    sums: list[str] = []

    def counted(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if 'SUM("orchestration_requestlog"."cost_usd")' in sql:
            sums.append(sql)
        return execute(sql, params, many, context)

    def watch(sender, connection, **kwargs):  # type: ignore[no-untyped-def]
        connection.execute_wrappers.append(counted)

    await asyncio.to_thread(close_thread_connections)  # the next query opens a connection, watched
    connection_created.connect(watch)
    try:
        verdicts = await asyncio.gather(*(admit(budget("1.00", key.pk), 1, now.timestamp) for _ in range(30)))
    finally:
        connection_created.disconnect(watch)
    assert all(verdict.allowed for verdict in verdicts)
    assert spend_of(redis_client, f"k{key.pk}", now) == Decimal("0.60")  # counted once, not once a call
    # The first call goes to Redis alone and the others together once it is back (the batcher), so
    # the two groups may each start the sum; 30 calls no longer make 30 sums.
    assert 1 <= len(sums) <= 2


@pytest.mark.django_db(transaction=True)
async def test_spend_is_read_fresh_not_from_a_copy(redis_client) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    limits = budget("1.00")
    assert (await admit(limits, 1, time_of(now))).allowed  # builds the counter (the log has nothing)
    redis_client.hincrby(spend_counter_key("k7", now), "units", usd_to_units(Decimal("0.99")))
    assert (await admit(limits, 1, time_of(now))).allowed
    redis_client.hincrby(spend_counter_key("k7", now), "units", usd_to_units(Decimal("0.01")))
    assert (await admit(limits, 1, time_of(now))).status == "budget_spent"


def time_of(moment: datetime) -> Callable[[], float]:
    return moment.timestamp


@pytest.mark.django_db(transaction=True)
async def test_a_new_month_starts_a_new_counter(redis_client) -> None:  # type: ignore[no-untyped-def]
    november = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    december = datetime(2026, 12, 1, 0, 1, tzinfo=UTC)
    limits = budget("1.00")
    assert (await admit(limits, 1, time_of(november))).allowed
    redis_client.hincrby(spend_counter_key("k7", november), "units", usd_to_units(Decimal("5")))
    assert (await admit(limits, 1, time_of(november))).status == "budget_spent"
    assert (await admit(limits, 1, time_of(december))).allowed


def test_the_month_of_a_spend_counter_is_the_utc_month() -> None:
    new_years_morning_in_berlin = datetime(2026, 1, 1, 0, 30, tzinfo=dt_timezone(timedelta(hours=1)))
    assert spend_counter_key("k7", new_years_morning_in_berlin) == "sy:spend:{k7}:2025-12"
    assert spend_counter_key("u3", datetime(2026, 9, 9, tzinfo=UTC)) == "sy:spend:{u3}:2026-09"


@pytest.mark.django_db(transaction=True)
async def test_concurrent_calls_reserve_their_worst_case_so_none_overruns_the_budget(clock: Clock) -> None:
    limits = budget("0.01")
    worst = usd_to_units(Decimal("0.001"))
    verdicts = await asyncio.gather(*(admit(limits, 1, clock, reserve_units=worst) for _ in range(30)))
    admitted = [v for v in verdicts if v.allowed]
    assert len(admitted) == 10
    assert {v.status for v in verdicts if not v.allowed} == {"budget_held"}
    # Settling at the real cost (a tenth of the worst case) gives the rest back to new calls.
    for verdict in admitted:
        await limits_settle(limits, verdict, tokens_used=1, cost_usd=Decimal("0.0001"), clock=clock)
    await limits_flush()
    again = await asyncio.gather(*(admit(limits, 1, clock, reserve_units=worst) for _ in range(30)))
    assert sum(v.allowed for v in again) == 9


@pytest.mark.django_db(transaction=True)
async def test_a_call_whose_worst_case_cannot_fit_is_refused_and_says_why(clock: Clock) -> None:
    limits = budget("0.01")
    assert (await admit(limits, 1, clock, reserve_units=usd_to_units(Decimal("0.02")))).status == "budget_too_small"
    spent = await admit(limits, 1, clock)
    await limits_settle(limits, spent, tokens_used=1, cost_usd=Decimal("0.0095"), clock=clock)
    await limits_flush()
    short = await admit(limits, 1, clock, reserve_units=usd_to_units(Decimal("0.001")))
    assert short.status == "budget_short" and short.spent_units == usd_to_units(Decimal("0.0095"))


@pytest.mark.django_db(transaction=True)
async def test_a_reservation_never_settled_lapses_after_its_hold(clock: Clock) -> None:
    limits = budget("0.01")
    whole = usd_to_units(Decimal("0.01"))
    assert (await admit(limits, 1, clock, reserve_units=whole, hold_s=10)).allowed  # its process then dies
    assert (await admit(limits, 1, clock, reserve_units=whole)).status == "budget_held"
    clock.now += 10 + 30 + 1  # the hold, and the margin every reservation is given
    assert (await admit(limits, 1, clock, reserve_units=whole)).allowed


@pytest.mark.django_db(transaction=True)
async def test_a_counter_restored_from_an_old_snapshot_is_rebuilt_before_the_next_decision(
    alice, redis_client, clock: Clock
) -> None:  # type: ignore[no-untyped-def]
    key, _ = await in_thread(api_key_create, user=alice, monthly_budget_usd=Decimal("1.00"))
    now = datetime.fromtimestamp(clock.now, UTC)
    limits = budget("1.00", key.pk)
    # A server that has run a while: its scripts are loaded, and its epoch is an earlier run's.
    # (In a fresh Redis the first call loads them and names the epoch after this very run, which
    # the flush below cannot change: the test then passed or failed by the tests run before it.)
    assert (await admit(budget("1.00", key.pk + 1), 1, clock)).allowed
    redis_client.set(EPOCH_KEY, "an-earlier-run")
    assert (await admit(limits, 1, clock)).allowed
    # The spend that the counter lost (a Redis restarted from a snapshot taken before it).
    await in_thread(log_cost, key.pk, "1.00", now)
    assert (await admit(limits, 1, clock)).allowed  # the counter still says 0: no restart seen yet
    # A restart: Redis forgets its scripts. The next call notices, and rebuilds the counter first.
    redis_client.script_flush()
    assert (await admit(limits, 1, clock)).status == "budget_spent"
    assert redis_client.get(EPOCH_KEY) is not None


@pytest.mark.django_db(transaction=True)
def test_the_sync_limiter_reserves_and_settles_like_the_async_one(clock: Clock) -> None:
    limits = budget("0.01")
    worst = usd_to_units(Decimal("0.006"))
    first = limits_admit_sync(limits, token_cost=1, reserve_units=worst, clock=clock)
    assert first.allowed
    assert limits_admit_sync(limits, token_cost=1, reserve_units=worst, clock=clock).status == "budget_held"
    limits_settle_sync(limits, first, tokens_used=1, cost_usd=Decimal("0.001"), clock=clock)
    assert limits_admit_sync(limits, token_cost=1, reserve_units=worst, clock=clock).allowed


# --- Redis down -----------------------------------------------------------------------------


async def test_it_admits_and_logs_when_redis_is_down(settings, caplog, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:1/1"  # nothing listens there (a URL of this test's own)
    limits = key_limits(rpm=1, monthly_budget_usd=Decimal("0"))
    with caplog.at_level(logging.WARNING, logger="switchyard.access"):
        results = [await admit(limits, 1, clock) for _ in range(3)]
    assert all(r.allowed and r.degraded for r in results)
    assert limit_headers(results[0].states) == {}
    assert "Redis unavailable" in caplog.text
    await limits_settle(limits, results[0], tokens_used=5, cost_usd=Decimal("1"), clock=clock)


async def test_calls_that_waited_for_an_admission_that_found_redis_silent_do_not_wait_again(
    settings, clock: Clock
) -> None:  # type: ignore[no-untyped-def]
    # A Redis that takes connections and never answers: the first call waits its timeout; the
    # calls that queued behind it are admitted (degraded) without a pipeline of their own.
    connections: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read(1 << 16)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    settings.REDIS_URL = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    try:
        results = await asyncio.gather(*(admit(key_limits(rpm=5), 1, clock) for _ in range(20)))
    finally:
        server.close()
        for writer in connections:
            writer.close()
    assert all(r.allowed and r.degraded for r in results)
    assert len(connections) == 1


async def test_a_settlement_travels_with_the_next_admission_or_is_flushed(redis_client, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    limits = key_limits(tpm=1000)
    admitted = await admit(limits, 500, clock)
    before = redis_client.get("sy:rl:{k1}:tokens")
    await limits_settle(limits, admitted, tokens_used=100, cost_usd=Decimal(0), clock=clock)
    assert redis_client.get("sy:rl:{k1}:tokens") == before  # not sent on its own
    second = await admit(limits, 100, clock)
    assert next(s for s in second.states if s.name == "tokens").remaining == 800
    await limits_settle(limits, second, tokens_used=0, cost_usd=Decimal(0), clock=clock)
    await limits_flush()
    assert float(redis_client.get("sy:rl:{k1}:tokens")) == pytest.approx((T0 + 6.0) * 1000)

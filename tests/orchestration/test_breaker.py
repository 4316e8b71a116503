"""The circuit breaker's state machine, in Redis and in the process-local stand-in, with an injected clock."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connections

from orchestration.breaker import (
    BreakerPolicy,
    Breakers,
    BreakerView,
    breaker_force_open,
    breaker_key,
    breaker_mirror_flush,
    breaker_read,
    breaker_reset,
)
from orchestration.models import BreakerState, Provider
from tests.support import ROOT, child_env

POLICY = BreakerPolicy(window=10, failure_rate=0.5, open_s=30.0)
DEAD_REDIS = "redis://127.0.0.1:1/0"


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["redis", "local"])
async def breakers(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Breakers]:
    """The same rules must hold in Redis and in the local stand-in used while Redis is down."""
    instance = Breakers(redis_url=settings.REDIS_URL if request.param == "redis" else DEAD_REDIS, clock=clock)
    yield instance
    await instance.aclose()


async def record(breakers: Breakers, outcomes: str, key: str = "sim") -> None:
    """Admit and record one call per character: "x" failed, "." succeeded."""
    for outcome in outcomes:
        admission = await breakers.acquire(key, "sim", POLICY)
        assert admission.allowed
        await breakers.record(key, "sim", POLICY, admission, failed=outcome == "x")


async def state(breakers: Breakers, key: str = "sim") -> str:
    return (await breakers.view(key, POLICY)).state


async def test_waiting_successes_are_counted_before_a_later_failure(breakers: Breakers) -> None:
    breakers.success_batch_s = 3600  # only a failure or flush() counts them
    for _ in range(5):
        assert (await breakers.acquire("sim", "sim", POLICY)).allowed
        breakers.record_success_soon("sim", "sim", POLICY)
    assert (await breakers.view("sim", POLICY)).window_calls == 0
    await record(breakers, "xxxx")
    assert (await breakers.view("sim", POLICY)).window_calls == 9
    await record(breakers, "x")  # the tenth call of the window: half of them failed
    assert await state(breakers) == "open"


async def test_flush_counts_the_waiting_successes_at_once(breakers: Breakers) -> None:
    breakers.success_batch_s = 3600
    for _ in range(3):
        breakers.record_success_soon("sim", "sim", POLICY)
    await breakers.flush()
    view = await breakers.view("sim", POLICY)
    assert (view.window_calls, view.failure_rate) == (3, 0.0)


async def test_waiting_successes_are_counted_after_the_batch_interval(breakers: Breakers) -> None:
    breakers.success_batch_s = 0.01
    breakers.record_success_soon("sim", "sim", POLICY)
    breakers.record_success_soon("sim", "sim", POLICY)
    for _ in range(200):
        if (await breakers.view("sim", POLICY)).window_calls == 2:
            break
        await asyncio.sleep(0.01)
    assert (await breakers.view("sim", POLICY)).window_calls == 2


async def test_it_opens_after_half_of_ten_calls_fail(breakers: Breakers) -> None:
    await record(breakers, "x.x.x.x.x")
    assert await state(breakers) == "closed"
    await record(breakers, ".")
    assert await state(breakers) == "open"


async def test_it_gives_no_verdict_before_ten_calls(breakers: Breakers) -> None:
    await record(breakers, "xxxxxxxxx")
    assert await state(breakers) == "closed"
    assert (await breakers.acquire("sim", "sim", POLICY)).allowed


async def test_it_stays_closed_while_fewer_than_half_of_the_last_ten_fail(breakers: Breakers) -> None:
    await record(breakers, "xxxx" + "." * 10 + "xxxx")
    view = await breakers.view("sim", POLICY)
    assert view.state == "closed"
    assert view.window_calls == 10
    assert view.failure_rate == pytest.approx(0.4)


async def test_it_rejects_calls_while_open_and_says_when_to_come_back(breakers: Breakers, clock: FakeClock) -> None:
    await record(breakers, "x" * 10)
    clock.advance(29.9)
    admission = await breakers.acquire("sim", "sim", POLICY)
    assert not admission.allowed
    assert admission.retry_at == pytest.approx(clock.now - 29.9 + 30.0)


async def test_after_the_open_period_exactly_one_of_many_concurrent_callers_gets_the_probe(
    breakers: Breakers, clock: FakeClock
) -> None:
    await record(breakers, "x" * 10)
    clock.advance(30.0)
    admissions = await asyncio.gather(*(breakers.acquire("sim", "sim", POLICY) for _ in range(25)))
    probes = [admission for admission in admissions if admission.allowed]
    assert len(probes) == 1
    assert probes[0].probe_token
    assert await state(breakers) == "half_open"


async def test_a_successful_probe_closes_the_breaker_and_empties_the_window(
    breakers: Breakers, clock: FakeClock
) -> None:
    await record(breakers, "x" * 10)
    clock.advance(30.0)
    probe = await breakers.acquire("sim", "sim", POLICY)
    await breakers.record("sim", "sim", POLICY, probe, failed=False)
    view = await breakers.view("sim", POLICY)
    assert (view.state, view.window_calls) == ("closed", 0)
    await record(breakers, "x" * 9)
    assert await state(breakers) == "closed"


async def test_a_failed_probe_reopens_the_breaker_for_another_open_period(breakers: Breakers, clock: FakeClock) -> None:
    await record(breakers, "x" * 10)
    clock.advance(31.0)
    probe = await breakers.acquire("sim", "sim", POLICY)
    await breakers.record("sim", "sim", POLICY, probe, failed=True)
    assert await state(breakers) == "open"
    clock.advance(29.0)
    assert not (await breakers.acquire("sim", "sim", POLICY)).allowed
    clock.advance(1.0)
    assert (await breakers.acquire("sim", "sim", POLICY)).probe_token


async def test_outcomes_of_calls_admitted_before_the_breaker_opened_do_not_close_it(
    breakers: Breakers, clock: FakeClock
) -> None:
    early = await breakers.acquire("sim", "sim", POLICY)
    await record(breakers, "x" * 10)
    clock.advance(30.0)
    await breakers.acquire("sim", "sim", POLICY)  # the probe, still out
    await breakers.record("sim", "sim", POLICY, early, failed=False)
    assert await state(breakers) == "half_open"


async def test_a_released_probe_lets_the_next_caller_probe(breakers: Breakers, clock: FakeClock) -> None:
    await record(breakers, "x" * 10)
    clock.advance(30.0)
    probe = await breakers.acquire("sim", "sim", POLICY)
    assert not (await breakers.acquire("sim", "sim", POLICY)).allowed
    await breakers.release("sim", probe)
    assert (await breakers.acquire("sim", "sim", POLICY)).probe_token


async def test_a_probe_whose_caller_vanished_frees_itself_after_its_lease(breakers: Breakers, clock: FakeClock) -> None:
    await record(breakers, "x" * 10)
    clock.advance(30.0)
    await breakers.acquire("sim", "sim", POLICY)
    clock.advance(POLICY.probe_lease_s)
    assert (await breakers.acquire("sim", "sim", POLICY)).probe_token


async def test_breakers_with_different_keys_are_independent(breakers: Breakers) -> None:
    await record(breakers, "x" * 10, key="sim:model-a")
    assert await state(breakers, "sim:model-a") == "open"
    assert await state(breakers, "sim:model-b") == "closed"


def test_a_provider_can_have_one_breaker_per_model() -> None:
    from dataclasses import replace

    from tests.orchestration.harness import PROVIDER, route

    assert breaker_key(route(upstream="gpt-x"), PROVIDER) == "p"
    assert breaker_key(route(upstream="gpt-x"), replace(PROVIDER, breaker_per_model=True)) == "p:gpt-x"


async def test_with_redis_down_the_local_breaker_still_opens_and_calls_still_flow(clock: FakeClock) -> None:
    breakers = Breakers(redis_url=DEAD_REDIS, clock=clock)
    assert (await breakers.acquire("sim", "sim", POLICY)).allowed
    await record(breakers, "x" * 10)
    assert not (await breakers.acquire("sim", "sim", POLICY)).allowed
    assert breakers.local.view("sim", POLICY).state == "open"


async def test_transitions_are_reported_once_each(clock: FakeClock) -> None:
    seen: list[tuple[str, str]] = []
    breakers = Breakers(clock=clock, on_transition=lambda key, provider, view: seen.append((key, view.state)))
    await record(breakers, "x" * 10)
    assert not (await breakers.acquire("sim", "sim", POLICY)).allowed
    clock.advance(30.0)
    probe = await breakers.acquire("sim", "sim", POLICY)
    await breakers.record("sim", "sim", POLICY, probe, failed=False)
    await breakers.aclose()
    assert seen == [("sim", "open"), ("sim", "half_open"), ("sim", "closed")]


_OTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, os, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    from orchestration.breaker import Breakers, BreakerPolicy

    async def main():
        breakers = Breakers()
        policy = BreakerPolicy()
        for _ in range(10):
            admission = await breakers.acquire("shared", "shared", policy)
            await breakers.record("shared", "shared", policy, admission, failed=True)
        await breakers.aclose()

    asyncio.run(main())
    """
)


def test_failures_seen_by_another_process_open_the_breaker_here() -> None:
    env = child_env(REDIS_URL=settings.REDIS_URL, DEBUG="1")
    done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()

    async def admitted_here() -> bool:
        breakers = Breakers()
        admission = await breakers.acquire("shared", "shared", BreakerPolicy())
        await breakers.aclose()
        return admission.allowed

    assert not asyncio.run(admitted_here())


async def test_an_opening_by_another_process_reaches_this_one_within_the_closed_cache_time() -> None:
    breakers = Breakers(closed_cache_s=0.2)
    assert (await breakers.acquire("sim", "sim", POLICY)).allowed
    breaker_force_open("sim")  # as the admin, or another process, would
    assert (await breakers.acquire("sim", "sim", POLICY)).allowed  # still trusting the recent "closed"
    await asyncio.sleep(0.25)
    assert not (await breakers.acquire("sim", "sim", POLICY)).allowed
    await breakers.aclose()


def _scripts_run() -> int:
    """Lua scripts this Redis has run so far (each breaker question is one)."""
    stats = redis.Redis.from_url(settings.REDIS_URL).info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha"))


async def test_calls_arriving_together_at_a_closed_breaker_ask_redis_once() -> None:
    breakers = Breakers()
    before = _scripts_run()
    admissions = await asyncio.gather(*(breakers.acquire("sim", "sim", POLICY) for _ in range(50)))
    asked = _scripts_run() - before
    await breakers.aclose()
    assert all(admission.allowed for admission in admissions)
    assert asked <= 2  # one question (and its script load, the first time); it was 50


async def test_calls_arriving_together_at_an_open_breaker_are_each_refused(clock: FakeClock) -> None:
    breakers = Breakers(clock=clock)
    breaker_force_open("sim", now=clock.now)
    admissions = await asyncio.gather(*(breakers.acquire("sim", "sim", POLICY) for _ in range(10)))
    await breakers.aclose()
    assert not any(admission.allowed for admission in admissions)


def test_admin_reset_and_force_open_change_the_shared_state() -> None:
    breaker_force_open("sim", now=1_000.0)
    view = breaker_read("sim", 30.0)
    assert view is not None
    assert (view.state, view.opened_at, view.next_probe_at) == ("open", 1_000.0, 1_030.0)
    breaker_reset("sim")
    assert breaker_read("sim", 30.0) == BreakerView("sim", "closed", 0.0, 0, None, None)


@pytest.mark.django_db(transaction=True)
async def test_each_transition_is_mirrored_into_the_breaker_state_row(clock: FakeClock) -> None:
    from asgiref.sync import sync_to_async

    from orchestration.orchestrator import _breaker_transitioned

    await sync_to_async(Provider.objects.create)(name="sim", kind="simulator")
    breakers = Breakers(clock=clock, on_transition=_breaker_transitioned)
    await record(breakers, "x" * 10)
    await breakers.aclose()
    await asyncio.to_thread(breaker_mirror_flush)
    row: Any = await sync_to_async(BreakerState.objects.get)(key="sim")
    await sync_to_async(connections.close_all)()
    assert row.state == "open"
    assert row.failure_rate == 1.0
    assert row.opened_at.timestamp() == pytest.approx(clock.now)
    assert row.next_probe_at.timestamp() == pytest.approx(clock.now + 30.0)

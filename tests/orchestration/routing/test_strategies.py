"""Routing across deployments against the real simulator: weights, least-busy, latency, quotas
and breakers. The routing RNG is seeded and clocks are injected, so nothing here is left to luck."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from orchestration.breaker import breaker_force_open
from orchestration.models import Deployment, LanguageModel, RequestLog
from orchestration.orchestrator import Orchestrator
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from orchestration.telemetry.exposition import breakers_now
from orchestration.types import OrchestrationError
from tests.conftest import Simulator
from tests.orchestration.harness import FakeClock, ask, ctx
from tests.orchestration.test_metrics import exposition, sample

pytestmark = pytest.mark.django_db(transaction=True)


async def _served(router: Orchestrator, calls: int, model: str = "pool") -> Counter[str]:
    served: Counter[str] = Counter()
    for _ in range(calls):
        _, result = await router.complete(ask(model, max_tokens=5), ctx())
        served[result.deployment] += 1
    return served


@sync_to_async
def _strategy(name: str) -> None:
    LanguageModel.objects.filter(name="pool").update(routing_strategy=name)
    snapshot_invalidate()


async def test_two_deployments_weighted_80_20_split_a_thousand_calls_within_binomial_bounds(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator
) -> None:
    served = await _served(router, 1000)
    # Five standard deviations of Binomial(1000, 0.8): a correct router fails this once in ~3.5 million runs.
    bound = 5 * math.sqrt(1000 * 0.8 * 0.2)
    assert abs(served["east"] - 800) < bound, served
    assert served["east"] + served["west"] == 1000
    assert simulator.stats("pool-east")["completed"] == served["east"]
    assert simulator.stats("pool-west")["completed"] == served["west"]


async def test_least_busy_sends_fewer_calls_to_a_deployment_made_slow(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator
) -> None:
    await _strategy("least-busy")
    await sync_to_async(Deployment.objects.update)(weight=1)
    snapshot_invalidate()
    simulator.configure("pool-west", latency_ms=400)
    calls = []
    for _ in range(30):
        calls.append(asyncio.create_task(router.complete(ask("pool", max_tokens=5), ctx())))
        # Launch the calls over time (as clients arrive), so each sees the others in flight.
        await asyncio.sleep(0.02)
    served = Counter(result.deployment for _, result in await asyncio.gather(*calls))
    assert served["east"] + served["west"] == 30
    assert served["west"] <= 6 < 24 <= served["east"], served


async def test_latency_routing_moves_traffic_off_a_slow_deployment_and_back_after_it_recovers(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator, latency_clock: FakeClock
) -> None:
    await _strategy("latency")
    await sync_to_async(Deployment.objects.update)(weight=1)
    snapshot_invalidate()
    await _served(router, 4)  # both measured while healthy
    simulator.configure("pool-west", latency_ms=150)

    async def seconds(count: int) -> list[str]:
        served = []
        for _ in range(count):  # one call a second of injected time
            latency_clock.advance(1.0)
            _, result = await router.complete(ask("pool", max_tokens=5), ctx())
            served.append(result.deployment)
        return served

    slow = Counter(await seconds(60))
    assert slow["west"] <= 8 and slow["east"] >= 52, slow
    simulator.configure("pool-west", latency_ms=0)
    recovered = await seconds(120)
    # Measured again within half a minute (its estimate goes stale), then, equally fast again, the
    # two share the traffic by weight: half each here, so about 45 of the last 90 calls.
    assert "west" in recovered[:31], recovered
    assert Counter(recovered[30:])["west"] >= 30, Counter(recovered[30:])


async def test_a_deployment_over_its_rpm_quota_is_skipped_without_a_failed_call(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator, quota_clock: FakeClock
) -> None:
    await _strategy("cost")
    await sync_to_async(Deployment.objects.filter(name="east").update)(rpm_limit=5, input_per_mtok=0, output_per_mtok=0)
    snapshot_invalidate()
    served = await _served(router, 8)
    assert served == Counter(east=5, west=3)
    assert simulator.stats("pool-east")["requests"] == 5
    quota_clock.advance(60.0)  # the next minute: the quota is back
    assert await _served(router, 1) == Counter(east=1)
    await asyncio.to_thread(requestlog_flush)
    statuses = await sync_to_async(lambda: set(RequestLog.objects.values_list("status", "attempts")))()
    assert statuses == {("ok", 1)}


async def test_when_every_deployment_is_at_its_quota_the_call_is_refused_with_retry_after(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator
) -> None:
    await sync_to_async(Deployment.objects.update)(rpm_limit=1)
    snapshot_invalidate()
    await _served(router, 2)
    with pytest.raises(OrchestrationError) as refused:
        await router.complete(ask("pool", max_tokens=5), ctx())
    assert (refused.value.status, refused.value.code) == (503, "upstream_unavailable")
    assert refused.value.retry_after == 30  # the quota clock stands half-way through its minute
    assert simulator.stats("pool-east")["requests"] + simulator.stats("pool-west")["requests"] == 2


async def test_a_failing_deployment_hands_over_to_the_other_then_its_breaker_opens_with_no_client_error(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator
) -> None:
    await sync_to_async(Deployment.objects.update)(weight=1)
    snapshot_invalidate()
    simulator.configure("pool-east", error_status=503)
    served = await _served(router, 60)
    assert served == Counter(west=60)  # every call answered, each by the healthy deployment
    # No retries on east while west was there, and after ten failures its breaker kept calls away.
    assert simulator.stats("pool-east")["requests"] == 10
    assert simulator.stats("pool-west")["completed"] == 60


async def test_an_open_breaker_on_one_deployment_leaves_the_other_deployments_breaker_alone(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator, breaker_clock: FakeClock
) -> None:
    await asyncio.to_thread(breaker_force_open, "acct-west:pool-west", breaker_clock())
    served = await _served(router, 20)
    assert served == Counter(east=20)
    assert simulator.stats("pool-west")["requests"] == 0
    # /metrics reports each deployment's breaker (llm_circuit_breaker_state).
    views = await sync_to_async(breakers_now)()
    assert views is not None
    assert (views["acct-west:pool-west"].state, views["acct-east:pool-east"].state) == ("open", "closed")


async def test_the_request_log_and_the_metrics_name_the_deployment_that_served(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator
) -> None:
    def counted() -> dict[str, float]:
        text = exposition()
        name = "llm_deployment_requests_total"
        return {
            deployment: sample(
                text, name, model="pool", deployment=deployment, provider=f"acct-{deployment}", status="ok"
            )
            for deployment in ("east", "west")
        }

    before = counted()
    served = await _served(router, 10)
    await asyncio.to_thread(requestlog_flush)
    logged = await sync_to_async(lambda: Counter(RequestLog.objects.values_list("deployment", flat=True)))()
    assert logged == served
    after = counted()
    assert {deployment: after[deployment] - before[deployment] for deployment in after} == {
        "east": served["east"],
        "west": served["west"],
    }


async def test_a_deployment_over_its_tpm_quota_is_skipped_until_the_next_minute(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator, quota_clock: FakeClock
) -> None:
    await _strategy("cost")
    await sync_to_async(Deployment.objects.filter(name="east").update)(tpm_limit=1, input_per_mtok=0, output_per_mtok=0)
    snapshot_invalidate()
    assert await _served(router, 4) == Counter(east=1, west=3)  # the first call's tokens used the minute's quota
    quota_clock.advance(60.0)
    assert await _served(router, 1) == Counter(east=1)


async def test_streams_count_in_flight_until_they_end_and_fail_over_before_their_first_chunk(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator, redis_client: Any
) -> None:
    await _strategy("least-busy")
    simulator.configure("pool-east", error_status=503)
    for _ in range(6):
        stream = router.stream(ask("pool", max_tokens=5), ctx())
        chunks = [chunk async for chunk in stream]
        assert chunks and stream.served.deployment == "west"
    counts = {key.decode(): int(redis_client.get(key)) for key in redis_client.scan_iter("sw:route:inflight:*")}
    assert counts and set(counts.values()) == {0}, counts

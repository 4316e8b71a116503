"""The Orchestrator against the real simulator: routing, cost, fallbacks, breakers, streams, the log."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from orchestration.breaker import Breakers
from orchestration.models import LanguageModel, RequestLog
from orchestration.orchestrator import Orchestrator
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from orchestration.types import EmbeddingRequest, OrchestrationError
from tests.conftest import Simulator
from tests.orchestration.harness import FakeClock, RecordingSleep, add_fallbacks, add_model, ask, ctx

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_routes_the_public_name_to_the_upstream_model_and_prices_the_reply(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    response, served = await orchestrator.complete(ask("big", max_tokens=20), ctx())
    assert response.model == "big" and response.content
    assert (served.model, served.provider, served.simulated, served.attempts) == ("big", "primary", True, 1)
    assert simulator.stats("big")["completed"] == 1
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert served.cost_usd == (Decimal(3) * usage.input_tokens + Decimal(15) * usage.output_tokens) / 1_000_000


async def test_an_unknown_model_is_model_not_found(orchestrator: Orchestrator, registry: Any) -> None:
    with pytest.raises(OrchestrationError) as raised:
        await orchestrator.complete(ask("no-such-model"), ctx())
    assert (raised.value.code, raised.value.status) == ("model_not_found", 404)


async def test_a_failing_model_is_retried_then_the_next_model_of_its_chain_serves(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, recorded_sleep: RecordingSleep
) -> None:
    simulator.configure("big", error_status=503)
    _, served = await orchestrator.complete(ask("big"), ctx())
    assert (served.model, served.provider, served.attempts) == ("small", "backup", 4)
    assert [(h.reason, h.from_model, h.to_model) for h in served.fallbacks] == [("server", "big", "small")]
    assert served.fallback_from == "big"
    assert simulator.stats("big")["requests"] == 3
    assert recorded_sleep.waits == [pytest.approx(1.0), pytest.approx(3.0)]


async def test_context_window_errors_skip_to_a_model_with_a_larger_window(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    tiny = await add_model("tiny", registry["backup"], context_window=4_000)
    huge = await add_model("huge", registry["backup"], context_window=200_000)
    await add_fallbacks(registry["small"], tiny, huge)
    simulator.configure("small", error_kind="context_window")
    _, served = await orchestrator.complete(ask("small"), ctx())
    assert served.model == "huge"
    assert [(h.reason, h.to_model) for h in served.fallbacks] == [("context_window", "huge")]
    assert simulator.stats("tiny")["requests"] == 0
    assert simulator.stats("small")["requests"] == 1


async def test_without_a_larger_model_a_context_window_error_reaches_the_caller(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("small", error_kind="context_window")
    with pytest.raises(OrchestrationError) as raised:
        await orchestrator.complete(ask("small"), ctx())
    assert (raised.value.code, raised.value.status) == ("context_length_exceeded", 400)


async def test_content_policy_errors_go_to_the_configured_model(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    lenient = await add_model("lenient", registry["backup"])
    await LanguageModel.objects.filter(pk=registry["big"].pk).aupdate(content_policy_fallback=lenient)
    snapshot_invalidate()
    simulator.configure("big", error_kind="content_policy")
    _, served = await orchestrator.complete(ask("big"), ctx())
    assert served.model == "lenient"
    assert [(h.reason, h.to_model) for h in served.fallbacks] == [("content_policy", "lenient")]
    assert simulator.stats("small")["requests"] == 0


async def test_a_bad_request_is_neither_retried_nor_sent_elsewhere(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("big", error_status=400)
    with pytest.raises(OrchestrationError) as raised:
        await orchestrator.complete(ask("big"), ctx())
    assert (raised.value.code, raised.value.status) == ("invalid_request", 400)
    assert simulator.stats("big")["requests"] == 1
    assert simulator.stats("small")["requests"] == 0


async def test_chaos_primary_down_fallback_serves_breaker_limits_calls_then_traffic_returns(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, breaker_clock: FakeClock
) -> None:
    simulator.configure("big", error_status=500)
    for number in range(50):
        _, served = await orchestrator.complete(ask("big", f"question {number}", max_tokens=8), ctx())
        assert served.model == "small"
    assert simulator.stats("big")["requests"] == 10
    assert simulator.stats("small")["completed"] == 50

    breaker_clock.advance(30.0)  # open period over: one probe, which fails and re-opens
    _, served = await orchestrator.complete(ask("big", max_tokens=8), ctx())
    assert served.model == "small"
    assert simulator.stats("big")["requests"] == 11

    simulator.configure("big", error_status=None)
    breaker_clock.advance(30.0)  # recovered: the probe succeeds and closes the breaker
    for _ in range(5):
        _, served = await orchestrator.complete(ask("big", max_tokens=8), ctx())
        assert (served.model, served.fallbacks) == ("big", [])
    assert simulator.stats("big")["requests"] == 16  # 11 failed calls, then these 5


async def test_when_every_model_fails_the_caller_gets_503_retry_after_the_first_breaker_half_opens(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, breaker_clock: FakeClock
) -> None:
    simulator.configure("*", error_status=500)
    for _ in range(4):
        with pytest.raises(OrchestrationError):
            await orchestrator.complete(ask("big"), ctx())
    breaker_clock.advance(12.0)
    with pytest.raises(OrchestrationError) as raised:
        await orchestrator.complete(ask("big"), ctx())
    error = raised.value
    assert (error.code, error.status) == ("upstream_unavailable", 503)
    assert error.retry_after is not None and 1 <= error.retry_after <= 18


async def test_with_redis_down_the_local_breaker_takes_over_and_requests_flow(
    registry: Any, simulator: Simulator, recorded_sleep: RecordingSleep
) -> None:
    orchestrator = Orchestrator(breakers=Breakers(redis_url="redis://127.0.0.1:1/0"), sleep=recorded_sleep)
    _, served = await orchestrator.complete(ask("big"), ctx())
    assert served.model == "big"
    simulator.configure("big", error_status=500)
    for _ in range(6):
        _, served = await orchestrator.complete(ask("big"), ctx())
        assert served.model == "small"
    assert orchestrator.breakers.local.view("primary", _policy()).state == "open"


def _policy() -> Any:
    from orchestration.breaker import BreakerPolicy

    return BreakerPolicy()


async def test_a_stream_failing_before_its_first_chunk_falls_back_transparently(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("big", error_status=502)
    stream = orchestrator.stream(ask("big", max_tokens=12), ctx())
    chunks = [chunk async for chunk in stream]
    assert "".join(chunk.delta for chunk in chunks)
    assert chunks[-1].finish_reason
    assert stream.served.model == "small"
    assert stream.served.fallback_from == "big"
    assert stream.served.usage.output_tokens > 0 and stream.served.cost_usd > 0
    assert stream.served.ttft_ms is not None


async def test_a_stream_whose_first_token_is_late_falls_back_at_the_first_token_limit(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, settings: Any
) -> None:
    # The adapter's own first-token limit ends the wait (every HTTP adapter bounds its reads).
    settings.SWITCHYARD = {**settings.SWITCHYARD, "STREAM_FIRST_TOKEN_S": 0.3}
    simulator.configure("big", ttft_ms=5000)
    started = asyncio.get_running_loop().time()
    stream = orchestrator.stream(ask("big", max_tokens=12), ctx())
    chunks = [chunk async for chunk in stream]
    assert stream.served.model == "small" and stream.served.fallback_from == "big"
    assert "".join(chunk.delta for chunk in chunks)
    assert asyncio.get_running_loop().time() - started < 4.0  # the retries of "big" are 0.3 s each, not 5


async def test_a_stream_failing_after_its_first_chunk_raises_instead_of_ending_quietly(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("big", drop_after_tokens=3)
    stream = orchestrator.stream(ask("big", max_tokens=30), ctx())
    received = []
    with pytest.raises(OrchestrationError) as raised:
        async for chunk in stream:
            received.append(chunk)
    assert received and not any(chunk.finish_reason for chunk in received)
    assert (raised.value.code, raised.value.status) == ("upstream_error", 502)
    assert simulator.stats("small")["requests"] == 0


async def test_closing_a_stream_early_closes_the_upstream_and_logs_the_call_as_cancelled(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("big", tokens_per_s=50)
    stream = orchestrator.stream(ask("big", max_tokens=200), ctx(request_id="early-close"))
    async for _ in stream:
        break
    await stream.aclose()
    for _ in range(100):
        if simulator.stats("big")["disconnects"]:
            break
        await asyncio.sleep(0.02)
    assert simulator.stats("big")["disconnects"] == 1
    assert await asyncio.to_thread(requestlog_flush)
    assert (await RequestLog.objects.aget(request_id="early-close")).status == "cancelled"


async def test_a_call_whose_cancellation_was_lost_on_the_way_makes_no_upstream_call(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    """A library below lost the cancellation of the task (Python 3.11's ``asyncio.wait_for`` does when
    it arrives as its awaitable finishes): the task runs on, still cancelling. Its call stops before
    it reaches the provider, and is logged as cancelled (orchestration/cancellation.py)."""

    async def cancelled_then_lost(request_id: str, streamed: bool) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            pass  # lost, as the library loses it: no uncancel()
        if streamed:
            await anext(aiter(orchestrator.stream(ask("big", max_tokens=200), ctx(request_id=request_id))))
        else:
            await orchestrator.complete(ask("big", max_tokens=200), ctx(request_id=request_id))

    for request_id, streamed in (("lost-stream", True), ("lost-complete", False)):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.create_task(cancelled_then_lost(request_id, streamed))
        assert simulator.stats("big")["requests"] == 0
        assert await asyncio.to_thread(requestlog_flush)
        assert (await RequestLog.objects.aget(request_id=request_id)).status == "cancelled"


async def test_a_stream_cut_short_is_charged_what_it_read_and_wrote(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    # The usage comes on the last chunk: a client that hung up before it paid nothing at all.
    simulator.configure("big", tokens_per_s=50, reply=" ".join(["word"] * 100))
    stream = orchestrator.stream(ask("big", max_tokens=200), ctx(request_id="cut-short"))
    received = []
    async for chunk in stream:
        received.append(chunk.delta)
        if len(received) == 5:
            break
    await stream.aclose()

    usage = stream.served.usage
    assert usage.input_tokens > 0 and usage.output_tokens >= len("".join(received)) // 4 > 0
    assert stream.served.cost_usd > 0
    assert await asyncio.to_thread(requestlog_flush)
    row = await RequestLog.objects.aget(request_id="cut-short")
    assert (row.status, row.output_tokens, row.cost_usd) == ("cancelled", usage.output_tokens, stream.served.cost_usd)
    assert row.usage_estimated and stream.served.usage_estimated


async def test_every_call_writes_one_request_log_row_whatever_its_outcome(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, alice: Any
) -> None:
    # Rows an earlier test queued in this process's writer land first, so that only this test's count.
    assert await asyncio.to_thread(requestlog_flush)
    await RequestLog.objects.all().adelete()
    await orchestrator.complete(ask("big"), ctx(request_id="log-ok", user_id=alice.pk, prompt_template="t"))
    simulator.configure("*", error_status=400)
    with pytest.raises(OrchestrationError):
        await orchestrator.complete(ask("big"), ctx(request_id="log-error"))
    assert await asyncio.to_thread(requestlog_flush)
    rows = {row.request_id: row async for row in RequestLog.objects.all()}
    assert set(rows) == {"log-ok", "log-error"}
    ok, failed = rows["log-ok"], rows["log-error"]
    assert (ok.status, ok.model_served, ok.provider_served, ok.user_id) == ("ok", "big", "primary", alice.pk)
    assert ok.cost_usd > 0 and ok.output_tokens > 0 and ok.latency_ms > 0 and ok.prompt_template == "t"
    assert (failed.status, failed.error_kind) == ("error", "invalid_request")


async def test_fallback_hops_are_in_the_request_log(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("big", error_status=401)
    await orchestrator.complete(ask("big"), ctx(request_id="hopped"))
    assert await asyncio.to_thread(requestlog_flush)
    row = await RequestLog.objects.aget(request_id="hopped")
    assert row.fallbacks == [{"reason": "auth", "from": "big", "to": "small"}]
    assert (row.model_requested, row.model_served, row.attempts) == ("big", "small", 2)


async def test_a_fallback_its_breaker_keeps_from_being_called_is_not_logged_as_serving(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("*", error_status=500)
    for _ in range(5):  # enough failures to open the backup's breaker
        with pytest.raises(OrchestrationError):
            await orchestrator.complete(ask("small"), ctx())
    called = simulator.stats("small")["requests"]
    with pytest.raises(OrchestrationError):
        await orchestrator.complete(ask("big"), ctx(request_id="stopped"))
    assert simulator.stats("small")["requests"] == called
    assert await asyncio.to_thread(requestlog_flush)
    row = await RequestLog.objects.aget(request_id="stopped")
    assert row.fallbacks == [{"reason": "server", "from": "big", "to": "small"}]
    assert (row.status, row.model_requested, row.model_served, row.provider_served) == (
        "error",
        "big",
        "big",
        "primary",
    )


async def test_embeddings_go_through_the_orchestrator(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    await add_model("embed", registry["backup"], capabilities=["embeddings"])
    response, served = await orchestrator.embed(EmbeddingRequest(model="embed", inputs=["a", "b"]), ctx())
    assert len(response.vectors) == 2 and response.model == "embed"
    assert served.model == "embed"


# --- with the response cache ----------------------------------------------------------------


async def test_a_repeated_temperature_0_request_is_answered_from_the_cache_for_free(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    first, served = await orchestrator.complete(ask("big", temperature=0), ctx(cache_control="default"))
    assert served.cache == "MISS"
    again, served = await orchestrator.complete(ask("big", temperature=0), ctx(cache_control="default"))
    assert (served.cache, served.cost_usd, again.content) == ("HIT", Decimal("0"), first.content)
    assert simulator.stats("big")["requests"] == 1


async def test_a_cached_answer_to_a_streaming_request_is_streamed(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    first = orchestrator.stream(ask("big", temperature=0), ctx(cache_control="default"))
    live = "".join([chunk.delta async for chunk in first])
    again = orchestrator.stream(ask("big", temperature=0), ctx(cache_control="default"))
    chunks = [chunk async for chunk in again]
    assert "".join(chunk.delta for chunk in chunks) == live
    assert chunks[-1].finish_reason == "stop"
    assert (first.served.cache, again.served.cache) == ("MISS", "HIT")
    assert simulator.stats("big")["requests"] == 1


async def test_a_request_the_cache_cannot_take_says_bypass(orchestrator: Orchestrator, registry: Any) -> None:
    _, served = await orchestrator.complete(ask("big", temperature=0.7), ctx(cache_control="default"))
    assert served.cache == "BYPASS"
    _, served = await orchestrator.complete(ask("big", temperature=0), ctx(cache_control="no-store"))
    assert served.cache == "BYPASS"


async def test_when_every_provider_fails_an_expired_cached_answer_serves_marked_stale(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    await LanguageModel.objects.filter(name="big").aupdate(cache_exact_ttl_s=1)
    snapshot_invalidate()
    fresh, _ = await orchestrator.complete(ask("big", temperature=0), ctx(cache_control="default"))
    await asyncio.sleep(1.1)
    simulator.configure("*", error_status=500)
    answer, served = await orchestrator.complete(ask("big", temperature=0), ctx(cache_control="default"))
    assert (answer.content, served.cache) == (fresh.content, "STALE")
    assert [(hop.from_model, hop.to_model) for hop in served.fallbacks] == [("big", "small"), ("small", "cache")]

"""The exact cache: its key, what it stores and serves, expiry, opt-outs, Redis failures, the admin index."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from orchestration.caching.exact import (
    REDIS_RETRY_S,
    CachedAnswer,
    ResponseCache,
    cache_index_flush,
    cache_purge_all,
    cache_purge_entries,
    cache_purge_model,
    cache_status_on_miss,
    chunks_from_response,
    exact_key,
    exact_redis_key,
    response_from_chunks,
    store_applies,
)
from orchestration.models import CacheEntry
from orchestration.orchestrator import CallContext
from orchestration.types import ChatRequest, ChatResponse, Chunk, Message, ToolCall, Usage
from tests.orchestration.harness import FakeClock, route

TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}}}


def ask(text: str = "What is the capital of France?", **fields: Any) -> ChatRequest:
    fields.setdefault("temperature", 0)
    return ChatRequest(model="m", messages=[Message(role="user", content=text)], **fields)


def answer(content: str | None = "Paris.", **fields: Any) -> ChatResponse:
    return ChatResponse(id="r-1", model="m", content=content, usage=Usage(12, 3), **fields)


def ctx(cache_control: str = "default") -> CallContext:
    return CallContext(endpoint="completion", cache_control=cache_control)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def cache(transactional_db: None, clock: FakeClock) -> Any:
    instance = ResponseCache(clock=clock, stale_grace_s=600)
    yield instance
    await instance.aclose()
    # The index rows of this test land before its database is emptied, not in the next test's.
    await asyncio.to_thread(cache_index_flush)


# --- the key -----------------------------------------------------------------------------------


def test_the_key_ignores_the_order_of_parameters_and_how_numbers_are_written() -> None:
    schema_a = {"type": "function", "function": {"parameters": {"properties": {}, "type": "object"}, "name": "weather"}}
    one = ask(tools=[TOOL], temperature=0, top_p=1, response_format={"type": "json_object", "strict": True})
    two = ask(tools=[schema_a], temperature=0.0, top_p=1.0, response_format={"strict": True, "type": "json_object"})
    assert exact_key(one, route()) == exact_key(two, route())


def test_every_generation_parameter_and_message_detail_changes_the_key() -> None:
    base = ask()
    variants = [
        replace(base, temperature=0.5),
        replace(base, top_p=0.9),
        replace(base, max_tokens=10),
        replace(base, stop=["\n"]),
        replace(base, tools=[TOOL]),
        replace(base, tool_choice="none"),
        replace(base, response_format={"type": "json_object"}),
        replace(base, seed=7),
        replace(base, presence_penalty=0.1),
        replace(base, frequency_penalty=0.1),
        replace(base, messages=[Message(role="user", content="What is the capital of France")]),
        replace(base, messages=[Message(role="system", content="What is the capital of France?")]),
        replace(base, messages=[Message(role="user", content="What is the capital of France?", name="bob")]),
        replace(
            base,
            messages=[
                Message(role="assistant", tool_calls=[ToolCall(id="call_1", name="weather", arguments="{}")]),
                Message(role="tool", tool_call_id="call_1", content="sunny"),
            ],
        ),
        replace(
            base,
            messages=[
                Message(role="assistant", tool_calls=[ToolCall(id="call_2", name="weather", arguments="{}")]),
                Message(role="tool", tool_call_id="call_2", content="sunny"),
            ],
        ),
    ]
    keys = {exact_key(base, route())} | {exact_key(v, route()) for v in variants}
    assert len(keys) == len(variants) + 1
    assert exact_key(base, route(name="other")) != exact_key(base, route())


def test_the_end_user_id_does_not_change_the_key() -> None:
    assert exact_key(ask(user="alice"), route()) == exact_key(ask(user="bob"), route())


# --- what is stored and served -----------------------------------------------------------------


async def test_a_temperature_zero_answer_is_served_again_as_a_hit(cache: ResponseCache) -> None:
    assert await cache.lookup(ask(), route(), ctx()) is None
    await cache.store(ask(), route(), answer(), ctx())
    cached = await cache.lookup(ask(), route(), ctx())
    assert isinstance(cached, CachedAnswer)
    assert cached.status == "HIT"
    assert cached.response.content == "Paris."
    assert cached.response.usage == Usage(12, 3)


@pytest.mark.parametrize("temperature", [None, 0.7, 1])
async def test_only_temperature_zero_is_cached(cache: ResponseCache, temperature: float | None) -> None:
    await cache.store(ask(temperature=temperature), route(), answer(), ctx())
    assert await cache.lookup(ask(temperature=temperature), route(), ctx()) is None
    assert cache_status_on_miss(ask(temperature=temperature), route(), ctx()) == "BYPASS"
    assert cache_status_on_miss(ask(), route(), ctx()) == "MISS"


async def test_a_model_with_the_exact_cache_off_stores_nothing(cache: ResponseCache, redis_client: Any) -> None:
    await cache.store(ask(), route(cache_exact_enabled=False), answer(), ctx())
    assert await cache.lookup(ask(), route(cache_exact_enabled=False), ctx()) is None
    assert redis_client.keys("sy:cache:*") == []


@pytest.mark.parametrize(
    "response",
    [
        answer(finish_reason="length"),
        answer(finish_reason="content_filter"),
        answer(content=None, finish_reason="tool_calls", tool_calls=[ToolCall("call_1", "weather", "{}")]),
        answer(content="   "),
    ],
    ids=["truncated", "filtered", "tool-call-turn", "empty"],
)
async def test_incomplete_answers_and_tool_call_turns_are_never_stored(
    cache: ResponseCache, redis_client: Any, response: ChatResponse
) -> None:
    await cache.store(ask(), route(), response, ctx())
    assert await cache.lookup(ask(), route(), ctx()) is None
    assert redis_client.keys("sy:cache:*") == []


async def test_an_answer_to_a_tool_result_is_never_stored(cache: ResponseCache, redis_client: Any) -> None:
    request = ask()
    request.messages += [
        Message(role="assistant", tool_calls=[ToolCall("call_1", "weather", "{}")]),
        Message(role="tool", tool_call_id="call_1", content="sunny, 21 C"),
    ]
    await cache.store(request, route(), answer("It is sunny."), ctx())
    assert await cache.lookup(request, route(), ctx()) is None
    assert redis_client.keys("sy:cache:*") == []


async def test_no_cache_reads_fresh_and_refreshes_the_entry(cache: ResponseCache) -> None:
    await cache.store(ask(), route(), answer("Old."), ctx())
    assert await cache.lookup(ask(), route(), ctx("no-cache")) is None
    await cache.store(ask(), route(), answer("New."), ctx("no-cache"))
    cached = await cache.lookup(ask(), route(), ctx())
    assert cached is not None and cached.response.content == "New."


async def test_no_store_neither_reads_nor_writes(cache: ResponseCache, redis_client: Any) -> None:
    await cache.store(ask(), route(), answer(), ctx("no-store"))
    assert redis_client.keys("sy:cache:*") == []
    await cache.store(ask(), route(), answer(), ctx())
    assert await cache.lookup(ask(), route(), ctx("no-store")) is None
    assert await cache.lookup_stale(ask(), route(), ctx("no-store")) is None
    assert cache_status_on_miss(ask(), route(), ctx("no-store")) == "BYPASS"


# --- expiry and the stale fallback --------------------------------------------------------------


async def test_an_entry_expires_after_the_models_ttl(cache: ResponseCache, clock: FakeClock) -> None:
    short = route(cache_exact_ttl_s=60)
    await cache.store(ask(), short, answer(), ctx())
    clock.advance(59)
    assert await cache.lookup(ask(), short, ctx()) is not None
    clock.advance(2)
    assert await cache.lookup(ask(), short, ctx()) is None


async def test_an_expired_entry_serves_as_stale_within_the_grace_period(cache: ResponseCache, clock: FakeClock) -> None:
    short = route(cache_exact_ttl_s=60)
    await cache.store(ask(), short, answer(), ctx())
    clock.advance(61)
    stale = await cache.lookup_stale(ask(), short, ctx())
    assert stale is not None and stale.status == "STALE" and stale.response.content == "Paris."
    assert await cache.lookup_stale(ask(), short, ctx("no-cache")) is None


async def test_redis_keeps_an_entry_for_its_ttl_plus_the_grace_period(cache: ResponseCache, redis_client: Any) -> None:
    await cache.store(ask(), route(cache_exact_ttl_s=60), answer(), ctx())
    ttl = redis_client.ttl(exact_redis_key("m", exact_key(ask(), route())))
    assert 600 < ttl <= 660


async def test_a_fresh_entry_found_by_the_stale_lookup_is_a_plain_hit(cache: ResponseCache) -> None:
    await cache.store(ask(), route(), answer(), ctx())
    found = await cache.lookup_stale(ask(), route(), ctx())
    assert found is not None and found.status == "HIT"


# --- Redis down ---------------------------------------------------------------------------------


async def test_without_redis_the_cache_steps_aside_and_stops_trying_for_a_while(transactional_db: None) -> None:
    cache = ResponseCache(redis_url="redis://127.0.0.1:9/0")
    started = time.monotonic()
    await cache.store(ask(), route(), answer(), ctx())
    assert await cache.lookup(ask(), route(), ctx()) is None
    assert await cache.lookup_stale(ask(), route(), ctx()) is None
    assert time.monotonic() - started < REDIS_RETRY_S
    assert cache._redis_down_until > time.monotonic()
    await cache.aclose()


# --- streams ------------------------------------------------------------------------------------


def test_a_cached_answer_becomes_stream_chunks_and_back() -> None:
    response = answer("The capital of France is Paris, on the Seine.")
    chunks = chunks_from_response(response)
    assert len(chunks) > 3
    assert all(chunk.finish_reason is None for chunk in chunks[:-1])
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage == Usage(12, 3)
    assert "".join(chunk.delta for chunk in chunks) == response.content
    assert response_from_chunks(chunks, response_id="r-1", model="m") == response


def test_a_stream_that_never_finished_yields_nothing_to_store() -> None:
    assert response_from_chunks([Chunk(delta="The capital"), Chunk(delta=" is")], response_id="r", model="m") is None


def test_a_stream_keeps_its_chunks_only_when_its_answer_could_be_stored() -> None:
    exact, semantic = route(cache_exact_enabled=True), route(cache_exact_enabled=False, cache_semantic=True)
    assert store_applies(ask(), exact)
    assert store_applies(ask(temperature=0.7), semantic)  # the semantic cache does not ask for temperature 0
    assert not store_applies(ask(temperature=0.7), exact)
    assert not store_applies(ask(), route(cache_exact_enabled=False, cache_semantic=False))
    assert not store_applies(ask(), route(cache_exact_enabled=True, cache_semantic=True, cache_exact_ttl_s=0))


# --- the admin index ----------------------------------------------------------------------------


async def test_stores_and_hits_reach_the_cache_entry_rows(cache: ResponseCache) -> None:
    await cache.store(ask(), route(), answer(), ctx())
    for _ in range(3):
        assert await cache.lookup(ask(), route(), ctx()) is not None
    assert await asyncio.to_thread(cache_index_flush)
    row = await CacheEntry.objects.aget(key=f"exact:{exact_key(ask(), route())}")
    assert (row.kind, row.model, row.hits) == ("exact", "m", 3)
    assert row.question_preview == "What is the capital of France?" and row.answer_preview == "Paris."
    assert row.expires_at is not None


async def test_purges_remove_answers_from_redis_and_rows(cache: ResponseCache, redis_client: Any) -> None:
    for model, text in (("m", "one?"), ("m", "two?"), ("other", "three?")):
        await cache.store(ask(text), route(name=model), answer(), ctx())
    await asyncio.to_thread(cache_index_flush)

    assert await sync_to_async(cache_purge_entries)([(f"exact:{exact_key(ask('one?'), route())}", "m")]) == 1
    assert await cache.lookup(ask("one?"), route(), ctx()) is None
    assert await cache.lookup(ask("two?"), route(), ctx()) is not None

    assert await sync_to_async(cache_purge_model)("m") == 1
    assert await cache.lookup(ask("two?"), route(), ctx()) is None
    assert await cache.lookup(ask("three?"), route(name="other"), ctx()) is not None

    assert await sync_to_async(cache_purge_all)() == 1
    assert redis_client.keys("sy:cache:*") == []
    assert await CacheEntry.objects.acount() == 0


def test_a_model_without_the_semantic_cache_never_loads_numpy() -> None:
    # numpy and the BLAS pool add about 11 MB to a web process: only semantic-cache models pay for them.
    probe = (
        "import sys, django; django.setup()\n"
        "from orchestration.caching.exact import cache_status_on_miss\n"
        "from orchestration.orchestrator import CallContext\n"
        "from tests.orchestration.test_cache import ask, route\n"
        "ctx = CallContext(endpoint='completion')\n"
        "status = cache_status_on_miss(ask(temperature=0.7), route(cache_semantic=False), ctx)\n"
        "print(status, 'numpy' in sys.modules)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "DEBUG": "1"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["BYPASS", "False"], done.stderr

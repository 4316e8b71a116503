"""Both caches through ``POST /v1/chat/completions``, the Orchestrator and the real simulator."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from orchestration.caching.exact import cache_index_flush
from orchestration.models import CacheEntry
from tests.conftest import Simulator
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    chat_body,
    make_key,
    post_json,
    sse_events,
)
from tests.orchestration.harness import model_row, provider_row

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/chat/completions"


@pytest.fixture
async def models(transactional_db: None, simulator: Simulator) -> AsyncIterator[None]:
    """``cached-sim`` (exact cache on, as by default) and ``faq-sim`` (semantic cache on too)."""

    def create() -> None:
        provider = provider_row("sim", simulator.url)
        model_row("cached-sim", provider)
        model_row("faq-sim", provider, cache_semantic=True)

    await sync_to_async(create)()
    yield
    # The index rows are written by a background thread: let it finish while the database is open.
    await asyncio.to_thread(cache_index_flush)


async def ask(secret: str, text: str, model: str = "cached-sim", **fields: Any) -> Any:
    headers = fields.pop("headers", {})
    body = chat_body(model, text, **fields)
    return await post_json(AsyncClient(), URL, body, secret, **headers)


async def streamed_events(response: Any) -> list[Any]:
    content = b"".join([part async for part in response.streaming_content])
    return [event for event in sse_events(content) if event != "[DONE]"]


async def streamed_text(response: Any) -> str:
    events = await streamed_events(response)
    return "".join(choice["delta"].get("content") or "" for event in events for choice in event.get("choices", []))


async def test_a_repeated_temperature_0_request_makes_no_second_upstream_call(
    models: None, make_key: Any, simulator: Simulator
) -> None:
    secret = await sync_to_async(make_key)()
    first = await ask(secret, "What is the capital of France?", temperature=0)
    again = await ask(secret, "What is the capital of France?", temperature=0)
    assert (first["X-Cache"], again["X-Cache"]) == ("MISS", "HIT")
    assert again.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    assert simulator.stats("cached-sim")["requests"] == 1
    await asyncio.to_thread(cache_index_flush)
    assert (await CacheEntry.objects.aget(model="cached-sim")).hits == 1


async def test_a_cached_answer_to_a_streaming_request_streams(
    models: None, make_key: Any, simulator: Simulator
) -> None:
    secret = await sync_to_async(make_key)()
    first = await ask(secret, "Name three rivers.", temperature=0)
    streamed = await ask(secret, "Name three rivers.", temperature=0, stream=True)
    assert streamed["X-Cache"] == "HIT"
    assert streamed["Content-Type"].startswith("text/event-stream")
    assert await streamed_text(streamed) == first.json()["choices"][0]["message"]["content"]
    assert simulator.stats("cached-sim")["requests"] == 1


async def test_a_streamed_cached_answer_reports_the_usage_the_unstreamed_one_does(
    models: None, make_key: Any, simulator: Simulator
) -> None:
    secret = await sync_to_async(make_key)()
    first = await ask(secret, "Name three lakes.", temperature=0)
    again = await ask(secret, "Name three lakes.", temperature=0)
    streamed = await ask(
        secret, "Name three lakes.", temperature=0, stream=True, stream_options={"include_usage": True}
    )
    assert (again["X-Cache"], streamed["X-Cache"]) == ("HIT", "HIT")
    usage = (await streamed_events(streamed))[-1]["usage"]
    assert usage == again.json()["usage"] == first.json()["usage"]
    assert usage["completion_tokens"] > 0


async def test_a_streamed_cached_text_completion_reports_its_usage(
    models: None, make_key: Any, simulator: Simulator
) -> None:
    secret = await sync_to_async(make_key)()
    body = {"model": "cached-sim", "prompt": "Name three hills.", "temperature": 0}
    first = await post_json(AsyncClient(), "/v1/completions", body, secret)
    streamed = await post_json(
        AsyncClient(), "/v1/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}, secret
    )
    assert streamed["X-Cache"] == "HIT"
    assert (await streamed_events(streamed))[-1]["usage"] == first.json()["usage"]


async def test_cache_control_headers_bypass_or_refresh_the_cache(
    models: None, make_key: Any, simulator: Simulator
) -> None:
    secret = await sync_to_async(make_key)()
    await ask(secret, "What is the capital of Peru?", temperature=0)
    no_store = await ask(secret, "What is the capital of Peru?", temperature=0, headers={"Cache-Control": "no-store"})
    assert no_store["X-Cache"] == "BYPASS"
    no_cache = await ask(secret, "What is the capital of Peru?", temperature=0, headers={"Cache-Control": "no-cache"})
    assert no_cache["X-Cache"] == "MISS"
    assert simulator.stats("cached-sim")["requests"] == 3
    assert (await ask(secret, "What is the capital of Peru?", temperature=0))["X-Cache"] == "HIT"


async def test_the_semantic_cache_answers_a_paraphrase_but_not_a_near_miss(
    models: None, make_key: Any, simulator: Simulator
) -> None:
    secret = await sync_to_async(make_key)()
    first = await ask(secret, "How do I cancel my order?", model="faq-sim")
    paraphrase = await ask(secret, "How can I cancel an order I placed?", model="faq-sim")
    assert paraphrase["X-Cache"] == "SEMANTIC-HIT"
    assert paraphrase.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    near_miss = await ask(secret, "How do I place an order?", model="faq-sim")
    assert near_miss["X-Cache"] == "MISS"
    assert simulator.stats("faq-sim")["requests"] == 2


WRONG_HITS = "/v1/cache/wrong-hits"


async def test_a_semantic_hit_reported_wrong_is_evicted_counted_and_raises_the_models_floor(
    models: None, make_key: Any, simulator: Simulator
) -> None:
    from orchestration.models import LanguageModel, SemanticWrongHit

    secret = await sync_to_async(make_key)()
    await ask(secret, "How do I cancel my order?", model="faq-sim")
    hit = await ask(secret, "How can I cancel an order I placed?", model="faq-sim")
    assert hit["X-Cache"] == "SEMANTIC-HIT"
    assert "X-Cache-Entry" not in (await ask(secret, "What is 2 + 2?", model="faq-sim"))

    reported = await post_json(AsyncClient(), WRONG_HITS, {"cache_entry": hit["X-Cache-Entry"]}, secret)

    assert reported.status_code == 200
    assert reported.json()["evicted"] is True
    # One hit served and one reported wrong is over a 1% budget: no hit at or below that similarity again.
    floor = (await LanguageModel.objects.aget(name="faq-sim")).cache_semantic_learned_floor
    assert floor > 0.5 and reported.json()["learned_floor"] == floor
    assert await SemanticWrongHit.objects.filter(model="faq-sim", source="api").acount() == 1
    again = await ask(secret, "How can I cancel an order I placed?", model="faq-sim")
    assert again["X-Cache"] == "MISS"
    assert simulator.stats("faq-sim")["requests"] == 3


async def test_a_wrong_hit_report_needs_a_token_this_server_made_for_a_model_the_key_may_use(
    models: None, make_key: Any, mallory: Any
) -> None:
    secret = await sync_to_async(make_key)()
    await ask(secret, "How do I cancel my order?", model="faq-sim")
    token = (await ask(secret, "How can I cancel an order I placed?", model="faq-sim"))["X-Cache-Entry"]
    other = await sync_to_async(make_key)(user=mallory, allowed_models=["cached-sim"])

    missing = await post_json(AsyncClient(), WRONG_HITS, {}, secret)
    forged = await post_json(AsyncClient(), WRONG_HITS, {"cache_entry": token[:-2] + "xx"}, secret)
    not_hers = await post_json(AsyncClient(), WRONG_HITS, {"cache_entry": token}, other)

    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "missing_cache_entry")
    assert (forged.status_code, forged.json()["error"]["code"]) == (400, "invalid_cache_entry")
    assert (not_hers.status_code, not_hers.json()["error"]["code"]) == (404, "cache_entry_not_found")
    again = await ask(secret, "How can I cancel an order I placed?", model="faq-sim")
    assert again["X-Cache"] == "SEMANTIC-HIT"


async def response_streamed_usage(response: Any) -> Any:
    """The usage in ``response.completed``, the last event of a Responses stream."""
    content = b"".join([part async for part in response.streaming_content])
    last = content.decode().strip().split("\n\n")[-1]
    return json.loads(last.split("\ndata: ", 1)[1])["response"]["usage"]


async def test_a_cached_text_completion_and_a_streamed_cached_response_report_their_usage(
    models: None, make_key: Any, simulator: Simulator
) -> None:
    """As a cached chat completion does: the usage of the answer replayed, though it is not charged again."""
    secret = await sync_to_async(make_key)()
    legacy = {"model": "cached-sim", "prompt": "Name three seas.", "temperature": 0}
    usage = (await post_json(AsyncClient(), "/v1/completions", legacy, secret)).json()["usage"]
    again = await post_json(AsyncClient(), "/v1/completions", legacy, secret)
    assert again["X-Cache"] == "HIT" and again.json()["usage"] == usage

    asked = {"model": "cached-sim", "input": "Name three bays.", "temperature": 0}
    usage = (await post_json(AsyncClient(), "/v1/responses", asked, secret)).json()["usage"]
    streamed = await post_json(AsyncClient(), "/v1/responses", {**asked, "stream": True}, secret)
    assert streamed["X-Cache"] == "HIT" and await response_streamed_usage(streamed) == usage
    assert usage["total_tokens"] > 0 and simulator.stats("cached-sim")["requests"] == 2

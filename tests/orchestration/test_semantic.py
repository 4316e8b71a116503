"""The semantic cache: paraphrases hit, near misses and other scopes do not, processes share entries."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from orchestration.caching.embedders import LocalEmbedder, ProviderEmbedder, embedder_from_setting
from orchestration.caching.exact import ResponseCache, cache_index_flush, cache_purge_model
from orchestration.caching.nearmiss import near_miss_reason
from orchestration.caching.policy import DEFAULT_ERROR_BUDGET, EQUIVALENT_FLOOR, policy_for
from orchestration.caching.semantic import ScopeIndex, SemanticCache, matches, semantic_query, semantic_scope
from orchestration.orchestrator import CallContext
from orchestration.types import ChatRequest, ChatResponse, Message, Usage
from tests.orchestration.harness import FakeClock, model_row, provider_row, route

EMBEDDER = LocalEmbedder()
SEMANTIC = {"cache_semantic": True, "cache_semantic_threshold": 0.85}


def ask(*turns: str, system: str | None = None, **fields: Any) -> ChatRequest:
    messages = [Message(role="system", content=system)] if system else []
    for index, text in enumerate(turns):
        messages.append(Message(role="user" if index % 2 == 0 else "assistant", content=text))
    fields.setdefault("temperature", 0)
    return ChatRequest(model="m", messages=messages, **fields)


def answer(content: str) -> ChatResponse:
    return ChatResponse(id="r-1", model="m", content=content, usage=Usage(10, 5))


CTX = CallContext(endpoint="chat")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def new_cache(clock: FakeClock) -> ResponseCache:
    """A response cache as one process has it (its own in-memory vectors), on the shared Redis."""
    return ResponseCache(clock=clock, stale_grace_s=600, semantic=SemanticCache(embedder=EMBEDDER, clock=clock))


@pytest.fixture
async def cache(transactional_db: None, clock: FakeClock) -> Any:
    instance = new_cache(clock)
    yield instance
    await instance.aclose()
    await asyncio.to_thread(cache_index_flush)


async def test_a_paraphrase_is_served_the_cached_answer(cache: ResponseCache) -> None:
    await cache.store(ask("What is the capital of France?"), route(**SEMANTIC), answer("Paris."), CTX)
    hit = await cache.lookup(ask("What's the capital city of France?"), route(**SEMANTIC), CTX)
    assert hit is not None and hit.status == "SEMANTIC-HIT" and hit.response.content == "Paris."
    assert hit.similarity is not None and hit.similarity >= 0.85


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        ("What is the capital of Spain?", "What is the capital of France?"),
        ("How do I place an order?", "How do I cancel my order?"),
        ("What time does the store open on Sunday?", "What time does the store open on Monday?"),
        ("What can I bring in my carry-on?", "What can't I bring in my carry-on?"),
        ("What is 15% of 300?", "What is 15% of 200?"),
        ("Convert 100 degrees Celsius to Fahrenheit", "Convert 100 degrees Fahrenheit to Celsius"),
    ],
)
async def test_a_near_miss_is_not_served_another_questions_answer(
    cache: ResponseCache, cached: str, asked: str
) -> None:
    await cache.store(ask(cached), route(**SEMANTIC), answer("cached"), CTX)
    assert await cache.lookup(ask(asked), route(**SEMANTIC), CTX) is None


def test_the_guard_names_why_it_refuses() -> None:
    assert near_miss_reason("What is 15% of 200?", "What is 15% of 300?") == "numbers"
    assert near_miss_reason("What can I recycle?", "What can't I recycle?") == "negation"
    assert near_miss_reason("Convert a string to an integer", "Convert an integer to a string") == "direction"
    assert near_miss_reason("How do I sort a dict by value?", "How do I sort a dict by key?") == "substitution"
    assert near_miss_reason("What are your Saturday opening hours?", "When do you open on Sunday?") == "specific"
    assert near_miss_reason("How do I center a div?", "How do I center a div vertically?") == "qualifier"
    assert near_miss_reason("How do I cancel my order?", "How can I cancel an order I placed?") is None


async def test_the_semantic_cache_is_off_unless_the_model_turns_it_on(cache: ResponseCache, redis_client: Any) -> None:
    await cache.store(ask("What is the capital of France?", temperature=0.7), route(), answer("Paris."), CTX)
    assert redis_client.keys("sy:cache:sem:*") == []


@pytest.mark.parametrize(
    "other",
    [
        {"system": "Answer in French."},
        {"temperature": 0.2},
        {"max_tokens": 10},
    ],
    ids=["system-prompt", "temperature", "max-tokens"],
)
async def test_two_scopes_never_share_an_answer(cache: ResponseCache, other: dict[str, Any]) -> None:
    await cache.store(ask("What is the capital of France?"), route(**SEMANTIC), answer("Paris."), CTX)
    assert await cache.lookup(ask("What is the capital of France?", **other), route(**SEMANTIC), CTX) is None
    assert await cache.lookup(ask("What is the capital of France?"), route(name="n", **SEMANTIC), CTX) is None


async def test_a_follow_up_only_matches_after_the_same_conversation(cache: ResponseCache) -> None:
    first = ask("Tell me about Paris.", "Paris is the capital of France.", "How many people live there?")
    await cache.store(first, route(**SEMANTIC), answer("About two million."), CTX)
    other = ask("Tell me about Rome.", "Rome is the capital of Italy.", "How many people live there?")
    assert await cache.lookup(other, route(**SEMANTIC), CTX) is None
    same = ask("Tell me about Paris.", "Paris is the capital of France.", "How many people are living there?")
    hit = await cache.lookup(same, route(**SEMANTIC), CTX)
    assert hit is not None and hit.response.content == "About two million."


async def test_conversations_longer_than_the_models_limit_skip_the_cache(
    cache: ResponseCache, redis_client: Any
) -> None:
    long = ask("Hi.", "Hello!", "Tell me about Paris.", "It is the capital.", "How many people live there?")
    assert semantic_query(long, max_turns=2) is None
    await cache.store(long, route(cache_semantic_max_turns=2, cache_exact_enabled=False, **SEMANTIC), answer("x"), CTX)
    assert redis_client.keys("sy:cache:sem:*") == []
    assert semantic_query(long, max_turns=3) == "How many people live there?"


async def test_an_entry_stored_by_one_process_is_served_by_another_and_purged_for_both(
    cache: ResponseCache, clock: FakeClock
) -> None:
    other_process = new_cache(clock)
    await cache.store(ask("How do I reset my password?"), route(**SEMANTIC), answer("Use the link."), CTX)
    hit = await other_process.lookup(ask("How can I reset my password?"), route(**SEMANTIC), CTX)
    assert hit is not None and hit.response.content == "Use the link."

    await cache.store(ask("How do I delete my account?"), route(**SEMANTIC), answer("Settings."), CTX)
    assert await other_process.lookup(ask("How can I delete my account?"), route(**SEMANTIC), CTX) is not None

    await asyncio.to_thread(cache_index_flush)
    await sync_to_async(cache_purge_model)("m")
    for process in (cache, other_process):
        assert await process.lookup(ask("How can I reset my password?"), route(**SEMANTIC), CTX) is None
    await other_process.aclose()


async def test_a_semantic_entry_expires_and_then_serves_only_the_stale_lookup(
    cache: ResponseCache, clock: FakeClock
) -> None:
    short = route(cache_exact_ttl_s=60, **SEMANTIC)
    await cache.store(ask("What is the capital of France?"), short, answer("Paris."), CTX)
    clock.advance(61)
    assert await cache.lookup(ask("What's the capital city of France?"), short, CTX) is None
    stale = await cache.lookup_stale(ask("What's the capital city of France?"), short, CTX)
    assert stale is not None and stale.status == "SEMANTIC-HIT"
    clock.advance(600)
    assert await cache.lookup_stale(ask("What's the capital city of France?"), short, CTX) is None


async def test_expired_entries_are_removed_from_redis_when_the_scope_is_written(
    cache: ResponseCache, clock: FakeClock, redis_client: Any
) -> None:
    short = route(cache_exact_ttl_s=60, cache_exact_enabled=False, **SEMANTIC)
    await cache.store(ask("What is the capital of France?"), short, answer("Paris."), CTX)
    clock.advance(661)
    await cache.store(ask("What is the capital of Italy?"), short, answer("Rome."), CTX)
    (vectors,) = [key for key in redis_client.keys("sy:cache:sem:*") if key.endswith(b":vec")]
    assert redis_client.hlen(vectors) == 1


def test_the_scope_index_finds_the_nearest_valid_entries_first() -> None:
    index = ScopeIndex("k")
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for row, vector in enumerate(vectors):
        index.add(f"e{row}", vector, expires_at=100.0 if row != 7 else 10.0, stale_until=200.0, question=f"q{row}")
    assert [c.entry_id for c in index.candidates(vectors[3], 0.99, 50.0, stale=False)] == ["e3"]
    assert index.candidates(vectors[7], 0.99, 50.0, stale=False) == []
    assert [c.entry_id for c in index.candidates(vectors[7], 0.99, 50.0, stale=True)] == ["e7"]
    index.remove("e3")
    assert index.candidates(vectors[3], 0.99, 50.0, stale=False) == []
    assert [c.entry_id for c in index.candidates(vectors[49], 0.99, 50.0, stale=False)] == ["e49"]


def test_scopes_depend_on_the_embedder() -> None:
    request = ask("What is the capital of France?")
    assert semantic_scope(request, route(), "local:a") != semantic_scope(request, route(), "provider:b")


def test_the_embedder_setting_names_a_local_or_a_provider_model() -> None:
    assert embedder_from_setting("local").name == "local:all-MiniLM-L6-v2-int8"
    assert embedder_from_setting("provider:text-embedding-3-small").name == "provider:text-embedding-3-small"
    with pytest.raises(ValueError):
        embedder_from_setting("remote")


def test_the_local_embedder_needs_no_network_and_returns_unit_vectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = LocalEmbedder().embed_sync(["What is the capital of France?", "What's the capital city of France?"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.9


async def test_a_large_scope_loads_in_the_background_while_requests_go_without(
    cache: ResponseCache, clock: FakeClock
) -> None:
    questions = ["How do I reset my password?", "How do I delete my account?", "How do I change my email?"]
    for question in questions:
        await cache.store(ask(question), route(cache_exact_enabled=False, **SEMANTIC), answer(question), CTX)
    other_process = new_cache(clock)
    other_process.semantic.inline_load_max = 2
    paraphrase = ask("How can I reset my password?")
    assert await other_process.lookup(paraphrase, route(**SEMANTIC), CTX) is None
    for key in list(other_process.semantic._loading):
        await other_process.semantic.loaded(key)
    hit = await other_process.lookup(paraphrase, route(**SEMANTIC), CTX)
    assert hit is not None and hit.response.content == "How do I reset my password?"
    await other_process.aclose()


async def test_a_large_scope_is_searched_off_the_event_loop_with_the_same_result(
    cache: ResponseCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    import orchestration.caching.semantic

    monkeypatch.setattr(orchestration.caching.semantic, "SEARCH_IN_THREAD_FROM", 1)
    await cache.store(ask("What is the capital of France?"), route(**SEMANTIC), answer("Paris."), CTX)
    hit = await cache.lookup(ask("What's the capital city of France?"), route(**SEMANTIC), CTX)
    assert hit is not None and hit.response.content == "Paris."
    assert await cache.lookup(ask("What is the capital of Spain?"), route(**SEMANTIC), CTX) is None


async def test_a_provider_embedding_model_can_embed_for_the_cache(
    transactional_db: None, simulator: Any, clock: FakeClock
) -> None:
    def registry() -> None:
        provider = provider_row("sim", simulator.url)
        model_row("embed-sim", provider, capabilities=["embeddings"])

    await sync_to_async(registry)()
    embedder = ProviderEmbedder("embed-sim")
    cache = ResponseCache(clock=clock, semantic=SemanticCache(embedder=embedder, clock=clock))
    faq = route(cache_exact_enabled=False, **SEMANTIC)
    await cache.store(ask("What is the capital of France?"), faq, answer("Paris."), CTX)
    hit = await cache.lookup(ask("What is the capital of France?"), faq, CTX)
    assert hit is not None and hit.status == "SEMANTIC-HIT" and hit.similarity == pytest.approx(1.0, abs=1e-5)
    assert simulator.stats("embed-sim")["requests"] == 1  # the question was embedded once for both
    await cache.aclose()
    await asyncio.to_thread(cache_index_flush)


def spelled_out_served(cached: str, asked: str, policy: Any) -> bool:
    index = ScopeIndex("k")
    index.add("e", EMBEDDER.embed_sync([cached])[0], expires_at=100.0, stale_until=200.0, question=cached)
    return bool(matches(index, asked, EMBEDDER.embed_sync([asked])[0], policy, 50.0, stale=False))


def test_an_acronym_spelled_out_is_served_below_the_equivalent_floor_unless_reports_raised_it() -> None:
    cached, asked = "What is an IPO?", "What is an initial public offering?"
    vectors = EMBEDDER.embed_sync([cached, asked])
    assert float(vectors[0] @ vectors[1]) < EQUIVALENT_FLOOR  # the embedder does not know the acronym
    assert spelled_out_served(cached, asked, policy_for(None, DEFAULT_ERROR_BUDGET, EMBEDDER.name))
    assert not spelled_out_served(cached, asked, policy_for(None, DEFAULT_ERROR_BUDGET, EMBEDDER.name, 0.6))
    # Without a calibration's policy (a raw threshold) nothing under the threshold is served.
    assert not spelled_out_served(cached, asked, policy_for(0.85, DEFAULT_ERROR_BUDGET, EMBEDDER.name))


async def test_a_scope_dropped_while_it_catches_up_is_still_served(cache: ResponseCache) -> None:
    """Another request may drop the scope from this process's copies (a purge, the memory bound)
    while this one waits on Redis to catch the scope up: this lookup still gets the index."""
    await cache.store(ask("What is the capital of France?"), route(**SEMANTIC), answer("Paris."), CTX)
    assert await cache.lookup(ask("What is the capital of France?"), route(**SEMANTIC), CTX) is not None
    semantic = cache.semantic
    assert semantic is not None
    key = next(iter(semantic._indexes))
    catching_up = asyncio.create_task(semantic._synced(cache.client(), key))
    await asyncio.sleep(0)  # it now waits on Redis for the scope's log
    semantic.forget()
    index = await catching_up
    assert index is not None and index.size == 1
    assert key not in semantic._indexes  # what was dropped stays dropped


async def test_lookups_catching_up_together_keep_the_loaded_scope(cache: ResponseCache, clock: FakeClock) -> None:
    """Many lookups replay a scope's log at once while entries keep arriving: each must find the
    scope caught up, not take another's progress for a trimmed log and drop the scope to reload it."""
    from orchestration.caching.semantic import pack_vector

    semantic = SemanticCache(embedder=EMBEDDER, clock=clock)
    semantic.inline_load_max = 1  # every reload of this scope would go to the background
    client = cache.client()
    key = "sy:cache:sem:test:together"
    vector = np.ones(4, dtype=np.float32) / 2
    added = 0

    async def add() -> None:
        nonlocal added
        entry = f"e{added}"
        added += 1
        await client.hset(f"{key}:vec", entry, pack_vector(vector, clock() + 3600, clock() + 3700, entry))
        await client.xadd(f"{key}:log", {"op": "add", "id": entry})

    for _ in range(3):
        await add()
    await semantic._synced(client, key)
    await semantic.loaded(key)
    for _ in range(20):

        async def writer() -> None:
            for _ in range(3):
                await add()
                await asyncio.sleep(0)

        found = await asyncio.gather(writer(), *(semantic._synced(client, key) for _ in range(20)))
        assert all(index is not None for index in found[1:])
    index = await semantic._synced(client, key)
    assert index is not None and index.size == added

"""Semantic cache lookups with 10,000 and 100,000 entries in one scope; embedding timed apart.

Entries are written straight into Redis the way ``SemanticCache.store`` writes them (packed
vectors, answers, the scope's log), with random unit vectors: embedding 100,000 questions would
take minutes and says nothing about lookup speed. Each lookup is the real ``SemanticCache.lookup``
with its query vector already embedded: catching up with the scope's log in Redis, the matrix
product, the near-miss guard and, for hits, reading the answer. Half the lookups hit, half miss.
The first lookup of a process starts loading the scope from Redis in the background (and misses);
how long that load takes is ``load_ms``.
Targets: lookup p95 under 10 ms at 10,000 entries and under 50 ms at 100,000.

Embedding and verification are timed apart on real questions (tests/data/semantic_eval.jsonl):
embedding one question with the local model, and verifying it against ``CANDIDATES`` cached
questions with the near-miss guard, its caches cleared first (a question it never read). Target:
embedding plus verification p95 under 25 ms on one core (run under ``taskset -c 1``).
``web_rss_mb`` is the resident memory of a fresh process that loaded the ASGI application, the
local model and a 10,000-entry scope (target: under 300 MB).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import numpy as np

SIZES = (10_000, 100_000)
LOOKUPS = 400
DIMENSIONS = 384


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class _Precomputed:
    """An embedder whose vectors were computed beforehand: lookups are timed without embedding."""

    name = "bench"

    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    async def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[text] for text in texts])


def _fill(client: Any, key: str, vectors: np.ndarray, questions: list[str], now: float) -> None:
    from orchestration.caching.canonical import response_to_json
    from orchestration.caching.semantic import entry_id, pack_vector
    from orchestration.types import ChatResponse

    answer = response_to_json(ChatResponse(id="bench", model="bench", content="A cached answer."))
    scope = key.rsplit(":", 1)[1]
    for start in range(0, len(questions), 2000):
        pipe = client.pipeline(transaction=False)
        for row in range(start, min(start + 2000, len(questions))):
            entry = entry_id(scope, questions[row])
            pipe.hset(f"{key}:vec", entry, pack_vector(vectors[row], now + 3600, now + 7200, questions[row]))
            pipe.hset(f"{key}:ans", entry, answer)
            pipe.xadd(f"{key}:log", {"op": "add", "id": entry})
        pipe.execute()


async def _lookups(size: int) -> dict[str, float]:
    import redis
    from django.conf import settings

    from orchestration.caching.exact import ResponseCache
    from orchestration.caching.semantic import SemanticCache, scope_key, semantic_scope
    from orchestration.orchestrator import CallContext
    from orchestration.registry import ModelRoute
    from orchestration.types import ChatRequest, Message

    route = _route(ModelRoute)
    embedder = _Precomputed()
    rng = np.random.default_rng(size)
    vectors = rng.normal(size=(size, DIMENSIONS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    questions = [f"What is the answer to question number {row}?" for row in range(size)]
    requests = [ChatRequest(model=route.name, messages=[Message(role="user", content=q)]) for q in questions]
    key = scope_key(route.name, semantic_scope(requests[0], route, embedder.name))

    sync = redis.Redis.from_url(settings.REDIS_URL)
    sync.flushdb()
    _fill(sync, key, vectors, questions, time.time())

    asked: list[tuple[ChatRequest, bool]] = []
    for number in range(LOOKUPS):
        if number % 2 == 0:  # a question that is in the cache
            row = int(rng.integers(size))
            embedder.vectors[questions[row]] = vectors[row]
            asked.append((requests[row], True))
        else:  # one that is not
            text = f"An unrelated question {number}?"
            vector = rng.normal(size=DIMENSIONS).astype(np.float32)
            embedder.vectors[text] = vector / np.linalg.norm(vector)
            asked.append((ChatRequest(model=route.name, messages=[Message(role="user", content=text)]), False))

    cache = ResponseCache(semantic=SemanticCache(embedder=embedder))
    ctx = CallContext(endpoint="completion")
    started = time.perf_counter()
    await cache.lookup(asked[1][0], route, ctx)  # a large scope: loads in the background, this one misses
    await cache.semantic.loaded(key)
    load_ms = (time.perf_counter() - started) * 1000
    timings, wrong = [], 0
    for request, should_hit in asked:
        started = time.perf_counter()
        answer = await cache.lookup(request, route, ctx)
        timings.append((time.perf_counter() - started) * 1000)
        wrong += (answer is not None) != should_hit
    await cache.aclose()
    sync.flushdb()
    sync.close()
    return {
        f"entries_{size}_load_ms": round(load_ms, 1),
        f"entries_{size}_lookup_p50_ms": round(statistics.median(timings), 2),
        f"entries_{size}_lookup_p95_ms": round(_percentile(timings, 0.95), 2),
        f"entries_{size}_wrong_answers": wrong,
    }


def _route(route_type: Any) -> Any:
    from decimal import Decimal

    return route_type(
        name="bench-semantic",
        provider="bench",
        provider_kind="simulator",
        upstream="bench-semantic",
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("2"),
        context_window=8192,
        max_output_tokens=1024,
        capabilities=("chat",),
        deadline_s=None,
        tokens_per_second=50.0,
        fallbacks=(),
        content_policy_fallback=None,
        cache_exact_enabled=False,
        cache_exact_ttl_s=3600,
        cache_semantic=True,
        cache_semantic_threshold=0.85,
        cache_semantic_max_turns=4,
        simulated=True,
    )


def _embedding_times() -> dict[str, float]:
    from orchestration.caching.embedders import LocalEmbedder

    embedder = LocalEmbedder()
    embedder.embed_sync(["warm up"])
    timings = []
    for number in range(200):
        started = time.perf_counter()
        embedder.embed_sync([f"How do I reset the password of account number {number}?"])
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "local_embedding_p50_ms": round(statistics.median(timings), 2),
        "local_embedding_p95_ms": round(_percentile(timings, 0.95), 2),
    }


def _embedding_and_verification_times() -> dict[str, float]:
    from orchestration.caching import nearmiss
    from orchestration.caching.embedders import LocalEmbedder
    from orchestration.caching.semantic import CANDIDATES
    from tests.bench.semantic_quality import load_pairs

    questions = [pair["b"] for pair in load_pairs()][:300]
    embedder = LocalEmbedder()
    embedder.embed_sync(["warm up"])
    embedding, verification, both = [], [], []
    for number, question in enumerate(questions):
        started = time.perf_counter()
        embedder.embed_sync([question])
        embedded = time.perf_counter()
        nearmiss.question_terms.cache_clear()
        for candidate in questions[number + 1 : number + 1 + CANDIDATES]:
            if nearmiss.near_miss_reason(question, candidate) is None:
                nearmiss.equivalent(question, candidate)
        verified = time.perf_counter()
        embedding.append((embedded - started) * 1000)
        verification.append((verified - embedded) * 1000)
        both.append((verified - started) * 1000)
    figures = {}
    for name, timings in (
        ("embedding", embedding),
        ("verification", verification),
        ("embedding_plus_verification", both),
    ):
        figures[f"{name}_p50_ms"] = round(statistics.median(timings), 2)
        figures[f"{name}_p95_ms"] = round(_percentile(timings, 0.95), 2)
    return figures


_RSS_PROBE = """
import numpy as np, psutil, django
django.setup()
import project.asgi
from orchestration.caching.embedders import LocalEmbedder
from orchestration.caching.nearmiss import near_miss_reason
from orchestration.caching.semantic import ScopeIndex
LocalEmbedder().embed_sync(["How do I cancel my order?"])
near_miss_reason("How do I cancel my order?", "How do I end my order?")
near_miss_reason("How do I clean a sofa?", "How do I clean a couch?")  # loads the WordNet synonyms
index = ScopeIndex("rss")
vectors = np.random.default_rng(1).normal(size=(10_000, 384)).astype(np.float32)
for row in range(10_000):
    index.add(f"e{row}", vectors[row], 2e9, 3e9, f"What is the answer to question number {row}?")
print(psutil.Process().memory_info().rss)
"""


def _web_rss() -> dict[str, float]:
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {"web_rss_mb": round(int(done.stdout.split()[-1]) / 2**20, 1)}


def run() -> dict[str, object]:
    figures: dict[str, object] = {}
    for size in SIZES:
        figures.update(asyncio.run(_lookups(size)))
    figures.update(_embedding_times())
    figures.update(_embedding_and_verification_times())
    figures.update(_web_rss())
    return figures


def main() -> None:
    """Run this benchmark alone: ``python -m tests.bench.semantic_cache``."""
    from tests.bench.environment import bench_environment

    bench_environment()
    for figure, value in run().items():
        print(f"{figure}: {value}")


if __name__ == "__main__":
    main()

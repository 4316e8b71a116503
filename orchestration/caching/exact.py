"""The response caches: exact (Redis) and semantic (``orchestration.caching.semantic``), behind one API.

The Orchestrator calls ``cache_lookup`` before routing, ``cache_store`` after a complete answer
from the requested model, and ``cache_lookup_stale`` when every provider of the chain failed.

Exact cache rules (docs/api.md, "Exact cache"):
- the key is the SHA-256 of the canonical JSON (sorted keys, no whitespace) of the model, the
  messages (role, content, tool calls and ids) and every generation parameter; ``user`` is not one;
- only ``temperature == 0`` is cached: an unset temperature means the provider's default (1);
- ``no-cache`` skips the read and refreshes the entry, ``no-store`` skips both;
- never stored: anything but a complete text answer (``finish_reason == "stop"``, no tool calls),
  and nothing for a request whose last message is a tool result (the next turn depends on it);
- an entry lives in Redis for its TTL plus a grace period; the logical expiry inside the value
  decides HIT, and only the stale lookup (every provider failed) serves it during the grace.

Redis being down degrades to no cache for ``REDIS_RETRY_S``: the request never fails for it.
The ``CacheEntry`` rows (admin) and their hit counts are written by a background thread in batches.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from orchestration.caching.canonical import (
    canonical_json,
    generation_parameters,
    message_fields,
    model_tag,
    question_of,
    response_from_json,
)
from orchestration.database import without_null_characters
from orchestration.redisclients import DEFAULT, FAST, redis_async, redis_async_close, redis_sync
from orchestration.registry import ModelRoute
from orchestration.types import (
    CacheStatus,
    CallContext,
    ChatRequest,
    ChatResponse,
    Chunk,
    OrchestrationError,
    ToolCall,
    ToolCallDelta,
    Usage,
)

if TYPE_CHECKING:
    from orchestration.caching.semantic import SemanticCache

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

PREFIX = "sy:cache:"
EXACT_PREFIX = "sy:cache:exact:"
REDIS_TIMEOUT_S = 0.5
# After Redis failed, run without the cache this long before trying it again.
REDIS_RETRY_S = 5.0
DEFAULT_STALE_GRACE_S = 3600.0
PREVIEW_CHARS = 300
# Request fields that do not change the answer: ``user`` only identifies the end user to the provider.


@dataclass
class CachedAnswer:
    response: ChatResponse
    status: CacheStatus  # "HIT" | "SEMANTIC-HIT" | "STALE"
    key: str = ""  # the CacheEntry key it came from
    similarity: float | None = None  # semantic hits: cosine similarity of the two questions


# --- keys --------------------------------------------------------------------------------------


def exact_key(request: ChatRequest, route: ModelRoute) -> str:
    """SHA-256 (hex) of the canonical request; ``route.name`` is the public model name."""
    document = {
        "model": route.name,
        "messages": [message_fields(m) for m in request.messages],
        **generation_parameters(request),
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def exact_redis_key(model: str, key: str) -> str:
    return f"{EXACT_PREFIX}{model_tag(model)}:{key}"


# --- what may be cached ----------------------------------------------------------------------


def exact_cacheable(request: ChatRequest, route: ModelRoute) -> bool:
    """Whether the exact cache applies: enabled for the model, temperature 0, not after a tool result."""
    return route.cache_exact_enabled and request.temperature == 0 and not _after_tool_result(request)


def _after_tool_result(request: ChatRequest) -> bool:
    return bool(request.messages) and request.messages[-1].role == "tool"


def store_applies(request: ChatRequest, route: ModelRoute) -> bool:
    """Whether an answer to ``request`` could be kept at all (``ResponseCache.store`` would try):
    a stream of a model that caches nothing need not keep its chunks to build one."""
    return route.cache_exact_ttl_s > 0 and (exact_cacheable(request, route) or route.cache_semantic)


def storable(response: ChatResponse) -> bool:
    """Only a complete text answer: not cut at max_tokens, filtered, empty or a tool-call turn."""
    return response.finish_reason == "stop" and not response.tool_calls and bool((response.content or "").strip())


def cache_status_on_miss(request: ChatRequest, route: ModelRoute, ctx: CallContext) -> CacheStatus:
    """X-Cache for an answer that did not come from the cache: BYPASS when no cache took part."""
    if ctx.cache_control == "no-store":
        return "BYPASS"
    if exact_cacheable(request, route):
        return "MISS"
    if not route.cache_semantic:
        return "BYPASS"
    from orchestration.caching.semantic import semantic_query  # numpy: only for models that use the semantic cache

    return "MISS" if semantic_query(request, route.cache_semantic_max_turns) is not None else "BYPASS"


# --- stored answers --------------------------------------------------------------------------


def _exact_value(response: ChatResponse, question: str, now: float, ttl_s: float) -> str:
    return json.dumps(
        {"response": dataclasses.asdict(response), "question": question, "created_at": now, "expires_at": now + ttl_s},
        separators=(",", ":"),
    )


def _read_exact_value(data: bytes | str) -> tuple[ChatResponse, float]:
    value = json.loads(data)
    return response_from_json(json.dumps(value["response"])), float(value["expires_at"])


_WORD = re.compile(r"\S+\s*|\s+")


def chunks_from_response(response: ChatResponse, words_per_chunk: int = 3) -> list[Chunk]:
    """A whole (cached) answer as the chunks of a live stream: text a few words at a time,
    tool calls whole, and a last chunk with ``finish_reason`` and ``usage``."""
    chunks: list[Chunk] = []
    words = _WORD.findall(response.content or "")
    for start in range(0, len(words), words_per_chunk):
        chunks.append(Chunk(delta="".join(words[start : start + words_per_chunk])))
    if response.tool_calls:
        deltas = [
            ToolCallDelta(index=i, id=t.id, name=t.name, arguments=t.arguments)
            for i, t in enumerate(response.tool_calls)
        ]
        chunks.append(Chunk(tool_calls=deltas))
    chunks.append(Chunk(finish_reason=response.finish_reason, usage=response.usage))
    return chunks


def response_from_chunks(
    chunks: Iterable[Chunk], *, response_id: str, model: str, usage: Usage | None = None
) -> ChatResponse | None:
    """The answer a finished stream sent, or None when it never said how it finished (cut off).
    ``usage``: what the stream was charged, for a stream whose server sent none (the answer served
    from the cache reports it, not nothing); usage the stream did send wins."""
    content: list[str] = []
    tools: dict[int, ToolCall] = {}
    finish_reason: str | None = None
    usage = usage or Usage()
    for chunk in chunks:
        content.append(chunk.delta)
        for delta in chunk.tool_calls:
            tool = tools.setdefault(delta.index, ToolCall(id="", name="", arguments=""))
            tool.id, tool.name = delta.id or tool.id, delta.name or tool.name
            tool.arguments += delta.arguments
        finish_reason = chunk.finish_reason or finish_reason
        usage = chunk.usage or usage
    if finish_reason is None:
        return None
    return ChatResponse(
        id=response_id,
        model=model,
        content="".join(content) or None,
        tool_calls=[tools[i] for i in sorted(tools)],
        finish_reason=finish_reason,
        usage=usage,
    )


# --- the cache -------------------------------------------------------------------------------


class ResponseCache:
    """Both caches of this process. ``clock`` is wall-clock seconds (entries carry expiry times
    that every process compares); ``semantic`` defaults to one using the configured embedder."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        redis_url: str = "",
        stale_grace_s: float | None = None,
        semantic: SemanticCache | None = None,
    ) -> None:
        self.clock = clock
        self.redis_url = redis_url
        self.stale_grace_s = stale_grace_s
        self._semantic = semantic
        self._redis_down_until = 0.0

    @property
    def grace_s(self) -> float:
        if self.stale_grace_s is not None:
            return self.stale_grace_s
        grace = settings.SWITCHYARD.get("CACHE_STALE_GRACE_S")
        return DEFAULT_STALE_GRACE_S if grace is None else float(grace)

    @property
    def semantic(self) -> SemanticCache:
        if self._semantic is None:
            from orchestration.caching.semantic import SemanticCache

            self._semantic = SemanticCache(clock=self.clock)
        return self._semantic

    def client(self) -> aioredis.Redis:
        return redis_async(FAST, url=self.redis_url or None)

    async def aclose(self) -> None:
        """Close this loop's Redis clients (a loop about to end; they are opened again on use)."""
        await redis_async_close()

    # --- the API ---

    async def lookup(self, request: ChatRequest, route: ModelRoute, ctx: CallContext) -> CachedAnswer | None:
        if ctx.cache_control != "default":
            return None
        return await self._guarded(self._lookup(request, route, stale=False))

    async def lookup_stale(self, request: ChatRequest, route: ModelRoute, ctx: CallContext) -> CachedAnswer | None:
        # A client that asked for a fresh answer (no-cache) or no cache at all (no-store) gets none.
        if ctx.cache_control != "default":
            return None
        return await self._guarded(self._lookup(request, route, stale=True))

    async def store(self, request: ChatRequest, route: ModelRoute, response: ChatResponse, ctx: CallContext) -> None:
        if ctx.cache_control == "no-store" or not storable(response):
            return
        await self._guarded(self._store(request, route, response))

    async def _guarded(self, work: Any) -> Any:
        if time.monotonic() < self._redis_down_until:
            work.close()
            return None
        try:
            return await work
        except (redis.RedisError, OSError, TimeoutError) as error:
            if time.monotonic() >= self._redis_down_until:
                logger.warning("Redis unavailable for the response cache, running without it: %s", error)
            self._redis_down_until = time.monotonic() + REDIS_RETRY_S
            return None

    async def _lookup(self, request: ChatRequest, route: ModelRoute, *, stale: bool) -> CachedAnswer | None:
        answer = await self._exact_lookup(request, route, stale=stale)
        if answer is None:
            answer = await self._semantic_lookup(request, route, stale=stale)
        if answer is not None:
            cache_index().hit(answer.key)
        return answer

    async def _semantic_lookup(self, request: ChatRequest, route: ModelRoute, *, stale: bool) -> CachedAnswer | None:
        if not route.cache_semantic:
            return None
        try:
            hit = await self.semantic.lookup(self.client(), request, route, stale=stale)
        except OrchestrationError as error:  # a provider embedder that failed: no semantic cache this time
            logger.warning("semantic cache embedding failed: %s", error.message)
            return None
        return None if hit is None else CachedAnswer(hit.response, "SEMANTIC-HIT", hit.entry_key, hit.similarity)

    async def _exact_lookup(self, request: ChatRequest, route: ModelRoute, *, stale: bool) -> CachedAnswer | None:
        if not exact_cacheable(request, route):
            return None
        key = exact_key(request, route)
        data = await self.client().get(exact_redis_key(route.name, key))
        if data is None:
            return None
        response, expires_at = _read_exact_value(data)
        if self.clock() < expires_at:
            return CachedAnswer(response, "HIT", f"exact:{key}")
        return CachedAnswer(response, "STALE", f"exact:{key}") if stale else None

    async def _store(self, request: ChatRequest, route: ModelRoute, response: ChatResponse) -> None:
        now, ttl_s = self.clock(), float(route.cache_exact_ttl_s)
        if ttl_s <= 0:
            return
        question = question_of(request)
        if exact_cacheable(request, route):
            key = exact_key(request, route)
            value = _exact_value(response, question, now, ttl_s)
            await self.client().set(exact_redis_key(route.name, key), value, ex=int(ttl_s + self.grace_s) or 1)
            cache_index().upsert(_row(f"exact:{key}", "exact", route.name, "", question, response, now + ttl_s))
        if not route.cache_semantic:
            return
        try:
            stored = await self.semantic.store(
                self.client(), request, route, response, ttl_s=ttl_s, grace_s=self.grace_s
            )
        except OrchestrationError as error:
            logger.warning("semantic cache embedding failed: %s", error.message)
            return
        if stored is not None:
            entry_key, scope, question = stored
            cache_index().upsert(_row(entry_key, "semantic", route.name, scope, question, response, now + ttl_s))


def _row(key: str, kind: str, model: str, scope: str, question: str, response: ChatResponse, expires: float) -> Row:
    return Row(
        key=key,
        kind=kind,
        model=model,
        scope=scope,
        # A null character (PostgreSQL stores none) failed the index's whole batch of writes.
        question_preview=without_null_characters(question[:PREVIEW_CHARS]),
        answer_preview=without_null_characters((response.content or "")[:PREVIEW_CHARS]),
        expires_at=datetime.fromtimestamp(expires, tz=UTC),
    )


_cache: ResponseCache | None = None


def get_response_cache() -> ResponseCache:
    """The process's response cache."""
    global _cache
    if _cache is None:
        _cache = ResponseCache()
    return _cache


async def cache_lookup(request: ChatRequest, route: ModelRoute, ctx: CallContext) -> CachedAnswer | None:
    """A fresh cached answer (exact first, then semantic), or None; never raises for Redis."""
    return await get_response_cache().lookup(request, route, ctx)


async def cache_store(request: ChatRequest, route: ModelRoute, response: ChatResponse, ctx: CallContext) -> None:
    """Keep ``response`` when the rules allow it; never raises for Redis."""
    await get_response_cache().store(request, route, response, ctx)


async def cache_lookup_stale(request: ChatRequest, route: ModelRoute, ctx: CallContext) -> CachedAnswer | None:
    """When every provider failed: an exact entry even if expired within the grace period
    ("STALE"), else a semantic answer above the threshold ("SEMANTIC-HIT")."""
    return await get_response_cache().lookup_stale(request, route, ctx)


# --- the CacheEntry index, written off the hot path ------------------------------------------


@dataclass(slots=True)
class Row:
    key: str
    kind: str
    model: str
    scope: str
    question_preview: str
    answer_preview: str
    expires_at: datetime


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


BATCH_SIZE = 500
FLUSH_INTERVAL_S = 0.5
MAX_QUEUED = 50_000


class CacheIndexWriter:
    """Queues row upserts and hits; a thread writes them in batches (one upsert, one UPDATE per key hit)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.SimpleQueue[Row | str | _Flush] = queue.SimpleQueue()
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cleaned_at = time.monotonic()

    def upsert(self, row: Row) -> None:
        self._put(row)

    def hit(self, key: str) -> None:
        self._put(key)

    def _put(self, item: Row | str) -> None:
        if self.queue.qsize() >= MAX_QUEUED:
            self.dropped += 1
            return
        self.queue.put(item)
        self._start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything queued before this call is written; False on timeout."""
        marker = _Flush()
        self.queue.put(marker)
        self._start()
        return marker.done.wait(timeout)

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cache-index-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch, markers = self._gather()
            if batch:
                self._write(batch)
            for marker in markers:
                marker.done.set()

    def _gather(self) -> tuple[list[Row | str], list[_Flush]]:
        batch: list[Row | str] = []
        item = self.queue.get()
        while True:
            if isinstance(item, _Flush):
                return batch, [item]
            batch.append(item)
            if len(batch) >= BATCH_SIZE:
                return batch, []
            try:
                item = self.queue.get(timeout=FLUSH_INTERVAL_S if len(batch) == 1 else 0.05)
            except queue.Empty:
                return batch, []

    def _write(self, batch: list[Row | str]) -> None:
        from django.db import close_old_connections, connection

        close_old_connections()
        try:
            cache_index_write(batch)
            if time.monotonic() - self._cleaned_at > CLEANUP_EVERY_S:
                self._cleaned_at = time.monotonic()
                cache_index_forget_expired()
        except Exception:
            logger.exception("could not write %d cache index changes", len(batch))
        finally:
            connection.close()


CLEANUP_EVERY_S = 300.0


def cache_index_write(batch: list[Row | str]) -> None:
    """Apply queued upserts (last one per key wins), then hits (sync, database)."""
    from django.db.models import F

    from orchestration.models import CacheEntry

    rows = {item.key: item for item in batch if isinstance(item, Row)}
    if rows:
        CacheEntry.objects.bulk_create(
            [CacheEntry(**dataclasses.asdict(row)) for row in rows.values()],
            update_conflicts=True,
            unique_fields=["key"],
            update_fields=["question_preview", "answer_preview", "expires_at", "created_at", "scope"],
        )
    for key, count in Counter(item for item in batch if isinstance(item, str)).items():
        CacheEntry.objects.filter(key=key).update(hits=F("hits") + count)


def cache_index_forget_expired(grace_s: float | None = None) -> int:
    """Delete the rows of entries Redis has dropped (past expiry and grace)."""
    from django.utils import timezone

    from orchestration.models import CacheEntry

    grace = get_response_cache().grace_s if grace_s is None else grace_s
    cutoff = timezone.now() - timedelta(seconds=grace + 60)
    deleted, _ = CacheEntry.objects.filter(expires_at__lt=cutoff).delete()
    return deleted


_writer: CacheIndexWriter | None = None


def cache_index() -> CacheIndexWriter:
    global _writer
    if _writer is None or _writer.pid != os.getpid():
        _writer = CacheIndexWriter()
    return _writer


def cache_index_flush(timeout: float = 10.0) -> bool:
    """Write every queued CacheEntry change before returning (tests, shutdown)."""
    return cache_index().flush(timeout)


def _flush_at_exit() -> None:
    if _writer is not None and _writer.pid == os.getpid() and not _writer.queue.empty():
        _writer.flush(timeout=5.0)


atexit.register(_flush_at_exit)


# --- purges (admin; sync) --------------------------------------------------------------------


def _sync_client() -> redis.Redis:
    return redis_sync(DEFAULT)


def _redis_delete_matching(client: redis.Redis, pattern: str) -> None:
    batch: list[bytes] = []
    for name in client.scan_iter(match=pattern, count=1000):
        batch.append(name)
        if len(batch) >= 500:
            client.delete(*batch)
            batch = []
    if batch:
        client.delete(*batch)


def _redis_delete_entry(client: redis.Redis, key: str, model: str) -> None:
    from orchestration.caching.semantic import LOG_MAX_LEN, scope_key

    kind, _, rest = key.partition(":")
    if kind == "exact":
        client.delete(exact_redis_key(model, rest))
    elif kind == "semantic":
        scope, _, entry = rest.partition(":")
        base = scope_key(model, scope)
        pipe = client.pipeline(transaction=False)
        pipe.hdel(f"{base}:vec", entry)
        pipe.hdel(f"{base}:ans", entry)
        pipe.xadd(f"{base}:log", {"op": "del", "id": entry}, maxlen=LOG_MAX_LEN, approximate=True)
        pipe.execute()


def cache_purge_entries(entries: Iterable[tuple[str, str]]) -> int:
    """Delete entries given as (CacheEntry key, model) from Redis and the index; returns rows deleted."""
    from orchestration.models import CacheEntry

    entries = list(entries)
    cache_index_flush()
    client = _sync_client()
    try:
        for key, model in entries:
            _redis_delete_entry(client, key, model)
    finally:
        client.close()
    deleted, _ = CacheEntry.objects.filter(key__in=[key for key, _ in entries]).delete()
    return deleted


def cache_purge_model(model: str) -> int:
    """Delete every cached answer of ``model``; returns index rows deleted."""
    from orchestration.caching.semantic import PREFIX as SEMANTIC_PREFIX
    from orchestration.models import CacheEntry

    cache_index_flush()
    client = _sync_client()
    try:
        _redis_delete_matching(client, f"{EXACT_PREFIX}{model_tag(model)}:*")
        _redis_delete_matching(client, f"{SEMANTIC_PREFIX}{model_tag(model)}:*")
    finally:
        client.close()
    deleted, _ = CacheEntry.objects.filter(model=model).delete()
    return deleted


def cache_purge_all() -> int:
    """Delete every cached answer; returns index rows deleted."""
    from orchestration.models import CacheEntry

    cache_index_flush()
    client = _sync_client()
    try:
        _redis_delete_matching(client, f"{PREFIX}*")
    finally:
        client.close()
    deleted, _ = CacheEntry.objects.all().delete()
    return deleted

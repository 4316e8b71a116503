"""The semantic cache: answers to questions asked in other words, within one scope.

The query is the last user message. A scope is the hash of the model, the system prompt, every
generation parameter, the earlier turns of the conversation and the embedder: two requests that
differ in any of them never share an answer (a follow-up such as "and in winter?" only matches
the same follow-up after the same conversation). Conversations with more user turns than the
model's ``cache_semantic_max_turns`` skip the cache.

Each scope is a matrix of normalised float32 vectors in this process (a lookup is one
matrix-vector product) mirrored in Redis, so every process serves what any process stored:

- ``<scope key>:vec``  hash  entry id -> expires_at, stale_until, dimensions + vector + question
- ``<scope key>:ans``  hash  entry id -> the answer (JSON), read only on a hit
- ``<scope key>:log``  stream of {op: add|del, id}: a process replays it from the last entry it
  applied; when the stream was trimmed past that entry, or vanished (purge), it reloads the scope.

A candidate is then checked by the near-miss guard (``orchestration.caching.nearmiss``) and the
model's policy (``orchestration.caching.policy``: a threshold derived from its error budget, and a
lower one for a question the guard reads as the same words); the first candidate that passes answers.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis
import threadpoolctl

from orchestration.caching.canonical import (
    canonical_json,
    generation_parameters,
    message_fields,
    model_tag,
    response_from_json,
    response_to_json,
)
from orchestration.caching.embedders import Embedder, get_embedder
from orchestration.caching.nearmiss import equivalent, near_miss_reason, spelled_out
from orchestration.caching.policy import SemanticPolicy, policy_for
from orchestration.registry import ModelRoute
from orchestration.types import ChatRequest, ChatResponse

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

PREFIX = "sy:cache:sem:"
# One scope holds at most this many answers; beyond it the ones closest to expiry go first.
MAX_SCOPE_ENTRIES = 100_000
# This process keeps at most this many vectors in memory over all scopes (least recently used go).
MAX_LOCAL_VECTORS = 300_000
LOG_MAX_LEN = 200_000
CANDIDATES = 8  # above-threshold candidates given to the guard, best first
# A scope with more entries than this is read from Redis in the background, not in a request.
INLINE_LOAD_MAX = 5_000
# A scope with at least this many entries is searched on a worker thread, off the event loop.
SEARCH_IN_THREAD_FROM = 20_000
_SEARCH_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="semantic-search")


@functools.cache
def _single_threaded_blas() -> None:
    # A matrix-vector product gains nothing from BLAS threads in a server that runs many requests
    # at once: on a busy 2-core machine they made a 10,000-entry search 10x slower (p50 14 ms -> 1.3 ms).
    threadpoolctl.threadpool_limits(limits=1, user_api="blas")


_HEADER = struct.Struct("<ddI")  # expires_at, stale_until, dimensions
LOG_BATCH = 1000


def semantic_query(request: ChatRequest, max_turns: int) -> str | None:
    """The question to look up, or None when this request must skip the semantic cache."""
    messages = request.messages
    if not messages or messages[-1].role != "user" or not (messages[-1].content or "").strip():
        return None
    if sum(1 for message in messages if message.role == "user") > max_turns:
        return None
    return (messages[-1].content or "").strip()


def semantic_scope(request: ChatRequest, route: ModelRoute, embedder_name: str) -> str:
    """The hash naming the set of answers ``request`` may be served from."""
    system = [m.content or "" for m in request.messages if m.role == "system"]
    earlier = [message_fields(m) for m in request.messages[:-1] if m.role != "system"]
    document = {
        "model": route.name,
        "system": system,
        "earlier": earlier,
        "parameters": generation_parameters(request),
        "embedder": embedder_name,
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()[:32]


def scope_key(route_name: str, scope: str) -> str:
    return f"{PREFIX}{model_tag(route_name)}:{scope}"


def entry_id(scope: str, question: str) -> str:
    # The same question stored twice in one scope replaces its entry instead of duplicating it.
    return hashlib.sha256(f"{scope}\n{question}".encode()).hexdigest()[:20]


@dataclass(slots=True)
class Candidate:
    entry_id: str
    similarity: float
    question: str


@dataclass
class ScopeIndex:
    """The vectors of one scope in this process, with when each entry expires."""

    key: str
    dimensions: int = 0
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    expires_at: np.ndarray = field(default_factory=lambda: np.zeros(0))
    stale_until: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ids: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    last_log_id: str = "0-0"
    # A large scope is searched on a worker thread while the event loop may apply the log.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def size(self) -> int:
        return len(self.ids)

    def add(self, entry: str, vector: np.ndarray, expires_at: float, stale_until: float, question: str) -> None:
        with self.lock:
            self._add(entry, vector, expires_at, stale_until, question)

    def _add(self, entry: str, vector: np.ndarray, expires_at: float, stale_until: float, question: str) -> None:
        if self.dimensions != vector.shape[0]:
            self._reset(vector.shape[0])  # the first vector, or another embedder's: start over
        row = self.rows.get(entry)
        if row is None:
            row = self.size
            self._grow(row + 1)
            self.ids.append(entry)
            self.questions.append(question)
            self.rows[entry] = row
        self.vectors[row] = vector
        self.expires_at[row] = expires_at
        self.stale_until[row] = stale_until
        self.questions[row] = question

    def _reset(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.vectors = np.zeros((0, dimensions), dtype=np.float32)
        self.expires_at, self.stale_until = np.zeros(0), np.zeros(0)
        self.ids, self.questions, self.rows = [], [], {}

    def _grow(self, needed: int) -> None:
        capacity = self.vectors.shape[0]
        if needed <= capacity:
            return
        capacity = max(needed, capacity * 2, 64)
        vectors = np.zeros((capacity, self.dimensions), dtype=np.float32)
        vectors[: self.size] = self.vectors[: self.size]
        self.vectors = vectors
        self.expires_at = np.resize(self.expires_at, capacity)
        self.stale_until = np.resize(self.stale_until, capacity)

    def remove(self, entry: str) -> None:
        with self.lock:
            self._remove(entry)

    def _remove(self, entry: str) -> None:
        row = self.rows.pop(entry, None)
        if row is None:
            return
        last = self.size - 1
        if row != last:  # move the last row into the hole
            moved = self.ids[last]
            self.vectors[row] = self.vectors[last]
            self.expires_at[row] = self.expires_at[last]
            self.stale_until[row] = self.stale_until[last]
            self.ids[row] = moved
            self.questions[row] = self.questions[last]
            self.rows[moved] = row
        self.ids.pop()
        self.questions.pop()

    def candidates(self, query: np.ndarray, threshold: float, valid_after: float, *, stale: bool) -> list[Candidate]:
        """Entries at least ``threshold`` similar and still valid, best first (at most CANDIDATES)."""
        with self.lock:
            return self._candidates(query, threshold, valid_after, stale=stale)

    def _candidates(self, query: np.ndarray, threshold: float, valid_after: float, *, stale: bool) -> list[Candidate]:
        n = self.size
        if n == 0 or query.shape[0] != self.dimensions:
            return []
        similarities = self.vectors[:n] @ query
        limit = self.stale_until[:n] if stale else self.expires_at[:n]
        rows = np.flatnonzero((similarities >= threshold) & (limit > valid_after))
        if rows.size > CANDIDATES:
            rows = rows[np.argpartition(-similarities[rows], CANDIDATES - 1)[:CANDIDATES]]
        rows = rows[np.argsort(-similarities[rows])]
        return [Candidate(self.ids[r], float(similarities[r]), self.questions[r]) for r in rows]

    def expired(self, now: float) -> list[str]:
        with self.lock:
            return [self.ids[r] for r in np.flatnonzero(self.stale_until[: self.size] <= now)]

    def oldest(self, count: int) -> list[str]:
        with self.lock:
            return [self.ids[r] for r in np.argsort(self.stale_until[: self.size])[:count]]


def pack_vector(vector: np.ndarray, expires_at: float, stale_until: float, question: str) -> bytes:
    header = _HEADER.pack(expires_at, stale_until, vector.shape[0])
    return header + vector.astype(np.float32).tobytes() + question.encode()


def unpack_vector(data: bytes) -> tuple[np.ndarray, float, float, str]:
    """(vector, expires_at, stale_until, question) of a packed entry."""
    expires_at, stale_until, dimensions = _HEADER.unpack_from(data)
    end = _HEADER.size + dimensions * 4
    vector = np.frombuffer(data[_HEADER.size : end], dtype=np.float32)
    return vector, expires_at, stale_until, data[end:].decode(errors="replace")


def matches(
    index: ScopeIndex, question: str, vector: np.ndarray, policy: SemanticPolicy, now: float, *, stale: bool
) -> list[Candidate]:
    """The entries that may answer ``question``: valid at ``now``, past the guard and the policy."""
    found = []
    for candidate in index.candidates(vector, policy.lowest, now, stale=stale):
        reason = near_miss_reason(question, candidate.question)
        if reason is None and candidate.similarity < policy.threshold:
            reason = _below_threshold(question, candidate, policy)
        if reason is None:
            found.append(candidate)
        else:
            logger.debug("semantic candidate refused (%s): %r for %r", reason, candidate.question, question)
    return found


def _below_threshold(question: str, candidate: Candidate, policy: SemanticPolicy) -> str | None:
    """Why a candidate under the threshold may not answer, or None: it must be the same question."""
    if not equivalent(question, candidate.question):
        return "below threshold"
    if candidate.similarity >= policy.equivalent_floor:
        return None
    return None if spelled_out(question, candidate.question) else "below the equivalent floor"


def route_policy(route: ModelRoute, embedder_name: str) -> SemanticPolicy:
    """The semantic policy of ``route``'s model with this process's embedder."""
    return policy_for(
        route.cache_semantic_threshold,
        route.cache_semantic_error_budget,
        embedder_name,
        learned_floor=route.cache_semantic_learned_floor,
    )


@dataclass(slots=True)
class SemanticHit:
    response: ChatResponse
    entry_key: str  # the CacheEntry key
    similarity: float


class SemanticCache:
    """Lookups and stores of the semantic cache; one per process (``ResponseCache`` holds it).

    ``embedder`` defaults to the configured one; ``clock`` is wall-clock seconds (processes
    compare expiry times through Redis).
    """

    def __init__(self, embedder: Embedder | None = None, clock: Clock = time.time) -> None:
        self._embedder = embedder
        self.clock = clock
        self._indexes: OrderedDict[str, ScopeIndex] = OrderedDict()
        self._recent_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._loading: dict[str, asyncio.Task[None]] = {}
        self.inline_load_max = INLINE_LOAD_MAX
        _single_threaded_blas()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    def eligible(self, request: ChatRequest, route: ModelRoute) -> str | None:
        """The query when ``route`` has the semantic cache on and ``request`` may use it."""
        if not route.cache_semantic:
            return None
        return semantic_query(request, route.cache_semantic_max_turns)

    async def lookup(self, client: Any, request: ChatRequest, route: ModelRoute, *, stale: bool) -> SemanticHit | None:
        """The best guarded answer above the model's threshold; ``stale`` accepts entries in their grace period."""
        question = self.eligible(request, route)
        if question is None:
            return None
        scope = semantic_scope(request, route, self.embedder.name)
        vector = await self.vector(question)
        index = await self._synced(client, scope_key(route.name, scope))
        if index is None:
            return None
        policy = route_policy(route, self.embedder.name)
        for candidate in await self._matches(index, question, vector, policy, stale=stale):
            response = await self._answer(client, index.key, candidate.entry_id)
            if response is not None:
                return SemanticHit(response, f"semantic:{scope}:{candidate.entry_id}", candidate.similarity)
        return None

    async def _matches(
        self, index: ScopeIndex, question: str, vector: np.ndarray, policy: SemanticPolicy, *, stale: bool
    ) -> list[Candidate]:
        now = self.clock()
        if index.size < SEARCH_IN_THREAD_FROM:
            return matches(index, question, vector, policy, now, stale=stale)
        # A large scope takes tens of milliseconds to scan: not on the event loop, which serves
        # every other request of this process meanwhile (numpy releases the GIL while it multiplies).
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            _SEARCH_EXECUTOR, functools.partial(matches, index, question, vector, policy, now, stale=stale)
        )

    async def store(
        self,
        client: Any,
        request: ChatRequest,
        route: ModelRoute,
        response: ChatResponse,
        *,
        ttl_s: float,
        grace_s: float,
    ) -> tuple[str, str, str] | None:
        """Keep ``response`` for ``request``; returns (CacheEntry key, scope, question) when stored."""
        question = self.eligible(request, route)
        if question is None:
            return None
        scope = semantic_scope(request, route, self.embedder.name)
        key = scope_key(route.name, scope)
        vector = await self.vector(question)
        now = self.clock()
        entry = entry_id(scope, question)
        expires_at, stale_until = now + ttl_s, now + ttl_s + grace_s
        index = await self._synced(client, key)  # before writing: the log replay must not miss earlier entries
        pipe = client.pipeline(transaction=False)
        pipe.hset(f"{key}:vec", entry, pack_vector(vector, expires_at, stale_until, question))
        pipe.hset(f"{key}:ans", entry, response_to_json(response))
        pipe.xadd(f"{key}:log", {"op": "add", "id": entry}, maxlen=LOG_MAX_LEN, approximate=True)
        for suffix in (":vec", ":ans", ":log"):  # an idle scope vanishes once its newest entry is past grace
            pipe.expire(f"{key}{suffix}", int(ttl_s + grace_s) + 60)
        await pipe.execute()
        if index is not None:  # else a background load of the scope picks the entry up from Redis
            index.add(entry, vector, expires_at, stale_until, question)
            await self._evict(client, index, now)
        return f"semantic:{scope}:{entry}", scope, question

    async def vector(self, text: str) -> np.ndarray:
        # Lookup and store of one request embed the same question: embed it once.
        cached = self._recent_vectors.get(text)
        if cached is not None:
            self._recent_vectors.move_to_end(text)
            return cached
        vector = (await self.embedder.embed([text]))[0]
        self._recent_vectors[text] = vector
        if len(self._recent_vectors) > 2048:
            self._recent_vectors.popitem(last=False)
        return vector

    async def _answer(self, client: Any, key: str, entry: str) -> ChatResponse | None:
        data = await client.hget(f"{key}:ans", entry)
        return response_from_json(data) if data else None

    async def _evict(self, client: Any, index: ScopeIndex, now: float) -> None:
        doomed = index.expired(now)
        if index.size - len(doomed) > MAX_SCOPE_ENTRIES:
            doomed += index.oldest(index.size - MAX_SCOPE_ENTRIES + MAX_SCOPE_ENTRIES // 100)
        if doomed:
            await self.delete(client, index.key, sorted(set(doomed)))

    async def delete(self, client: Any, key: str, entries: list[str]) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hdel(f"{key}:vec", *entries)
        pipe.hdel(f"{key}:ans", *entries)
        for entry in entries:
            pipe.xadd(f"{key}:log", {"op": "del", "id": entry}, maxlen=LOG_MAX_LEN, approximate=True)
        await pipe.execute()
        index = self._indexes.get(key)
        for entry in entries:
            if index is not None:
                index.remove(entry)

    # --- keeping the local copy in step with Redis -----------------------------------------

    async def _synced(self, client: Any, key: str) -> ScopeIndex | None:
        """This process's copy of a scope, caught up with Redis; None while a large scope loads.

        No lock: replaying the log is idempotent, so two coroutines catching up at once only
        repeat work, and a process-wide asyncio.Lock would tie this cache to one event loop.
        """
        index = self._indexes.get(key)
        if index is not None and await self._catch_up(client, index):
            # While this waited on Redis, another request may have dropped the scope (a purge, the
            # memory bound): this lookup still uses the index, and what was dropped stays dropped.
            if self._indexes.get(key) is index:
                self._indexes.move_to_end(key)
            return index
        if await client.hlen(f"{key}:vec") > self.inline_load_max:
            # Reading a large scope takes seconds: this request goes without, the next ones find it loaded.
            self._indexes.pop(key, None)
            self._load_in_background(client, key)
            return None
        return self._keep(await self.load_scope(client, key))

    def _keep(self, index: ScopeIndex) -> ScopeIndex:
        self._indexes[index.key] = index
        self._indexes.move_to_end(index.key)
        self._trim_memory()
        return index

    def _load_in_background(self, client: Any, key: str) -> None:
        if key in self._loading:
            return
        task = asyncio.get_running_loop().create_task(self._background_load(client, key))
        self._loading[key] = task
        task.add_done_callback(lambda _: self._loading.pop(key, None))

    async def _background_load(self, client: Any, key: str) -> None:
        try:
            index = await self.load_scope(client, key)
            if await self._catch_up(client, index):
                self._keep(index)
        except (redis.RedisError, OSError, TimeoutError) as error:
            logger.warning("could not load semantic cache scope %s: %s", key, error)

    async def loaded(self, key: str) -> None:
        """Wait for a background load of ``key`` to finish (tests, benchmarks)."""
        task = self._loading.get(key)
        if task is not None:
            await task

    async def _catch_up(self, client: Any, index: ScopeIndex) -> bool:
        """Apply the log after ``index.last_log_id``; False when the index must be reloaded."""
        while True:
            since = index.last_log_id
            if since == "0-0":
                entries = await client.xrange(f"{index.key}:log", min="-", max="+", count=LOG_BATCH)
            else:
                entries = await client.xrange(f"{index.key}:log", min=since, max="+", count=LOG_BATCH)
                if not entries or _text(entries[0][0]) != since:
                    return False  # the log was purged, expired or trimmed past what this process applied
                entries = entries[1:]
            # Other lookups may have applied some of these while this one waited on Redis.
            applied = _log_position(index.last_log_id)
            fresh = [entry for entry in entries if _log_position(_text(entry[0])) > applied]
            if fresh:
                await self._apply(client, index, fresh)
            if len(entries) < LOG_BATCH - 1:
                return True

    async def _apply(self, client: Any, index: ScopeIndex, entries: list[Any]) -> None:
        added: dict[str, None] = {}
        for log_id, fields in entries:
            fields = {_text(name): _text(value) for name, value in fields.items()}
            if fields.get("op") == "del":
                index.remove(fields.get("id", ""))
                added.pop(fields.get("id", ""), None)
            elif fields.get("op") == "add":
                added[fields.get("id", "")] = None
            index.last_log_id = _text(log_id)
        if added:
            values = await client.hmget(f"{index.key}:vec", list(added))
            for entry, value in zip(added, values, strict=True):
                if value:
                    index.add(entry, *unpack_vector(value))

    async def load_scope(self, client: Any, key: str) -> ScopeIndex:
        """Read a whole scope from Redis."""
        index = ScopeIndex(key)
        # Read the log's position first: whatever is added while the hash is scanned is replayed later.
        last = await client.xrevrange(f"{key}:log", max="+", min="-", count=1)
        cursor = 0
        while True:
            cursor, values = await client.hscan(f"{key}:vec", cursor, count=500)
            for entry, value in values.items():
                index.add(_text(entry), *unpack_vector(value))
            if cursor == 0:
                break
        index.last_log_id = _text(last[0][0]) if last else "0-0"
        return index

    def _trim_memory(self) -> None:
        total = sum(index.size for index in self._indexes.values())
        while total > MAX_LOCAL_VECTORS and len(self._indexes) > 1:
            _, dropped = self._indexes.popitem(last=False)
            total -= dropped.size

    def forget(self) -> None:
        """Drop this process's copies (after a purge); they reload from Redis on next use."""
        self._indexes.clear()
        self._recent_vectors.clear()


def _log_position(log_id: str) -> tuple[int, int]:
    """A Redis Stream id (``<ms>-<seq>``) as what orders it."""
    milliseconds, _, sequence = log_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

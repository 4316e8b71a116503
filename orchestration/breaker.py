"""Circuit breakers per provider (or per provider and model), shared by every process through Redis.

The state machine (docs/operations.md, "Circuit breakers"): closed until at least ``failure_rate`` of
the last ``window`` calls failed (no verdict before ``window`` calls); then open for ``open_s``;
then half-open, where exactly one caller gets the probe: its success closes the breaker and
empties the window, its failure re-opens it. Each transition is one Lua script, so concurrent
callers in any process race safely. When Redis does not answer, a process-local breaker with
the same rules takes over until Redis is back.

Times are wall-clock seconds from an injected ``clock`` (processes share them through Redis).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import redis
import redis.asyncio as aioredis
from django.db import close_old_connections, connection

from orchestration.redisclients import FAST_TEXT, redis_async, redis_sync
from orchestration.registry import ModelRoute, ProviderSettings

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
KEY_PREFIX = "switchyard:breaker:"
# After Redis failed, use the local breaker this long before asking Redis again.
REDIS_RETRY_S = 5.0
# A "closed" answer from Redis is trusted this long (real seconds) before asking again: it saves
# a round trip on nearly every call, and another process's opening reaches this one within it.
# Anything but "closed" is never cached, so an open or half-open breaker is always asked.
CLOSED_CACHE_S = 0.1
# Successes of ordinary (non-probe) calls are counted this long after the fact, all of one
# breaker's in one script call: under load that is one round trip per breaker per interval
# instead of one per call. A failure is counted at once, after the successes waiting before it.
SUCCESS_BATCH_S = 0.05
REDIS_TIMEOUT_S = 0.5

# KEYS[1] breaker hash. ARGV: now, open_s, probe lease seconds, probe token.
# Returns {decision, detail}: {"allow", ""}, {"probe", "transition" | ""}, {"reject", retry_at}.
_ACQUIRE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return {'allow', ''} end
local now = tonumber(ARGV[1])
if state == 'open' then
  local reopen = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') + tonumber(ARGV[2])
  if now < reopen then return {'reject', tostring(reopen)} end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe', ARGV[4], 'probe_at', ARGV[1])
  return {'probe', 'transition'}
end
local probe_at = tonumber(redis.call('HGET', KEYS[1], 'probe_at') or '')
if probe_at and now < probe_at + tonumber(ARGV[3]) then
  return {'reject', tostring(probe_at + tonumber(ARGV[3]))}
end
redis.call('HSET', KEYS[1], 'probe', ARGV[4], 'probe_at', ARGV[1])
return {'probe', ''}
"""

# KEYS[1] breaker hash. ARGV: outcomes, oldest first ("1" failed, "0" succeeded; a probe records
# exactly one), now, window, failure rate, probe token.
# Returns {state, "1" when this call changed the state else "0"}.
_RECORD = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' then
  if ARGV[5] == '' or redis.call('HGET', KEYS[1], 'probe') ~= ARGV[5] then return {state, '0'} end
  redis.call('HDEL', KEYS[1], 'probe', 'probe_at')
  if string.sub(ARGV[1], -1) == '0' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'outcomes', '', 'opened_at', '')
    return {'closed', '1'}
  end
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[2])
  return {'open', '1'}
end
if state == 'open' then return {'open', '0'} end
local window = tonumber(ARGV[3])
local outcomes = (redis.call('HGET', KEYS[1], 'outcomes') or '') .. ARGV[1]
if #outcomes > window then outcomes = string.sub(outcomes, -window) end
redis.call('HSET', KEYS[1], 'outcomes', outcomes)
local _, failures = string.gsub(outcomes, '1', '')
if #outcomes >= window and failures >= tonumber(ARGV[4]) * #outcomes then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[2])
  return {'open', '1'}
end
return {'closed', '0'}
"""

# KEYS[1] breaker hash. ARGV: probe token. Gives the probe back (its caller was cancelled).
_RELEASE = """
if redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'probe', 'probe_at')
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    window: int = 10
    failure_rate: float = 0.5
    open_s: float = 30.0

    @classmethod
    def of(cls, provider: ProviderSettings) -> BreakerPolicy:
        return cls(
            window=provider.breaker_window, failure_rate=provider.breaker_failure_rate, open_s=provider.breaker_open_s
        )

    @property
    def probe_lease_s(self) -> float:
        # A probe whose caller vanished (crash) frees itself after this long.
        return self.open_s


@dataclass(frozen=True, slots=True)
class Admission:
    """The breaker's answer to "may I call?": ``probe_token`` is set for the half-open probe."""

    allowed: bool
    probe_token: str = ""
    retry_at: float | None = None  # when a rejected caller may try again (clock time)
    transition: str = ""  # the state this decision moved the breaker into, if any


@dataclass(frozen=True, slots=True)
class BreakerView:
    """What the admin and the metrics show of one breaker."""

    key: str
    state: str
    failure_rate: float
    window_calls: int
    opened_at: float | None
    next_probe_at: float | None


def breaker_key(route: ModelRoute, provider: ProviderSettings) -> str:
    """``provider`` or, with ``breaker_per_model``, ``provider:upstream-model``; a deployment of a model
    with several has its own (``provider:upstream-model``, from the registry)."""
    if route.breaker_scope:
        return route.breaker_scope
    if provider.breaker_per_model:
        return f"{route.provider}:{route.upstream}"
    return route.provider


def _view(key: str, data: dict[str, str], open_s: float) -> BreakerView:
    outcomes = data.get("outcomes") or ""
    opened_at = float(data["opened_at"]) if data.get("opened_at") else None
    state = data.get("state") or CLOSED
    next_probe = opened_at + open_s if opened_at is not None and state != CLOSED else None
    return BreakerView(
        key=key,
        state=state,
        failure_rate=outcomes.count("1") / len(outcomes) if outcomes else 0.0,
        window_calls=len(outcomes),
        opened_at=opened_at if state != CLOSED else None,
        next_probe_at=next_probe,
    )


class LocalBreakers:
    """The same state machine in this process's memory: the stand-in while Redis is down."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, now: float, policy: BreakerPolicy, token: str) -> Admission:
        with self._lock:
            data = self._data.setdefault(key, {})
            state = data.get("state", CLOSED)
            if state == CLOSED:
                return Admission(True)
            if state == OPEN:
                reopen = float(data.get("opened_at") or 0) + policy.open_s
                if now < reopen:
                    return Admission(False, retry_at=reopen)
                data.update(state=HALF_OPEN, probe=token, probe_at=str(now))
                return Admission(True, probe_token=token, transition=HALF_OPEN)
            probe_at = data.get("probe_at")
            if probe_at and now < float(probe_at) + policy.probe_lease_s:
                return Admission(False, retry_at=float(probe_at) + policy.probe_lease_s)
            data.update(probe=token, probe_at=str(now))
            return Admission(True, probe_token=token)

    def record(self, key: str, outcomes: str, now: float, policy: BreakerPolicy, token: str) -> str:
        """Count outcomes, oldest first ("1" failed, "0" succeeded; only a probe's one outcome
        can close or re-open a half-open breaker); returns the new state when it changed, else ""."""
        with self._lock:
            data = self._data.setdefault(key, {})
            state = data.get("state", CLOSED)
            if state == HALF_OPEN:
                if not token or data.get("probe") != token:
                    return ""
                data.pop("probe", None)
                data.pop("probe_at", None)
                if outcomes.endswith("1"):
                    data.update(state=OPEN, opened_at=str(now))
                    return OPEN
                data.update(state=CLOSED, outcomes="", opened_at="")
                return CLOSED
            if state == OPEN:
                return ""
            window = (data.get("outcomes", "") + outcomes)[-policy.window :]
            data["outcomes"] = window
            if len(window) >= policy.window and window.count("1") >= policy.failure_rate * len(window):
                data.update(state=OPEN, opened_at=str(now))
                return OPEN
            return ""

    def release(self, key: str, token: str) -> None:
        with self._lock:
            data = self._data.get(key, {})
            if token and data.get("probe") == token:
                data.pop("probe", None)
                data.pop("probe_at", None)

    def view(self, key: str, policy: BreakerPolicy) -> BreakerView:
        with self._lock:
            return _view(key, dict(self._data.get(key, {})), policy.open_s)

    def reset(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def force_open(self, key: str, now: float) -> None:
        with self._lock:
            self._data[key] = {**self._data.get(key, {}), "state": OPEN, "opened_at": str(now)}
            self._data[key].pop("probe", None)


@dataclass
class _Successes:
    """Successes of one breaker waiting to be counted."""

    provider: str
    policy: BreakerPolicy
    count: int = 1


@dataclass
class _LoopClient:
    client: aioredis.Redis
    acquire: Any
    record: Any
    release: Any


TransitionHook = Callable[[str, str, BreakerView], None]


@dataclass
class Breakers:
    """Every breaker of this process: Redis first, the local breakers while Redis is down.

    ``on_transition(key, provider, view)`` runs (synchronously, keep it quick) after each
    state change this process caused. ``closed_cache_s``: see ``CLOSED_CACHE_S``.
    """

    redis_url: str = ""
    clock: Clock = time.time
    on_transition: TransitionHook | None = None
    closed_cache_s: float = CLOSED_CACHE_S
    local: LocalBreakers = field(default_factory=LocalBreakers)
    _closed_until: dict[str, float] = field(default_factory=dict)
    _clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    _redis_down_until: float = 0.0
    success_batch_s: float = SUCCESS_BATCH_S
    _successes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Successes]] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    _flushing: set[asyncio.Task[None]] = field(default_factory=set)
    # Per event loop and breaker: the question to Redis under way, while the closed answer is unknown.
    _asking: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[None]]] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def _client(self) -> _LoopClient:
        # redis.asyncio connections belong to the loop that opened them: one client per loop.
        loop = asyncio.get_running_loop()
        current = self._clients.get(loop)
        client = redis_async(FAST_TEXT, url=self.redis_url or None)
        if current is None or current.client is not client:
            current = _LoopClient(
                client,
                client.register_script(_ACQUIRE),
                client.register_script(_RECORD),
                client.register_script(_RELEASE),
            )
            self._clients[loop] = current
        return current

    def _note_state(self, key: str, state: str) -> None:
        if state == CLOSED and self.closed_cache_s > 0:
            self._closed_until[key] = time.monotonic() + self.closed_cache_s
        else:
            self._closed_until.pop(key, None)

    def _redis_usable(self) -> bool:
        return time.monotonic() >= self._redis_down_until

    def _redis_failed(self, error: Exception) -> None:
        if self._redis_usable():
            logger.warning("Redis unavailable for circuit breakers, using process-local ones: %s", error)
        self._redis_down_until = time.monotonic() + REDIS_RETRY_S
        self._closed_until.clear()

    async def acquire(self, key: str, provider: str, policy: BreakerPolicy) -> Admission:
        """May a call go to ``key`` now? A half-open breaker admits exactly one probe.

        Calls that arrive while this process is already asking Redis about ``key`` wait for that
        answer: when it says closed, it is trusted as ``closed_cache_s`` says; otherwise each asks
        for itself (one probe each time). 200 streams starting at once made 200 round trips, and
        opened as many connections, where one answers them all."""
        if self._closed_until.get(key, 0.0) > time.monotonic():
            return Admission(True)
        loop = asyncio.get_running_loop()
        asking = self._asking.get(loop)
        if asking is None:
            asking = self._asking[loop] = {}
        pending = asking.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            if self._closed_until.get(key, 0.0) > time.monotonic():
                return Admission(True)
            return await self._acquire(key, provider, policy)
        asking[key] = future = loop.create_future()
        try:
            return await self._acquire(key, provider, policy)
        finally:
            if asking.get(key) is future:
                del asking[key]
            future.set_result(None)

    async def _acquire(self, key: str, provider: str, policy: BreakerPolicy) -> Admission:
        now = self.clock()
        token = _probe_token()
        admission: Admission | None = None
        if self._redis_usable():
            try:
                decision, detail = await self._client().acquire(
                    keys=[KEY_PREFIX + key], args=[repr(now), repr(policy.open_s), repr(policy.probe_lease_s), token]
                )
                admission = _admission(decision, detail, token)
                self._note_state(key, CLOSED if decision == "allow" else "")
            except (redis.RedisError, OSError) as error:
                self._redis_failed(error)
        if admission is None:
            admission = self.local.acquire(key, now, policy, token)
        if admission.transition:
            await self._transitioned(key, provider, policy)
        return admission

    async def record(
        self, key: str, provider: str, policy: BreakerPolicy, admission: Admission, *, failed: bool
    ) -> None:
        """Count the outcome of an admitted call now (with the successes still waiting before it)."""
        waiting = self._successes.get(asyncio.get_running_loop(), {}).pop(key, None)
        outcomes = ("0" * waiting.count if waiting else "") + ("1" if failed else "0")
        await self._record(key, provider, policy, outcomes, admission.probe_token)

    def record_success_soon(self, key: str, provider: str, policy: BreakerPolicy) -> None:
        """Count the success of an ordinary call (not a probe) within ``success_batch_s``."""
        loop = asyncio.get_running_loop()
        waiting = self._successes.setdefault(loop, {})
        if key in waiting:
            waiting[key].count += 1
            return
        waiting[key] = _Successes(provider, policy)
        loop.call_later(self.success_batch_s, self._flush_soon, loop, key)

    def _flush_soon(self, loop: asyncio.AbstractEventLoop, key: str) -> None:
        if loop.is_closed() or key not in self._successes.get(loop, {}):
            return
        task = loop.create_task(self._flush(key))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, key: str) -> None:
        waiting = self._successes.get(asyncio.get_running_loop(), {}).pop(key, None)
        if waiting is not None:
            await self._record(key, waiting.provider, waiting.policy, "0" * waiting.count, "")

    async def flush(self) -> None:
        """Count every success waiting in this event loop now, and wait for counts under way."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(self._flush(key) for key in list(self._successes.get(loop, {}))))
        while under_way := [task for task in self._flushing if task.get_loop() is loop and not task.done()]:
            await asyncio.gather(*under_way, return_exceptions=True)

    async def _record(self, key: str, provider: str, policy: BreakerPolicy, outcomes: str, probe_token: str) -> None:
        now = self.clock()
        changed = ""
        if self._redis_usable():
            try:
                state, flag = await self._client().record(
                    keys=[KEY_PREFIX + key],
                    args=[
                        outcomes,
                        repr(now),
                        policy.window,
                        repr(policy.failure_rate),
                        probe_token,
                    ],
                )
                changed = state if flag == "1" else ""
                self._note_state(key, state)
            except (redis.RedisError, OSError) as error:
                self._redis_failed(error)
                changed = self.local.record(key, outcomes, now, policy, probe_token)
        else:
            changed = self.local.record(key, outcomes, now, policy, probe_token)
        if changed:
            await self._transitioned(key, provider, policy)

    async def release(self, key: str, admission: Admission) -> None:
        """Give an unused probe back (its caller was cancelled or the reply said nothing of health)."""
        if not admission.probe_token:
            return
        self.local.release(key, admission.probe_token)
        if self._redis_usable():
            try:
                await self._client().release(keys=[KEY_PREFIX + key], args=[admission.probe_token])
            except (redis.RedisError, OSError) as error:
                self._redis_failed(error)

    async def view(self, key: str, policy: BreakerPolicy) -> BreakerView:
        if self._redis_usable():
            try:
                data = await self._client().client.hgetall(KEY_PREFIX + key)
                return _view(key, cast(dict[str, str], data), policy.open_s)
            except (redis.RedisError, OSError) as error:
                self._redis_failed(error)
        return self.local.view(key, policy)

    async def _transitioned(self, key: str, provider: str, policy: BreakerPolicy) -> None:
        if self.on_transition is None:
            return
        view = await self.view(key, policy)
        try:
            self.on_transition(key, provider, view)
        except Exception:
            logger.exception("breaker transition hook failed for %s", key)

    async def aclose(self) -> None:
        """Count what is waiting, then forget this loop's scripts (``redis_async_close`` closes its client)."""
        await self.flush()
        self._clients.pop(asyncio.get_running_loop(), None)


_TOKEN_PREFIX = secrets.token_hex(6)
_token_numbers = itertools.count()


def _probe_token() -> str:
    """Unique across processes (random per process) and cheap (no system call per call)."""
    return f"{_TOKEN_PREFIX}-{os.getpid()}-{next(_token_numbers)}"


def _admission(decision: str, detail: str, token: str) -> Admission:
    if decision == "allow":
        return Admission(True)
    if decision == "probe":
        return Admission(True, probe_token=token, transition=HALF_OPEN if detail == "transition" else "")
    return Admission(False, retry_at=float(detail))


# --- admin side (sync) -----------------------------------------------------------------


def _sync_client() -> redis.Redis:
    return redis_sync(FAST_TEXT)


def breaker_read(key: str, open_s: float) -> BreakerView | None:
    """The live state of one breaker from Redis; None when Redis does not answer."""
    client = _sync_client()
    try:
        return _view(key, cast(dict[str, str], client.hgetall(KEY_PREFIX + key)), open_s)
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()


def breakers_read(open_s: dict[str, float]) -> dict[str, BreakerView] | None:
    """The live state of several breakers (key -> its open period) in one round trip; None when
    Redis does not answer."""
    client = _sync_client()
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in open_s:
                pipe.hgetall(KEY_PREFIX + key)
            found = cast(list[dict[str, str]], pipe.execute())
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    return {key: _view(key, data, open_s[key]) for key, data in zip(open_s, found, strict=True)}


def breaker_reset(key: str) -> None:
    """Close the breaker and empty its window, for every process."""
    client = _sync_client()
    try:
        client.delete(KEY_PREFIX + key)
    finally:
        client.close()


def breaker_force_open(key: str, now: float | None = None) -> None:
    """Open the breaker now, for every process; it half-opens after its open period as usual."""
    client = _sync_client()
    try:
        pipe = client.pipeline(transaction=True)
        pipe.hset(KEY_PREFIX + key, mapping={"state": OPEN, "opened_at": repr(now if now is not None else time.time())})
        pipe.hdel(KEY_PREFIX + key, "probe", "probe_at")
        pipe.execute()
    finally:
        client.close()


def timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


# --- the database mirror, written off the hot path ---------------------------------------

_mirror_pool: tuple[int, ThreadPoolExecutor] | None = None


def _mirror_executor() -> ThreadPoolExecutor:
    # One writer thread per process (a forked child needs its own), so rows land in order.
    global _mirror_pool
    if _mirror_pool is None or _mirror_pool[0] != os.getpid():
        _mirror_pool = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="breaker-mirror"))
    return _mirror_pool[1]


def breaker_state_save(key: str, provider: str, view: BreakerView) -> None:
    """Write one breaker's state into its ``BreakerState`` row (sync, database)."""
    from orchestration.models import BreakerState, Provider

    provider_id = Provider.objects.filter(name=provider).values_list("pk", flat=True).first()
    if provider_id is None:
        return
    BreakerState.objects.update_or_create(
        key=key,
        defaults={
            "provider_id": provider_id,
            "model": key.partition(":")[2],
            "state": view.state,
            "failure_rate": view.failure_rate,
            "window_calls": view.window_calls,
            "opened_at": timestamp(view.opened_at),
            "next_probe_at": timestamp(view.next_probe_at),
        },
    )


def _mirror_write(key: str, provider: str, view: BreakerView) -> None:
    close_old_connections()
    try:
        breaker_state_save(key, provider, view)
    except Exception:
        logger.exception("could not mirror breaker %s into the database", key)
    finally:
        connection.close()


def breaker_state_mirror(key: str, provider: str, view: BreakerView) -> Future[None]:
    """Queue the row update on the mirror thread; returns at once."""
    return _mirror_executor().submit(_mirror_write, key, provider, view)


def breaker_mirror_flush(timeout: float = 10.0) -> None:
    """Wait until every queued mirror write is done (tests, shutdown)."""
    _mirror_executor().submit(lambda: None).result(timeout=timeout)

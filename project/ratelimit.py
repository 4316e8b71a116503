"""Per-key rate limits (requests and tokens per minute) and the monthly budget, atomic in Redis.

Both limits are GCRA (the generic cell rate algorithm: a token bucket of one minute's quota
that refills continuously, as OpenAI's limits do), kept as one "theoretical arrival time" per
key and limit. One Lua script admits a call: it reads the month's spend against the budget,
checks both limits, and commits both or neither, in one round trip. After the call a second
script settles it: the token estimate is corrected with the real usage and the cost is added
to the spend counter (``project.budgets``).

When Redis does not answer, calls are admitted (and a warning logged) rather than refused: a
limiter outage must not become a gateway outage. Redis is then left alone for ``_BACKOFF_S``
so that every request does not pay a connection timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from django.conf import settings
from redis.exceptions import NoScriptError, RedisError

from project.budgets import (
    counter_ttl_s,
    seconds_to_next_month,
    spend_counter_key,
    spend_from_request_log,
    usd_to_units,
)

logger = logging.getLogger("switchyard.ratelimit")

Clock = Callable[[], float]

PERIOD_S = 60
# A float TAT can land a hair past the window after a full burst; this much is not a violation.
_EPSILON_MS = 0.001
_BACKOFF_S = 2.0
_WARN_EVERY_S = 30.0
# Roughly four characters per token for English text: the estimate only has to hold until the
# real usage corrects it after the call.
CHARS_PER_TOKEN = 4
# Output reserved for a request that names no max_tokens.
DEFAULT_OUTPUT_ESTIMATE = 1024

_ADMIT = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local budget = tonumber(ARGV[6])
local spent = -1
if budget >= 0 then
  local value = redis.call('GET', KEYS[3])
  if not value then return {'missing'} end
  spent = tonumber(value)
end
local function tat_of(key)
  local tat = tonumber(redis.call('GET', key))
  if (not tat) or tat < now then return now end
  return tat
end
local req_tat, req_new, tok_tat, tok_new = now, now, now, now
if rpm > 0 then
  req_tat = tat_of(KEYS[1])
  req_new = req_tat + period / rpm
end
if tpm > 0 then
  tok_tat = tat_of(KEYS[2])
  tok_new = tok_tat + cost * period / tpm
end
local req_wait = req_new - period - now
local tok_wait = tok_new - period - now
local status = 'ok'
if budget >= 0 and spent >= budget then
  status = 'budget'
elseif tpm > 0 and cost > tpm then
  status = 'too_large'
elseif req_wait > tonumber(ARGV[7]) then
  status = 'requests'
elseif tok_wait > tonumber(ARGV[7]) then
  status = 'tokens'
end
if status == 'ok' then
  if rpm > 0 then
    redis.call('SET', KEYS[1], string.format('%.3f', req_new), 'PX', math.ceil(req_new - now) + 1000)
    req_tat = req_new
  end
  if tpm > 0 then
    redis.call('SET', KEYS[2], string.format('%.3f', tok_new), 'PX', math.ceil(tok_new - now) + 1000)
    tok_tat = tok_new
  end
end
return {status, string.format('%.3f', req_tat - now), string.format('%.3f', tok_tat - now),
        string.format('%.3f', req_wait), string.format('%.3f', tok_wait), tostring(spent)}
"""

_SETTLE = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tpm = tonumber(ARGV[3])
local delta = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
if tpm > 0 and delta ~= 0 then
  local tat = tonumber(redis.call('GET', KEYS[1]))
  if (not tat) or tat < now then tat = now end
  local new = tat + delta * period / tpm
  if new > now then
    redis.call('SET', KEYS[1], string.format('%.3f', new), 'PX', math.ceil(new - now) + 1000)
  else
    redis.call('DEL', KEYS[1])
  end
end
if cost > 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
  redis.call('INCRBY', KEYS[2], cost)
end
return 1
"""


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """What the limiter needs to know about an API key."""

    api_key_id: int
    rpm: int | None = None
    tpm: int | None = None
    monthly_budget_usd: Decimal | None = None

    @property
    def limited(self) -> bool:
        return bool(self.rpm or self.tpm or self.monthly_budget_usd is not None)


@dataclass(frozen=True, slots=True)
class LimitState:
    """One limit after an admission: the figures the response headers report."""

    name: str  # "requests" | "tokens"
    limit: int
    remaining: int
    reset_s: float  # until the quota is whole again
    window_s: float  # IETF "t": how long the reported remaining quota has to last


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    token_cost: int = 0
    code: str = ""
    message: str = ""
    retry_after_s: float = 0.0
    states: tuple[LimitState, ...] = ()
    degraded: bool = False


def token_estimate(prompt_chars: int, max_output_tokens: int | None) -> int:
    """Tokens a call may use, before it is made: the prompt's length and the output it may write."""
    output = max_output_tokens if max_output_tokens is not None else DEFAULT_OUTPUT_ESTIMATE
    return math.ceil(prompt_chars / CHARS_PER_TOKEN) + max(0, output)


# --- Redis ---------------------------------------------------------------------------------

_ADMIT_SHA = hashlib.sha1(_ADMIT.encode()).hexdigest()
_SETTLE_SHA = hashlib.sha1(_SETTLE.encode()).hexdigest()
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aioredis.Redis]] = weakref.WeakKeyDictionary()
# Per Redis URL: when it last failed to answer, so one bad server does not slow every call.
_down_until: dict[str, float] = {}
_warned_at: dict[str, float] = {}


def _client() -> aioredis.Redis:
    # A redis.asyncio pool belongs to the event loop that opened it.
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(settings.REDIS_URL)
    if client is None:
        client = aioredis.from_url(settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5)
        clients[settings.REDIS_URL] = client
    return client


def _redis_usable() -> bool:
    return time.monotonic() >= _down_until.get(settings.REDIS_URL, 0.0)


def _redis_failed(error: Exception) -> None:
    url, now = settings.REDIS_URL, time.monotonic()
    _down_until[url] = now + _BACKOFF_S
    if now - _warned_at.get(url, -_WARN_EVERY_S) >= _WARN_EVERY_S:
        _warned_at[url] = now
        logger.warning("Redis unavailable; admitting calls without rate limits or budgets: %s", error)


def _keys(api_key_id: int, now: datetime) -> list[str]:
    # The braces are a Redis Cluster hash tag: one script touches keys of one slot only.
    return [f"sy:rl:{{{api_key_id}}}:requests", f"sy:rl:{{{api_key_id}}}:tokens", spend_counter_key(api_key_id, now)]


Command = tuple[str, list[str], list[Any]]  # script sha, keys, args


async def _evaluate(commands: list[Command]) -> list[Any]:
    """Run scripts in one pipeline (one round trip), loading them first if Redis forgot them."""
    client = _client()
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for sha, keys, args in commands:
            pipe.evalsha(sha, len(keys), *keys, *args)
        try:
            return list(await pipe.execute())
        except NoScriptError:
            if attempt == 2:
                raise
            await client.script_load(_ADMIT)
            await client.script_load(_SETTLE)
    raise AssertionError("unreachable")


# --- admission -----------------------------------------------------------------------------


async def ratelimit_admit(limits: KeyLimits, token_cost: int, *, clock: Clock = time.time) -> Admission:
    """Admit one call of ``token_cost`` estimated tokens, or say why not (and for how long).

    Settlements waiting in this process go to Redis in the same round trip, before the check,
    so a budget or token limit is checked against every call this process has finished."""
    if not limits.limited:
        return Admission(allowed=True, token_cost=token_cost)
    if not _redis_usable():
        return Admission(allowed=True, token_cost=token_cost, degraded=True)
    try:
        return await _admit(limits, token_cost, clock)
    except (TimeoutError, RedisError, OSError) as error:
        _redis_failed(error)
        return Admission(allowed=True, token_cost=token_cost, degraded=True)


async def _admit(limits: KeyLimits, token_cost: int, clock: Clock) -> Admission:
    now = clock()
    budget = -1 if limits.monthly_budget_usd is None else usd_to_units(limits.monthly_budget_usd)
    args = [f"{now * 1000:.3f}", PERIOD_S * 1000, limits.rpm or 0, limits.tpm or 0, token_cost, budget, _EPSILON_MS]
    admit: Command = (_ADMIT_SHA, _keys(limits.api_key_id, datetime.fromtimestamp(now, UTC)), args)
    settlements = _take_settlements()
    results = await _evaluate([*(s.command for s in settlements), admit])
    await _settled(settlements, results[:-1])
    result = results[-1]
    if result[0] == b"missing":
        await spend_counter_rebuild(limits.api_key_id, now=now)
        result = (await _evaluate([admit]))[0]
    return _admission_from(limits, token_cost, [v.decode() if isinstance(v, bytes) else str(v) for v in result], now)


def _admission_from(limits: KeyLimits, token_cost: int, result: list[str], now: float) -> Admission:
    status = result[0]
    if status == "missing":  # the counter vanished between rebuild and retry: admit, never refuse blindly
        return Admission(allowed=True, token_cost=token_cost, degraded=True)
    used_ms = {"requests": float(result[1]), "tokens": float(result[2])}
    wait_ms = {"requests": float(result[3]), "tokens": float(result[4])}
    states = tuple(
        _state(name, limit, used_ms[name], wait_ms[name] if status == name else None)
        for name, limit in (("requests", limits.rpm), ("tokens", limits.tpm))
        if limit
    )
    if status == "ok":
        return Admission(allowed=True, token_cost=token_cost, states=states)
    if status == "budget":
        message = f"This API key's monthly budget of {limits.monthly_budget_usd} USD is spent."
        retry = seconds_to_next_month(datetime.fromtimestamp(now, UTC))
        return Admission(False, token_cost, "budget_exceeded", message, retry, states)
    if status == "too_large":
        message = (
            f"Request too large: about {token_cost} tokens requested, the limit is {limits.tpm} tokens per minute."
        )
        return Admission(False, token_cost, "rate_limit_exceeded", message, float(PERIOD_S), states)
    limit = limits.rpm if status == "requests" else limits.tpm
    message = f"Rate limit reached for {status}: {limit} per minute. Retry after the time in Retry-After."
    return Admission(False, token_cost, "rate_limit_exceeded", message, wait_ms[status] / 1000, states)


def _state(name: str, limit: int, used_ms: float, denied_wait_ms: float | None) -> LimitState:
    interval_ms = PERIOD_S * 1000 / limit
    remaining = max(0, min(limit, math.floor((PERIOD_S * 1000 - used_ms + _EPSILON_MS) / interval_ms)))
    if denied_wait_ms is not None:
        window_ms = denied_wait_ms
    elif remaining == 0:
        window_ms = used_ms - (PERIOD_S * 1000 - interval_ms)
    else:
        window_ms = used_ms
    return LimitState(name, limit, remaining, max(0.0, used_ms) / 1000, max(0.0, window_ms) / 1000)


# --- settlement ----------------------------------------------------------------------------
# A finished call's settlement is not sent on its own: it waits (at most SETTLE_DELAY_S) to go
# with the next admission's round trip, or with the settlements of calls finishing meanwhile.
# That takes one Redis round trip off every call and the wait for it off every response.

SETTLE_DELAY_S = 0.02


@dataclass(frozen=True, slots=True)
class _Settlement:
    api_key_id: int
    command: Command
    cost_units: int
    now: float


_pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Settlement]] = weakref.WeakKeyDictionary()
_flushing: set[asyncio.Task[None]] = set()


async def ratelimit_settle(
    limits: KeyLimits, admission: Admission, *, tokens_used: int, cost_usd: Decimal, clock: Clock = time.time
) -> None:
    """After a call: replace the token estimate by the real usage and add the cost to the month's spend."""
    cost_units = usd_to_units(cost_usd)
    delta = tokens_used - admission.token_cost if limits.tpm and not admission.degraded else 0
    if delta == 0 and cost_units <= 0:
        return
    now = clock()
    keys = _keys(limits.api_key_id, datetime.fromtimestamp(now, UTC))[1:]
    args = [f"{now * 1000:.3f}", PERIOD_S * 1000, limits.tpm or 0, delta, max(0, cost_units)]
    loop = asyncio.get_running_loop()
    pending = _pending.setdefault(loop, [])
    pending.append(_Settlement(limits.api_key_id, (_SETTLE_SHA, keys, args), cost_units, now))
    if len(pending) == 1:
        loop.call_later(SETTLE_DELAY_S, _start_flush, loop)


def _take_settlements() -> list[_Settlement]:
    return _pending.pop(asyncio.get_running_loop(), [])


def _start_flush(loop: asyncio.AbstractEventLoop) -> None:
    if _pending.get(loop) and not loop.is_closed():
        task = loop.create_task(ratelimit_flush())
        _flushing.add(task)
        task.add_done_callback(_flushing.discard)


async def ratelimit_flush() -> None:
    """Send this event loop's waiting settlements now."""
    settlements = _take_settlements()
    if not settlements:
        return
    if not _redis_usable():
        return
    try:
        await _settled(settlements, await _evaluate([s.command for s in settlements]))
    except (TimeoutError, RedisError, OSError) as error:
        _redis_failed(error)


async def _settled(settlements: list[_Settlement], results: list[Any]) -> None:
    for settlement, counted in zip(settlements, results, strict=True):
        if not counted:
            await spend_counter_rebuild(settlement.api_key_id, now=settlement.now, plus_units=settlement.cost_units)


async def spend_counter_rebuild(api_key_id: int, *, now: float, plus_units: int = 0) -> None:
    """Recreate a missing spend counter from the request log (plus a cost not logged yet)."""
    moment = datetime.fromtimestamp(now, UTC)
    logged = await database_sync_to_async(spend_from_request_log)(api_key_id, moment)
    client = _client()
    key = spend_counter_key(api_key_id, moment)
    # NX: when two processes rebuild at once, the first one wins and the other adds its cost.
    created = await client.set(key, logged + plus_units, nx=True, ex=counter_ttl_s(moment))
    if not created and plus_units:
        await client.incrby(key, plus_units)


# --- headers -------------------------------------------------------------------------------


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in ``x-ratelimit-reset-*``: ``20ms``, ``1.5s``, ``6m0s``."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest_ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{text}{rest_ms / 1000:g}s"


def ratelimit_headers(admission: Admission) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` trio per limit, the IETF ``RateLimit``/``RateLimit-Policy``
    fields (draft-ietf-httpapi-ratelimit-headers-10), and ``Retry-After`` on a refusal."""
    headers: dict[str, str] = {}
    policies, limits = [], []
    for state in admission.states:
        headers[f"x-ratelimit-limit-{state.name}"] = str(state.limit)
        headers[f"x-ratelimit-remaining-{state.name}"] = str(state.remaining)
        headers[f"x-ratelimit-reset-{state.name}"] = go_duration(state.reset_s)
        unit = ';qu="tokens"' if state.name == "tokens" else ""
        policies.append(f'"{state.name}";q={state.limit};w={PERIOD_S}{unit}')
        limits.append(f'"{state.name}";r={state.remaining};t={math.ceil(state.window_s)}')
    if policies:
        headers["RateLimit-Policy"] = ", ".join(policies)
        headers["RateLimit"] = ", ".join(limits)
    if not admission.allowed:
        headers["Retry-After"] = str(max(1, math.ceil(admission.retry_after_s)))
    return headers

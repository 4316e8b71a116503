"""Rate limits (requests and tokens per minute) and budget reservations, atomic in Redis.

Both rate limits are GCRA (the generic cell rate algorithm: a token bucket of one minute's quota
that refills continuously, as OpenAI's limits do), kept as one "theoretical arrival time" per
payer and limit. One Lua script admits a call: it reads the month's spend and what calls in flight
have reserved of the budget, checks both rate limits, and commits all of it or none, in one round
trip. A call reserves its worst-case cost: concurrent calls then cannot overrun a budget, because
each sees what the others may still spend. After the call a second script settles it: the token
estimate is replaced by the real usage, the reservation is released and the real cost is added
to the month's spend (``orchestration.access.budgets``). A reservation that is never settled (its
process died) lapses after its hold.

When Redis does not answer, calls are admitted (and a warning logged) rather than refused: a
limiter outage must not become a gateway outage. Redis is then left alone for ``_BACKOFF_S`` so
that every request does not pay a connection timeout.

Scripts are run by SHA. A Redis that forgot them has restarted: before loading them again the
limiter sets ``budgets.EPOCH_KEY`` to the server's run id, so every spend counter is checked
against the request log before the next decision on it, once per restart.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import math
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from redis.exceptions import NoScriptError, RedisError, ResponseError

from orchestration.access.budgets import (
    EPOCH_KEY,
    counter_ttl_s,
    month_of,
    spend_counter_key,
    spend_from_request_log,
    usd_to_units,
)
from orchestration.conf import setting
from orchestration.database import database_call
from orchestration.loops import PerLoop, detached
from orchestration.redisclients import FAST, redis_async, redis_sync, round_trip
from orchestration.sharedcalls import SharedCalls

logger = logging.getLogger("switchyard.access")

Clock = Callable[[], float]

PERIOD_S = 60
# A float TAT can land a hair past the window after a full burst; this much is not a violation.
_EPSILON_MS = 0.001
_BACKOFF_S = 2.0
_WARN_EVERY_S = 30.0
# A reservation outlives its call's hold by this much before it lapses.
_HOLD_MARGIN_S = 30.0

# ARGV[1] is the caller's clock in ms, or empty for Redis's own (see _stamp).
_NOW = """
local now = tonumber(ARGV[1])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
end
"""

_ADMIT = (
    _NOW
    + """
local period = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
local budget = tonumber(ARGV[6])
local reserve = tonumber(ARGV[7])
local epsilon = tonumber(ARGV[8])
local spent, reserved = -1, 0
if budget >= 0 then
  local epoch = redis.call('GET', KEYS[6]) or '0'
  local counter = redis.call('HMGET', KEYS[3], 'units', 'epoch')
  if (not counter[1]) or counter[2] ~= epoch then return {'rebuild', epoch} end
  spent = tonumber(counter[1])
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
  if #lapsed > 0 then
    local freed = 0
    for _, member in ipairs(lapsed) do freed = freed + tonumber(string.match(member, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
    redis.call('DECRBY', KEYS[5], freed)
  end
  reserved = math.max(0, tonumber(redis.call('GET', KEYS[5]) or '0'))
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
  status = 'budget_spent'
elseif budget >= 0 and reserve > budget then
  status = 'budget_too_small'
elseif budget >= 0 and spent + reserve > budget then
  status = 'budget_short'
elseif budget >= 0 and spent + reserved + reserve > budget then
  status = 'budget_held'
elseif tpm > 0 and cost > tpm then
  status = 'too_large'
elseif req_wait > epsilon then
  status = 'requests'
elseif tok_wait > epsilon then
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
  if budget >= 0 and reserve > 0 then
    local hold = tonumber(ARGV[10])
    redis.call('ZADD', KEYS[4], now + hold, ARGV[9])
    redis.call('INCRBY', KEYS[5], reserve)
    for i = 4, 5 do
      if redis.call('PTTL', KEYS[i]) < hold + 60000 then redis.call('PEXPIRE', KEYS[i], math.ceil(hold) + 60000) end
    end
  end
end
return {status, string.format('%.3f', req_tat - now), string.format('%.3f', tok_tat - now),
        string.format('%.3f', req_wait), string.format('%.3f', tok_wait), tostring(spent), tostring(reserved)}
"""
)

_SETTLE = (
    _NOW
    + """
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
if ARGV[6] ~= '' and redis.call('ZREM', KEYS[3], ARGV[6]) == 1 then
  redis.call('DECRBY', KEYS[4], tonumber(string.match(ARGV[6], ':(%d+)$')))
end
if cost > 0 then
  if redis.call('HEXISTS', KEYS[2], 'units') == 0 then return 0 end
  redis.call('HINCRBY', KEYS[2], 'units', cost)
end
return 1
"""
)

# KEYS: spend counter. ARGV: units from the request log, epoch, ttl, units to add.
_REBUILD = """
local current = tonumber(redis.call('HGET', KEYS[1], 'units') or '-1')
if current >= 0 and redis.call('HGET', KEYS[1], 'epoch') == ARGV[2] then
  redis.call('HINCRBY', KEYS[1], 'units', tonumber(ARGV[4]))
  return 0
end
redis.call('HSET', KEYS[1], 'units', math.max(current, tonumber(ARGV[1])) + tonumber(ARGV[4]), 'epoch', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

_SCRIPTS = {hashlib.sha1(script.encode()).hexdigest(): script for script in (_ADMIT, _SETTLE, _REBUILD)}
_ADMIT_SHA, _SETTLE_SHA, _REBUILD_SHA = _SCRIPTS


@dataclass(frozen=True, slots=True)
class Limits:
    """One payer's limits: an API key's, or a person's without a key (``api_key_id`` None)."""

    user_id: int | None
    api_key_id: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    monthly_budget_usd: Decimal | None = None

    @property
    def tag(self) -> str:
        return f"k{self.api_key_id}" if self.api_key_id is not None else f"u{self.user_id}"

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
class Verdict:
    """What the limiter decided about one call, and the figures behind it.

    ``status`` is ``ok``, a rate limit (``requests``, ``tokens``, ``too_large``: more tokens than a
    minute allows) or a budget (``budget_spent``, ``budget_too_small``: the call's worst case is more
    than the whole budget, ``budget_short``: more than what is left this month, ``budget_held``:
    calls in flight hold the rest)."""

    status: str
    token_cost: int = 0
    reservation: str = ""
    retry_after_s: float = 0.0
    states: tuple[LimitState, ...] = ()
    degraded: bool = False
    spent_units: int = -1
    reserved_units: int = 0

    @property
    def allowed(self) -> bool:
        return self.status == "ok"


def _keys(limits: Limits, now: datetime) -> list[str]:
    return list(_keys_of(limits.tag, spend_counter_key(limits.tag, now)))


@functools.lru_cache(maxsize=4096)
def _keys_of(tag: str, spend_key: str) -> tuple[str, ...]:
    # The braces are a Redis Cluster hash tag: the payer's keys share one slot (the epoch does not).
    return (
        f"sy:rl:{{{tag}}}:requests",
        f"sy:rl:{{{tag}}}:tokens",
        spend_key,
        f"sy:resv:{{{tag}}}",
        f"sy:resv:{{{tag}}}:total",
        EPOCH_KEY,
    )


Command = tuple[str, list[str], list[Any]]  # script sha, keys, args


def _admit_command(
    limits: Limits, token_cost: int, reserve_units: int, hold_s: float, now: float, stamp: str
) -> Command:
    budget = -1 if limits.monthly_budget_usd is None else usd_to_units(limits.monthly_budget_usd)
    reservation = f"{secrets.token_hex(6)}:{reserve_units}" if budget >= 0 and reserve_units > 0 else ""
    args = [
        stamp,
        PERIOD_S * 1000,
        limits.rpm or 0,
        limits.tpm or 0,
        token_cost,
        budget,
        reserve_units if reservation else 0,
        _EPSILON_MS,
        reservation,
        int((hold_s + _HOLD_MARGIN_S) * 1000),
    ]
    return (_ADMIT_SHA, _keys(limits, datetime.fromtimestamp(now, UTC)), args)


def _verdict_from(limits: Limits, command: Command, result: list[Any], now: float) -> Verdict:
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in result]
    status = values[0]
    used_ms = {"requests": float(values[1]), "tokens": float(values[2])}
    wait_ms = {"requests": float(values[3]), "tokens": float(values[4])}
    states = tuple(
        _state(name, limit, used_ms[name], wait_ms[name] if status == name else None)
        for name, limit in (("requests", limits.rpm), ("tokens", limits.tpm))
        if limit
    )
    retry = wait_ms[status] / 1000 if status in wait_ms else 0.0
    return Verdict(
        status,
        token_cost=int(command[2][4]),
        reservation=command[2][8] if status == "ok" else "",
        retry_after_s=retry,
        states=states,
        spent_units=int(values[5]),
        reserved_units=int(values[6]),
    )


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


# --- Redis -----------------------------------------------------------------------------------

# Per Redis URL: when it last failed to answer, so one bad server does not slow every call.
_down_until: dict[str, float] = {}
_warned_at: dict[str, float] = {}


def _redis_usable() -> bool:
    return time.monotonic() >= _down_until.get(setting("REDIS_URL"), 0.0)


def _redis_failed(error: Exception) -> None:
    url, now = setting("REDIS_URL"), time.monotonic()
    _down_until[url] = now + _BACKOFF_S
    if now - _warned_at.get(url, -_WARN_EVERY_S) >= _WARN_EVERY_S:
        _warned_at[url] = now
        logger.warning("Redis unavailable; admitting calls without rate limits or budgets: %s", error)


def _pipeline_of(client: Any, commands: list[Command]) -> Any:
    pipe = client.pipeline(transaction=False)
    for sha, keys, args in commands:
        pipe.evalsha(sha, len(keys), *keys, *args)
    return pipe


def _reload_pipeline(client: Any, run_id: str) -> Any:
    """Redis forgot the scripts: it has restarted (or was flushed). Name the epoch after the
    server's run (every process that notices the same restart writes the same value), then load
    them, so a call whose script runs at all runs after the epoch moved."""
    pipe = client.pipeline(transaction=False)
    pipe.set(EPOCH_KEY, run_id)
    for script in _SCRIPTS.values():
        pipe.script_load(script)
    return pipe


def _run_id(info: dict[str, Any]) -> str:
    value = info.get("run_id", "")
    return value.decode() if isinstance(value, bytes) else str(value)


async def _evaluate(commands: list[Command]) -> list[Any]:
    """Run scripts in one pipeline (one round trip), loading them first if Redis forgot them."""
    client = redis_async(FAST)
    try:
        return await _run(client, commands)
    except NoScriptError:
        await _reload_pipeline(client, _run_id(await client.info("server"))).execute()
        return await _run(client, commands)


async def _run(client: Any, commands: list[Command]) -> list[Any]:
    """The scripts' answers; the first error Redis gave raises, once every reply is read, as an
    async pipeline raises it (a round trip of our own: ``orchestration.redisclients.round_trip``)."""
    replies = await round_trip(client, [("EVALSHA", sha, len(keys), *keys, *args) for sha, keys, args in commands])
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply
    return replies


def _evaluate_sync(commands: list[Command]) -> list[Any]:
    client = redis_sync(FAST)
    try:
        return list(_pipeline_of(client, commands).execute())
    except NoScriptError:
        _reload_pipeline(client, _run_id(client.info("server"))).execute()
        return list(_pipeline_of(client, commands).execute())


def _rebuild_command(limits: Limits, now: float, *, logged_units: int, epoch: str, plus_units: int) -> Command:
    moment = datetime.fromtimestamp(now, UTC)
    key = spend_counter_key(limits.tag, moment)
    return (_REBUILD_SHA, [key], [logged_units, epoch, counter_ttl_s(moment), plus_units])


def _logged_units(limits: Limits, now: float) -> int:
    moment = datetime.fromtimestamp(now, UTC)
    return spend_from_request_log(api_key_id=limits.api_key_id, user_id=limits.user_id, now=moment)


# One sum of the request log at a time per payer and month: a burst of one payer's calls that all
# find its counter to rebuild (a key's first calls, every key's after Redis restarts) shares it,
# where each call summed the month's rows again. The rebuild keeps the larger of the counter and
# the sum, so a sum a moment older than the call's own would have been loses nothing.
_spend_reads: SharedCalls[tuple[str, str], int] = SharedCalls()


async def _logged_units_shared(limits: Limits, now: float) -> int:
    async def read() -> int:
        return await database_call(_logged_units)(limits, now)

    return await _spend_reads((limits.tag, month_of(datetime.fromtimestamp(now, UTC))), read)


def _epoch_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- admission -------------------------------------------------------------------------------


def _moment(clock: Clock | None) -> tuple[float, str]:
    """The call's time, for the month its spend counts in, and the stamp the scripts judge rates
    by. Without an injected clock the stamp is empty and the scripts read Redis's own TIME: one
    clock for every process and host, in the order Redis runs the calls. Stamps taken here could
    reach Redis out of order (one connection overtaking another) and refuse a call by a hair."""
    if clock is None:
        return time.time(), ""
    now = clock()
    return now, f"{now * 1000:.3f}"


async def limits_admit(
    limits: Limits, *, token_cost: int, reserve_units: int = 0, hold_s: float = 60.0, clock: Clock | None = None
) -> Verdict:
    """Admit one call of ``token_cost`` estimated tokens that may cost ``reserve_units`` (1e-8 USD)
    and settles within ``hold_s``, or say why not. Settlements waiting in this process go to Redis
    in the same round trip, before the check, so it counts every call this process has finished."""
    if not limits.limited:
        return Verdict("ok", token_cost=token_cost)
    if not _redis_usable():
        return Verdict("ok", token_cost=token_cost, degraded=True)
    try:
        return await _admit(limits, token_cost, reserve_units, hold_s, *_moment(clock))
    except (TimeoutError, RedisError, OSError) as error:
        _redis_failed(error)
        return Verdict("ok", token_cost=token_cost, degraded=True)


async def _admit(limits: Limits, token_cost: int, reserve_units: int, hold_s: float, now: float, stamp: str) -> Verdict:
    admit = _admit_command(limits, token_cost, reserve_units, hold_s, now, stamp)
    result = await _admit_batcher().admit(admit)
    if _status(result) == "rebuild":
        logged = await _logged_units_shared(limits, now)
        rebuild = _rebuild_command(limits, now, logged_units=logged, epoch=_epoch_of(result[1]), plus_units=0)
        result = (await _evaluate([rebuild, admit]))[-1]
    if _status(result) == "rebuild":  # the epoch moved again meanwhile: admit, never refuse blindly
        return Verdict("ok", token_cost=token_cost, degraded=True)
    return _verdict_from(limits, admit, result, now)


class _AdmitBatcher:
    """An admission goes to Redis at once when no other is under way; those that come meanwhile
    wait for it, then go together in one pipeline, with the settlements waiting then (a burst of
    calls paid a round trip each: its pipeline, its connection, its reply parsed). A call alone
    waits for nothing. Each still gets its own script's answer, and a Redis error fails every
    admission of the pipeline, as it failed each alone."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Command, asyncio.Future[Any]]] = []
        self._under_way = 0
        self._running: set[asyncio.Task[None]] = set()

    async def admit(self, command: Command) -> Any:
        """The script's answer to ``command``."""
        if self._under_way or self._waiting:
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting.append((command, answer))
            return await answer
        self._under_way += 1
        try:
            settlements = _take_settlements()
            results = await _evaluate([*(s.command for s in settlements), command])
        finally:
            self._under_way -= 1
            self._next()
        await _settled(settlements, results[:-1])
        return results[-1]

    def _next(self) -> None:
        if self._under_way or not self._waiting:
            return
        batch, self._waiting = self._waiting, []
        self._under_way += 1
        detached(self._run(batch), self._running)

    async def _run(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        try:
            if not _redis_usable():  # the pipeline they waited for found Redis down: no second wait
                _answer_all(batch, RedisError("Redis was found unavailable while this call waited."))
                return
            settlements = _take_settlements()
            try:
                results = await _evaluate([*(s.command for s in settlements), *(command for command, _ in batch)])
            except asyncio.CancelledError:
                for _, answer in batch:
                    answer.cancel()
                raise
            except Exception as error:
                _answer_all(batch, error)
                return
        finally:
            self._under_way -= 1
            self._next()
        for (_, answer), result in zip(batch, results[len(settlements) :], strict=True):
            if not answer.done():  # its caller left (its request was cancelled) meanwhile
                answer.set_result(result)
        try:
            await _settled(settlements, results[: len(settlements)])
        except (TimeoutError, RedisError, OSError) as error:
            _redis_failed(error)


def _answer_all(batch: list[tuple[Command, asyncio.Future[Any]]], error: Exception) -> None:
    for _, answer in batch:
        if not answer.done():
            answer.set_exception(error)


_admit_batchers = PerLoop(_AdmitBatcher)


def _admit_batcher() -> _AdmitBatcher:
    """The running loop's batcher."""
    return _admit_batchers.get()


def limits_admit_sync(
    limits: Limits, *, token_cost: int, reserve_units: int = 0, hold_s: float = 60.0, clock: Clock | None = None
) -> Verdict:
    """``limits_admit`` for sync callers (a view in a thread, a worker): the same script, a sync client."""
    return limits_admit_all_sync([LimitAsk(limits, token_cost, reserve_units, hold_s)], clock=clock)[0]


@dataclass(frozen=True, slots=True)
class LimitAsk:
    """One call to admit: what ``limits_admit_sync`` takes."""

    limits: Limits
    token_cost: int
    reserve_units: int = 0
    hold_s: float = 60.0


def limits_admit_all_sync(asks: list[LimitAsk], *, clock: Clock | None = None) -> list[Verdict]:
    """The verdict of each call, as ``limits_admit_sync`` would give it called for each in turn, but
    in one round trip: the chat's posts that reach a server together are admitted together (a
    round trip each was a sixth of a post's CPU)."""
    verdicts = [Verdict("ok", token_cost=ask.token_cost) for ask in asks]
    limited = [index for index, ask in enumerate(asks) if ask.limits.limited]
    if not limited:
        return verdicts
    if not _redis_usable():
        return _degraded(verdicts, limited)
    now, stamp = _moment(clock)
    commands = [
        _admit_command(asks[i].limits, asks[i].token_cost, asks[i].reserve_units, asks[i].hold_s, now, stamp)
        for i in limited
    ]
    try:
        results = _evaluate_sync(commands)
    except (TimeoutError, RedisError, OSError) as error:
        _redis_failed(error)
        return _degraded(verdicts, limited)
    for index, command, result in zip(limited, commands, results, strict=True):
        verdicts[index] = _decided_sync(asks[index], command, result, now)
    return verdicts


def _degraded(verdicts: list[Verdict], limited: list[int]) -> list[Verdict]:
    for index in limited:
        verdicts[index] = Verdict("ok", token_cost=verdicts[index].token_cost, degraded=True)
    return verdicts


def _decided_sync(ask: LimitAsk, admit: Command, result: list[Any], now: float) -> Verdict:
    """The verdict of one admission's answer; a spend counter to rebuild first is rebuilt, and the
    call admitted again."""
    limits = ask.limits
    try:
        if _status(result) == "rebuild":
            logged = _logged_units(limits, now)
            rebuild = _rebuild_command(limits, now, logged_units=logged, epoch=_epoch_of(result[1]), plus_units=0)
            result = _evaluate_sync([rebuild, admit])[-1]
    except (TimeoutError, RedisError, OSError) as error:
        _redis_failed(error)
        return Verdict("ok", token_cost=ask.token_cost, degraded=True)
    if _status(result) == "rebuild":  # the epoch moved again meanwhile: admit, never refuse blindly
        return Verdict("ok", token_cost=ask.token_cost, degraded=True)
    return _verdict_from(limits, admit, result, now)


def _status(result: list[Any]) -> str:
    first = result[0]
    return first.decode() if isinstance(first, bytes) else str(first)


# --- settlement ------------------------------------------------------------------------------
# A finished call's settlement is not sent on its own: it waits (at most SETTLE_DELAY_S) to go
# with the next admission's round trip, or with the settlements of calls finishing meanwhile.
# That takes one Redis round trip off every call and the wait for it off every response.

SETTLE_DELAY_S = 0.02


@dataclass(frozen=True, slots=True)
class _Settlement:
    limits: Limits
    command: Command
    cost_units: int
    now: float


_pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Settlement]] = weakref.WeakKeyDictionary()
_flushing: set[asyncio.Task[None]] = set()


def _settlement(
    limits: Limits, verdict: Verdict, tokens_used: int, cost_usd: Decimal, now: float, stamp: str
) -> _Settlement | None:
    cost_units = usd_to_units(cost_usd)
    delta = tokens_used - verdict.token_cost if limits.tpm and not verdict.degraded else 0
    if delta == 0 and cost_units <= 0 and not verdict.reservation:
        return None
    keys = _keys(limits, datetime.fromtimestamp(now, UTC))
    args = [stamp, PERIOD_S * 1000, limits.tpm or 0, delta, max(0, cost_units), verdict.reservation]
    return _Settlement(limits, (_SETTLE_SHA, [keys[1], keys[2], keys[3], keys[4]], args), cost_units, now)


async def limits_settle(
    limits: Limits, verdict: Verdict, *, tokens_used: int, cost_usd: Decimal, clock: Clock | None = None
) -> None:
    """After a call: replace the token estimate by the real usage, release the reservation and add
    the cost to the month's spend."""
    settlement = _settlement(limits, verdict, tokens_used, cost_usd, *_moment(clock))
    if settlement is None or not limits.limited:
        return
    loop = asyncio.get_running_loop()
    pending = _pending.setdefault(loop, [])
    pending.append(settlement)
    if len(pending) == 1:
        loop.call_later(SETTLE_DELAY_S, _start_flush, loop)


def limits_settle_sync(
    limits: Limits, verdict: Verdict, *, tokens_used: int, cost_usd: Decimal, clock: Clock | None = None
) -> None:
    settlement = _settlement(limits, verdict, tokens_used, cost_usd, *_moment(clock))
    if settlement is None or not limits.limited or not _redis_usable():
        return
    try:
        if not _evaluate_sync([settlement.command])[0]:
            logged = _logged_units(limits, settlement.now)
            epoch = _epoch_of(redis_sync(FAST).get(EPOCH_KEY) or b"0")
            rebuild = _rebuild_command(
                limits, settlement.now, logged_units=logged, epoch=epoch, plus_units=settlement.cost_units
            )
            _evaluate_sync([rebuild])
    except (TimeoutError, RedisError, OSError) as error:
        _redis_failed(error)


def _take_settlements() -> list[_Settlement]:
    return _pending.pop(asyncio.get_running_loop(), [])


def _start_flush(loop: asyncio.AbstractEventLoop) -> None:
    if _pending.get(loop) and not loop.is_closed():
        task = loop.create_task(limits_flush())
        _flushing.add(task)
        task.add_done_callback(_flushing.discard)


async def limits_flush() -> None:
    """Send this event loop's waiting settlements now."""
    settlements = _take_settlements()
    if not settlements or not _redis_usable():
        return
    try:
        await _settled(settlements, await _evaluate([s.command for s in settlements]))
    except (TimeoutError, RedisError, OSError) as error:
        _redis_failed(error)


async def _settled(settlements: list[_Settlement], results: list[Any]) -> None:
    """A settlement that found no counter (a new month, a Redis that lost it) rebuilds it, with its cost."""
    for settlement, counted in zip(settlements, results, strict=True):
        if counted:
            continue
        logged = await _logged_units_shared(settlement.limits, settlement.now)
        epoch = _epoch_of(await redis_async(FAST).get(EPOCH_KEY) or b"0")
        rebuild = _rebuild_command(
            settlement.limits, settlement.now, logged_units=logged, epoch=epoch, plus_units=settlement.cost_units
        )
        await _evaluate([rebuild])


# --- headers ---------------------------------------------------------------------------------


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


def limit_headers(states: tuple[LimitState, ...]) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` trio per limit, and the IETF ``RateLimit``/``RateLimit-Policy``
    fields (draft-ietf-httpapi-ratelimit-headers-10)."""
    headers: dict[str, str] = {}
    policies, limits = [], []
    for state in states:
        headers[f"x-ratelimit-limit-{state.name}"] = str(state.limit)
        headers[f"x-ratelimit-remaining-{state.name}"] = str(state.remaining)
        headers[f"x-ratelimit-reset-{state.name}"] = go_duration(state.reset_s)
        unit = ';qu="tokens"' if state.name == "tokens" else ""
        policies.append(f'"{state.name}";q={state.limit};w={PERIOD_S}{unit}')
        limits.append(f'"{state.name}";r={state.remaining};t={math.ceil(state.window_s)}')
    if policies:
        headers["RateLimit-Policy"] = ", ".join(policies)
        headers["RateLimit"] = ", ".join(limits)
    return headers

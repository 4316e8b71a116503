"""The Redis side of a streamed reply: one Redis Stream of events per message, and the keys
that say who produces it, who watches it and whether it was asked to stop.

Event ids are explicit and mean something: a ``token`` event's id is the length (in
characters) of the reply once that token is added, and the one terminal event (``done`` or
``error``) has the final length plus one. So ``Last-Event-ID: N`` means "I have the first N
characters": resuming reads the stream after ``0-N``, and once the stream has expired the saved
message still answers it with ``content[N:]``.

Every key of a message carries the hash tag ``{chat:ID}`` so the scripts touch one slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestration.conf import switchyard_setting
from orchestration.loops import PerLoop
from orchestration.redisclients import DEFAULT, STREAM_WRITES, STREAMS, redis_async, redis_sync, round_trip
from orchestration.sse import json_compact, sse_event
from orchestration.watchdog import ReadWatchdog

TOKEN = "token"
DONE = "done"
ERROR = "error"
CANCEL_CHANNEL = "chat:cancel"

# A stream still being written is kept this long after its last event, so a dead producer's
# events do not stay in Redis for ever.
LIVE_TTL_S = 3600
# How long a relay's attachment lasts unless refreshed; relays refresh it well before.
ATTACHMENT_TTL_S = 15.0

Clock = Callable[[], float]

# KEYS: events, closed, end, producer. ARGV: terminal ("1"/"0"), ttl, then offset, type, data
# of each event (a terminal event comes alone). Tokens are refused once the stream is closed
# (someone else is ending the reply); a terminal event is refused once there is one, and ends
# the producer's claim (no round trip of its own). The XADD id check refuses anything out of order.
_APPEND = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
for i = 3, #ARGV, 3 do
  redis.call('XADD', KEYS[1], '0-' .. ARGV[i], 'e', ARGV[i + 1], 'd', ARGV[i + 2])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[1] == '1' then
  redis.call('SET', KEYS[3], ARGV[#ARGV - 2], 'EX', ARGV[2])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[2])
  redis.call('DEL', KEYS[4])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    id: int
    type: str
    data: dict[str, Any]
    # ``data`` as JSON, when the maker encoded it once for both Redis and the clients.
    encoded: bytes = field(default=b"", compare=False, repr=False)

    @property
    def is_terminal(self) -> bool:
        return self.type != TOKEN

    def payload(self) -> bytes:
        return self.encoded or json_compact(self.data)

    def sse(self) -> bytes:
        if self.encoded:
            return b"id: %d\nevent: %b\ndata: %b\n\n" % (self.id, self.type.encode(), self.encoded)
        return sse_event(self.data, event=self.type, id=self.id)


def token_event(offset: int, delta: str) -> ReplyEvent:
    """A ``token`` event whose JSON is encoded once, for its append and for every client."""
    data = {"delta": delta}
    return ReplyEvent(offset, TOKEN, data, json_compact(data))


def key(message_id: int, name: str) -> str:
    return f"{{chat:{message_id}}}:{name}"


def finished_ttl_s() -> int:
    return int(cast(float, switchyard_setting("CHAT_STREAM_TTL_S", 600)))


def producer_ttl_s() -> float:
    """A producer that has not said it is alive for this long is taken for dead."""
    return float(cast(float, switchyard_setting("CHAT_PRODUCER_LOST_S", 10.0)))


# --- clients ------------------------------------------------------------------------------


def _async_client() -> aioredis.Redis:
    """The loop's streams client (``orchestration.redisclients.STREAMS``)."""
    return redis_async(STREAMS)


@functools.cache
def _sha(script: str) -> str:
    """The name Redis gives ``script`` (``EVALSHA``)."""
    return hashlib.sha1(script.encode()).hexdigest()


# How long a round trip of ``_scripts_run`` may take: the streams client's read timeout.
SCRIPTS_ROUND_TRIP_S = STREAMS.socket_timeout_s or 30.0


async def _scripts_run(script: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
    """``script`` run once for each ``(keys, args)``, in one round trip: each answer, or the error
    Redis gave that call. Scripts Redis forgot (a restart, a flush) are loaded again and the calls
    sent once more. The calls go as one write on one connection (``round_trip``: redis-py's
    async pipeline hands its connection back through a task of its own).

    Each round trip has one time limit, ``SCRIPTS_ROUND_TRIP_S``, past which it fails as a read
    of the streams client would (``redis.TimeoutError``); its connection is dropped, as redis-py
    drops a connection whose read was cut short. Its client keeps no timeout per reply
    (``STREAM_WRITES``): a pipeline of a hundred replies' appends had a hundred timers."""
    client, sha = redis_async(STREAM_WRITES), _sha(script)
    answers: list[Any] = []
    for attempt in range(2):
        try:
            async with asyncio.timeout(SCRIPTS_ROUND_TRIP_S):
                answers = await round_trip(client, [("EVALSHA", sha, len(keys), *keys, *args) for keys, args in calls])
                if attempt == 0 and any(isinstance(answer, NoScriptError) for answer in answers):
                    await client.script_load(script)
                    continue
        except TimeoutError as error:
            raise RedisTimeoutError(f"Redis did not answer within {SCRIPTS_ROUND_TRIP_S:g} s.") from error
        break
    return answers


def sync_client() -> redis.Redis:
    return redis_sync(DEFAULT)


# --- writing --------------------------------------------------------------------------------


# Pipelines of appends leave at most this often: a round trip costs a pipeline's fixed CPU (about
# 100 µs on the benchmark's core), and replies whose tokens come at their own moments would each
# pay it for every token (docs/benchmarks.md, "Appends that wait for company").
FLUSH_EVERY_S = 0.005


class AppendBatcher:
    """The appends of every reply of one event loop leave together: one pipeline for all those
    queued while the last one was out, and none sooner than ``every_s`` after the last one left,
    instead of a round trip per token (a thousand replies write twenty thousand tokens a second).
    An append that comes after a quiet moment leaves at once."""

    def __init__(
        self,
        every_s: float = FLUSH_EVERY_S,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._pending: list[tuple[list[str], list[Any], asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.every_s = every_s
        self._clock = clock  # None: the running loop's
        self._sleep = sleep
        self._last_sent = -math.inf  # when the last pipeline left

    def append(self, keys: list[str], args: list[Any]) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((keys, args, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush(), context=contextvars.Context())
        return future

    async def _flush(self) -> None:
        clock = self._clock or asyncio.get_running_loop().time
        try:
            while self._pending:
                wait_s = self._last_sent + self.every_s - clock()
                if wait_s > 0:
                    await self._sleep(wait_s)
                batch, self._pending = self._pending, []
                self._last_sent = clock()
                try:
                    answers = await self._send(batch)
                except Exception as error:
                    answers = [error] * len(batch)
                for (_, _, future), answer in zip(batch, answers, strict=True):
                    if future.done():
                        continue
                    if isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(int(answer))
        finally:
            self._flusher = None

    async def _send(self, batch: list[tuple[list[str], list[Any], asyncio.Future[int]]]) -> list[Any]:
        return await _scripts_run(_APPEND, [(keys, args) for keys, args, _ in batch])


_batchers = PerLoop(AppendBatcher)


def _batcher() -> AppendBatcher:
    return _batchers.get()


def event_append_start(message_id: int, event: ReplyEvent) -> asyncio.Future[int]:
    """Queue one event; the future says 1 when appended, 0 when the stream no longer takes it
    (closed or already ended). It completes even when its waiter is cancelled."""
    terminal = "1" if event.is_terminal else "0"
    ttl = finished_ttl_s() if event.is_terminal else LIVE_TTL_S
    future = _batcher().append(_append_keys(message_id), [terminal, ttl, event.id, event.type, event.payload()])
    hub = _hubs.peek()
    if hub is not None and message_id in hub.produced_here:
        future.add_done_callback(functools.partial(hub.published, message_id, event))
    return future


def tokens_append_start(message_id: int, events: list[ReplyEvent]) -> asyncio.Future[int]:
    """Queue several ``token`` events as one append (their producer hands them to this process's
    followers when it lands: ``StreamHub.publish``); the future says as ``event_append_start``."""
    args: list[Any] = ["0", LIVE_TTL_S]
    for event in events:
        args += (event.id, TOKEN, event.payload())
    return _batcher().append(_append_keys(message_id), args)


def _append_keys(message_id: int) -> list[str]:
    return [key(message_id, "events"), key(message_id, "closed"), key(message_id, "end"), key(message_id, "producer")]


async def event_append(message_id: int, event: ReplyEvent) -> bool:
    """Append one event; False when the stream no longer takes it (closed, ended, out of order)."""
    future = event_append_start(message_id, event)
    await asyncio.wait((future,))
    return append_landed(future)


def append_landed(future: asyncio.Future[int]) -> bool:
    """Whether a completed append landed (False: refused, out of order); raises its Redis error."""
    try:
        return bool(future.result())
    except redis.ResponseError as error:
        if "equal or smaller" in str(error):
            return False
        raise


async def stream_close(message_id: int) -> None:
    """Refuse further tokens: whoever ends a reply for a lost producer fences it out first."""
    client = _async_client()
    await client.set(key(message_id, "closed"), "1", ex=LIVE_TTL_S)


def stream_reopen(message_id: int, text: str) -> None:
    """Start a settled reply's stream again for more text (sync: called from API views).

    The old events, end, fence, cancel request and attachments go; the saved ``text`` becomes
    the first token event, with the id it had (its length), so resuming works as before.
    """
    names = ("events", "end", "closed", "cancel", "clients")
    with sync_client().pipeline(transaction=True) as pipe:
        pipe.delete(*(key(message_id, name) for name in names))
        pipe.xadd(key(message_id, "events"), {"e": TOKEN, "d": json_compact({"delta": text})}, id=f"0-{len(text)}")
        pipe.expire(key(message_id, "events"), LIVE_TTL_S)
        pipe.execute()


def producer_claim(message_id: int) -> None:
    """Say a producer is coming, before it starts, so relays do not take it for dead."""
    producers_claim([message_id])


def producers_claim(message_ids: list[int]) -> None:
    """``producer_claim`` of several replies (the posts a server planned together), in one round trip."""
    ttl_ms = int(producer_ttl_s() * 1000)
    with sync_client().pipeline(transaction=False) as pipe:
        for message_id in message_ids:
            # The command itself: ``pipe.set`` checks its arguments through two decorators, a third of a claim.
            pipe.execute_command("SET", key(message_id, "producer"), "1", "PX", ttl_ms)
        pipe.execute()


async def producer_release(message_id: int) -> None:
    client = _async_client()
    await client.delete(key(message_id, "producer"))


async def producer_alive(message_id: int) -> bool:
    client = _async_client()
    return bool(await client.exists(key(message_id, "producer")))


# --- reading --------------------------------------------------------------------------------


def _events(entries: list[Any]) -> list[ReplyEvent]:
    events = []
    for raw_id, fields in entries:
        entry_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        events.append(ReplyEvent(int(entry_id.split("-", 1)[1]), fields[b"e"].decode(), orjson.loads(fields[b"d"])))
    return events


class Subscription:
    """One client's place in a reply's stream; the hub hands it the events after ``after``.

    ``local`` subscriptions follow a reply produced on this loop: the hub hands them each event
    the moment its append lands, with no read from Redis. Until the events written before it
    subscribed are read (``backfilled``), the live ones it is handed wait, so none is skipped.
    """

    def __init__(self, message_id: int, after: int, *, local: bool = False) -> None:
        self.message_id = message_id
        self.after = after
        self.local = local
        self._events: list[ReplyEvent] = []
        self._held: list[ReplyEvent] | None = [] if local else None
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self._watchdog = ReadWatchdog()  # the waits of ``next``, without a timer per event

    def deliver(self, events: list[ReplyEvent]) -> None:
        if self._held is not None:
            self._held += events
            return
        fresh = [event for event in events if event.id > self.after]
        if fresh:
            self._events += fresh
            self.after = fresh[-1].id
            self._ready.set()

    def backfilled(self, events: list[ReplyEvent]) -> None:
        """The events already in the stream when it subscribed; then the live ones held meanwhile."""
        held, self._held = self._held or [], None
        self.deliver(events)
        self.deliver(held)

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._ready.set()

    async def next(self, wait_s: float) -> list[ReplyEvent]:
        """The events that arrived since the last call, waiting up to ``wait_s`` for one."""
        if not self._events and self._error is None:
            with contextlib.suppress(TimeoutError):
                await self._watchdog.read(self._ready.wait, asyncio.get_running_loop().time() + wait_s)
        if self._error is not None:
            raise self._error
        events, self._events = self._events, []
        self._ready.clear()
        return events

    def close(self) -> None:
        self._watchdog.close()


class StreamHub:
    """Hands the clients of this process the events of the replies they follow.

    A reply produced on this loop reaches its local followers straight from its producer: its
    events as each append lands (``publish``, ``published``), no read from Redis, nothing
    decoded. A client that comes after the first events landed reads those from Redis once.
    (Keeping every reply's events in memory instead cost 57 MB of peak RSS at 1,000 replies in
    flight, for the rare late client.) The others
    (produced by another process, or already finished) are followed by ONE ``XREAD BLOCK`` over
    all their streams: a connection and a command per client and per event would cost a Redis
    connection per client and most of the CPU at a thousand streams. A client that subscribes
    wakes the pending read through the hub's own small stream. When a reply's production here
    ends, its followers go on from Redis where they are, so nothing written by others is missed.
    """

    BLOCK_MS = 1000
    COUNT = 200

    def __init__(self) -> None:
        self.followers: dict[int, set[Subscription]] = {}  # followed through the XREAD
        self.local: dict[int, set[Subscription]] = {}  # handed events by a producer of this loop
        self.produced_here: dict[int, int] = {}  # reply produced on this loop -> its owner's user id
        self.landed: dict[int, int] = {}  # the id of the last event landed, per reply produced here
        self.wake_key = f"chat:hub:{uuid.uuid4().hex}"
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, message_id: int, after: int) -> Subscription:
        if message_id in self.produced_here:
            return await self._subscribe_local(message_id, after)
        subscription = Subscription(message_id, after)
        self.followers.setdefault(message_id, set()).add(subscription)
        await self._reader_wake()
        return subscription

    async def _subscribe_local(self, message_id: int, after: int) -> Subscription:
        subscription = Subscription(message_id, after, local=True)
        self.local.setdefault(message_id, set()).add(subscription)
        if self.landed.get(message_id, 0) <= after:
            subscription.backfilled([])  # nothing of it in Redis yet: no read (the usual first client)
            return subscription
        client = _async_client()
        try:
            entries: Any = await client.xrange(key(message_id, "events"), min=f"(0-{after}")
        except RedisError as error:
            subscription.fail(error)
        else:
            subscription.backfilled(_events(entries))
        return subscription

    def streaming_here(self, message_id: int, owner_id: int) -> bool:
        """Whether ``owner_id``'s reply ``message_id`` is being produced on this loop: it is
        still streaming, and its stream needs no read of the database to be followed."""
        return owner_id != 0 and self.produced_here.get(message_id) == owner_id

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.close()
        group = self.local if subscription.local else self.followers
        followers = group.get(subscription.message_id)
        if followers is not None:
            followers.discard(subscription)
            if not followers:
                del group[subscription.message_id]
        if not self.followers and self._task is not None:
            self._task.cancel()  # nobody left to read for
            self._task = None

    def production_start(self, message_id: int, prefix: str = "", *, owner_id: int = 0) -> None:
        """A producer of this loop writes this reply: clients that subscribe from now on get
        its events from the producer. ``prefix``: a continued reply's saved text, already its
        stream's first event (``stream_reopen``)."""
        self.produced_here[message_id] = owner_id
        if prefix:
            self.landed[message_id] = len(prefix)

    def production_end(self, message_id: int) -> None:
        """Its producer here stopped: whatever else reaches the stream is read from Redis."""
        self.produced_here.pop(message_id, None)
        self.landed.pop(message_id, None)
        subscriptions = self.local.pop(message_id, set())
        for subscription in subscriptions:
            subscription.local = False
        if subscriptions:
            self.followers.setdefault(message_id, set()).update(subscriptions)
            self._reader_start_or_wake()

    def publish(self, message_id: int, events: list[ReplyEvent]) -> None:
        """Tokens of a producer of this loop landed in Redis: its local followers get them now."""
        if message_id not in self.produced_here:
            return  # not produced here (a producer outside a server's loop, in tests)
        self.landed[message_id] = events[-1].id
        for subscription in self.local.get(message_id, ()):
            subscription.deliver(events)

    def published(self, message_id: int, event: ReplyEvent, appended: asyncio.Future[int]) -> None:
        """An append of this loop completed: hand a landed event to the reply's local followers."""
        if appended.cancelled() or appended.exception() is not None or not appended.result():
            return
        if message_id in self.produced_here:
            self.landed[message_id] = event.id
        for subscription in list(self.local.get(message_id, ())):
            subscription.deliver([event])

    async def _reader_wake(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())
        else:
            client = _async_client()
            await client.xadd(self.wake_key, {"w": "1"}, maxlen=1, approximate=False)

    def _reader_start_or_wake(self) -> None:
        waking = asyncio.get_running_loop().create_task(self._reader_wake(), context=contextvars.Context())
        _waking.add(waking)
        waking.add_done_callback(_waking.discard)

    async def _run(self) -> None:
        client = _async_client()
        try:
            while self.followers:
                wanted: dict[Any, Any] = {
                    key(message_id, "events"): f"0-{min(s.after for s in subscriptions)}"
                    for message_id, subscriptions in self.followers.items()
                }
                wanted[self.wake_key] = "$"
                answer: Any = await client.xread(wanted, count=self.COUNT, block=self.BLOCK_MS)
                for stream_key, entries in answer or []:
                    self._deliver(stream_key, entries)
        except RedisError as error:
            for subscriptions in list(self.followers.values()):
                for subscription in subscriptions:
                    subscription.fail(error)
            self.followers.clear()
        finally:
            if self._task is asyncio.current_task():
                # Reading is over: a follower that subscribes from now on starts a reader of its
                # own, instead of waking this one while it winds down.
                self._task = None
            with contextlib.suppress(RedisError):
                await client.delete(self.wake_key)

    def _deliver(self, stream_key: bytes, entries: list[Any]) -> None:
        name = stream_key.decode()
        if not name.startswith("{chat:"):
            return
        subscriptions = self.followers.get(int(name[6 : name.index("}")]))
        if subscriptions:
            events = _events(entries)
            for subscription in list(subscriptions):
                subscription.deliver(events)


# Wake-ups started outside any caller's await: referenced until done so they are not collected.
_waking: set[asyncio.Task[None]] = set()
_hubs = PerLoop(StreamHub)


def stream_hub(loop: asyncio.AbstractEventLoop | None = None) -> StreamHub:
    """The hub of ``loop`` (by default the running one)."""
    return _hubs.get(loop)


async def events_all(message_id: int) -> list[ReplyEvent]:
    client = _async_client()
    entries: Any = await client.xrange(key(message_id, "events"))
    return _events(entries)


async def events_after(message_id: int, after: int) -> list[ReplyEvent]:
    """The events of the stream after the id ``after``, read at once (not through a hub)."""
    client = _async_client()
    entries: Any = await client.xrange(key(message_id, "events"), min=f"(0-{after}")
    return _events(entries)


async def ended_within(message_id: int, after: int) -> bool:
    """Whether the stream's last event is its end, at or before the id ``after``."""
    client = _async_client()
    entries: Any = await client.xrevrange(key(message_id, "events"), count=1)
    last = _events(entries)
    return bool(last) and last[-1].is_terminal and last[-1].id <= after


async def stream_exists(message_id: int) -> bool:
    client = _async_client()
    return bool(await client.exists(key(message_id, "events")))


# --- who is watching ------------------------------------------------------------------------


async def relay_attach(message_id: int, relay_id: str, clock: Clock = time.time) -> None:
    """Record (or refresh) that a client is reading this reply, for ``ATTACHMENT_TTL_S``."""
    client = _async_client()
    clients = key(message_id, "clients")
    async with client.pipeline(transaction=False) as pipe:
        pipe.zadd(clients, {relay_id: clock() + ATTACHMENT_TTL_S})
        pipe.expire(clients, int(ATTACHMENT_TTL_S * 4))
        await pipe.execute()


async def relay_detach(message_id: int, relay_id: str) -> None:
    client = _async_client()
    await client.zrem(key(message_id, "clients"), relay_id)


@dataclass(frozen=True, slots=True)
class ReplyState:
    watched: bool  # at least one client attached, in any process
    cancel_requested: bool


# KEYS: producer, clients, cancel, end. ARGV: the producer's time to live (ms), now, whether to count
# the clients ("1"/"0"). Renews the producer's heartbeat, unless the reply has ended meanwhile (its
# end released the claim: a sweep that came after it must not claim it again); answers {clients
# attached, cancel requested}.
_SWEEP = """
if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
local watched = 0
if ARGV[3] == '1' then watched = redis.call('ZCOUNT', KEYS[2], ARGV[2], '+inf') end
return {watched, redis.call('EXISTS', KEYS[3])}
"""
# Replies swept by one round trip at most: the loop is never held for more than one slice.
SWEEP_SLICE = 200


async def replies_sweep(
    message_ids: list[int], clock: Clock = time.time, *, followed_here: Collection[int] = ()
) -> dict[int, ReplyState]:
    """Renew each producer's heartbeat, and say who watches and who must stop: one script call per
    reply (``followed_here``: replies a client of this process follows, whose attachments need no
    count), a round trip per ``SWEEP_SLICE`` of them.

    A thousand replies swept with three commands each cost 42-100 ms of CPU in one piece, every
    second: every stream of the process waited that long for its next token or its start
    (docs/benchmarks.md, "The sweeper's second").
    """
    states: dict[int, ReplyState] = {}
    for start in range(0, len(message_ids), SWEEP_SLICE):
        if start:
            await asyncio.sleep(0)  # the other work of the loop between slices
        ids = message_ids[start : start + SWEEP_SLICE]
        answers = await _sweep_slice(ids, clock(), followed_here)
        for message_id, (watched, cancel) in zip(ids, answers, strict=True):
            states[message_id] = ReplyState(watched=watched > 0, cancel_requested=bool(cancel))
    return states


async def _sweep_slice(message_ids: list[int], now: float, followed_here: Collection[int]) -> list[Any]:
    ttl_ms = int(producer_ttl_s() * 1000)
    calls = [
        (
            [key(message_id, name) for name in ("producer", "clients", "cancel", "end")],
            [ttl_ms, now, "0" if message_id in followed_here else "1"],
        )
        for message_id in message_ids
    ]
    answers = await _scripts_run(_SWEEP, calls)
    for answer in answers:
        if isinstance(answer, Exception):
            raise answer
    return answers


# --- cancelling -----------------------------------------------------------------------------


def cancel_request(message_id: int) -> None:
    """Ask whichever process produces this reply to stop (sync: called from API views)."""
    client = sync_client()
    client.set(key(message_id, "cancel"), "1", ex=LIVE_TTL_S)
    client.publish(CANCEL_CHANNEL, str(message_id))


async def cancel_requested(message_id: int) -> bool:
    client = _async_client()
    return bool(await client.exists(key(message_id, "cancel")))


def reply_ended(message_id: int) -> bool:
    """Whether the reply's terminal event is written (sync)."""
    return bool(sync_client().exists(key(message_id, "end")))


async def cancel_listen(on_cancel: Callable[[int], object]) -> None:
    """Call ``on_cancel(message_id)`` for every cancel request, until cancelled."""
    client = _async_client()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CANCEL_CHANNEL)
    try:
        while True:
            # A bounded wait: the client's read timeout would otherwise end an idle subscription.
            message = await pubsub.get_message(timeout=10.0)
            if message is not None and message.get("type") == "message":
                on_cancel(int(message["data"]))
    finally:
        await pubsub.aclose()

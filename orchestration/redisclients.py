"""The one place that builds Redis clients.

Every part of Switchyard that talks to Redis names a ``Profile`` (how long it may wait, whether
replies are decoded, how many connections it may hold) and gets a pooled client for it. Async
clients are kept per event loop and profile, because a redis.asyncio connection belongs to the
loop that opened it; sync clients are kept per profile (redis-py's sync pool is thread-safe).
All of them follow ``settings.REDIS_URL``: a test that points it elsewhere gets new clients.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.driver_info import DriverInfo
from redis.exceptions import DataError

from orchestration.conf import setting

# Found once: left to each connection, redis-py reads its own version from the package metadata
# for every connection it opens (about a millisecond each, a burst of them when clients arrive).
_DRIVER_INFO = DriverInfo()

# What a pool without a limit asks of redis-py (the pub/sub listeners', which each hold their
# connection; a bounded pool's underlying one). redis-py 8 caps a pool it was given no limit at 100
# connections and refuses the 101st command in flight ("Too many connections"): 200 streams
# starting together made admission fail open and the breakers and caches skip Redis. Earlier
# redis-py versions allowed 2**31.
UNLIMITED = 2**31


@dataclass(frozen=True, slots=True)
class Profile:
    """How one kind of work uses Redis."""

    name: str
    socket_timeout_s: float | None = 5.0
    connect_timeout_s: float = 2.0
    decode_responses: bool = False
    # With a limit, commands wait up to ``pool_wait_s`` for a free connection instead of each
    # opening its own (a burst of a thousand clients would otherwise open a thousand sockets).
    # None: no limit, a connection for every command in flight (see ``UNLIMITED``).
    max_connections: int | None = None
    pool_wait_s: float = 30.0


# The hot path (limits, breakers, caches): a Redis that does not answer within two seconds is
# treated as down, so the call degrades instead of waiting. The limit is longer than Redis ever
# takes because it is kept by this process's event loop: under a burst the loop runs late by half a
# second, and a half-second limit then expired on answers already waiting in the socket, which made
# rate limits and budgets fail open just when a flood needed them. A burst shares 128 connections:
# without a bound, 1,000 calls at once opened 1,000 connections (each a handshake on that late loop)
# and kept them for good.
FAST = Profile("fast", socket_timeout_s=2.0, connect_timeout_s=2.0, max_connections=128, pool_wait_s=2.0)
FAST_TEXT = Profile(
    "fast-text",
    socket_timeout_s=2.0,
    connect_timeout_s=2.0,
    decode_responses=True,
    max_connections=128,
    pool_wait_s=2.0,
)
# Chat streams: no read timeout below the longest XREAD BLOCK a relay uses.
STREAMS = Profile("streams", socket_timeout_s=30.0, connect_timeout_s=5.0, max_connections=64)
# The chat's appends and sweeps: pipelines of a script call per reply, whose caller times each round
# trip as a whole (``chat.streams._scripts_run``). redis-py timed every reply of such a pipeline on a
# timer of its own: about half the timers of a chat reply, each a heap push and a cancel.
STREAM_WRITES = Profile("stream-writes", socket_timeout_s=None, connect_timeout_s=5.0, max_connections=64)
# Pub/sub listeners wait for messages indefinitely; their liveness is checked by pings.
LISTEN = Profile("listen", socket_timeout_s=None, connect_timeout_s=2.0)
# Everything else: admin pages, readiness, workers, management commands.
DEFAULT = Profile("default", max_connections=64)
# The Channels layer (project/layers.py): short group and send commands, in bursts when hundreds of
# WebSocket sessions or task feeds open or close at once; its blocking read is one per process and
# lasts 5 s, so its timeout must outlast that.
LAYER = Profile("layer", socket_timeout_s=15.0, connect_timeout_s=5.0, max_connections=256, pool_wait_s=10.0)

_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, Profile], aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)
_sync: dict[tuple[str, Profile], redis.Redis] = {}
_sync_lock = threading.Lock()


def redis_async(profile: Profile = DEFAULT, *, url: str | None = None) -> aioredis.Redis:
    """The pooled async client of ``profile`` for the running event loop (``url``: another server
    than ``settings.REDIS_URL``)."""
    clients = _async.setdefault(asyncio.get_running_loop(), {})
    key = (url or setting("REDIS_URL"), profile)
    client = clients.get(key)
    if client is None:
        client = clients[key] = aioredis.Redis(connection_pool=async_pool(profile, key[0]))
    return client


def redis_sync(profile: Profile = DEFAULT, *, url: str | None = None) -> redis.Redis:
    """The pooled sync client of ``profile`` (shared by every thread of the process)."""
    key = (url or setting("REDIS_URL"), profile)
    client = _sync.get(key)
    if client is None:
        with _sync_lock:
            client = _sync.get(key)
            if client is None:
                client = _sync[key] = redis.Redis(connection_pool=_sync_pool(profile, key[0]))
    return client


async def redis_async_close() -> None:
    """Close the running loop's clients (a loop about to end: a worker's job, a test)."""
    clients = _async.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose(close_connection_pool=True)


def redis_sync_forget() -> None:
    """Drop the sync clients (a forked process must not share its parent's sockets)."""
    with _sync_lock:
        for client in _sync.values():
            client.connection_pool.reset()
        _sync.clear()


def _options(profile: Profile) -> dict[str, object]:
    return {
        # RESP2, as redis-py spoke before 8. Its RESP3 default also turns on "maintenance
        # notifications", with which a server announcing maintenance raises every connection's
        # timeouts to 10 s (the hot path's two seconds among them), and it costs a new connection
        # two more round trips.
        "protocol": 2,
        "socket_timeout": profile.socket_timeout_s,
        "socket_connect_timeout": profile.connect_timeout_s,
        "decode_responses": profile.decode_responses,
        "driver_info": _DRIVER_INFO,
    }


def async_pool(profile: Profile, url: str) -> aioredis.ConnectionPool:
    """A new pool of ``profile``'s async connections to ``url`` (``redis_async`` keeps one per loop;
    the Channels layer makes its own, project/layers.py)."""
    if profile.max_connections is None:
        pool = aioredis.ConnectionPool.from_url(url, max_connections=UNLIMITED, **_options(profile))
    else:
        pool = BoundedPool.from_url(url, limit=profile.max_connections, wait_s=profile.pool_wait_s, **_options(profile))
    # The URL chose the connection's kind (TCP, TLS, Unix socket); it keeps it, packing with hiredis.
    pool.connection_class = _hiredis_packing(pool.connection_class)
    return pool


class BoundedPool(aioredis.ConnectionPool):
    """At most ``limit`` connections in use; a command past that waits up to ``wait_s`` for one to
    come back, then fails as redis-py's ``BlockingConnectionPool`` fails (``ConnectionError``).

    That pool takes an ``asyncio.Condition`` and a timeout scope for every command, about 12 µs more
    per command than the plain pool (the hot path sends one or two per call); this one waits, and
    arms a timer, only when every connection is in use.
    """

    def __init__(self, *, limit: int, wait_s: float, **kwargs: Any) -> None:
        super().__init__(max_connections=UNLIMITED, **kwargs)
        self.limit = limit
        self.wait_s = wait_s
        self._slots = asyncio.Semaphore(limit)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.wait_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise redis.ConnectionError("No connection available.") from None
        else:
            await self._slots.acquire()  # a free slot: taken without waiting
        try:
            return await super().get_connection(*args, **kwargs)
        except BaseException:
            self._slots.release()
            raise

    async def release(self, connection: Any) -> None:
        try:
            await super().release(connection)
        finally:
            self._slots.release()


class HiredisPacking:
    """Commands packed into the Redis protocol by hiredis's C packer, each command's arguments whole.

    redis-py's sync connections use hiredis too, through a generator over the arguments (see
    ``_sync_pool``); its asyncio ones pack in Python, argument by argument, and that was 6% of the
    chat's CPU in the pinned streaming benchmark (one script call per token; docs/benchmarks.md).
    The bytes are the same: hiredis writes strings as UTF-8 and numbers as ``repr`` does, as
    redis-py's encoder with its default encoding; what neither takes (a bool, ``None``) is refused
    as redis-py refuses it.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        return [_packed(args)]

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        return [b"".join(_packed(tuple(command)) for command in commands)]


class EagerSend:
    """Commands written at once, without a task of their own.

    redis-py's asyncio connection sends every command through ``asyncio.wait_for``, so that a write
    the socket cannot take times out: a task, a timer and two more turns of the event loop for
    each round trip, though a command nearly always leaves with the write itself. A lone round trip
    cost 112-137 µs of CPU on the benchmark's core (docs/benchmarks.md, "Appends that wait for
    company"). This one writes, and waits for the socket (with the same timeout, failing as redis-py
    fails) only when the transport holds more than its high-water mark, when ``drain`` would wait;
    a connection without a timeout waits as long as its caller lets it, as redis-py's would. Anything
    unusual (not connected, closing, a health check due) goes the library's way.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        writer = self._writer  # type: ignore[attr-defined]
        eager = (
            self.is_connected  # type: ignore[attr-defined]
            and not (check_health and self.health_check_interval)  # type: ignore[attr-defined]
            and isinstance(command, bytes | list)
            and not writer.transport.is_closing()
        )
        if not eager:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]
            return
        transport = writer.transport
        # ``write``, as Python 3.11's ``writelines`` does: from 3.12 a socket transport's own
        # ``writelines`` never pauses its protocol, so ``drain`` returned at once however much the
        # socket had left to take, and a write to a Redis that stopped reading never timed out.
        writer.write(command if isinstance(command, bytes) else b"".join(command))
        if transport.get_write_buffer_size() <= transport.get_write_buffer_limits()[1]:
            return  # below the high-water mark: ``drain`` would return at once
        try:
            await asyncio.wait_for(writer.drain(), self.socket_timeout)  # type: ignore[attr-defined]
        except TimeoutError:
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            raise redis.TimeoutError("Timeout writing to socket") from None
        except OSError as error:
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]
            raise redis.ConnectionError(f"Error while writing to socket. {error}.") from error


async def round_trip(client: aioredis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """``commands`` written at once on one of ``client``'s connections and their replies read in
    order, each error reply (a ``ResponseError``) in its command's place: what
    ``pipeline(transaction=False).execute(raise_on_error=False)`` answers, without its costs.

    redis-py's async pipeline hands its connection back through ``asyncio.shield``: a task and
    three more turns of the event loop for every round trip, and a lone ``/v1`` call makes one (its
    admission, with the settle of the call before it: docs/benchmarks.md, "A slower day"). Here the
    connection goes back at once, shielded only when the round trip was cut short (cancelled, timed
    out, its connection lost): then the connection is dropped first, so that no reply of it reaches
    the connection's next user. Errors are retried as the connection's retry policy says, as the
    pipeline retries them (the pools made here retry nothing). No response callbacks are applied:
    the replies are Redis's own, as its scripts give them.
    """
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        replies: list[Any] = await connection.retry.call_with_retry(
            lambda: _written_and_read(connection, commands), lambda error: connection.disconnect(error=error)
        )
    except BaseException:
        await connection.disconnect(nowait=True)
        # A second cancellation must not split the pool's bookkeeping halfway through.
        await asyncio.shield(pool.release(connection))
        raise
    await pool.release(connection)
    return replies


async def _written_and_read(connection: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    await connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except redis.ResponseError as error:
            replies.append(error)
    return replies


_pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command  # typed for the tuples it takes here


def _packed(args: tuple[Any, ...]) -> bytes:
    name = args[0]
    if isinstance(name, str):  # "CONFIG GET": the server wants each word as an argument
        args = (*name.encode().split(), *args[1:])
    elif b" " in name:
        args = (*name.split(), *args[1:])
    try:
        return _pack(args)
    except TypeError:
        pass
    buffers = tuple(bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args)
    try:  # hiredis takes no buffer but bytes
        return _pack(buffers)
    except TypeError as error:
        raise DataError(str(error)) from error


_packing_classes: dict[tuple[type[Any], tuple[type[Any], ...]], type[Any]] = {}


def _hiredis_packing(connection_class: type[Any]) -> type[Any]:
    """``connection_class`` packing with hiredis and sending eagerly (async connections)."""
    return _with(connection_class, HiredisPacking, EagerSend)


def _with(connection_class: type[Any], *mixins: type[Any]) -> type[Any]:
    """``connection_class`` with ``mixins`` in front, one class per kind, made once."""
    made = _packing_classes.get((connection_class, mixins))
    if made is None:
        name = f"Hiredis{connection_class.__name__}"
        made = _packing_classes[(connection_class, mixins)] = type(name, (*mixins, connection_class), {})
    return made


def _sync_pool(profile: Profile, url: str) -> redis.ConnectionPool:
    pool: redis.ConnectionPool
    if profile.max_connections is None:
        pool = redis.ConnectionPool.from_url(url, max_connections=UNLIMITED, **_options(profile))
    else:
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=profile.max_connections, timeout=profile.pool_wait_s, **_options(profile)
        )
    # redis-py's sync connections pack with hiredis already, through a generator over each
    # command's arguments: twice the cost of packing the tuple whole (a batch of chat posts'
    # admissions, 20 script calls, took 138 µs to pack against 70).
    pool.connection_class = _with(pool.connection_class, HiredisPacking)
    return pool

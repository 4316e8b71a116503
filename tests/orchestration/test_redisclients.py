"""The async clients pack commands with hiredis: the same bytes as redis-py's own packer, and the
same answers from a real Redis. They write without a task per command, and time out as redis-py does.
A round trip of several commands answers as redis-py's pipeline does, and drops a connection it cut short."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import DataError

from orchestration.redisclients import (
    DEFAULT,
    FAST,
    LISTEN,
    STREAMS,
    EagerSend,
    HiredisPacking,
    redis_async,
    redis_async_close,
    redis_sync,
    round_trip,
)

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "plain", "value"),
    ("SET", b"bytes-key", b"\x00\xff binary"),
    ("HSET", "h", "é ünïcödé", "日本語", "n", 42, "f", 0.1 + 0.2, "big", 12345678901234567890, "neg", -5),
    ("CONFIG GET", "maxmemory"),  # a command name of two words
    (b"CLIENT LIST",),
    ("EVALSHA", "0" * 40, 4, "{chat:1}:events", "{chat:1}:closed", "{chat:1}:end", "{chat:1}:producer", "0", 3600),
    ("SET", "buffer", bytearray(b"from a bytearray")),
    ("SET", "view", memoryview(b"from a memoryview")),
    ("SET", "long", "x" * 10_000),  # longer than redis-py's buffer cutoff
]


def python_packed(args: tuple[Any, ...]) -> bytes:
    """What redis-py's pure-Python packer sends for ``args``."""
    return b"".join(bytes(part) for part in aioredis.Connection().pack_command(*args))


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: str(args[0]))
def test_the_bytes_are_redis_pys(args: tuple[Any, ...]) -> None:
    packer = HiredisPacking()
    assert packer.pack_command(*args) == [python_packed(args)]


def test_a_pipeline_is_its_commands_in_order() -> None:
    packed = HiredisPacking().pack_commands(COMMANDS)
    assert packed == [b"".join(python_packed(args) for args in COMMANDS)]


@pytest.mark.parametrize("bad", [True, None, object()])
def test_what_redis_py_refuses_is_refused(bad: Any) -> None:
    with pytest.raises(DataError):
        HiredisPacking().pack_command("SET", "k", bad)


def test_the_sync_clients_pack_whole_commands_and_speak_to_a_real_redis() -> None:
    for profile in (DEFAULT, FAST):
        client = redis_sync(profile)
        assert isinstance(client.connection_pool.connection_class(), HiredisPacking)
    client = redis_sync(FAST)
    client.hset("sync-h", mapping={"é": "日本語", "n": 42, "f": 1.5})
    assert client.hgetall("sync-h") == {"é".encode(): "日本語".encode(), b"n": b"42", b"f": b"1.5"}
    with client.pipeline(transaction=True) as pipe:
        pipe.set("sync-k", b"\x00bytes")
        pipe.get("sync-k")
        assert pipe.execute() == [True, b"\x00bytes"]
    script = client.register_script("return {KEYS[1], ARGV[1], ARGV[2]}")
    assert script(keys=["k"], args=[7, "ü"]) == [b"k", b"7", "ü".encode()]
    with pytest.raises(DataError):
        client.set("sync-bad", None)  # type: ignore[arg-type]


async def test_the_clients_speak_to_a_real_redis() -> None:
    try:
        client = redis_async(DEFAULT)
        assert isinstance(client.connection_pool.connection_class(), HiredisPacking)
        await client.hset("h", mapping={"é": "日本語", "n": 42, "f": 1.5})
        assert await client.hgetall("h") == {"é".encode(): "日本語".encode(), b"n": b"42", b"f": b"1.5"}
        async with redis_async(STREAMS).pipeline(transaction=False) as pipe:
            pipe.xadd("s", {"e": "token", "d": b'{"delta":"hi"}'}, id="0-3")
            pipe.xadd("s", {"e": "done", "d": "{}"}, id="0-4")
            pipe.xrange("s")
            *_, events = await pipe.execute()
        assert [(entry_id, fields[b"e"]) for entry_id, fields in events] == [(b"0-3", b"token"), (b"0-4", b"done")]
        script = client.register_script("return {KEYS[1], ARGV[1], ARGV[2]}")
        assert await script(keys=["k"], args=[7, "ü"]) == [b"k", b"7", "ü".encode()]
    finally:
        await redis_async_close()


async def test_a_burst_past_the_pool_waits_for_a_connection_and_listeners_are_not_bounded() -> None:
    # redis-py 8 caps a pool given no limit at 100 connections and refuses the next command; the
    # hot path's pool holds 128 and a burst past that waits for one of them.
    try:
        client = redis_async(FAST)
        assert await asyncio.gather(*(client.incr("in-flight") for _ in range(1000)))
        assert int(await client.get("in-flight")) == 1000
        pool = client.connection_pool
        assert len(pool._available_connections) + len(pool._in_use_connections) <= FAST.max_connections
        listeners = [redis_async(LISTEN).pubsub() for _ in range(150)]
        for listener in listeners:
            await listener.subscribe("channel")
        assert await redis_async(DEFAULT).pubsub_numsub("channel") == [(b"channel", 150)]
        for listener in listeners:
            await listener.aclose()
    finally:
        await redis_async_close()
    assert redis_sync(FAST).connection_pool.max_connections == FAST.max_connections


async def test_a_command_that_finds_no_connection_in_time_fails_as_redis_py_fails() -> None:
    from orchestration.redisclients import BoundedPool

    pool = BoundedPool.from_url(settings.REDIS_URL, limit=1, wait_s=0.05, protocol=2)
    client = aioredis.Redis(connection_pool=pool)
    try:
        blocked = asyncio.create_task(client.blpop(["nothing-here"], timeout=1))
        await asyncio.sleep(0.1)  # it holds the one connection
        with pytest.raises(redis.ConnectionError, match="No connection available"):
            await client.ping()
        await blocked
        assert await client.ping()  # the connection came back
    finally:
        await client.aclose(close_connection_pool=True)


async def test_every_client_speaks_resp2() -> None:
    # redis-py 8 speaks RESP3 unless told, and with it lets a server's maintenance notice raise
    # the hot path's half-second timeout to 10 s.
    import django_rq

    try:
        for profile in (FAST, STREAMS, LISTEN, DEFAULT):
            assert b"resp=2" in await redis_async(profile).execute_command("CLIENT", "INFO")
    finally:
        await redis_async_close()
    assert b"resp=2" in redis_sync(FAST).execute_command("CLIENT", "INFO")
    for queue in ("default", "agents"):
        assert b"resp=2" in django_rq.get_queue(queue).connection.execute_command("CLIENT", "INFO")


async def test_a_command_leaves_with_its_write_and_one_the_socket_cannot_take_times_out() -> None:
    from orchestration.redisclients import async_pool

    # A server that answers the connection's handshake, then reads no more: the socket's buffers fill up.
    connections: list[asyncio.StreamWriter] = []
    answering = True

    async def stops_reading(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while answering:
            data = await reader.read(65536)
            if not data:
                return
            writer.write(b"+OK\r\n" * data.count(b"*"))  # one answer for each command of the handshake

    server = await asyncio.start_server(stops_reading, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = async_pool(STREAMS, f"redis://127.0.0.1:{port}/0")
    client = aioredis.Redis(connection_pool=pool)
    real = redis_async(STREAMS)
    try:
        assert await real.set("eager", "x" * 100_000) and await real.get("eager") == b"x" * 100_000
        connection = await pool.get_connection()
        assert isinstance(connection, EagerSend)
        answering = False
        # The server's last read: this one leaves with its write, with no turn of the loop.
        sending = connection.send_packed_command(connection.pack_command("PING"))
        with pytest.raises(StopIteration):
            sending.send(None)
        await asyncio.sleep(0.05)
        connection.socket_timeout = 0.2
        started = asyncio.get_running_loop().time()
        with pytest.raises(redis.TimeoutError, match="writing"):
            await connection.send_command("SET", "big", b"x" * 32 * 2**20)  # far past any socket buffer
        assert asyncio.get_running_loop().time() - started < 2.0
        assert not connection.is_connected  # dropped, as redis-py drops a connection whose write timed out
    finally:
        await client.aclose(close_connection_pool=True)
        await redis_async_close()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_round_trip_answers_each_command_in_order_with_an_error_in_its_place() -> None:
    try:
        client = redis_async(FAST)
        await client.delete("counted", "a-list")
        await client.rpush("a-list", "x")
        commands: list[tuple[Any, ...]] = [
            ("SET", "greeting", "héllo"),
            ("EVALSHA", "0" * 40, 0),  # a script Redis does not know
            ("INCR", "counted"),
            ("INCR", "a-list"),  # the wrong type
            ("GET", "greeting"),
        ]
        replies = await round_trip(client, commands)
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            pipelined = await pipe.execute(raise_on_error=False)
        assert replies[0] == b"OK" and replies[2] == 1 and replies[4] == "héllo".encode()
        assert isinstance(replies[1], redis.exceptions.NoScriptError)
        assert isinstance(replies[3], redis.ResponseError) and "WRONGTYPE" in str(replies[3])
        # As redis-py's pipeline answers them, but for its callbacks (SET: True).
        assert [type(reply) for reply in replies[1:]] == [type(reply) for reply in pipelined[1:]]
        assert pipelined[2] == 2 and pipelined[4] == replies[4]
        assert not client.connection_pool._in_use_connections  # the connection is back
        assert await round_trip(client, [("PING",)]) == [b"PONG"]
    finally:
        await redis_async_close()


async def test_a_round_trip_cut_short_drops_its_connection_so_the_next_one_reads_its_own_replies() -> None:
    from orchestration.redisclients import BoundedPool

    pool = BoundedPool.from_url(settings.REDIS_URL, limit=1, wait_s=5.0, protocol=2)  # one connection, reused
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.delete("empty-list")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await round_trip(client, [("BLPOP", "empty-list", 1), ("PING",)])  # answered after a second
        started = asyncio.get_running_loop().time()
        assert await round_trip(client, [("ECHO", "mine"), ("ECHO", "mine too")]) == [b"mine", b"mine too"]
        assert asyncio.get_running_loop().time() - started < 0.5  # not after the cut round trip's answers
        assert not pool._in_use_connections and not pool._slots.locked()
    finally:
        await client.aclose(close_connection_pool=True)


async def test_a_round_trip_on_a_connection_the_server_dropped_connects_again() -> None:
    try:
        client = redis_async(FAST)
        (own_id,) = await round_trip(client, [("CLIENT", "ID")])
        await redis_async(DEFAULT).client_kill_filter(_id=own_id)  # the server drops it while it waits in the pool
        replies = await round_trip(client, [("ECHO", "after"), ("CLIENT", "ID")])
        assert replies[0] == b"after" and replies[1] != own_id
    finally:
        await redis_async_close()

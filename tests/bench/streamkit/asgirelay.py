"""The server's floor: the same bare relay as ``relay.py``, as a raw ASGI application.

Served by daphne (or uvicorn), it measures what the ASGI server itself costs a relayed stream:
no Django, no authentication, no parsing, one shared aiohttp client session for the upstream. The
difference between this and ``relay.py`` is the server's; the difference between this and
Switchyard on the same server is Switchyard's.

It also serves the chat's shape at its floor: ``POST /api/v1/conversations/<model>~<n>/messages``
starts the upstream call detached and answers 201 with a ``stream_url``; ``GET`` on it relays the
bytes the call has produced and goes on, then ends with a ``done`` event. Two requests and a queue
between the call and its reader, as a chat reply has, without a database, Redis or parsing.

A conversation named ``<model>~<n>~durable`` gets the chat's shape with its durable stream, as
docs/architecture.md has it, at redis-py's floor: the call appends the upstream's bytes to a Redis
Stream of its own (``REDIS_URL``) before its reader is handed them, one append in flight per reply
and at most one per 100 ms, the appends of every reply of a loop turn in one pipeline; the end is
appended too. What a chat reply must do by design, with none of Switchyard's work (no parsing, no
events, no database, no admission).

    SWITCHYARD_BENCH_UPSTREAM=http://127.0.0.1:9100 \
        python -m daphne -p 9300 tests.bench.streamkit.asgirelay:application

With ``SWITCHYARD_BENCH_SERVE_PATCHES=1`` (and Django's settings module in the environment), the
process first applies what ``project.asgi`` applies to every daphne that serves Switchyard
(``project.edge.daphne.daphne_harden``: the eager write path, the body limit, flow control, the
memoized ``Content-Type`` parse): the floor of daphne as ``serve`` runs it, not as it ships.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from aiohttp import ClientSession, TCPConnector

from orchestration.providers.eager import start_request_writes_eagerly

if os.environ.get("SWITCHYARD_BENCH_SERVE_PATCHES") == "1":
    from project.edge.daphne import daphne_harden

    daphne_harden()

_sessions: dict[int, ClientSession] = {}


def _session() -> ClientSession:
    loop = id(asyncio.get_running_loop())
    if loop not in _sessions:
        # Its requests leave as they are made, as Switchyard's do (see ``relay.py``).
        start_request_writes_eagerly(asyncio.get_running_loop())
        _sessions[loop] = ClientSession(connector=TCPConnector(limit=0))
    return _sessions[loop]


async def _body(receive: Any) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _plain(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


# A chat reply's bytes, from its detached upstream call to its stream's reader (None: the end).
_replies: dict[str, asyncio.Queue[bytes | None]] = {}
_producers: set[asyncio.Task[None]] = set()
_numbers = itertools.count(1)


async def _upstream_into(model: str, add: Callable[[bytes | None], None]) -> None:
    """The upstream's reply, each piece handed to ``add`` as it comes, then None."""
    body = {"model": model, "messages": [{"role": "user", "content": "Stream me a reply."}], "stream": True}
    upstream = os.environ["SWITCHYARD_BENCH_UPSTREAM"] + "/v1/chat/completions"
    headers = {"Content-Type": "application/json"}
    try:
        async with _session().post(upstream, data=json.dumps(body), headers=headers) as answer:
            async for data in answer.content.iter_any():
                add(data)
    finally:
        add(None)


async def _produce(model: str, queue: asyncio.Queue[bytes | None]) -> None:
    await _upstream_into(model, queue.put_nowait)


APPEND_EVERY_S = 0.1
_appends: dict[int, _Appends] = {}


class _Appends:
    """The appends of one loop's replies: those queued in one loop turn leave in one pipeline."""

    def __init__(self) -> None:
        self.client = aioredis.Redis.from_url(os.environ["REDIS_URL"], max_connections=64)
        self.pending: list[tuple[str, bytes, bool, asyncio.Future[None]]] = []
        self.flusher: asyncio.Task[None] | None = None

    def add(self, key: str, data: bytes, *, last: bool) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        landed: asyncio.Future[None] = loop.create_future()
        self.pending.append((key, data, last, landed))
        if self.flusher is None:
            self.flusher = loop.create_task(self._flush())
        return landed

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                async with self.client.pipeline(transaction=False) as pipe:
                    for key, data, last, _ in batch:
                        pipe.xadd(key, {"d": data})
                        if last:  # a stream's only other command: it expires once ended
                            pipe.expire(key, 60)
                    await pipe.execute()
                for _, _, _, landed in batch:
                    landed.set_result(None)
        finally:
            self.flusher = None


class _DurableWriter:
    """A reply's bytes into its Redis Stream, each batch handed to the reader once it landed."""

    def __init__(self, key: str, queue: asyncio.Queue[bytes | None]) -> None:
        self.key = key
        self.queue = queue
        self.waiting: list[bytes] = []
        self.in_flight: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.next_send = 0.0
        self.ended = False
        self.done = asyncio.get_running_loop().create_future()

    def add(self, data: bytes | None) -> None:
        if data is None:
            self.ended = True
        else:
            self.waiting.append(data)
        if self.in_flight is None and self.timer is None:
            self._schedule()

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        if self.ended or loop.time() >= self.next_send:
            self._send()
        else:
            self.timer = loop.call_at(self.next_send, self._send)

    def _send(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        data, self.waiting, ended = b"".join(self.waiting), [], self.ended
        self.next_send = loop.time() + APPEND_EVERY_S
        appends = _appends.get(id(loop)) or _appends.setdefault(id(loop), _Appends())
        self.in_flight = appends.add(self.key, data, last=ended)  # the last append may be empty: the end
        self.in_flight.add_done_callback(lambda _: self._landed(data, ended))

    def _landed(self, data: bytes, ended: bool) -> None:
        """The batch is in Redis: its reader gets it, as one send."""
        self.in_flight = None
        if data:
            self.queue.put_nowait(data)
        if ended:
            self.queue.put_nowait(None)
            self.done.set_result(None)
        elif self.waiting or self.ended:
            self._schedule()


async def _produce_durable(model: str, reply: str, queue: asyncio.Queue[bytes | None]) -> None:
    writer = _DurableWriter(f"floor:{os.getpid()}:{reply}", queue)
    try:
        await _upstream_into(model, writer.add)
    finally:
        await writer.done


async def _chat_post(scope: Any, receive: Any, send: Any) -> None:
    await _body(receive)
    model, *rest = scope["path"].split("/")[4].split("~")  # <model>~<n>[~durable]
    variant = rest[1] if len(rest) > 1 else ""
    reply = str(next(_numbers))
    queue = _replies[reply] = asyncio.Queue()
    produce = _produce_durable(model, reply, queue) if variant == "durable" else _produce(model, queue)
    producer = asyncio.get_running_loop().create_task(produce)
    _producers.add(producer)
    producer.add_done_callback(_producers.discard)
    body = json.dumps({"id": reply, "stream_url": f"/floor/replies/{reply}/stream"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _chat_stream(send: Any, reply: str) -> None:
    queue = _replies.pop(reply, None)
    if queue is None:
        await _plain(send, 404, b"not found")
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    while (data := await queue.get()) is not None:
        await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b"event: done\ndata: {}\n\n"})


async def application(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":  # uvicorn asks; nothing to start or stop
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/ready":
        await _plain(send, 200, b"ok")
        return
    path = scope["path"]
    if scope["method"] == "POST" and path.startswith("/api/v1/conversations/") and path.endswith("/messages"):
        await _chat_post(scope, receive, send)
        return
    if scope["method"] == "GET" and path.startswith("/floor/replies/"):
        await _chat_stream(send, path.split("/")[3])
        return
    if scope["method"] != "POST" or path != "/v1/chat/completions":
        await _plain(send, 404, b"not found")
        return
    body = await _body(receive)
    upstream = os.environ["SWITCHYARD_BENCH_UPSTREAM"] + scope["path"]
    headers = {"Content-Type": "application/json"}
    async with _session().post(upstream, data=body, headers=headers) as answer:
        content_type = answer.headers.get("Content-Type", "text/event-stream").encode("latin1")
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": [(b"content-type", content_type)]}
        )
        async for data in answer.content.iter_any():
            await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b""})

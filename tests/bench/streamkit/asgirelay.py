"""The server's floor: the same bare relay as ``relay.py``, as a raw ASGI application.

Served by daphne (or uvicorn), it measures what the ASGI server itself costs a relayed stream:
no Django, no authentication, no parsing, one shared aiohttp client session for the upstream. The
difference between this and ``relay.py`` is the server's; the difference between this and
Switchyard on the same server is Switchyard's.

It also serves the chat's shape at its floor: ``POST /api/v1/conversations/<model>~<n>/messages``
starts the upstream call detached and answers 201 with a ``stream_url``; ``GET`` on it relays the
bytes the call has produced and goes on, then ends with a ``done`` event. Two requests and a queue
between the call and its reader, as a chat reply has, without a database, Redis or parsing.

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
from typing import Any

from aiohttp import ClientSession, TCPConnector

if os.environ.get("SWITCHYARD_BENCH_SERVE_PATCHES") == "1":
    from project.edge.daphne import daphne_harden

    daphne_harden()

_sessions: dict[int, ClientSession] = {}


def _session() -> ClientSession:
    loop = id(asyncio.get_running_loop())
    if loop not in _sessions:
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


async def _produce(model: str, queue: asyncio.Queue[bytes | None]) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "Stream me a reply."}], "stream": True}
    upstream = os.environ["SWITCHYARD_BENCH_UPSTREAM"] + "/v1/chat/completions"
    headers = {"Content-Type": "application/json"}
    try:
        async with _session().post(upstream, data=json.dumps(body), headers=headers) as answer:
            async for data in answer.content.iter_any():
                queue.put_nowait(data)
    finally:
        queue.put_nowait(None)


async def _chat_post(scope: Any, receive: Any, send: Any) -> None:
    await _body(receive)
    conversation = scope["path"].split("/")[4]
    reply = str(next(_numbers))
    queue = _replies[reply] = asyncio.Queue()
    producer = asyncio.get_running_loop().create_task(_produce(conversation.rsplit("~", 1)[0], queue))
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

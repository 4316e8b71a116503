"""The server's floor: the same bare relay as ``relay.py``, as a raw ASGI application.

Served by daphne (or uvicorn), it measures what the ASGI server itself costs a relayed stream:
no Django, no authentication, no parsing, one shared aiohttp client session for the upstream. The
difference between this and ``relay.py`` is the server's; the difference between this and
Switchyard on the same server is Switchyard's.

    SWITCHYARD_BENCH_UPSTREAM=http://127.0.0.1:9100 \
        python -m daphne -p 9300 tests.bench.streamkit.asgirelay:application
"""

from __future__ import annotations

import os
from typing import Any

from aiohttp import ClientSession, TCPConnector

_sessions: dict[int, ClientSession] = {}


def _session() -> ClientSession:
    import asyncio

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
    if scope["method"] != "POST" or scope["path"] != "/v1/chat/completions":
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

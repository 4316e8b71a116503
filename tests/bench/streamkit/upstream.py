"""An OpenAI-compatible streaming upstream on a raw asyncio protocol: as cheap per token as it gets.

``POST /v1/chat/completions`` streams ``tokens`` chunks of content " zq", the first after ``first_ms``
and the rest every ``every_ms``, then a finish chunk, a usage chunk and ``[DONE]``; the request's
``model`` names the shape, ``stream-<tokens>x<every_ms>-<first_ms>`` (anything else: 24 tokens,
50 ms, 50 ms). Every 0 holds each stream after its first token until ``POST /release``, which sends
the rest of every held stream, 50 ms apart. Without ``"stream": true`` it answers the whole completion
at once. HTTP/1.1 keep-alive with chunked bodies, one request at a time per connection, which is what
HTTP clients send.

    python -m tests.bench.streamkit.upstream --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

TOKEN = " zq"
_MODEL = re.compile(rb'"model"\s*:\s*"stream-(\d+)x(\d+)-(\d+)"')
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
_RELEASED = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
RELEASE_EVERY_S = 0.05
_PREFIX = b'{"id":"chatcmpl-up","object":"chat.completion.chunk","created":1700000000,"model":"up","choices":'


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def _event(choices: bytes, tail: bytes = b"") -> bytes:
    return _chunked(b"data: " + _PREFIX + choices + tail + b"}\n\n")


FIRST = _event(b'[{"index":0,"delta":{"role":"assistant","content":"' + TOKEN.encode() + b'"},"finish_reason":null}]')
NEXT = _event(b'[{"index":0,"delta":{"content":"' + TOKEN.encode() + b'"},"finish_reason":null}]')
FINISH = _event(b'[{"index":0,"delta":{},"finish_reason":"stop"}]')
END = _chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def _usage(tokens: int) -> bytes:
    usage = b',"usage":{"prompt_tokens":12,"completion_tokens":%d,"total_tokens":%d}' % (tokens, tokens + 12)
    return _event(b"[]", usage)


def _whole(tokens: int) -> bytes:
    content = (TOKEN * tokens).encode()
    body = (
        b'{"id":"chatcmpl-up","object":"chat.completion","created":1700000000,"model":"up","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"' + content + b'"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":12,"completion_tokens":%d,"total_tokens":%d}}' % (tokens, tokens + 12)
    )
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Any = None
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end]
        found = _LENGTH.search(head)
        length = int(found.group(1)) if found else 0
        if len(self.buffer) < head_end + 4 + length:
            return
        body = self.buffer[head_end + 4 : head_end + 4 + length]
        self.buffer = self.buffer[head_end + 4 + length :]
        self.respond(head, body)

    def respond(self, head: bytes, body: bytes) -> None:
        if head.startswith(b"POST /release"):
            self.transport.write(_RELEASED)
            _release()
            return
        if not head.startswith(b"POST /v1/chat/completions"):
            self.transport.write(_NOT_FOUND)
            return
        shape = _MODEL.search(body)
        tokens, every_ms, first_ms = (int(g) for g in shape.groups()) if shape else (24, 50, 50)
        if not _STREAM.search(body):
            self.transport.write(_whole(tokens))
            return
        self.transport.write(_HEAD)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(first_ms / 1000, self.send, loop, 1, tokens, every_ms / 1000)

    def send(self, loop: asyncio.AbstractEventLoop, sent: int, tokens: int, every_s: float) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(FIRST if sent == 1 else NEXT)
        if sent < tokens and not every_s:
            _HELD.append((self, tokens))  # until ``POST /release``
            return
        if sent < tokens:
            self.timer = loop.call_later(every_s, self.send, loop, sent + 1, tokens, every_s)
        else:
            self.timer = None
            self.transport.write(FINISH + _usage(tokens) + END)


_HELD: list[tuple[Upstream, int]] = []  # streams held after their first token, with their token counts


def _release() -> None:
    loop = asyncio.get_running_loop()
    held = list(_HELD)
    _HELD.clear()
    for stream, tokens in held:
        stream.timer = loop.call_later(RELEASE_EVERY_S, stream.send, loop, 2, tokens, RELEASE_EVERY_S)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=4096)
    print(f"upstream ready on {port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    import uvloop

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()

"""The load client: many streams started at once (or spread over ``ramp_s`` seconds), each on its
own connection, read as raw bytes.

It speaks just enough HTTP/1.1 to send a request and read a response, and finds tokens by the
upstream's marker (`` zq``) in the bytes, so its cost per token is a ``bytes.find``. Two kinds:
- ``v1``: ``POST /v1/chat/completions`` with ``stream: true``, read until ``[DONE]``;
- ``chat``: ``POST /api/v1/conversations/{id}/messages``, then ``GET`` its ``stream_url`` on the
  same connection, read until the ``done`` (or ``error``) event.

Time to first token counts from the moment the stream's connection is opened. The spec comes as
JSON in ``argv[1]``; per-stream results go to stdout as JSON. With ``first_tokens_path`` in the spec,
that file is made as soon as every stream has its first token (or has ended without one).

    python -m tests.bench.streamkit.load '{"kind": "v1", "port": 9200, "streams": 10, "body": {...}}'
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

MARKER = b" zq"
_END = {"v1": (b"data: [DONE]",), "chat": (b"event: done", b"event: error")}


@dataclass
class Stream:
    ok: bool = False
    status: int = 0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    opened_s: float = 0.0  # when its connection was opened, from the start of the run
    posted_ms: float | None = None  # chat: when the POST's answer had arrived, from the opening
    head_ms: float | None = None  # when the stream's response head had arrived, from the opening
    tokens: int = 0
    error: str = ""


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _head(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """The status, the header block and whatever body bytes came with it."""
    buffer = b""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("closed before the response's head")
        buffer += data
    head = buffer[:end]
    return int(head[9:12]), head.lower(), buffer[end + 4 :]


async def _whole_body(reader: asyncio.StreamReader, head: bytes, body: bytes) -> bytes:
    if b"transfer-encoding: chunked" in head:
        while not body.endswith(b"0\r\n\r\n"):
            body += await reader.read(65536)
        parts, rest = [], body
        while (size := int(rest[: rest.find(b"\r\n")], 16)) > 0:
            start = rest.find(b"\r\n") + 2
            parts.append(rest[start : start + size])
            rest = rest[start + size + 2 :]
        return b"".join(parts)
    length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += await reader.read(65536)
    return body


class FirstTokens:
    """Makes ``path`` (if any) once ``streams`` streams have had their first token or ended without one."""

    def __init__(self, path: str | None, streams: int) -> None:
        self.path = path
        self.left = streams

    def seen(self) -> None:
        self.left -= 1
        if self.left == 0 and self.path:
            with open(self.path, "w"):
                pass


async def _read_stream(
    reader: asyncio.StreamReader, kind: str, started: float, result: Stream, pending: bytes, firsts: FirstTokens
) -> None:
    ends = _END[kind]
    seen = bytearray(pending)
    while True:
        if result.ttft_ms is None and MARKER in seen:
            result.ttft_ms = (time.perf_counter() - started) * 1000
            firsts.seen()
        tail = bytes(seen[-4096:])
        if any(end in tail for end in ends):
            break
        data = await reader.read(65536)
        if not data:
            result.error = "closed before the end of the stream"
            return
        seen += data
    result.tokens = seen.count(MARKER)
    result.ok = b"event: error" not in seen and b'"error"' not in seen


async def one(spec: dict[str, Any], index: int, gate: asyncio.Event, begun: list[float], firsts: FirstTokens) -> Stream:
    result = Stream()
    await gate.wait()
    if spec.get("ramp_s"):  # arrivals spread evenly over ramp_s instead of all at once
        await asyncio.sleep(index * spec["ramp_s"] / spec["streams"])
    started = time.perf_counter()
    result.opened_s = started - begun[0]
    writer = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", spec["port"], limit=1 << 20)
        headers = spec.get("headers", {})
        if spec["kind"] == "chat":
            conversation = spec["conversations"][index]
            body = json.dumps({"content": spec["content"]}).encode()
            writer.write(_request("POST", f"/api/v1/conversations/{conversation}/messages", headers, body))
            result.status, head, rest = await _head(reader)
            posted = json.loads(await _whole_body(reader, head, rest))
            result.posted_ms = (time.perf_counter() - started) * 1000
            if result.status != 201:
                result.error = f"POST {result.status}: {posted}"
                return result
            writer.write(_request("GET", posted["stream_url"], headers))
        else:
            writer.write(_request("POST", spec.get("path", "/v1/chat/completions"), headers, spec["body"].encode()))
        result.status, head, rest = await _head(reader)
        result.head_ms = (time.perf_counter() - started) * 1000
        if result.status != 200:
            result.error = f"status {result.status}: {rest[:300]!r}"
            return result
        await _read_stream(reader, spec["kind"], started, result, rest, firsts)
    except (OSError, ValueError) as error:
        result.error = f"{type(error).__name__}: {error}"
    finally:
        result.total_ms = (time.perf_counter() - started) * 1000
        if result.ttft_ms is None:
            firsts.seen()
        if writer is not None:
            writer.close()
    return result


async def run(spec: dict[str, Any]) -> list[Stream]:
    if "body" in spec and not isinstance(spec["body"], str):
        spec["body"] = json.dumps(spec["body"])
    gate = asyncio.Event()
    begun = [0.0]
    firsts = FirstTokens(spec.get("first_tokens_path"), spec["streams"])
    tasks = [asyncio.ensure_future(one(spec, index, gate, begun, firsts)) for index in range(spec["streams"])]
    await asyncio.sleep(0)
    begun[0] = time.perf_counter()
    gate.set()
    return list(await asyncio.wait_for(asyncio.gather(*tasks), spec.get("timeout_s", 300)))


def main() -> None:
    import uvloop

    spec = json.loads(sys.argv[1])
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    results = uvloop.run(run(spec))
    summary = {
        "streams": [asdict(result) for result in results],
        "cpu_s": time.process_time() - cpu_before,
        "wall_s": time.perf_counter() - wall_before,
    }
    json.dump(summary, sys.stdout)


if __name__ == "__main__":
    main()

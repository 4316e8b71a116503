"""Writing Server-Sent Events: the one place an event becomes bytes on the wire.

Every stream Switchyard serves (``/v1`` completions, chat replies, task logs) writes its events
here, so they share one framing: ``id:`` and ``event:`` when given, the JSON payload on one
``data:`` line (JSON never holds a raw newline), and a blank line. Comments keep proxies from
closing an idle stream.
"""

from __future__ import annotations

from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

PING = b": ping\n\n"
DONE = b"data: [DONE]\n\n"

# The response headers of every event stream: never cached, never buffered by a proxy.
STREAM_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Content-Type", b"text/event-stream; charset=utf-8"),
    (b"Cache-Control", b"no-cache"),
    (b"X-Accel-Buffering", b"no"),
)


_ENCODER = DjangoJSONEncoder(separators=(",", ":"), ensure_ascii=False)


def sse_event(data: Any, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """One event: ``data`` as compact JSON (dates and decimals as Django writes them)."""
    payload = _ENCODER.encode(data)
    head = ""
    if id is not None:
        head += f"id: {id}\n"
    if event is not None:
        head += f"event: {event}\n"
    return f"{head}data: {payload}\n\n".encode()


def sse_retry(ms: int) -> bytes:
    """How long a browser's ``EventSource`` waits before it reconnects."""
    return f"retry: {ms}\n\n".encode()

"""Writing Server-Sent Events: the one place an event becomes bytes on the wire.

Every stream Switchyard serves (``/v1`` completions, chat replies, task logs) writes its events
here, so they share one framing: ``id:`` and ``event:`` when given, the JSON payload on one
``data:`` line (JSON never holds a raw newline), and a blank line. Comments keep proxies from
closing an idle stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse

PING = b": ping\n\n"


class Final(bytes):
    """A stream's last bytes. The edge sends them as the end of the body, in one message (one
    write fewer for the server); anywhere else they are bytes like any other."""

    __slots__ = ()


DONE = Final(b"data: [DONE]\n\n")

# The response headers of every event stream: never cached, never buffered by a proxy.
STREAM_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Content-Type", b"text/event-stream; charset=utf-8"),
    (b"Cache-Control", b"no-cache"),
    (b"X-Accel-Buffering", b"no"),
)


# orjson writes an event in a tenth of the standard encoder's time (a stream writes one per token);
# dates, times and decimals are handed to Django's encoder, so they read as Django writes them.
_DJANGO_TYPES = DjangoJSONEncoder().default
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def json_compact(data: Any) -> bytes:
    """``data`` as compact UTF-8 JSON on one line (JSON never holds a raw newline)."""
    return orjson.dumps(data, default=_DJANGO_TYPES, option=_OPTIONS)


def sse_event(data: Any, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """One event: ``data`` as compact JSON (dates and decimals as Django writes them)."""
    payload = json_compact(data)
    if id is None and event is None:
        return b"data: " + payload + b"\n\n"
    head = ""
    if id is not None:
        head += f"id: {id}\n"
    if event is not None:
        head += f"event: {event}\n"
    return head.encode() + b"data: " + payload + b"\n\n"


# The largest event id taken as it is: no stream is that long, and a larger number would make a
# stream id Redis refuses (past 2**64).
MAX_EVENT_ID = 2**63 - 1
_MAX_EVENT_ID_DIGITS = len(str(MAX_EVENT_ID))


def event_id_from(raw: str) -> int | None:
    """A client's ``Last-Event-ID`` (or ``?last_event_id=``) as a whole number, at most
    ``MAX_EVENT_ID``; None when it is not one. ASCII digits only ("²" is a digit to ``isdigit``, not
    to ``int``), measured before ``int`` reads them: ``int`` refuses more than 4300 digits."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > _MAX_EVENT_ID_DIGITS:
        return MAX_EVENT_ID
    return min(int(digits), MAX_EVENT_ID)


def sse_retry(ms: int) -> bytes:
    """How long a browser's ``EventSource`` waits before it reconnects."""
    return f"retry: {ms}\n\n".encode()


class EventStreamResponse(StreamingHttpResponse):
    """A response whose body is ``events``, an async generator of ready SSE bytes.

    Django sends a streaming body through three wrappers per chunk (``__aiter__``, a byte-making
    generator, a chunking loop); the edge's lean handler sends ``events`` straight to the server
    instead, one ASGI message per item. Anywhere else it is an ordinary ``StreamingHttpResponse``.
    """

    def __init__(self, events: AsyncGenerator[bytes, None], *, status: int = 200) -> None:
        super().__init__(events, status=status)
        self.events = events
        for name, value in STREAM_HEADERS:
            self[name.decode()] = value.decode()

"""Writing Server-Sent Events: the one place an event becomes bytes on the wire.

Every stream Switchyard serves (``/v1`` completions, chat replies, task logs) writes its events
here, so they share one framing: ``id:`` and ``event:`` when given, the JSON payload on one
``data:`` line (JSON never holds a raw newline), and a blank line. Comments keep proxies from
closing an idle stream.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Collection, Mapping
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponseBase, StreamingHttpResponse
from django.http.response import ResponseHeaders

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
_CONTENT_TYPE = STREAM_HEADERS[0][1].decode()


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

    Its headers are kept as the bytes that go on the wire (``wire_headers``): a ``/v1`` stream
    carries about twenty (the key's limits, what served it), and each set through Django's
    ``ResponseHeaders`` is checked, stored, then encoded again for ASGI: about 1 µs a header of a
    stream's setup. ``headers`` given here, and those added by ``wire_set``, are checked as Django
    checks them (no line breaks, Latin-1) and encoded once. The first use of Django's own header API
    (``response[name]``, ``headers``, ``items()``...) moves them into Django's headers, where
    everything after reads and changes them as on any response.
    """

    def __init__(
        self, events: AsyncGenerator[bytes, None], *, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        self._wire: list[tuple[bytes, bytes]] = []
        super().__init__(events, status=status, content_type=_CONTENT_TYPE)
        self.events = events
        self._wire.extend(STREAM_HEADERS[1:])
        if headers:
            wire = _wire_of(headers.items())
            if wire is not None:
                self._wire.extend(wire)
            else:  # one of them needs Django's hand: each goes its own way
                for name, value in headers.items():
                    self.wire_set(name, value)

    @property  # type: ignore[override]
    def headers(self) -> ResponseHeaders:
        if self._wire:  # Django's header API is used: the wire's headers join Django's
            wire, self._wire = self._wire, []
            for name, value in wire:
                self._django_headers[name.decode("ascii")] = value.decode("latin-1")
        return self._django_headers

    @headers.setter
    def headers(self, value: ResponseHeaders) -> None:
        self._django_headers = value

    def wire_set(self, name: str, value: Any) -> None:
        """Set a header not set before, as ``response[name] = value`` would (a value Django would
        refuse or MIME-encode goes through Django)."""
        wire = _wire_of(((name, value),)) if self._wire else None
        if wire is not None:
            self._wire += wire
        else:
            self[name] = value

    def wire_headers(self) -> list[tuple[bytes, bytes]]:
        """Every header, as ASGI sends them."""
        django = [(name.encode("ascii"), value.encode("latin-1")) for name, value in self._django_headers.items()]
        return django + self._wire

    def take_wire_headers(self) -> list[tuple[bytes, bytes]]:
        """``wire_headers``, for the head that is about to be sent; the response keeps none of
        them after. A stream's response is held until the stream ends, and its headers are read
        for its head alone: kept, a ``/v1`` stream's twenty stayed in memory, and in the garbage
        collector's walks, for its whole life."""
        headers = self.wire_headers()
        self._wire = []
        self._django_headers = ResponseHeaders({})
        return headers


def _wire_of(headers: Collection[tuple[str, Any]]) -> list[tuple[bytes, bytes]] | None:
    """``(name, value)`` headers as wire bytes, checked all at once as Django checks them (no line
    break, Latin-1); None when one needs Django's hand (a refusal, a MIME encoding, a value that is
    not text)."""
    try:
        if not "".join(itertools.chain.from_iterable(headers)).isprintable():
            return None
        return [(name.encode("ascii"), value.encode("latin-1")) for name, value in headers]
    except (TypeError, UnicodeError):
        return None


def header_set(response: HttpResponseBase, name: str, value: str) -> None:
    """``response[name] = value``, straight onto the wire's headers for an event stream."""
    if isinstance(response, EventStreamResponse):
        response.wire_set(name, value)
    else:
        response[name] = value

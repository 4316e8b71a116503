"""A Server-Sent Events parser over raw bytes, as the providers' streaming endpoints send them.

Bytes are split on ``\\n`` (a trailing ``\\r`` is dropped, so ``\\r\\n`` works too); a blank line
ends an event; ``data:`` lines of one event are joined with ``\\n``; comments (``:``) and the
``id``/``retry`` fields are ignored because no provider stream relies on them.
"""

from __future__ import annotations

from typing import NamedTuple


class SseEvent(NamedTuple):
    event: str  # "" when the event had no ``event:`` line
    data: bytes


class SseParser:
    """Feed it the bytes as they arrive; it returns the events each feed completes."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if (
            not self._buffer
            and not self._data
            and not self._event
            and chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and chunk.endswith(b"\n\n")
        ):
            # One whole event of one data line, what a streamed token nearly always arrives as.
            return [SseEvent("", chunk[6:-2])]
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[SseEvent] = []
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            self._line(buffer[start:end], events)
            start = end + 1
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SseEvent]:
        """Events still pending at the end of the stream (a last event without its blank line)."""
        events: list[SseEvent] = []
        if self._buffer:
            self._line(self._buffer, events)
            self._buffer = b""
        self._line(b"", events)
        return events

    def _line(self, line: bytes, events: list[SseEvent]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            if self._data:
                events.append(SseEvent(self._event, b"\n".join(self._data)))
            self._event = ""
            self._data = []
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

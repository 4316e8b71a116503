"""A small Server-Sent Events reader over raw httpx, as a browser's EventSource reads a stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Event:
    id: str
    type: str
    data: Any


@dataclass
class StreamRead:
    status: int
    headers: httpx.Headers
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    first_event_at: float | None = None

    @property
    def text(self) -> str:
        return "".join(e.data["delta"] for e in self.events if e.type == "token")

    @property
    def last_id(self) -> str:
        return self.events[-1].id if self.events else ""

    @property
    def end(self) -> Event | None:
        return self.events[-1] if self.events and self.events[-1].type in ("done", "error") else None


def parse(lines: Iterator[str], read: StreamRead, stop_after_tokens: int | None = None) -> None:
    """Fill ``read`` from SSE lines; stop after an end event or ``stop_after_tokens`` tokens."""
    fields: dict[str, str] = {}
    tokens = 0
    for line in lines:
        if line.startswith(":"):
            read.comments.append(line[1:].strip())
            continue
        if line:
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value
            continue
        if "retry" in fields:
            read.retry = int(fields["retry"])
        if "data" in fields:
            if read.first_event_at is None:
                read.first_event_at = time.monotonic()
            event = Event(fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"]))
            read.events.append(event)
            tokens += event.type == "token"
            if event.type in ("done", "error") or (stop_after_tokens is not None and tokens >= stop_after_tokens):
                return
        fields = {}


def read_stream(
    client: httpx.Client,
    url: str,
    *,
    last_event_id: str | None = None,
    stop_after_tokens: int | None = None,
    timeout: float = 30.0,
) -> StreamRead:
    """Read one connection of a stream; with ``stop_after_tokens`` the connection is dropped early."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    with client.stream("GET", url, headers=headers, timeout=timeout) as response:
        read = StreamRead(response.status_code, response.headers)
        if response.status_code == 200:
            parse(response.iter_lines(), read, stop_after_tokens)
        else:
            response.read()
    return read


def read_to_end(client: httpx.Client, url: str, *, first: StreamRead | None = None, rounds: int = 5) -> list[Event]:
    """All events of a reply, reconnecting with Last-Event-ID as EventSource does."""
    events = list(first.events) if first else []
    for _ in range(rounds):
        if events and events[-1].type in ("done", "error"):
            break
        events += read_stream(client, url, last_event_id=events[-1].id if events else None).events
    return events

"""Serialisation shared by the wire formats: compact JSON and Server-Sent Events frames."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(payload: Any) -> bytes:
    return _encoder.encode(payload).encode()


def sse_data(payload: Any) -> bytes:
    return b"data: " + dumps(payload) + b"\n\n"


def sse_event(event: str, payload: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(payload) + b"\n\n"


@dataclass(slots=True)
class StreamPlan:
    """The frames of one streamed reply.

    ``frames`` pairs each frame with the number of tokens it carries (pacing, drops and broken
    chunks count tokens); ``tail`` closes the stream and is never sent when a fault is injected.
    """

    frames: list[tuple[bytes, int]] = field(default_factory=list)
    tail: bytes = b""

    def add(self, frame: bytes, tokens: int = 0) -> None:
        self.frames.append((frame, tokens))

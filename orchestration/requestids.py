"""Request ids: every response carries ``X-Request-ID``, echoed when the client sent a sane one.

A new id is ``req_`` and 32 hex digits: the milliseconds since the epoch (12 digits), then 80
random bits. Ids made one after another sort together, as UUIDv7s do, so the request log's index
of them grows at its end: with wholly random ids, each row written dirtied an index page of its
own, and writing a row cost about a third more (docs/benchmarks.md)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(headers: Mapping[str, str] | Any) -> str:
    """The client's ``X-Request-ID`` when it is sane, else a new id."""
    sent = headers.get("X-Request-ID", "")
    if sent and _CLIENT_ID.match(sent):
        return str(sent)
    return f"req_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"

"""Request ids: every response carries ``X-Request-ID``, echoed when the client sent a sane one."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(headers: Mapping[str, str] | Any) -> str:
    """The client's ``X-Request-ID`` when it is sane, else a new id."""
    sent = headers.get("X-Request-ID", "")
    if sent and _CLIENT_ID.match(sent):
        return str(sent)
    return f"req_{secrets.token_hex(16)}"

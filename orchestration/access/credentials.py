"""The API key a request or a connection presents: ``Authorization: Bearer <key>`` or ``x-api-key``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def api_key_secret_from(headers: Mapping[str, str] | Any) -> str | None:
    """The key in ``headers`` (any case-insensitive mapping), or None when it presents none.

    An ``Authorization`` header of another scheme (Basic, a cookie-less browser's) presents none."""
    authorization = headers.get("Authorization", "")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return str(value.strip())
        return None
    api_key = headers.get("x-api-key", "")
    return str(api_key).strip() or None


def api_key_secret_from_scope(scope: Mapping[str, Any]) -> str | None:
    """The key an ASGI connection (HTTP or WebSocket) presents in its headers."""
    return api_key_secret_from(_credential_headers(scope.get("headers", ())))


def presents_api_key(scope: Mapping[str, Any]) -> bool:
    return api_key_secret_from_scope(scope) is not None


def _credential_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers = {"Authorization": "", "x-api-key": ""}
    for name, value in raw:
        lowered = name.lower()
        if lowered == b"authorization":
            headers["Authorization"] = value.decode("latin1")
        elif lowered == b"x-api-key":
            headers["x-api-key"] = value.decode("latin1")
    return headers

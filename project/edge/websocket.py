"""ASGI middleware for the agent routes: API-key authentication and the WebSocket origin check."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from project.keycache import api_key_authenticate


def scope_headers(scope: dict[str, Any]) -> dict[str, str]:
    """The connection's headers by lower-case name (the last one wins, as Django does)."""
    return {name.decode("latin1").lower(): value.decode("latin1") for name, value in scope.get("headers", [])}


USER_TTL_S = 10.0
_users: dict[int, tuple[float, Any]] = {}


def _active_user(user_id: int) -> Any:
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


async def key_owner(user_id: int) -> Any:
    """The key's user, remembered for ``USER_TTL_S`` like the key itself (project.keycache):
    a burst of connections with one key costs one query, not one each."""
    now = time.monotonic()
    cached = _users.get(user_id)
    if cached is None or cached[0] <= now:
        if len(_users) >= 10_000:
            _users.clear()
        cached = _users[user_id] = (now + USER_TTL_S, await sync_to_async(_active_user)(user_id))
    return cached[1]


class ApiKeyAuthMiddleware:
    """A connection that presents an API key (``Authorization: Bearer`` or ``x-api-key``)
    belongs to that key's user, with ``scope["api_key"]`` (an ``AuthenticatedKey``) set; a bad
    key leaves it anonymous. Without a key, the session's user (``AuthMiddlewareStack``) stays."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = scope_headers(scope)
        if "authorization" in headers or "x-api-key" in headers:
            presented = {"Authorization": headers.get("authorization", ""), "x-api-key": headers.get("x-api-key", "")}
            key = await api_key_authenticate(presented)
            user = await key_owner(key.user_id) if key is not None else None
            scope = dict(scope, user=user or AnonymousUser(), api_key=key if user else None)
        return await self.app(scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """``AllowedHostsOriginValidator``, except that a handshake without an ``Origin`` header
    passes. Browsers always send one, so cross-site pages are still refused; API clients
    (which authenticate with a key and cannot be tricked into sending a cookie) need not fake one."""

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def browser_origin_validator(application: Any) -> BrowserOriginValidator:
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return BrowserOriginValidator(application, allowed_hosts)

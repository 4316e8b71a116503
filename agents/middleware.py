"""ASGI middleware for the agent routes: API-key authentication and the WebSocket origin check."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from orchestration.keys import api_key_find
from project.auth import api_key_secret_from


def scope_headers(scope: dict[str, Any]) -> dict[str, str]:
    """The connection's headers by lower-case name (the last one wins, as Django does)."""
    return {name.decode("latin1").lower(): value.decode("latin1") for name, value in scope.get("headers", [])}


class ApiKeyAuthMiddleware:
    """A connection that presents an API key (``Authorization: Bearer`` or ``x-api-key``)
    belongs to that key's user, with ``scope["api_key"]`` set; a bad key leaves it anonymous.
    Without a key, the session's user (set by ``AuthMiddlewareStack`` outside) stays."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = scope_headers(scope)
        if "authorization" in headers or "x-api-key" in headers:
            presented = {"Authorization": headers.get("authorization", ""), "x-api-key": headers.get("x-api-key", "")}
            secret = api_key_secret_from(presented)
            key = await database_sync_to_async(api_key_find)(secret) if secret else None
            scope = dict(scope, user=key.user if key else AnonymousUser(), api_key=key)
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

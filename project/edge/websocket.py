"""Who a connection belongs to, and where it may come from: ASGI middleware of the Channels routes.

``AccessMiddleware`` finds the connection's caller through the access pipeline: the API key it
presents (``Authorization: Bearer`` or ``x-api-key``), else the session's user. It sets
``scope["caller"]`` (an ``orchestration.access.admission.Caller``) and ``scope["user"]``; a key
that cannot be used sets ``scope["access_refusal"]`` (the ``Unauthenticated`` error) instead, so
the consumer can say why before it closes. A consumer that admits work later (the agent session's
``start_task``) asks ``caller_for_scope`` again, so that it admits with the key as it is then.

A key's verdict comes from the key cache (``orchestration.access.keycache``), which already
refuses a key whose owner is disabled and hears of every change to a key or its owner, as the
``/v1`` door does. The owner's row is not read to admit the connection: that read went to the
thread pool, and in a burst of chat posts (whose database work fills that pool) a reply's stream
waited for every post ahead of it before its first byte. A keyed scope's ``user`` is loaded only
if something reads it (from sync code; no consumer does).
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host
from django.utils.functional import SimpleLazyObject

from orchestration.access.admission import caller_for_scope
from orchestration.access.credentials import presents_api_key
from orchestration.errors import Unauthenticated


def _key_owner(user_id: int) -> Any:
    return get_user_model().objects.get(pk=user_id)


class AccessMiddleware:
    """Sets ``caller`` and ``user`` (or ``access_refusal``) in the scope; see the module."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        try:
            caller = await caller_for_scope(scope)
        except Unauthenticated as refusal:
            scope = dict(scope, user=AnonymousUser(), caller=None, access_refusal=refusal)
        else:
            user: Any = scope.get("user") or AnonymousUser()
            if caller is not None and caller.api_key_id is not None:
                user = SimpleLazyObject(functools.partial(_key_owner, caller.user_id))
            scope = dict(scope, user=user, caller=caller)
        return await self.app(scope, receive, send)


def access_stack(app: Any) -> Any:
    """Sessions (for browsers), then the caller: what every Channels route of Switchyard is wrapped in."""
    return KeyOrSession(AccessMiddleware(app))


class KeyOrSession:
    """A connection that presents an API key goes straight to ``AccessMiddleware``: the key decides
    who it is, whatever cookie it carries. Any other goes through Channels' cookie, session and auth
    middleware first. The session layers wrap every message sent (an SSE stream sends one per
    token) and parse the cookies, which an API client does not send."""

    def __init__(self, app: Any) -> None:
        self.keyed = app
        self.browser = AuthMiddlewareStack(app)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if presents_api_key(scope):
            return await self.keyed(scope, receive, send)
        return await self.browser(scope, receive, send)


class SameOriginValidator:
    """Browsers may open a WebSocket only from a page of this very server: the ``Origin`` must
    match the scheme, host and port the connection came to (and the host must be one of
    ``ALLOWED_HOSTS``), or be listed in ``CSRF_TRUSTED_ORIGINS``. ``http://localhost:9999`` is
    refused by a server on ``:8000``. A handshake without an ``Origin`` passes: browsers always
    send one, and API clients (which authenticate with a key, not a cookie) need not fake one."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            if origin is not None and not origin_allowed(origin, scope):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin1"))
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    parsed = urlsplit(f"{scheme}://{netloc}")
    try:
        port = parsed.port
    except ValueError:
        return None
    if parsed.hostname is None:
        return None
    return scheme, parsed.hostname.lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def origin_allowed(origin: str, scope: dict[str, Any]) -> bool:
    parsed = urlsplit(origin.strip())
    sent = _origin_of(parsed.scheme.lower(), parsed.netloc)
    if sent is None:
        return False
    trusted = {_origin_of(urlsplit(o).scheme.lower(), urlsplit(o).netloc) for o in settings.CSRF_TRUSTED_ORIGINS}
    if sent in trusted:
        return True
    host = _header(scope, b"host") or ""
    secure = scope.get("scheme") in ("wss", "https") or (
        settings.SECURE_PROXY_SSL_HEADER is not None and (_header(scope, b"x-forwarded-proto") or "") == "https"
    )
    served = _origin_of("https" if secure else "http", host)
    return served is not None and sent == served and validate_host(served[1], _allowed_hosts())


def _allowed_hosts() -> list[str]:
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return allowed_hosts

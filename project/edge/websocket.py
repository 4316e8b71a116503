"""Who a connection belongs to, and where it may come from: ASGI middleware of the Channels routes.

``AccessMiddleware`` finds the connection's caller through the access pipeline: the API key it
presents (``Authorization: Bearer`` or ``x-api-key``), else the session's user. It sets
``scope["caller"]`` (an ``orchestration.access.admission.Caller``) and ``scope["user"]``; a key
that cannot be used sets ``scope["access_refusal"]`` (the ``Unauthenticated`` error) instead, so
the consumer can say why before it closes. Consumers never look keys up themselves.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http.request import validate_host

from orchestration.access.admission import Caller, caller_for_secret, caller_for_user
from orchestration.access.credentials import api_key_secret_from_scope, presents_api_key
from orchestration.database import database_call
from orchestration.errors import Unauthenticated
from orchestration.sharedcalls import SharedCalls

USER_TTL_S = 1.0
_users: dict[int, tuple[float, Any]] = {}
_owner_lookups: SharedCalls[int, Any] = SharedCalls()


def _active_user(user_id: int) -> Any:
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


async def key_owner(user_id: int) -> Any:
    """The key's user, remembered for a second: a burst of connections with one key costs one query,
    which the connections that arrive while it runs share."""
    cached = _users.get(user_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    return await _owner_lookups(user_id, lambda: _owner_looked_up(user_id))


async def _owner_looked_up(user_id: int) -> Any:
    user = await database_call(_active_user)(user_id)
    if len(_users) >= 10_000:
        _users.clear()
    _users[user_id] = (time.monotonic() + USER_TTL_S, user)
    return user


class AccessMiddleware:
    """Sets ``caller`` and ``user`` (or ``access_refusal``) in the scope; see the module."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        secret = api_key_secret_from_scope(scope)
        caller: Caller | None
        try:
            if secret is not None:
                caller = await caller_for_secret(secret)
                user = await key_owner(caller.user_id)
                if user is None:
                    raise Unauthenticated("account_disabled", "The account this API key belongs to is disabled.")
            else:
                user = scope.get("user")
                caller = await caller_for_user(user) if user is not None and user.is_authenticated else None
        except Unauthenticated as refusal:
            scope = dict(scope, user=AnonymousUser(), caller=None, access_refusal=refusal)
        else:
            scope = dict(scope, user=user or AnonymousUser(), caller=caller)
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

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

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from orchestration.access.admission import Caller, caller_for_secret, caller_for_user
from orchestration.access.credentials import api_key_secret_from_scope
from orchestration.errors import Unauthenticated

USER_TTL_S = 1.0
_users: dict[int, tuple[float, Any]] = {}


def _active_user(user_id: int) -> Any:
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


async def key_owner(user_id: int) -> Any:
    """The key's user, remembered for a second: a burst of connections with one key costs one query."""
    now = time.monotonic()
    cached = _users.get(user_id)
    if cached is None or cached[0] <= now:
        if len(_users) >= 10_000:
            _users.clear()
        cached = _users[user_id] = (now + USER_TTL_S, await sync_to_async(_active_user)(user_id))
    return cached[1]


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
    return AuthMiddlewareStack(AccessMiddleware(app))


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

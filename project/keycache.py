"""API-key authentication for the async ``/v1`` path, with a short in-process cache.

Looking a key up costs a database query; a busy client would pay it on every call. So each
process remembers what it found (a key, or that a secret matches none) for ``TTL_S`` seconds.
The price: a key revoked, disabled or expired through another process keeps working in this
one for at most ``TTL_S`` seconds. A change saved in this process (admin, ``api_key_revoke``)
drops the cached entry at once. ``last_used_at`` is written at most once a minute per key
and process, in a background task, never on the request's path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from channels.db import database_sync_to_async
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from orchestration.keys import KEY_PREFIX, api_key_find, api_key_hash
from orchestration.models import ApiKey
from project.auth import api_key_secret_from
from project.ratelimit import KeyLimits

logger = logging.getLogger("switchyard.keys")

TTL_S = 10.0
LAST_USED_EVERY_S = 60.0
_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    """What the edge keeps of an API key: enough to authorize, limit and log a call."""

    id: int
    user_id: int
    prefix: str
    allowed_models: frozenset[str]
    limits: KeyLimits
    expires_at: datetime | None

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


_cache: dict[str, tuple[float, AuthenticatedKey | None]] = {}
_last_used: dict[int, float] = {}
_background: set[asyncio.Task[None]] = set()


def _authenticated(key: ApiKey) -> AuthenticatedKey:
    budget = key.monthly_budget_usd
    return AuthenticatedKey(
        id=key.pk,
        user_id=key.user_id,
        prefix=key.prefix,
        allowed_models=frozenset(key.allowed_models or ()),
        limits=KeyLimits(
            api_key_id=key.pk,
            rpm=key.rpm,
            tpm=key.tpm,
            monthly_budget_usd=Decimal(budget) if budget is not None else None,
        ),
        expires_at=key.expires_at,
    )


def _lookup(secret: str) -> AuthenticatedKey | None:
    key = api_key_find(secret)
    return _authenticated(key) if key is not None else None


async def api_key_authenticate(headers: Any) -> AuthenticatedKey | None:
    """The key the request presents, if it is usable; None for no key or a bad one."""
    secret = api_key_secret_from(headers)
    if secret is None or not secret.startswith(KEY_PREFIX):
        return None
    digest = api_key_hash(secret)
    now = time.monotonic()
    cached = _cache.get(digest)
    if cached is None or cached[0] <= now:
        found = await database_sync_to_async(_lookup)(secret)
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        cached = (now + TTL_S, found)
        _cache[digest] = cached
    key = cached[1]
    if key is None or (key.expires_at is not None and key.expires_at <= timezone.now()):
        return None
    _touch(key.id, now)
    return key


def _touch(key_id: int, now: float) -> None:
    if now - _last_used.get(key_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
        return
    _last_used[key_id] = now
    task = asyncio.get_running_loop().create_task(_write_last_used(key_id))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _write_last_used(key_id: int) -> None:
    try:
        await ApiKey.objects.filter(pk=key_id).aupdate(last_used_at=timezone.now())
    except Exception:
        logger.warning("Could not record last use of API key %s", key_id, exc_info=True)


def key_cache_forget(*, key_hash: str | None = None) -> None:
    """Drop one cached key (by its hash), or all of them."""
    if key_hash is None:
        _cache.clear()
    else:
        _cache.pop(key_hash, None)


def _on_key_change(sender: type[ApiKey], instance: ApiKey, **_: object) -> None:
    key_cache_forget(key_hash=instance.key_hash)


post_save.connect(_on_key_change, sender=ApiKey, dispatch_uid="keycache-apikey-save")
post_delete.connect(_on_key_change, sender=ApiKey, dispatch_uid="keycache-apikey-delete")

"""API-key lookups with an in-process cache that revocation keeps current.

Looking a key up costs a database query; a busy client would pay it on every call. So each
process remembers what it found for a secret (a usable key, or why it cannot be used) until the
key or its owner changes: ``orchestration.access.revocation`` announces every change to every
process within a second. While this process cannot hear announcements, an entry is trusted for
``UNTRUSTED_TTL_S`` only; ``TTL_S`` bounds it otherwise. ``last_used_at`` is written at most once
a minute per key and process, in a background task, never on the request's path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from orchestration.access import revocation
from orchestration.access.keys import EXPIRED, INVALID, KEY_PREFIX, REFUSALS, api_key_hash, api_key_lookup
from orchestration.access.limits import Limits
from orchestration.access.models import ApiKey
from orchestration.database import database_call
from orchestration.errors import Unauthenticated
from orchestration.sharedcalls import SharedCalls

logger = logging.getLogger("switchyard.access")

TTL_S = 60.0
UNTRUSTED_TTL_S = 1.0
LAST_USED_EVERY_S = 60.0
_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    """What the doors keep of a usable API key: enough to authorize, limit and log a call."""

    id: int
    user_id: int
    prefix: str
    allowed_models: frozenset[str]
    limits: Limits
    expires_at: datetime | None

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


@dataclass(frozen=True, slots=True)
class _Entry:
    until: float
    key: AuthenticatedKey | None
    refusal: str | None  # why the secret cannot be used, when ``key`` is None


_cache: dict[str, _Entry] = {}
# One database lookup per secret at a time: when a hot key's entry runs out, the calls that
# arrive meanwhile wait for that lookup instead of each opening a connection of their own.
_lookups: SharedCalls[str, _Entry] = SharedCalls()
_changes_seen = 0  # announcements heard, so a lookup that overlapped one is not remembered
_last_used: dict[int, float] = {}
_background: set[asyncio.Task[None]] = set()


def key_authenticated(key: ApiKey) -> AuthenticatedKey:
    """What the doors keep of a key row."""
    budget = key.monthly_budget_usd
    return AuthenticatedKey(
        id=key.pk,
        user_id=key.user_id,
        prefix=key.prefix,
        allowed_models=frozenset(key.allowed_models or ()),
        limits=Limits(
            user_id=key.user_id,
            api_key_id=key.pk,
            rpm=key.rpm,
            tpm=key.tpm,
            monthly_budget_usd=Decimal(budget) if budget is not None else None,
        ),
        expires_at=key.expires_at,
    )


def _lookup(secret: str) -> tuple[AuthenticatedKey | None, str | None]:
    key, refusal = api_key_lookup(secret)
    if key is None or refusal is not None:
        return None, refusal or INVALID
    return key_authenticated(key), None


def _remember(digest: str, found: tuple[AuthenticatedKey | None, str | None]) -> _Entry:
    if len(_cache) >= _MAX_ENTRIES:
        _cache.clear()
    entry = _cache[digest] = _Entry(time.monotonic() + trusted_for_s(), *found)
    return entry


def trusted_for_s() -> float:
    """How long a lookup may be remembered now: long only while changes can be heard."""
    return TTL_S if revocation.listener_live() else UNTRUSTED_TTL_S


def _fresh(digest: str) -> _Entry | None:
    entry = _cache.get(digest)
    return entry if entry is not None and entry.until > time.monotonic() else None


def _usable(entry: _Entry) -> AuthenticatedKey:
    if entry.key is None:
        code = entry.refusal or INVALID
        raise Unauthenticated(code, REFUSALS[code])
    if entry.key.expired():
        raise Unauthenticated(EXPIRED, REFUSALS[EXPIRED])
    return entry.key


async def key_authenticate(secret: str) -> AuthenticatedKey:
    """The usable key of ``secret``; ``Unauthenticated`` (with the reason's code) otherwise."""
    if not secret.startswith(KEY_PREFIX):
        raise Unauthenticated(INVALID, REFUSALS[INVALID])
    revocation.listener_ensure()
    digest = api_key_hash(secret)
    entry = _fresh(digest) or await _looked_up(digest, secret)
    key = _usable(entry)
    _touch(key.id)
    return key


async def _looked_up(digest: str, secret: str) -> _Entry:
    """The entry of ``secret`` from the database, by a lookup shared with concurrent callers."""
    return await _lookups(digest, lambda: _lookup_and_remember(digest, secret, _changes_seen))


async def _lookup_and_remember(digest: str, secret: str, changes_seen: int) -> _Entry:
    found = await database_call(_lookup)(secret)
    if changes_seen != _changes_seen:
        # A change was announced while the row was read: what was read may predate it.
        return _Entry(0.0, *found)
    return _remember(digest, found)


def key_authenticate_sync(secret: str) -> AuthenticatedKey:
    """``key_authenticate`` for sync callers (DRF's authentication, a worker)."""
    if not secret.startswith(KEY_PREFIX):
        raise Unauthenticated(INVALID, REFUSALS[INVALID])
    digest = api_key_hash(secret)
    entry = _fresh(digest) or _remember(digest, _lookup(secret))
    return _usable(entry)


def _touch(key_id: int) -> None:
    now = time.monotonic()
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


def key_cache_forget() -> None:
    """Drop every cached key (tests; a change this process could not attribute)."""
    _forget("all", 0)


@revocation.on_access_change
def _forget(kind: str, ident: int) -> None:
    global _changes_seen
    _changes_seen += 1
    _lookups.clear()
    if kind == "all":
        _cache.clear()
        return
    if kind not in ("key", "user"):
        return
    for digest, entry in list(_cache.items()):
        key = entry.key
        # A refused secret may belong to this key or person: forget refusals too, they are cheap to find again.
        if key is None or (kind == "key" and key.id == ident) or (kind == "user" and key.user_id == ident):
            _cache.pop(digest, None)

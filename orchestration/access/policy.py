"""The limits of a person who calls without an API key: the browser's chat, agent console and task pages.

Everyone gets the defaults of ``settings.SWITCHYARD["USER_POLICY"]`` (requests and tokens per
minute, a monthly budget, each ``None`` for no limit); an ``AccessPolicy`` row, edited in the
admin, overrides them for one person or lifts them (``unlimited``). Calls made with an API key
are limited by the key instead. Each process remembers a person's policy as ``keycache`` does a
key: until a change is announced, or briefly while announcements cannot be heard.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from orchestration.access import revocation
from orchestration.access.limits import Limits
from orchestration.access.models import AccessPolicy
from orchestration.database import database_call

TTL_S = 60.0
UNTRUSTED_TTL_S = 1.0
_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class UserPolicy:
    limits: Limits
    allowed_models: frozenset[str]

    def may_use(self, model: str) -> bool:
        return not self.allowed_models or model in self.allowed_models


_cache: dict[int, tuple[float, UserPolicy]] = {}


def _defaults() -> dict[str, Any]:
    return dict(settings.SWITCHYARD["USER_POLICY"])


def _policy_of(user_id: int, row: AccessPolicy | None) -> UserPolicy:
    defaults = _defaults()
    if row is not None and row.unlimited:
        return UserPolicy(Limits(user_id=user_id), frozenset(row.allowed_models or ()))
    rpm = row.rpm if row is not None and row.rpm is not None else defaults.get("RPM")
    tpm = row.tpm if row is not None and row.tpm is not None else defaults.get("TPM")
    budget = row.monthly_budget_usd if row is not None and row.monthly_budget_usd is not None else None
    if budget is None and defaults.get("MONTHLY_BUDGET_USD") is not None:
        budget = Decimal(str(defaults["MONTHLY_BUDGET_USD"]))
    limits = Limits(user_id=user_id, rpm=rpm or None, tpm=tpm or None, monthly_budget_usd=budget)
    return UserPolicy(limits, frozenset(row.allowed_models or ()) if row is not None else frozenset())


def _load(user_id: int) -> UserPolicy:
    return _policy_of(user_id, AccessPolicy.objects.filter(user_id=user_id).first())


def _cached(user_id: int) -> UserPolicy | None:
    entry = _cache.get(user_id)
    return entry[1] if entry is not None and entry[0] > time.monotonic() else None


def _remember(user_id: int, policy: UserPolicy) -> UserPolicy:
    if len(_cache) >= _MAX_ENTRIES:
        _cache.clear()
    ttl = TTL_S if revocation.listener_live() else UNTRUSTED_TTL_S
    _cache[user_id] = (time.monotonic() + ttl, policy)
    return policy


def user_policy(user_id: int) -> UserPolicy:
    """The person's policy (sync: may query the database)."""
    return _cached(user_id) or _remember(user_id, _load(user_id))


async def auser_policy(user_id: int) -> UserPolicy:
    cached = _cached(user_id)
    if cached is not None:
        return cached
    return _remember(user_id, await database_call(_load)(user_id))


@revocation.on_access_change
def _forget(kind: str, ident: int) -> None:
    if kind == "all":
        _cache.clear()
    elif kind in ("policy", "user"):
        _cache.pop(ident, None)

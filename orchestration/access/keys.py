"""API keys: made once, shown once, stored as a SHA-256 hash; found, checked and revoked here.

A key that cannot be used says why, with a code of its own (``invalid_api_key``, ``key_revoked``,
``key_disabled``, ``key_expired``, ``account_disabled``): every door refuses it with that code.
Saving or deleting a key tells every process at once (``orchestration.access.revocation``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from orchestration.access.models import ApiKey

KEY_PREFIX = "sy-"
_VISIBLE = len(KEY_PREFIX) + 8
_MAX_SECRET_CHARS = 200

INVALID = "invalid_api_key"
REVOKED = "key_revoked"
DISABLED = "key_disabled"
EXPIRED = "key_expired"
ACCOUNT_DISABLED = "account_disabled"

REFUSALS: dict[str, str] = {
    INVALID: "Incorrect API key provided.",
    REVOKED: "This API key was revoked.",
    DISABLED: "This API key is disabled.",
    EXPIRED: "This API key has expired.",
    ACCOUNT_DISABLED: "The account this API key belongs to is disabled.",
}


def api_key_hash(secret: str) -> str:
    # A fast hash is right here: the secret has 240 bits of entropy, so there is nothing
    # for a slow password hash to protect, and every request pays for the lookup.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(
    *,
    user: Any,
    name: str = "",
    rpm: int | None = None,
    tpm: int | None = None,
    allowed_models: list[str] | None = None,
    monthly_budget_usd: Decimal | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored or shown again."""
    secret = KEY_PREFIX + secrets.token_urlsafe(30)
    key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=secret[:_VISIBLE],
        key_hash=api_key_hash(secret),
        rpm=rpm,
        tpm=tpm,
        allowed_models=allowed_models or [],
        monthly_budget_usd=monthly_budget_usd,
        expires_at=expires_at,
    )
    return key, secret


def api_key_refusal(key: ApiKey, *, now: datetime | None = None) -> str | None:
    """Why ``key`` cannot be used now (one of the codes above), or None when it can."""
    if key.revoked_at is not None:
        return REVOKED
    if not key.enabled:
        return DISABLED
    if not key.user.is_active:
        return ACCOUNT_DISABLED
    if key.expires_at is not None and key.expires_at <= (now or timezone.now()):
        return EXPIRED
    return None


def api_key_lookup(secret: str) -> tuple[ApiKey | None, str | None]:
    """The key of ``secret`` and why it cannot be used (None when it can); (None, INVALID) when
    no key has that secret."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > _MAX_SECRET_CHARS:
        return None, INVALID
    key = ApiKey.objects.select_related("user").filter(key_hash=api_key_hash(secret)).first()
    if key is None:
        return None, INVALID
    return key, api_key_refusal(key)


def api_key_find(secret: str) -> ApiKey | None:
    """The usable key for ``secret``: enabled, not revoked, not expired, owner active."""
    key, refusal = api_key_lookup(secret)
    return key if refusal is None else None


def api_key_refusal_by_id(api_key_id: int) -> str | None:
    """Why the key with this id cannot be used now (a deleted key counts as revoked), or None."""
    key = ApiKey.objects.select_related("user").filter(pk=api_key_id).first()
    return REVOKED if key is None else api_key_refusal(key)


def account_refusal(user_id: int) -> str | None:
    """``account_disabled`` when the person cannot sign in any more (disabled or deleted), else None."""
    from django.contrib.auth import get_user_model

    active = get_user_model().objects.filter(pk=user_id, is_active=True).exists()
    return None if active else ACCOUNT_DISABLED


def api_key_revoke(*, key: ApiKey) -> None:
    key.revoked_at = timezone.now()
    key.enabled = False
    key.save(update_fields=["revoked_at", "enabled"])

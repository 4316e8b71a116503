"""API keys: made once, shown once, stored as a SHA-256 hash (DESIGN decision 6)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import User
from django.utils import timezone

from orchestration.models import ApiKey

KEY_PREFIX = "sy-"
_VISIBLE = len(KEY_PREFIX) + 8


def api_key_hash(secret: str) -> str:
    # A fast hash is right here: the secret has 240 bits of entropy, so there is nothing
    # for a slow password hash to protect, and every request pays for the lookup.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(
    *,
    user: User,
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


def api_key_find(secret: str) -> ApiKey | None:
    """The usable key for ``secret``: enabled, not revoked, not expired, owner active."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    key = ApiKey.objects.active().select_related("user").filter(key_hash=api_key_hash(secret)).first()
    if key is None or not key.user.is_active:
        return None
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return None
    return key


def api_key_revoke(*, key: ApiKey) -> None:
    key.revoked_at = timezone.now()
    key.enabled = False
    key.save(update_fields=["revoked_at", "enabled"])

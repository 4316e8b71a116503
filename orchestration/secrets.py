"""Provider secrets: stored in the database encrypted with a key derived from SECRET_KEY, or read
from an environment variable whose name the allowlist admits (``api_key_env_allowed``)."""

from __future__ import annotations

import base64
import fnmatch
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    digest = hashlib.sha256(("switchyard-provider-secrets:" + settings.SECRET_KEY).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def secret_encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def secret_decrypt(token: str) -> str:
    """The plain secret, or "" when SECRET_KEY changed since it was stored (re-enter it)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return ""


def api_key_env_patterns() -> tuple[str, ...]:
    """The shell patterns a provider's ``api_key_env`` must match (``SWITCHYARD_API_KEY_ENV_ALLOW``)."""
    return tuple(settings.SWITCHYARD["API_KEY_ENV_ALLOW"])


def api_key_env_allowed(name: str) -> bool:
    """Whether a provider may read its secret from the variable ``name``: only names the allowlist
    admits (by default ``*_API_KEY``), so no one who edits the registry can send ``REDIS_URL`` or
    ``SECRET_KEY`` upstream as a bearer token."""
    return bool(name) and any(fnmatch.fnmatchcase(name, pattern) for pattern in api_key_env_patterns())


def api_key_env_rule() -> str:
    """The rule, as a refusal states it."""
    return "the name must match " + " or ".join(repr(pattern) for pattern in api_key_env_patterns())

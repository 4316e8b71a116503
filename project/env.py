"""Typed readers for environment variables.

Each helper refuses a bad value with an ``ImproperlyConfigured`` error that names the
variable, so a typo stops start-up instead of surfacing as odd behaviour later.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def env_dir(name: str, default: Path) -> Path:
    """A directory, made (with its parents) when missing; one that cannot be made names the variable."""
    path = Path(os.environ.get(name) or default)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"{name}={str(path)!r} is not a directory Switchyard can use: {error.strerror}"
        raise ImproperlyConfigured(message) from None
    return path


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}")
    return value


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices`` (compared in lower case); unset or empty means ``default``."""
    value = (os.environ.get(name) or default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, schemes: set[str]) -> str | None:
    """A URL whose scheme is one of ``schemes``, or None when the variable is unset or empty."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    parsed = urlparse(raw.strip())
    if parsed.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name}={raw!r} must be a URL with one of the schemes: {allowed}")
    if parsed.scheme not in {"sqlite"} and not parsed.hostname and not parsed.path:
        raise ImproperlyConfigured(f"{name}={raw!r} names no host")
    try:
        parsed.port  # noqa: B018  # urlparse checks the port only when it is read
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} has a port that is not a number from 0 to 65535") from None
    return raw.strip()


_NONE = {"none", "off", "unlimited"}


def env_optional_int(name: str, default: int | None, *, minimum: int | None = None) -> int | None:
    """A whole number, or None when the variable says ``none`` (no limit)."""
    raw = os.environ.get(name)
    if raw is not None and raw.strip().lower() in _NONE:
        return None
    if default is None and (raw is None or raw.strip() == ""):
        return None
    return env_int(name, default if default is not None else 0, minimum=minimum)


def env_optional_decimal(name: str, default: str | None, *, minimum: str | None = None) -> Decimal | None:
    """A decimal amount, or None when the variable says ``none`` (no limit)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        raw = default
    if raw is None or raw.strip().lower() in _NONE:
        return None
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number (or 'none' for no limit)") from None
    if not value.is_finite() or (minimum is not None and value < Decimal(minimum)):
        raise ImproperlyConfigured(f"{name}={raw!r} must be a number of at least {minimum}")
    return value


def env_origins(name: str) -> list[str]:
    """Web origins (``https://app.example.com``, ``http://localhost:5173``) or ``*``, comma-separated."""
    origins = env_list(name, [])
    for origin in origins:
        parsed = urlparse(origin)
        exact = parsed.scheme in ("http", "https") and parsed.netloc and parsed.path in ("", "/")
        if origin != "*" and not (exact and not parsed.query and not parsed.fragment):
            raise ImproperlyConfigured(f"{name}: {origin!r} is not an origin (scheme://host[:port]) or *")
    return [origin.rstrip("/") for origin in origins]

"""API-key authentication for DRF views: ``Authorization: Bearer <key>`` or ``x-api-key``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework import authentication, exceptions

from orchestration.keys import api_key_find
from orchestration.models import ApiKey


def api_key_secret_from(headers: Any) -> str | None:
    """The key a request presents, or None when it presents none."""
    authorization = headers.get("Authorization", "")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    api_key = headers.get("x-api-key", "")
    return api_key.strip() or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: HttpRequest) -> tuple[Any, ApiKey] | None:
        secret = api_key_secret_from(request.headers)
        if secret is None:
            return None
        key = api_key_find(secret)
        if key is None:
            raise exceptions.AuthenticationFailed("Incorrect API key provided.")
        return key.user, key

    def authenticate_header(self, request: HttpRequest) -> str:
        return 'Bearer realm="switchyard"'

"""API-key authentication for DRF views, through the access pipeline (``orchestration.access``).

``request.auth`` is then the ``Caller`` of the key; with a session instead, the views find the
caller of the signed-in person themselves (``caller_for_user_sync``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from rest_framework import authentication

from orchestration.access.admission import Caller, caller_for_secret_sync
from orchestration.access.credentials import api_key_secret_from
from orchestration.errors import Unauthenticated


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: HttpRequest) -> tuple[Any, Caller] | None:
        secret = api_key_secret_from(request.headers)
        if secret is None:
            return None
        caller = caller_for_secret_sync(secret)  # raises Unauthenticated, answered in the one shape
        user = get_user_model().objects.filter(pk=caller.user_id, is_active=True).first()
        if user is None:
            raise Unauthenticated("account_disabled", "The account this API key belongs to is disabled.")
        return user, caller

    def authenticate_header(self, request: HttpRequest) -> str:
        return 'Bearer realm="switchyard"'

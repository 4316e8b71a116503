"""DRF's exception handler: every error of a DRF view leaves in the one shape (``orchestration.errors``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from orchestration.errors import ServiceError, error_body, error_body_of
from orchestration.http import body_too_large, request_id_of


def _drf_code(exc: drf_exceptions.APIException, status: int) -> str:
    if isinstance(exc, drf_exceptions.ValidationError):
        return "invalid_request"
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        return "not_authenticated"  # neither a key nor a signed-in session (docs/api.md, Authentication)
    if isinstance(exc, drf_exceptions.AuthenticationFailed):
        return "invalid_api_key"
    if isinstance(exc, drf_exceptions.PermissionDenied) and str(exc.detail).startswith("CSRF Failed"):
        return "csrf_failed"  # as Django's own CSRF check answers (project.edge.views.csrf_failure)
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else "error"


def _drf_message(exc: drf_exceptions.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    return _flatten(detail)


def _flatten(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(_flatten(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in value.items())
    return str(value)


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: domain errors and DRF's own, in the one shape."""
    request = context.get("request")
    request_id = request_id_of(request)
    if isinstance(exc, RequestDataTooBig):
        exc = body_too_large()
    if isinstance(exc, ServiceError):
        return Response(error_body_of(exc, request_id), status=exc.status, headers=exc.headers())
    response = drf_default_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, drf_exceptions.APIException)
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        response.status_code = 401
    status = response.status_code
    response.data = error_body(status, _drf_code(exc, status), _drf_message(exc), request_id)
    return response

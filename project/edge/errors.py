"""One API error type, rendered in one place, in OpenAI's shape (CONTRACT section 3)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from orchestration.types import OrchestrationError

_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
}


class ApiError(Exception):
    """An error a client gets back: status, code, message and any extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.param = param

    @classmethod
    def from_orchestration(cls, error: OrchestrationError) -> ApiError:
        headers = {}
        if error.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(error.retry_after)))
        return cls(error.status, error.code, error.message, headers=headers)


def error_body(status: int, code: str, message: str, request_id: str, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "type": _TYPE_BY_STATUS.get(status, "api_error"),
            "code": code,
            "message": message,
            "param": param,
            "request_id": request_id,
        }
    }


def request_id_of(request: HttpRequest | Any) -> str:
    return getattr(request, "request_id", "") or ""


def error_response(request: HttpRequest, error: ApiError) -> JsonResponse:
    body = error_body(error.status, error.code, error.message, request_id_of(request), error.param)
    response = JsonResponse(body, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _drf_code(exc: drf_exceptions.APIException, status: int) -> str:
    if isinstance(exc, drf_exceptions.ValidationError):
        return "invalid_request"
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        return "invalid_api_key" if status == 401 else "not_authenticated"
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
    """DRF's EXCEPTION_HANDLER: every error of a DRF view leaves in the one shape."""
    request = context.get("request")
    request_id = request_id_of(request)
    if isinstance(exc, OrchestrationError):
        exc = ApiError.from_orchestration(exc)
    if isinstance(exc, ApiError):
        body = error_body(exc.status, exc.code, exc.message, request_id, exc.param)
        return Response(body, status=exc.status, headers=exc.headers)
    response = drf_default_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, drf_exceptions.APIException)
    if isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
        response.status_code = 401
    status = response.status_code
    response.data = error_body(status, _drf_code(exc, status), _drf_message(exc), request_id)
    return response

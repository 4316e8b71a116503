"""The errors a caller gets back, as domain values: what went wrong (a kind), a stable code, a sentence.

Services and views raise these; they never pick an HTTP status. The edge renders them: HTTP
doors as ``{"error": {type, code, message, param, request_id}}`` with the status of the kind
(``STATUS_BY_KIND``), the WebSocket door as an ``error`` frame carrying the same code, status and
headers. ``meta`` holds what a refusal reports beside its message (``Retry-After``, the
rate-limit figures, an authentication challenge), in the header names HTTP clients know.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class Kind(StrEnum):
    INVALID = "invalid"  # the request is wrong as sent
    UNAUTHENTICATED = "unauthenticated"  # no credentials, or credentials that do not work
    FORBIDDEN = "forbidden"  # the caller may not do this
    NOT_FOUND = "not_found"  # no such thing, or not the caller's
    METHOD = "method"  # the resource exists, the method does not
    CONFLICT = "conflict"  # the state of the thing forbids it now
    TOO_LARGE = "too_large"  # the request is larger than allowed
    UNSUPPORTED_MEDIA = "unsupported_media"
    LIMITED = "limited"  # a rate limit or budget: wait, then try again
    UPSTREAM = "upstream"  # a provider failed, and retrying will not help
    UNAVAILABLE = "unavailable"  # nothing can serve it now; retrying later may
    DEADLINE = "deadline"  # the call's deadline passed
    INTERNAL = "internal"  # a fault of ours


STATUS_BY_KIND: dict[Kind, int] = {
    Kind.INVALID: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.METHOD: 405,
    Kind.CONFLICT: 409,
    Kind.TOO_LARGE: 413,
    Kind.UNSUPPORTED_MEDIA: 415,
    Kind.LIMITED: 429,
    Kind.INTERNAL: 500,
    Kind.UPSTREAM: 502,
    Kind.UNAVAILABLE: 503,
    Kind.DEADLINE: 504,
}
_KIND_BY_STATUS = {status: kind for kind, status in STATUS_BY_KIND.items()}

# OpenAI's ``error.type`` for each status.
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

# Failures that cannot pass by retrying as sent: OpenAI's SDKs read this header and do not retry.
_NOT_RETRYABLE = {Kind.DEADLINE, Kind.UPSTREAM}


def kind_of_status(status: int) -> Kind:
    """The kind an HTTP status stands for (an upstream's status, a framework's error)."""
    if status in _KIND_BY_STATUS:
        return _KIND_BY_STATUS[status]
    return Kind.INVALID if 400 <= status < 500 else Kind.UNAVAILABLE


class ServiceError(Exception):
    """A refusal or failure the caller gets back: ``kind``, ``code`` and a plain ``message``."""

    kind: ClassVar[Kind] = Kind.INVALID

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        meta: dict[str, str] | None = None,
        kind: Kind | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.meta = dict(meta or {})
        if kind is not None:
            self.kind = kind  # type: ignore[misc]  # an instance may name its kind

    @property
    def status(self) -> int:
        return STATUS_BY_KIND[self.kind]

    def headers(self) -> dict[str, str]:
        """What HTTP sends beside the body: ``meta``, and ``x-should-retry: false`` when retrying cannot help."""
        headers = dict(self.meta)
        if self.kind in _NOT_RETRYABLE:
            headers.setdefault("x-should-retry", "false")
        return headers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class InvalidRequest(ServiceError):
    kind = Kind.INVALID


class Unauthenticated(ServiceError):
    kind = Kind.UNAUTHENTICATED

    def __init__(self, code: str, message: str, **kwargs: Any) -> None:
        super().__init__(code, message, **kwargs)
        self.meta.setdefault("WWW-Authenticate", 'Bearer realm="switchyard"')


class Forbidden(ServiceError):
    kind = Kind.FORBIDDEN


class NotFound(ServiceError):
    kind = Kind.NOT_FOUND


class MethodNotAllowed(ServiceError):
    kind = Kind.METHOD

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        message = f"Method {method} is not allowed here; use {', '.join(allowed)}."
        super().__init__("method_not_allowed", message, meta={"Allow": ", ".join(allowed)})


class Conflict(ServiceError):
    kind = Kind.CONFLICT


class TooLarge(ServiceError):
    kind = Kind.TOO_LARGE


class LimitReached(ServiceError):
    kind = Kind.LIMITED


class DeadlinePassed(ServiceError):
    kind = Kind.DEADLINE


def error_type(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "api_error")


def error_body(status: int, code: str, message: str, request_id: str, param: str | None = None) -> dict[str, Any]:
    """The one error shape (OpenAI's): every door answers errors with it."""
    return {
        "error": {
            "type": error_type(status),
            "code": code,
            "message": message,
            "param": param,
            "request_id": request_id,
        }
    }


def error_body_of(error: ServiceError, request_id: str) -> dict[str, Any]:
    return error_body(error.status, error.code, error.message, request_id, error.param)

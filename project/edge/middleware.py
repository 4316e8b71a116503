"""Middleware of both stacks: request ids, allowed hosts, and domain errors as JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase

from orchestration.errors import ServiceError, kind_of_status
from orchestration.http import body_too_large, error_response
from orchestration.requestids import request_id_from
from orchestration.telemetry.logs import request_context_set

Handler = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


class RequestIdMiddleware:
    """Every response carries ``X-Request-ID``, echoed when the client sent a sane one. Works in
    both sync and async stacks, so async views are not forced through a thread. A view's
    ``ServiceError`` that nothing caught is answered here, in the one error shape."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self.is_async:
            return self._acall(request)
        request.request_id = request_id_from(request.headers)  # type: ignore[attr-defined]
        request_context_set(request.request_id)  # type: ignore[attr-defined]
        response = json_shaped(request, self.get_response(request))  # type: ignore[arg-type]
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request.request_id = request_id_from(request.headers)  # type: ignore[attr-defined]
        request_context_set(request.request_id)  # type: ignore[attr-defined]
        response = json_shaped(request, await self.get_response(request))  # type: ignore[misc]
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if isinstance(exception, RequestDataTooBig):
            exception = body_too_large()
        if isinstance(exception, ServiceError):
            return error_response(request, exception)
        return None


class AllowedHostMiddleware:
    """What CommonMiddleware does first: refuse a Host header outside ``ALLOWED_HOSTS`` (400)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request.get_host()  # raises DisallowedHost, which Django answers with 400
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        return response


_API_PREFIXES = ("/api/", "/v1/")
# What an error page of Django's (or a server's) means, in the one error shape.
_PAGE_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "The request could not be understood."),
    403: ("forbidden", "This is not allowed."),
    404: ("not_found", "There is nothing at this URL."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("request_too_large", "The request body is too large."),
    500: ("internal_error", "Something failed inside Switchyard; staff can find it by the request id."),
}


def json_shaped(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """An API path never answers an error with an HTML page (Django's 404, its debug pages, a
    server error): the page is replaced by the one error shape, with the same status."""
    if response.status_code < 400 or not request.path.startswith(_API_PREFIXES):
        return response
    if response.get("Content-Type", "").startswith("application/json"):
        return response
    code, message = _PAGE_ERRORS.get(response.status_code, ("error", "The request failed."))
    error = ServiceError(code, message, kind=kind_of_status(response.status_code))
    shaped = error_response(request, error)
    shaped.status_code = response.status_code
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if response.has_header(name):
            shaped[name] = response[name]
    return shaped

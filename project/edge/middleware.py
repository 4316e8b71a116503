"""Middleware of both stacks: request ids, allowed hosts, and domain errors as JSON."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from orchestration.errors import ServiceError
from orchestration.http import error_response
from orchestration.requestids import request_id_from

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
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined,index]
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request.request_id = request_id_from(request.headers)  # type: ignore[attr-defined]
        response = await self.get_response(request)  # type: ignore[misc]
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
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

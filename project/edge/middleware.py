"""Request ids: every response carries ``X-Request-ID``, echoed when the client sent a sane one."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_for(request: HttpRequest) -> str:
    sent = request.headers.get("X-Request-ID", "")
    if sent and _CLIENT_ID.match(sent):
        return sent
    return f"req_{uuid.uuid4().hex}"


class RequestIdMiddleware:
    """Works in both sync and async stacks, so async views are not forced through a thread."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self.is_async:
            return self._acall(request)
        request.request_id = request_id_for(request)  # type: ignore[attr-defined]
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined,index]
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request.request_id = request_id_for(request)  # type: ignore[attr-defined]
        response = await self.get_response(request)  # type: ignore[misc]
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response

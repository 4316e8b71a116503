"""The ASGI application that serves ``/v1``: Django's handler with only the middleware /v1 needs.

Django runs a sync-style middleware (``MiddlewareMixin``: sessions, CSRF, messages, auth,
security, the Prometheus pair...) in an async stack by hopping to a thread and back for each
hook: about fourteen thread hops per request, most of the gateway's own latency. ``/v1`` uses
none of them (API keys, not cookies; JSON, not templates), so its requests go through this
handler instead: request ids, allowed hosts, then the view. Everything else of Django (URL
resolution through ``ROOT_URLCONF``, request and response objects, signals) is unchanged.
Import this module only once Django is set up (``project.asgi`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.urls import re_path

from project.middleware import RequestIdMiddleware

Handler = Callable[[HttpRequest], Any]


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
        response: HttpResponseBase = await self.get_response(request)
        return response


class GatewayHandler(ASGIHandler):
    """``ASGIHandler`` whose middleware chain is ``MIDDLEWARE`` (not the project's settings)."""

    MIDDLEWARE = (RequestIdMiddleware, AllowedHostMiddleware)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Django wraps each request in a ThreadSensitiveContext, which starts (and joins) a
        # thread for the first sync_to_async of the request: its own signal handlers. /v1 does
        # its rare database work through sync_to_async too, so the process's one shared sync
        # thread serves it just as well, without a thread per request.
        if scope["type"] != "http":
            raise ValueError(f"the /v1 handler serves HTTP only, not {scope['type']}")
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response_async)  # type: ignore[attr-defined]
        for middleware in reversed(self.MIDDLEWARE):
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler


# Routed in ``project.routing`` ahead of Django's own ASGI application.
http_urlpatterns = [re_path(r"^v1/", GatewayHandler())]  # type: ignore[arg-type]  # an ASGI app, for Channels

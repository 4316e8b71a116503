"""The ASGI application that serves ``/v1``: Django's handler with only what /v1 needs.

Django runs a sync-style middleware (``MiddlewareMixin``: sessions, CSRF, messages, auth,
security, the Prometheus pair...) in an async stack by hopping to a thread and back for each
hook: about fourteen thread hops per request, most of the gateway's own latency. ``/v1`` uses
none of them (API keys, not cookies; JSON, not templates), so its requests go through this
handler instead: request ids, allowed hosts, then the view.

The request signals cost four more hops: ``request_started`` and ``request_finished`` are sent
through ``sync_to_async`` so that ``close_old_connections`` runs in the thread that holds the
database connections. ``/v1`` reads the database only on a cache miss (a key, the registry, a
prompt), each time through Channels' ``database_sync_to_async``, which closes old connections
around the query itself; so this handler sends neither signal from a thread. URL resolution
through ``ROOT_URLCONF`` and Django's request and response objects are unchanged. Import this
module only once Django is set up (``project.asgi`` does).
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern, URLResolver, re_path, set_script_prefix
from django.urls.resolvers import RegexPattern, ResolverMatch

from project.auth import api_key_secret_from
from project.middleware import RequestIdMiddleware

Handler = Callable[[HttpRequest], Any]
AsgiApp = Callable[[Any, Any, Any], Awaitable[None]]


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

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Django's ``ASGIHandler.handle`` without the thread hops of the request signals.

        As there, the view runs in a task raced against the client's disconnect, which cancels
        it (and with it the upstream call). The response is closed in the event loop's thread:
        its ``request_finished`` receivers find no database connection there and return at once.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:  # Django could not build it (a bad Host, a body too large): its 400 goes out
            body_file.close()
            assert error_response is not None
            await self.send_response(error_response, send)
            error_response.close()
            return
        disconnect = asyncio.create_task(self.listen_for_disconnect(receive))
        serve = asyncio.create_task(self._serve(request, send))
        try:
            await asyncio.wait((disconnect, serve), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (disconnect, serve):
                if not task.done():
                    task.cancel()
            await asyncio.gather(disconnect, serve, return_exceptions=True)
            body_file.close()
        if not serve.cancelled():
            serve.result().close()  # raises what the view chain raised, as Django's handler does

    async def _serve(self, request: HttpRequest, send: Any) -> HttpResponseBase:
        response: HttpResponseBase = await self.run_get_response(request)
        try:
            await self.send_response(response, send)
        except asyncio.CancelledError:
            pass  # the client went away while the response was being sent
        return response

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response_async)  # type: ignore[attr-defined]
        for middleware in reversed(self.MIDDLEWARE):
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler


class RoutesHandler(GatewayHandler):
    """The ``/v1`` handler resolving only ``urlpatterns`` (paths from the site's root), not ``ROOT_URLCONF``."""

    def __init__(self, urlpatterns: list[URLPattern]) -> None:
        super().__init__()
        self.resolver = URLResolver(RegexPattern(r"^/"), urlpatterns)

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        match = self.resolver.resolve(request.path_info)
        request.resolver_match = match
        return match


class LeanEdge(ABC):
    """ASGI app of one busy route of the API, served two ways.

    The calls ``takes_lean_path`` picks (API clients' creates and polls) go to a ``RoutesHandler``
    of ``lean_urlpatterns``: request ids and allowed hosts, then the view. Everything else (the
    other methods, and calls without an API key: a browser's session cookie needs the session,
    authentication and CSRF middleware) goes to Django's own handler with the full stack, as if
    this app were not there. Subclasses name the two; ``agents.edge`` and ``chat.routing`` use it.
    """

    lean_urlpatterns: ClassVar[list[URLPattern]]

    @abstractmethod
    def takes_lean_path(self, scope: dict[str, Any]) -> bool:
        """Whether this call goes to the lean handler."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = self.lean if self.takes_lean_path(scope) else self.full
        await handler(scope, receive, send)

    @functools.cached_property
    def lean(self) -> RoutesHandler:
        return RoutesHandler(self.lean_urlpatterns)

    @functools.cached_property
    def full(self) -> AsgiApp:
        return ASGIHandler()


def presents_api_key(scope: dict[str, Any]) -> bool:
    """Whether the request presents an API key (``Authorization: Bearer`` or ``x-api-key``)."""
    headers = {"Authorization": "", "x-api-key": ""}
    for name, value in scope.get("headers", []):
        lowered = name.decode("latin1").lower()
        if lowered == "authorization":
            headers["Authorization"] = value.decode("latin1")
        elif lowered == "x-api-key":
            headers["x-api-key"] = value.decode("latin1")
    return api_key_secret_from(headers) is not None


# Routed in ``project.routing`` ahead of Django's own ASGI application.
http_urlpatterns = [re_path(r"^v1/", GatewayHandler())]  # type: ignore[arg-type]  # an ASGI app, for Channels

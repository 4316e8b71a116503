"""The ASGI app for HTTP requests that no Channels consumer serves: lean handler or full stack.

Each route is declared once, in the URL conf of its app; its view says how the edge may serve it
(``orchestration.http``): ``lean_route`` views (``/v1``, health checks) always go to the lean
handler; a view with an ``api_key_fast_path`` sends calls of the named methods that present an
API key to the async view it names, through the lean handler too. Everything else (browser
pages, sessions, the admin, DRF's views) goes to Django's own handler with the full middleware
stack, behind a ``DjangoGate``.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.urls import Resolver404, get_resolver

from orchestration.access.credentials import presents_api_key
from orchestration.errors import error_body
from orchestration.http import FAST_PATH_ATTRIBUTE, LEAN_ATTRIBUTE, RAW_ATTRIBUTE, asgi_json_send
from orchestration.requestids import request_id_from
from project.edge.handler import LEAN_VIEW, LeanHandler
from project.edge.raw import RawHandler, View, raw_headers

# Requests inside Django's full stack at once (see ``DjangoGate``).
FULL_STACK_CONCURRENCY = 16


class DjangoGate:
    """Lets at most ``limit`` requests into Django's full stack at once; the others wait here,
    as coroutines.

    Django's ASGI handler gives every request a thread of its own for its sync middleware. A
    burst of 300 requests through the full stack ran 302 threads contending for the GIL with the
    event loop, which then relayed every open stream late (and CPU per request went from 11 to
    20 ms). Requests queue here instead; the request itself is Django's, unchanged (middleware,
    headers, errors).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._app = ASGIHandler()
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.limit)
        async with semaphore:
            await self._app(scope, receive, send)


@functools.lru_cache(maxsize=4096)
def _edge_of(path: str) -> tuple[bool, dict[str, Any], View | None]:
    """(lean always, fast-path views by method, the view itself when it is a raw route) of the
    view ``path`` resolves to."""
    try:
        match = get_resolver().resolve(path)
    except Resolver404:
        return False, {}, None
    view = match.func
    raw = view if getattr(view, RAW_ATTRIBUTE, False) and not match.args and not match.kwargs else None
    return bool(getattr(view, LEAN_ATTRIBUTE, False)), dict(getattr(view, FAST_PATH_ATTRIBUTE, {})), raw


class RequestGuard:
    """Refuses, before anything reads it, a request no route could serve rightly:

    - a URL holding a null character (``%00``): no route or search has a use for one, and
      PostgreSQL refuses it in any text it is compared with, so a lookup by such an id or search
      term was a 500 (a response id, a conversation search, the admin's filters);
    - an HTTP/1.1 request without a ``Host`` header, which RFC 9112 (section 3.2) has a server
      answer with 400: Django took the server's own address for it and served the request.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            problem = _request_problem(scope)
            if problem is not None:
                request_id = request_id_from(raw_headers(scope))
                await asgi_json_send(send, 400, error_body(400, "invalid_request", problem, request_id), request_id)
                return
        await self.app(scope, receive, send)


def _request_problem(scope: dict[str, Any]) -> str | None:
    if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
        return "The URL holds a null character (%00)."
    if scope.get("http_version") == "1.1" and not any(name.lower() == b"host" for name, _ in scope["headers"]):
        return "An HTTP/1.1 request must name its host in a Host header."
    return None


class HttpEdge:
    """Routes each HTTP request to the raw handler, the lean handler or the full stack (see the module)."""

    def __init__(self, full_stack_concurrency: int = FULL_STACK_CONCURRENCY) -> None:
        self.lean = LeanHandler()
        self.raw = RawHandler(self.lean)
        self.full = DjangoGate(full_stack_concurrency)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        lean_always, fast_path, raw = _edge_of(scope["path"])
        if raw is not None:
            await self.raw(raw, scope, receive, send)
            return
        if lean_always:
            await self.lean(scope, receive, send)
            return
        lean_view = fast_path.get(scope["method"]) if fast_path else None
        if lean_view is not None and presents_api_key(scope):
            await self.lean({**scope, LEAN_VIEW: lean_view}, receive, send)
            return
        await self.full(scope, receive, send)

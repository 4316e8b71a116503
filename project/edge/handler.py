"""The lean handler: Django's ASGI handler with only what API clients need.

Django runs a sync-style middleware (``MiddlewareMixin``: sessions, CSRF, messages, auth,
security, the Prometheus pair...) in an async stack by hopping to a thread and back for each
hook: about fourteen thread hops per request, most of the gateway's own latency. API clients use
none of them (API keys, not cookies; JSON, not templates), so their requests go through this
handler instead: request ids, allowed hosts, then the view.

The request signals cost four more hops: ``request_started`` and ``request_finished`` are sent
through ``sync_to_async`` so that ``close_old_connections`` runs in the thread that holds the
database connections. Lean views read the database through Channels' ``database_sync_to_async``
(or ``sync_to_async`` around code that does), which closes old connections around the query
itself; so this handler sends neither signal from a thread. URL resolution through
``ROOT_URLCONF`` and Django's request and response objects are unchanged.

What the full stack would add to a response, this handler adds itself, in one place
(``finished``): a DRF ``Response`` is rendered as JSON in the event loop (Django would render it
in one more thread hop), and a whole response gets its ``Content-Length`` (CommonMiddleware's).
Import this module only once Django is set up (``project.asgi`` does).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import get_resolver, set_script_prefix
from django.urls.resolvers import ResolverMatch, URLResolver
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from orchestration.cancellation import cancellation_swallowed_raise
from orchestration.sse import EventStreamResponse, Final
from project.edge.daphne import DISCONNECT_CALLBACK
from project.edge.middleware import AllowedHostMiddleware, RequestIdMiddleware

AsgiApp = Callable[[Any, Any, Any], Awaitable[None]]
View = Callable[..., Awaitable[HttpResponseBase]]

# The scope key the router sets to serve a route's fast-path view instead of its own.
LEAN_VIEW = "switchyard.lean_view"
_RENDERER = JSONRenderer()


def finished(response: HttpResponseBase) -> HttpResponseBase:
    """A view's answer as the full stack would send it: a DRF ``Response`` rendered as JSON into a
    plain response (Django renders anything with a ``render`` method in a thread hop), and a whole
    response with its ``Content-Length``."""
    if isinstance(response, Response):
        content = _RENDERER.render(response.data) if response.data is not None else b""
        plain = HttpResponse(content, status=response.status_code)
        for name, value in response.items():
            if name.lower() != "content-type":
                plain[name] = value
        plain["Content-Type"] = "application/json"
        response = plain
    if not response.streaming and not response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
    return response


@functools.lru_cache(maxsize=256)
def _finishing(view: View) -> View:
    """``view`` whose answer goes through ``finished`` (made once per view, not per request)."""

    @functools.wraps(view)
    async def call(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return finished(await view(request, *args, **kwargs))

    return call


class DisconnectWatch:
    """Cancels the task serving a request once its client is gone: any message after the body
    ends the request, as in Django's handler.

    Daphne as ``serve`` runs it calls the watch itself when the connection is lost (the request's
    input queue carries ``DISCONNECT_CALLBACK``, project/edge/daphne.py), so a request needs no
    task of its own that waits on the queue for the message: starting and cancelling one cost about
    17 µs a request, 11 of them before the view ran. Under any other server (uvicorn, a test's
    client), and for a request whose client already left, a task waits for the message instead,
    as Django's handler does."""

    __slots__ = ("_queue", "_serving", "_waiting", "fired")

    def __init__(self, handler: ASGIHandler, receive: Any, serving: asyncio.Task[Any]) -> None:
        self._serving = serving
        self._waiting: asyncio.Task[None] | None = None
        self.fired = False
        queue = getattr(receive, "__self__", None)
        if type(queue) is asyncio.Queue and DISCONNECT_CALLBACK in vars(queue) and queue.empty():
            setattr(queue, DISCONNECT_CALLBACK, self._gone)
            self._queue: asyncio.Queue[Any] | None = queue
        else:
            self._queue = None
            self._waiting = asyncio.create_task(self._wait(handler, receive))

    def _gone(self) -> None:
        if not self.fired:
            self.fired = True
            self._serving.cancel()

    async def _wait(self, handler: ASGIHandler, receive: Any) -> None:
        try:
            await handler.listen_for_disconnect(receive)
        except (RequestAborted, AssertionError):
            pass
        self._gone()

    def stop(self) -> None:
        """The request is over: a disconnect from now on cancels nothing."""
        if self._queue is not None:
            setattr(self._queue, DISCONNECT_CALLBACK, None)
        elif self._waiting is not None:
            self._waiting.cancel()

    def cancelled_serving(self) -> bool:
        """True when the serving task was cancelled by the client's disconnect and by nothing
        else; that cancellation is then spent."""
        return self.fired and self._serving.uncancel() == 0


@functools.lru_cache(maxsize=4096)
def _resolved(resolver: URLResolver, path: str, lean: View | None) -> ResolverMatch:
    """``path`` resolved, its view finishing as ``finished`` says (``lean`` in its place when the
    router chose a fast-path view). Made once per path: a ``/v1`` route's resolution walked the
    project's URL patterns for every request (a few percent of a stream's setup). Keyed by the
    resolver, which Django replaces when ``ROOT_URLCONF`` changes; a path that resolves to nothing
    raises ``Resolver404`` each time (exceptions are not cached)."""
    match = resolver.resolve(path)
    match.func = _finishing(lean if lean is not None else match.func)
    return match


class LeanHandler(ASGIHandler):
    """``ASGIHandler`` whose middleware chain is ``MIDDLEWARE`` (not the project's settings)."""

    MIDDLEWARE = (RequestIdMiddleware, AllowedHostMiddleware)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Django wraps each request in a ThreadSensitiveContext, which starts (and joins) a
        # thread for the first sync_to_async of the request: its own signal handlers. Lean views
        # do their rare database work through sync_to_async too, so the process's one shared sync
        # thread serves it just as well, without a thread per request.
        if scope["type"] != "http":
            raise ValueError(f"the lean handler serves HTTP only, not {scope['type']}")
        await self.handle(scope, receive, send)

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Django's ``ASGIHandler.handle`` without the thread hops of the request signals.

        As there, the client's disconnect cancels the view (and with it the upstream call); the
        view runs in this task, watched by a ``DisconnectWatch``, where Django starts two tasks
        and races them (``asyncio.wait`` and ``gather``: about 20 µs of a stream's setup). The
        response is closed in the event loop's thread: its ``request_finished`` receivers find no
        database connection there and return at once.
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
        serving = asyncio.current_task()
        assert serving is not None, "the lean handler runs in a task"
        watch = DisconnectWatch(self, receive, serving)
        answered: list[HttpResponseBase] = []  # the view's response, once there is one
        try:
            await self._serve(request, send, answered)
        except asyncio.CancelledError:
            if not watch.cancelled_serving():
                raise
            # the client went away: a response it left while being sent is closed all the same
        finally:
            watch.stop()
            body_file.close()
        for response in answered:
            response.close()

    async def _serve(self, request: HttpRequest, send: Any, answered: list[HttpResponseBase]) -> None:
        response: HttpResponseBase = await self.run_get_response(request)
        answered.append(response)
        await self.send_response(response, send)

    async def send_response(self, response: HttpResponseBase, send: Any) -> None:
        """Django's, except that an event stream's items go straight out, one message each (its
        ``Final`` item ends the body with it). A stream whose task was cancelled (its client left)
        and runs on, because something below lost the cancellation, ends at its next item
        (orchestration/cancellation.py): daphne drops what is sent to a gone client, and would
        let the stream run, upstream call and all, until it kills the task 10 s later."""
        if not isinstance(response, EventStreamResponse):
            await super().send_response(response, send)
            return
        # Not kept in a local: this coroutine lasts as long as the stream, the headers only as the head.
        status = response.status_code
        await send({"type": "http.response.start", "status": status, "headers": response.take_wire_headers()})
        task = asyncio.current_task()
        async with aclosing(response.events) as events:
            async for body in events:
                cancellation_swallowed_raise(task)
                if type(body) is Final:
                    await send({"type": "http.response.body", "body": body})
                    return
                await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body"})

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        # No lean request sets ``request.urlconf`` (Django's reason to resolve per request).
        lean = request.scope.get(LEAN_VIEW)  # type: ignore[attr-defined]
        match = request.resolver_match = _resolved(get_resolver(), request.path_info, lean)
        return match

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        handler = convert_exception_to_response(self._get_response_async)  # type: ignore[attr-defined]
        for middleware in reversed(self.MIDDLEWARE):
            handler = convert_exception_to_response(middleware(handler))
        self._middleware_chain = handler

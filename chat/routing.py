"""Channels routes of the chat app, served ahead of Django (see ``project.asgi``)."""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any

from channels.sessions import SessionMiddlewareStack
from django.core.asgi import get_asgi_application
from django.urls import path

from chat.apis import message_create
from chat.consumers import MessageStreamConsumer
from project.gateway import LeanEdge, presents_api_key

MESSAGES_ROUTE = "api/v1/conversations/<int:conversation_id>/messages"

# Requests of the posting route inside Django's full stack at once (see ``DjangoGate``).
POSTING_CONCURRENCY = 8


class DjangoGate:
    """Lets at most ``limit`` requests into Django at once; the others wait here, as coroutines.

    Django's ASGI handler gives every request a thread of its own for its sync middleware. A
    burst of 300 requests through the full stack ran 302 threads contending for the GIL with the
    event loop, which then relays every open stream late (and CPU per request went from 11 to
    20 ms). Requests queue here instead; the request itself is Django's, unchanged (middleware,
    headers, errors).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._app: Any = None
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = get_asgi_application()
        loop = asyncio.get_running_loop()
        semaphore = self._semaphores.get(loop)
        if semaphore is None:
            semaphore = self._semaphores[loop] = asyncio.Semaphore(self.limit)
        async with semaphore:
            await self._app(scope, receive, send)


class MessagePostEdge(LeanEdge):
    """``/api/v1/conversations/{id}/messages``: an API client's post goes straight to the async
    ``message_create`` (request ids and allowed hosts, no other middleware); the list and a
    browser's post (session and CSRF) take Django's full stack behind a ``DjangoGate``, as before.

    Every chat reply starts with a post, and they come in bursts. Through the full stack a post
    cost 25-35 ms of CPU, most of it a thread hop per sync middleware hook in a thread of its own
    per request, and posts had to queue at the gate. The lean post makes no thread hop but its one
    to the database pool, so it needs no gate.
    """

    lean_urlpatterns = [path(MESSAGES_ROUTE, message_create)]

    def takes_lean_path(self, scope: dict[str, Any]) -> bool:
        return scope["method"] == "POST" and presents_api_key(scope)

    @functools.cached_property
    def full(self) -> DjangoGate:
        return DjangoGate(POSTING_CONCURRENCY)


# The session (cookie) authenticates the browser's EventSource; the consumer reads API keys
# itself and looks the session's user up only when no key is presented.
http_urlpatterns: list[Any] = [
    path("api/v1/messages/<int:message_id>/stream", SessionMiddlewareStack(MessageStreamConsumer.as_asgi())),
    path(MESSAGES_ROUTE, MessagePostEdge()),  # type: ignore[arg-type]  # an ASGI app
]

"""Channels routes of the chat app, served ahead of Django (see ``project.asgi``)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from channels.sessions import SessionMiddlewareStack
from django.core.asgi import get_asgi_application
from django.urls import path

from chat.consumers import MessageStreamConsumer

# Requests of the posting route inside Django at once (see ``DjangoGate``).
POSTING_CONCURRENCY = 8


class DjangoGate:
    """Lets at most ``limit`` requests into Django at once; the others wait here, as coroutines.

    Django's ASGI handler gives every request a thread of its own for its sync middleware. A
    burst of posts (every chat reply starts with one) meant hundreds of threads contending for the
    GIL with the event loop, which then relayed every open stream late: 1,000 posts at once ran
    up to 1,000 threads, the loop lagged past the producers' heartbeat and replies failed. Posts
    now queue here instead; the request itself is Django's, unchanged (middleware, headers, errors).
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


# The session (cookie) authenticates the browser's EventSource; the consumer reads API keys
# itself and looks the session's user up only when no key is presented.
http_urlpatterns: list[Any] = [
    path("api/v1/messages/<int:message_id>/stream", SessionMiddlewareStack(MessageStreamConsumer.as_asgi())),
    path("api/v1/conversations/<int:conversation_id>/messages", DjangoGate(POSTING_CONCURRENCY)),  # type: ignore[arg-type]
]

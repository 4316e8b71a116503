"""Channels routes of the chat app, served ahead of Django (see ``project.asgi``)."""

from __future__ import annotations

from typing import Any

from channels.sessions import SessionMiddlewareStack
from django.urls import path

from chat.apis import message_create
from chat.consumers import MessageStreamConsumer
from project.gateway import LeanEdge, presents_api_key

MESSAGES_ROUTE = "api/v1/conversations/<int:conversation_id>/messages"


class MessagePostEdge(LeanEdge):
    """``/api/v1/conversations/{id}/messages``: an API client's post goes straight to the async
    ``message_create`` (request ids and allowed hosts, no other middleware); the list and a
    browser's post (session and CSRF) take Django's full stack, as before.

    Every chat reply starts with a post, and they come in bursts. Through the full stack a post
    cost 25-35 ms of CPU, most of it a thread hop per sync middleware hook in a thread of its own
    per request: a burst of 1,000 ran up to 1,000 threads that starved the event loop relaying
    the open streams. The lean post makes no thread hop but its one to the database pool.
    """

    lean_urlpatterns = [path(MESSAGES_ROUTE, message_create)]

    def takes_lean_path(self, scope: dict[str, Any]) -> bool:
        return scope["method"] == "POST" and presents_api_key(scope)


# The session (cookie) authenticates the browser's EventSource; the consumer reads API keys
# itself and looks the session's user up only when no key is presented.
http_urlpatterns: list[Any] = [
    path("api/v1/messages/<int:message_id>/stream", SessionMiddlewareStack(MessageStreamConsumer.as_asgi())),
    path(MESSAGES_ROUTE, MessagePostEdge()),  # type: ignore[arg-type]  # an ASGI app
]

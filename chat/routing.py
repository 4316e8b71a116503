"""Channels routes of the chat app: the SSE stream of a reply (raw ASGI), which ``project.routing`` puts behind
the access stack (session, then the caller), and an API client's post of a message as raw ASGI
(``chat.apis.MessagePostRoute``), whose other requests go to the edge, as everything else does."""

from __future__ import annotations

from typing import Any

from django.urls import path

from chat.apis import AsgiApp, MessagePostRoute
from chat.consumers import MessageStreamConsumer

http_consumers: list[Any] = [
    path(
        "api/v1/messages/<int:message_id>/stream",
        MessageStreamConsumer.as_asgi(),  # type: ignore[arg-type]  # an ASGI app, for Channels
        name="message-stream",
    ),
]


def http_raw_routes(edge: AsgiApp) -> list[Any]:
    """The routes served as raw ASGI before the edge; what they do not serve goes to ``edge``."""
    return [
        path(
            "api/v1/conversations/<int:conversation_id>/messages",
            MessagePostRoute(edge),  # type: ignore[arg-type]  # an ASGI app, for Channels
            name="message-post",
        )
    ]

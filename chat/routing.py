"""Channels routes of the chat app: the SSE stream of a reply. ``project.routing`` puts them behind
the access stack (session, then the caller) and serves everything else through the edge."""

from __future__ import annotations

from typing import Any

from django.urls import path

from chat.consumers import MessageStreamConsumer

http_consumers: list[Any] = [
    path("api/v1/messages/<int:message_id>/stream", MessageStreamConsumer.as_asgi(), name="message-stream"),
]

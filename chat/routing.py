"""Channels routes of the chat app, served ahead of Django (see ``project.asgi``)."""

from __future__ import annotations

from typing import Any

from channels.sessions import SessionMiddlewareStack
from django.urls import path

from chat.consumers import MessageStreamConsumer

# The session (cookie) authenticates the browser's EventSource; the consumer reads API keys
# itself and looks the session's user up only when no key is presented.
http_urlpatterns: list[Any] = [
    path("api/v1/messages/<int:message_id>/stream", SessionMiddlewareStack(MessageStreamConsumer.as_asgi())),
]

"""Channels routes of the chat app, served ahead of Django (see ``project.asgi``)."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from django.urls import path

from chat.consumers import MessageStreamConsumer

# Session cookies authenticate the browser's EventSource; API keys are read by the consumer.
http_urlpatterns: list[Any] = [
    path("api/v1/messages/<int:message_id>/stream", AuthMiddlewareStack(MessageStreamConsumer.as_asgi())),
]

"""The chat API's Django routes. The stream itself is a Channels route: see ``chat.routing``."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from chat import apis

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/conversations", apis.ConversationsApi.as_view(), name="conversations"),
    path("api/v1/conversations/<int:conversation_id>", apis.ConversationApi.as_view(), name="conversation"),
    path(
        "api/v1/conversations/<int:conversation_id>/messages", apis.conversation_messages, name="conversation-messages"
    ),
    path("api/v1/messages/<int:message_id>/cancel", apis.MessageCancelApi.as_view(), name="message-cancel"),
]

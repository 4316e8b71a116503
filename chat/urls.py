"""The chat API's Django routes. The stream itself is a Channels route: see ``chat.routing``.

An API client's post of a message is answered before the edge, as raw ASGI (``chat.routing.http_raw_routes``);
one that route hands on (a Host Django's own rules must judge) takes the edge's fast path
(``orchestration.http.api_key_fast_path``).
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from chat import apis
from orchestration.http import api_key_fast_path

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/conversations", apis.ConversationsApi.as_view(), name="conversations"),
    path("api/v1/conversations/<int:conversation_id>", apis.ConversationApi.as_view(), name="conversation"),
    path(
        "api/v1/conversations/<int:conversation_id>/export",
        apis.ConversationExportApi.as_view(),
        name="conversation-export",
    ),
    path(
        "api/v1/conversations/<int:conversation_id>/messages",
        api_key_fast_path(apis.conversation_messages, POST=apis.message_create),
        name="conversation-messages",
    ),
    path("api/v1/messages/<int:message_id>/cancel", apis.MessageCancelApi.as_view(), name="message-cancel"),
    path("api/v1/messages/<int:message_id>/edit", apis.MessageEditApi.as_view(), name="message-edit"),
    path("api/v1/messages/<int:message_id>/continue", apis.MessageContinueApi.as_view(), name="message-continue"),
    path("api/v1/messages/<int:message_id>/regenerate", apis.MessageRegenerateApi.as_view(), name="message-regenerate"),
]

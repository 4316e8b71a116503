"""Channels routes of the agents app: the interactive WebSocket, the SSE feed of a task's log,
and the Task API's create and poll for API clients (``agents.edge``)."""

from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from django.urls import re_path

from agents.consumers import AgentSessionConsumer, TaskLogStreamConsumer
from agents.edge import TaskApiEdge
from agents.middleware import ApiKeyAuthMiddleware

websocket_urlpatterns: list[Any] = [
    re_path(r"^ws/agents/$", ApiKeyAuthMiddleware(AgentSessionConsumer.as_asgi())),
]

http_urlpatterns: list[Any] = [
    re_path(
        r"^api/v1/tasks/(?P<task_id>[^/]+)/events$",
        AuthMiddlewareStack(ApiKeyAuthMiddleware(TaskLogStreamConsumer.as_asgi())),
    ),
    re_path(r"^api/v1/tasks(?:/(?P<task_id>[^/]+))?$", TaskApiEdge()),  # type: ignore[arg-type]  # an ASGI app
]

"""Channels routes of the agents app: the interactive WebSocket and the SSE feed of a task's log.
``project.routing`` puts them behind the access stack (session, then the caller)."""

from __future__ import annotations

from typing import Any

from django.urls import path, re_path

from agents.consumers import AgentSessionConsumer, TaskLogStreamConsumer

websocket_consumers: list[Any] = [
    re_path(r"^ws/agents/$", AgentSessionConsumer.as_asgi(), name="agent-session"),
]

http_consumers: list[Any] = [
    path("api/v1/tasks/<str:task_id>/events", TaskLogStreamConsumer.as_asgi(), name="task-events"),
]

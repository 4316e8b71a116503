"""The agents app's Django routes. An API client's create and poll of a task take the edge's fast
path (``orchestration.http.api_key_fast_path``); the WebSocket and the log feed are Channels routes
(``agents.routing``)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from agents import apis
from orchestration.http import api_key_fast_path

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/agents", apis.AgentListApi.as_view(), name="agent-list"),
    path(
        "api/v1/tasks",
        api_key_fast_path(apis.TaskListCreateApi.as_view(), POST=apis.task_create_keyed),
        name="task-list",
    ),
    path(
        "api/v1/tasks/<str:task_id>",
        api_key_fast_path(apis.TaskDetailApi.as_view(), GET=apis.task_detail_keyed),
        name="task-detail",
    ),
    path("api/v1/tasks/<str:task_id>/cancel", apis.TaskCancelApi.as_view(), name="task-cancel"),
    path("api/v1/tasks/<str:task_id>/input", apis.TaskInputApi.as_view(), name="task-input"),
]

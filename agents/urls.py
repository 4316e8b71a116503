from __future__ import annotations

from django.urls import URLPattern, URLResolver, path

from agents import apis

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/agents", apis.AgentListApi.as_view(), name="agent-list"),
    path("api/v1/tasks", apis.TaskListCreateApi.as_view(), name="task-list"),
    path("api/v1/tasks/<str:task_id>", apis.TaskDetailApi.as_view(), name="task-detail"),
    path("api/v1/tasks/<str:task_id>/cancel", apis.TaskCancelApi.as_view(), name="task-cancel"),
    path("api/v1/tasks/<str:task_id>/input", apis.TaskInputApi.as_view(), name="task-input"),
]

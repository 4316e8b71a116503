"""The agent console and task pages. Their data comes from the Task API and /ws/agents/."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from orchestration.selectors import models_for_user


def _tool_models(request: HttpRequest) -> list[Any]:
    # Agents call tools: offer only the models that take them.
    return [model for model in models_for_user(request.user) if "tools" in (model.capabilities or [])]


@login_required
def console_page(request: HttpRequest) -> HttpResponse:
    return render(request, "agents/console.html", {"models": _tool_models(request)})


@login_required
def tasks_page(request: HttpRequest) -> HttpResponse:
    return render(request, "agents/tasks.html", {"models": _tool_models(request)})


@login_required
def task_page(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    # Whether the task is the viewer's is checked by the API the page calls (404 otherwise).
    return render(request, "agents/task_detail.html", {"task_id": task_id})

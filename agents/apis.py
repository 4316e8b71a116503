"""The Task API (CONTRACT 3.3): sync DRF views that answer in milliseconds; agents run in workers."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import selectors, services
from agents.models import Task, TaskEvent
from agents.registry import Agent, agent_list
from orchestration.models import ApiKey
from project.errors import ApiError

# How soon a poller should look again, by status (none once the task has finished).
RETRY_AFTER: dict[str, str] = {Task.Status.PENDING: "5", Task.Status.PROCESSING: "2", Task.Status.WAITING_INPUT: "2"}


def task_location(task: Task) -> str:
    return f"/api/v1/tasks/{task.pk}"


def event_body(event: TaskEvent) -> dict[str, Any]:
    return {"seq": event.seq, "type": event.type, "content": event.content, "data": event.data, "at": event.at}


def task_body(task: Task, *, log: list[TaskEvent] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(task.pk),
        "object": "agent.task",
        "agent": task.agent,
        "model": task.model,
        "input": task.input,
        "status": task.status,
        "progress": task.progress,
        "current_step": task.current_step,
        "input_request": None,
        "result": task.result if task.status == Task.Status.COMPLETED else None,
        "error": task.error,
        "attempts": task.attempts,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
    }
    if task.status == Task.Status.WAITING_INPUT:
        body["input_request"] = {"request_id": task.input_request_id, "prompt": task.input_prompt}
    if log is not None:
        body["log"] = [event_body(event) for event in log]
    return body


def agent_body(agent: Agent) -> dict[str, Any]:
    return {
        "name": agent.name,
        "description": agent.description,
        "safe_to_rerun": agent.safe_to_rerun,
        "tools": [
            {"name": t.name, "description": t.description, "parameters": t.parameters, "safe_to_rerun": t.safe_to_rerun}
            for t in agent.tools
        ],
    }


def task_response(task: Task, *, status: int = 200, log: list[TaskEvent] | None = None, **headers: str) -> Response:
    response = Response(task_body(task, log=log), status=status)
    if task.status in RETRY_AFTER:
        response["Retry-After"] = RETRY_AFTER[task.status]
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class AgentListApi(APIView):
    def get(self, request: Request) -> Response:
        agents = [agent_body(agent) for agent in agent_list()]
        return Response({"object": "list", "count": len(agents), "results": agents})


class TaskListCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        agent = serializers.CharField(max_length=64)
        input = serializers.CharField(trim_whitespace=False, max_length=services.MAX_INPUT_CHARS)
        model = serializers.CharField(max_length=128, required=False, allow_blank=True)

    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.task_list_owned(user=request.user), request, view=self)
        return paginator.get_paginated_response([task_body(task) for task in page or []])

    def post(self, request: Request) -> Response:
        data = _validated(self.InputSerializer, request)
        submission = services.task_create(
            owner=request.user,
            api_key=request.auth if isinstance(request.auth, ApiKey) else None,
            agent=data["agent"],
            task_input=data["input"],
            model=data.get("model") or None,
            idempotency_key=request.headers.get("Idempotency-Key", "").strip(),
        )
        task = submission.task
        headers = {"Location": task_location(task)}
        if not submission.created:
            headers["Idempotent-Replayed"] = "true"
        response = task_response(task, status=202, log=[] if submission.created else _log(task), **headers)
        response["Retry-After"] = "5"
        return response


class TaskDetailApi(APIView):
    def get(self, request: Request, task_id: str) -> Response:
        task = selectors.task_get_owned(user=request.user, task_id=task_id)
        return task_response(task, log=_log(task))


class TaskCancelApi(APIView):
    def post(self, request: Request, task_id: str) -> Response:
        task = selectors.task_get_owned(user=request.user, task_id=task_id)
        if not services.task_cancel(task_id=task.pk):
            task.refresh_from_db()
            raise ApiError(409, "task_finished", f"The task already finished ({task.status}).")
        task.refresh_from_db()
        return task_response(task, log=_log(task))


class TaskInputApi(APIView):
    class InputSerializer(serializers.Serializer):
        request_id = serializers.CharField(max_length=64)
        value = serializers.CharField(trim_whitespace=False, allow_blank=True, max_length=services.MAX_ANSWER_CHARS)

    def post(self, request: Request, task_id: str) -> Response:
        task = selectors.task_get_owned(user=request.user, task_id=task_id)
        data = _validated(self.InputSerializer, request)
        task = services.task_provide_input(task=task, request_id=data["request_id"], value=data["value"])
        return task_response(task, status=202, log=_log(task))


def _validated(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object.")
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _log(task: Task) -> list[TaskEvent]:
    return selectors.task_events_after(task_id=task.pk, seq=0, limit=1000)

"""The Task API (docs/api.md, "Agents and tasks"): sync DRF views that answer in milliseconds; agents run in workers."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import selectors, services
from agents.models import Task, TaskEvent
from agents.registry import agent_list
from orchestration.access.admission import Caller, caller_for_secret, caller_for_user_sync, missing_credentials
from orchestration.access.credentials import api_key_secret_from
from orchestration.database import in_database_thread
from orchestration.errors import Conflict, InvalidRequest
from orchestration.fields import TextField
from orchestration.http import door, json_body, validation_message
from orchestration.pagination import StrictLimitOffsetPagination, page_parameters

# How soon a poller should look again, by status (none once the task has finished).
RETRY_AFTER: dict[str, str] = {Task.Status.PENDING: "5", Task.Status.PROCESSING: "2", Task.Status.WAITING_INPUT: "2"}


def task_location(task: Task) -> str:
    return f"/api/v1/tasks/{task.pk}"


class TaskEventOutput(serializers.ModelSerializer):
    class Meta:
        model = TaskEvent
        fields = ["seq", "type", "content", "data", "at"]


class InputRequestOutput(serializers.Serializer):
    request_id = serializers.CharField()
    prompt = serializers.CharField()


class TaskOutput(serializers.ModelSerializer):
    """A task as the list shows it; ``TaskDetailOutput`` adds its log."""

    object = serializers.SerializerMethodField()
    input_request = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    error = serializers.JSONField(allow_null=True, help_text="{code, message} once FAILED or CANCELLED")

    class Meta:
        model = Task
        fields = [
            "id", "object", "agent", "model", "input", "status", "progress", "current_step", "input_request",
            "result", "error", "attempts", "created_at", "started_at", "finished_at",
        ]  # fmt: skip

    def get_object(self, task: Task) -> str:
        return "agent.task"

    @extend_schema_field(InputRequestOutput(allow_null=True))
    def get_input_request(self, task: Task) -> dict[str, str] | None:
        if task.status != Task.Status.WAITING_INPUT:
            return None
        return {"request_id": task.input_request_id, "prompt": task.input_prompt}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_result(self, task: Task) -> str | None:
        return task.result if task.status == Task.Status.COMPLETED else None


class TaskDetailOutput(TaskOutput):
    """A task with its log (``task_body`` adds the log; this class describes it in the schema)."""

    log = TaskEventOutput(many=True, read_only=True)

    class Meta(TaskOutput.Meta):
        fields = [*TaskOutput.Meta.fields, "log"]


class ToolOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    parameters = serializers.JSONField(help_text="JSON schema of the arguments")
    safe_to_rerun = serializers.BooleanField()


class AgentOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    safe_to_rerun = serializers.BooleanField()
    tools = ToolOutput(many=True)


class TaskPageOutput(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = TaskOutput(many=True)


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="The same key from the same user returns the same task (at most 255 characters).",
)
CONFLICT = OpenApiResponse(description="The task is not in a state that allows this (the error's code says why).")


class AgentListOutput(serializers.Serializer):
    object = serializers.CharField()
    count = serializers.IntegerField()
    results = AgentOutput(many=True)


# One instance of each output serializer per process: a ModelSerializer builds its fields from
# the model for every new instance, a quarter of the web process's time per POST. Their
# ``to_representation`` keeps nothing between calls, so one instance serves every request.
_TASK_OUTPUT = TaskOutput()
_EVENT_OUTPUT = TaskEventOutput()


def event_body(event: TaskEvent) -> dict[str, Any]:
    return dict(_EVENT_OUTPUT.to_representation(event))


def task_body(task: Task, *, log: list[TaskEvent] | None = None) -> dict[str, Any]:
    """The task as ``TaskOutput`` shows it; with ``log``, as ``TaskDetailOutput`` does."""
    body = dict(_TASK_OUTPUT.to_representation(task))
    if log is not None:
        body["log"] = [event_body(event) for event in log]
    return body


def task_response(task: Task, *, status: int = 200, log: list[TaskEvent] | None = None, **headers: str) -> Response:
    response = Response(task_body(task, log=log), status=status)
    if task.status in RETRY_AFTER:
        response["Retry-After"] = RETRY_AFTER[task.status]
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


class AgentListApi(APIView):
    @extend_schema(responses=AgentListOutput)
    def get(self, request: Request) -> Response:
        agents = AgentOutput(agent_list(), many=True).data
        return Response({"object": "list", "count": len(agents), "results": agents})


class TaskCreateInput(serializers.Serializer):
    agent = TextField(max_length=64)
    input = TextField(trim_whitespace=False, max_length=services.MAX_INPUT_CHARS, too_large="input_too_large")
    model = TextField(max_length=128, required=False, allow_blank=True)


class TaskAnswerInput(serializers.Serializer):
    request_id = TextField(max_length=64)
    value = TextField(
        trim_whitespace=False, allow_blank=True, max_length=services.MAX_ANSWER_CHARS, too_large="input_too_large"
    )


class TaskListCreateApi(APIView):
    @extend_schema(parameters=page_parameters(), responses=TaskPageOutput)
    def get(self, request: Request) -> Response:
        paginator = StrictLimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.task_list_owned(user=request.user), request, view=self)
        return paginator.get_paginated_response([task_body(task) for task in page or []])

    @extend_schema(
        request=TaskCreateInput,
        parameters=[IDEMPOTENCY_KEY],
        responses={202: TaskDetailOutput, 409: OpenApiResponse(description="Idempotency-Key reused")},
    )
    def post(self, request: Request) -> Response:
        return task_submit(request.data, request.headers, caller=caller_of(request))


def caller_of(request: Request) -> Caller:
    """The caller of a DRF request: the API key's (``request.auth``), else the signed-in person's."""
    if isinstance(request.auth, Caller):
        return request.auth
    return caller_for_user_sync(request.user)


def task_submit(data: Any, headers: Any, *, caller: Caller) -> Response:
    """``POST /api/v1/tasks`` once the caller is known: the DRF view's, and the fast path's."""
    data = _validated(TaskCreateInput, data)
    submission = services.task_create(
        caller=caller,
        agent=data["agent"],
        task_input=data["input"],
        model=data.get("model") or None,
        idempotency_key=headers.get("Idempotency-Key", "").strip(),
    )
    task = submission.task
    headers = {**submission.limit_headers, "Location": task_location(task)}
    if not submission.created:
        headers["Idempotent-Replayed"] = "true"
    response = task_response(task, status=202, log=[] if submission.created else _log(task), **headers)
    response["Retry-After"] = "5"
    return response


class TaskDetailApi(APIView):
    @extend_schema(responses=TaskDetailOutput)
    def get(self, request: Request, task_id: str) -> Response:
        return task_detail(owner_id=request.user.pk, task_id=task_id)


def task_detail(*, owner_id: int, task_id: str) -> Response:
    """``GET /api/v1/tasks/{id}`` once the caller is known: the DRF view's, and the fast path's."""
    task = selectors.task_get_owned(user=owner_id, task_id=task_id)
    return task_response(task, log=_log(task))


class TaskCancelApi(APIView):
    @extend_schema(request=None, responses={200: TaskDetailOutput, 409: CONFLICT})
    def post(self, request: Request, task_id: str) -> Response:
        task = selectors.task_get_owned(user=request.user, task_id=task_id)
        if not services.task_cancel(task_id=task.pk):
            task.refresh_from_db()
            raise Conflict("task_finished", f"The task already finished ({task.status}).")
        task.refresh_from_db()
        return task_response(task, log=_log(task))


class TaskInputApi(APIView):
    @extend_schema(request=TaskAnswerInput, responses={202: TaskDetailOutput, 409: CONFLICT})
    def post(self, request: Request, task_id: str) -> Response:
        task = selectors.task_get_owned(user=request.user, task_id=task_id)
        data = _validated(TaskAnswerInput, request.data)
        task = services.task_provide_input(task=task, request_id=data["request_id"], value=data["value"])
        return task_response(task, status=202, log=_log(task))


def _validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidRequest("invalid_request", "The body must be a JSON object.")
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise InvalidRequest("invalid_request", validation_message(serializer.errors))
    return dict(serializer.validated_data)


# --- the fast path of API clients -------------------------------------------------------------
#
# An API client's create and poll reach these async views straight from the edge (``agents.urls``
# names them with ``api_key_fast_path``): the key through the access pipeline's cached lookup,
# then one hop to the process's sync thread for the work itself, the functions the DRF views call
# too, so both paths answer alike. Through the full stack the same call cost about fourteen
# thread hops, DRF's authentication and negotiation and a new database connection: three
# quarters of its time.


@door("POST")
async def task_create_keyed(request: HttpRequest) -> Response:
    caller = await _keyed_caller(request)
    body = json_body(request, empty={}, strict_type=True)
    return await in_database_thread(task_submit)(body, request.headers, caller=caller)


@door("GET")
async def task_detail_keyed(request: HttpRequest, task_id: str) -> Response:
    caller = await _keyed_caller(request)
    return await in_database_thread(task_detail)(owner_id=caller.user_id, task_id=task_id)


async def _keyed_caller(request: HttpRequest) -> Caller:
    secret = api_key_secret_from(request.headers)
    if secret is None:
        raise missing_credentials()
    return await caller_for_secret(secret)


def _log(task: Task) -> list[TaskEvent]:
    return selectors.task_events_after(task_id=task.pk, seq=0, limit=1000)

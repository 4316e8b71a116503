"""Writes to tasks and their logs.

Who may write what is decided by conditional UPDATEs that must change exactly one row:
a worker *claims* a task (``task_claim``; ``attempts`` becomes the claim number) and every
later write of that worker names its claim, so a worker that lost its task (cancelled, or
presumed dead and taken over) can no longer write to it.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import django_rq
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job

from agents.models import Task, TaskEvent
from agents.registry import agent_get
from agents.runtime import CallRef
from agents.tools import Tool, ToolContext
from orchestration.access.admission import Caller, admit_sync, prompt_tokens_from_chars, route_of
from orchestration.calls import require_capability
from orchestration.database import without_null_characters
from orchestration.errors import Conflict, InvalidRequest, ServiceError, TooLarge
from orchestration.jobrecovery import reap_if_due, requeue_jobless
from orchestration.registry import snapshot
from orchestration.telemetry.tracing import trace_carrier

logger = logging.getLogger(__name__)

MAX_INPUT_CHARS = 20_000
MAX_ANSWER_CHARS = 10_000
MAX_IDEMPOTENCY_KEY_CHARS = 255
JOB = "agents.jobs.task_run"
TRACE_META = "trace"


class ClaimLost(Exception):
    """The task is no longer this worker's: cancelled, finished, or taken over after a stall."""


@functools.cache
def agents_queue() -> Queue:
    return django_rq.get_queue("agents")


def redis_connection() -> Redis:
    return agents_queue().connection


def agent_setting(name: str) -> float:
    return float(settings.SWITCHYARD[name])


def cancel_key(task_id: uuid.UUID | str) -> str:
    return f"agents:task:{task_id}:cancel"


def task_control_group(task_id: uuid.UUID | str) -> str:
    """Channel-layer group of the WebSocket session running a task (cancel reaches it here)."""
    return f"agents.task.{task_id}"


def task_log_group(task_id: uuid.UUID | str) -> str:
    """Channel-layer group of the SSE streams of a task's log (nudged on each new item)."""
    return f"agents.log.{task_id}"


# --- creating and queueing ------------------------------------------------------------


def task_default_model(caller: Caller | None = None) -> str:
    """The configured agent model, else the first routable model that takes tools (of those the
    caller may use: a person limited to some models is not handed one they may not run)."""
    configured = settings.SWITCHYARD.get("AGENT_MODEL") or ""
    if configured:
        return str(configured)
    routes = sorted(snapshot().models.values(), key=lambda route: route.name)
    routes = [route for route in routes if caller is None or caller.may_use(route.name)]
    with_tools = [route.name for route in routes if "tools" in route.capabilities]
    if with_tools or routes:
        return (with_tools or [routes[0].name])[0]
    raise InvalidRequest("model_required", "No model is configured; name one in `model`.", param="model")


def _validated_request(caller: Caller, agent: str, task_input: str, model: str | None) -> str:
    if agent_get(agent) is None:
        raise InvalidRequest("unknown_agent", f"There is no agent named {agent!r}.", param="agent")
    if not task_input.strip():
        raise InvalidRequest("invalid_request", "`input` must not be empty.", param="input")
    if len(task_input) > MAX_INPUT_CHARS:
        raise TooLarge("input_too_large", f"`input` is longer than {MAX_INPUT_CHARS} characters.", param="input")
    model = model or task_default_model(caller)
    # An agent chats with its model: an embeddings-only model is the 400 that /v1 answers.
    require_capability(route_of(caller, model, snapshot()), "chat")
    return model


def _admit_task(caller: Caller, model: str, task_input: str) -> dict[str, str]:
    """A task is admitted at its door like any call: one request, the tokens of its first step, and
    room in the budget for that step's worst case. The reservation goes back at once: each step
    reserves its own as the task runs (``agents.runtime``)."""
    admission = admit_sync(
        caller,
        model=model,
        input_tokens=prompt_tokens_from_chars(len(task_input)),
        max_tokens=None,
        hold_s=agent_setting("DEADLINE_AGENT_S"),
    )
    admission.release_reservation_sync()
    return admission.headers()


@dataclass(frozen=True, slots=True)
class TaskSubmission:
    task: Task
    created: bool
    limit_headers: dict[str, str] = field(default_factory=dict)  # the rate limits after its admission


def task_create(
    *,
    caller: Caller,
    agent: str,
    task_input: str,
    model: str | None = None,
    idempotency_key: str = "",
) -> TaskSubmission:
    """Create a task for an RQ worker and queue it once the row is committed. With an
    idempotency key, the owner's earlier task with that key is returned instead (not admitted again)."""
    if len(idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidRequest("invalid_idempotency_key", "The Idempotency-Key header is longer than 255 characters.")
    owner_id = caller.user_id
    model = _validated_request(caller, agent, task_input, model)
    if idempotency_key:
        earlier = Task.objects.filter(owner_id=owner_id, idempotency_key=idempotency_key).first()
        if earlier is not None:
            return TaskSubmission(_same_request(earlier, agent, task_input, model), created=False)
    limit_headers = _admit_task(caller, model, task_input)
    try:
        with transaction.atomic():
            task = Task.objects.create(
                owner_id=owner_id,
                api_key_id=caller.api_key_id,
                agent=agent,
                input=task_input,
                model=model,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        # Another request with the same key got there first: answer with its task.
        earlier = Task.objects.get(owner_id=owner_id, idempotency_key=idempotency_key)
        return TaskSubmission(_same_request(earlier, agent, task_input, model), created=False)
    task_enqueue_on_commit(task.id, attempt=0)
    return TaskSubmission(task, created=True, limit_headers=limit_headers)


def _same_request(task: Task, agent: str, task_input: str, model: str) -> Task:
    if (task.agent, task.input, task.model) != (agent, task_input, model):
        raise Conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different task request.",
        )
    return task


def task_create_interactive(*, caller: Caller, agent: str, task_input: str, model: str | None, session_id: str) -> Task:
    """A task run by a WebSocket session in its own process: admitted, then created already claimed."""
    model = _validated_request(caller, agent, task_input, model)
    _admit_task(caller, model, task_input)
    now = timezone.now()
    return Task.objects.create(
        owner_id=caller.user_id,
        api_key_id=caller.api_key_id,
        agent=agent,
        input=task_input,
        model=model,
        origin=Task.Origin.WEBSOCKET,
        status=Task.Status.PROCESSING,
        attempts=1,
        worker=f"ws:{session_id}",
        started_at=now,
        heartbeat_at=now,
    )


def task_job_id(task_id: uuid.UUID | str, attempt: int) -> str:
    """The id of the RQ job that is to take claim ``attempt + 1`` of the task. A task is queued
    once per claim number (created, released by a dead worker, answered), so the reaper can ask
    RQ whether the job of a task still waiting in the database exists at all."""
    return f"agents-task-{task_id}-{attempt}"


def task_enqueue(task_id: uuid.UUID | str, attempt: int) -> None:
    """Queue the task's job in one Redis round trip (RQ alone takes two)."""
    queue = agents_queue()
    with queue.connection.pipeline() as pipeline:
        queue.enqueue_call(
            JOB,
            args=(str(task_id),),
            job_id=task_job_id(task_id, attempt),
            timeout=int(agent_setting("DEADLINE_AGENT_S")) + 60,
            retry=Retry(max=2),
            result_ttl=600,
            failure_ttl=86_400,
            description=f"agent task {task_id}",
            meta=job_trace_meta(),
            pipeline=pipeline,
        )
        pipeline.execute()


def job_trace_meta() -> dict[str, Any] | None:
    """The job carries the trace of the request that queued it, so the worker's spans join it."""
    carrier = trace_carrier()
    return {TRACE_META: carrier} if carrier else None


def job_trace_carrier(job: Job | None) -> dict[str, str] | None:
    return job.meta.get(TRACE_META) if job is not None else None


def task_enqueue_on_commit(task_id: uuid.UUID | str, *, attempt: int) -> None:
    """Queue the task once the transaction commits. When Redis refuses, the task still waits in
    the database and the reaper queues it (``task_reap``): the request that made it succeeds."""
    transaction.on_commit(lambda: _enqueue_or_leave_to_reaper(task_id, attempt))


def _enqueue_or_leave_to_reaper(task_id: uuid.UUID | str, attempt: int) -> None:
    try:
        task_enqueue(task_id, attempt)
    except (RedisError, OSError):
        logger.warning("task %s: could not queue its job; the reaper will", task_id, exc_info=True)


# --- claims ------------------------------------------------------------------------------


# A task waiting for a worker: new, or given up by one (released, answered, or reaped).
QUEUED = Q(status=Task.Status.PENDING) | Q(status=Task.Status.PROCESSING, heartbeat_at__isnull=True)


def _claimed(task_id: uuid.UUID | str, attempt: int) -> Any:
    return Task.objects.filter(pk=task_id, attempts=attempt, status=Task.Status.PROCESSING)


def task_claim(*, task_id: uuid.UUID | str, worker: str) -> int | None:
    """Take a queued task for this worker; returns the claim number, or None when the task
    is not waiting for a worker (another one has it, it finished, it was cancelled)."""
    now = timezone.now()
    changed = Task.objects.filter(QUEUED, pk=task_id, origin=Task.Origin.API).update(
        status=Task.Status.PROCESSING,
        attempts=F("attempts") + 1,
        worker=worker,
        heartbeat_at=now,
        started_at=Coalesce("started_at", now),
    )
    if changed != 1:
        return None
    return Task.objects.values_list("attempts", flat=True).get(pk=task_id)


def task_heartbeat(*, task_id: uuid.UUID | str, attempt: int) -> bool:
    return _claimed(task_id, attempt).update(heartbeat_at=timezone.now()) == 1


def task_progress(*, task_id: uuid.UUID | str, attempt: int, percent: int, step: str) -> None:
    changed = _claimed(task_id, attempt).update(progress=percent, current_step=step[:200], heartbeat_at=timezone.now())
    if changed != 1:
        raise ClaimLost(str(task_id))


def task_finish(
    *, task_id: uuid.UUID | str, attempt: int, status: str, result: str = "", error: dict[str, str] | None = None
) -> bool:
    """Finish the task under the claim; the caller nudges the log's streams (the ``end`` event)."""
    done = {"progress": 100} if status == Task.Status.COMPLETED else {}
    changed = _claimed(task_id, attempt).update(
        status=status,
        result=result,
        error=error,
        finished_at=timezone.now(),
        heartbeat_at=None,
        current_step="Done" if status == Task.Status.COMPLETED else "",
        **done,
    )
    return changed == 1


def task_release(*, task_id: uuid.UUID | str, worker: str) -> bool:
    """Put a task whose worker process died back in the queue (the worker's parent saw it)."""
    held = Task.objects.filter(pk=task_id, origin=Task.Origin.API, status=Task.Status.PROCESSING, worker=worker)
    attempt = held.values_list("attempts", flat=True).first()
    if attempt is None or held.filter(attempts=attempt).update(heartbeat_at=None, worker="") != 1:
        return False
    task_enqueue_on_commit(task_id, attempt=attempt)
    return True


# --- the log ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogItem:
    seq: int
    type: str
    content: str
    data: dict[str, Any]
    at: datetime

    def __post_init__(self) -> None:
        # A model's text or a tool's output may hold a null character, which PostgreSQL cannot
        # store: the item is made storable once, so its frame and its row say the same.
        object.__setattr__(self, "content", without_null_characters(self.content))
        object.__setattr__(self, "data", without_null_characters(self.data))


def _insert(task_id: uuid.UUID | str, item: LogItem) -> None:
    TaskEvent.objects.create(
        task_id=task_id, seq=item.seq, type=item.type, content=item.content, data=item.data, at=item.at
    )


def task_event_append(
    *, task_id: uuid.UUID | str, attempt: int, item: LogItem, progress: tuple[int, str] | None = None
) -> None:
    """Append a log item under the claim (with the latest progress, when one is pending).
    The caller nudges the log's streams (``task_log_anudge``) once this returned."""
    fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if progress is not None:
        fields.update(progress=progress[0], current_step=progress[1][:200])
    with transaction.atomic():
        if _claimed(task_id, attempt).update(**fields) != 1:
            raise ClaimLost(str(task_id))
        _insert(task_id, item)


def task_tool_run_recorded(
    *,
    task_id: uuid.UUID | str,
    attempt: int,
    tool: Tool,
    arguments: dict[str, Any],
    context: ToolContext,
    item: LogItem,
) -> str:
    """Run a tool that is not safe to re-run and record its result in the same transaction:
    either both happened or neither did, so a re-run after a crash never repeats the tool."""
    with transaction.atomic():
        if _claimed(task_id, attempt).update(heartbeat_at=timezone.now()) != 1:
            raise ClaimLost(str(task_id))
        output = tool.invoke(arguments, context)
        _insert(task_id, LogItem(item.seq, item.type, output, item.data, item.at))
    return output


def task_mark_waiting(*, task_id: uuid.UUID | str, attempt: int, item: LogItem, release_worker: bool) -> None:
    """Move the task to WAITING_INPUT for the question ``item`` (a ``need_input`` log item).
    An RQ worker releases the task (``release_worker``): nothing holds a worker while a person thinks."""
    fields: dict[str, Any] = {
        "status": Task.Status.WAITING_INPUT,
        "input_request_id": item.data["request_id"],
        "input_prompt": item.content,
        "current_step": "Waiting for input",
    }
    if release_worker:
        fields.update(heartbeat_at=None, worker="")
    if _claimed(task_id, attempt).update(**fields) != 1:
        raise ClaimLost(str(task_id))


def task_wait_for_input(*, task_id: uuid.UUID | str, attempt: int, item: LogItem, release_worker: bool) -> None:
    """Record a ``need_input`` item and move the task to WAITING_INPUT, together."""
    with transaction.atomic():
        task_mark_waiting(task_id=task_id, attempt=attempt, item=item, release_worker=release_worker)
        _insert(task_id, item)


def task_input_received(*, task_id: uuid.UUID | str, attempt: int) -> None:
    """A WebSocket session got its answer: back to PROCESSING under the same claim."""
    changed = Task.objects.filter(pk=task_id, attempts=attempt, status=Task.Status.WAITING_INPUT).update(
        status=Task.Status.PROCESSING, input_request_id="", input_prompt="", heartbeat_at=timezone.now()
    )
    if changed != 1:
        raise ClaimLost(str(task_id))


def task_finish_claimed(**fields: Any) -> None:
    """``task_finish`` for a batch: a lost claim is an error of this write."""
    if not task_finish(**fields):
        raise ClaimLost(str(fields["task_id"]))


@dataclass(frozen=True, slots=True)
class LogWrite:
    """One write of a batch (``task_log_write_batch``): a log item, the progress to show with
    it, and/or a claim-checked status change (a call of one of the services above)."""

    task_id: uuid.UUID
    item: LogItem | None = None
    progress: tuple[int, str] | None = None
    change: Callable[[], None] | None = None


def task_log_write_batch(writes: list[LogWrite]) -> list[Exception | None]:
    """Write the log items of many tasks in one transaction, then their latest progress, then
    their status changes in order. Returns, per write, None or the ``ClaimLost`` that stopped it."""
    outcomes: list[Exception | None] = [None] * len(writes)
    now = timezone.now()
    with transaction.atomic():
        TaskEvent.objects.bulk_create(
            TaskEvent(
                task_id=w.task_id,
                seq=w.item.seq,
                type=w.item.type,
                content=w.item.content,
                data=w.item.data,
                at=w.item.at,
            )
            for w in writes
            if w.item is not None
        )
        progress = {w.task_id: w.progress for w in writes if w.progress is not None}
        for task_id, (percent, step) in progress.items():
            Task.objects.filter(pk=task_id, status=Task.Status.PROCESSING).update(
                progress=percent, current_step=step[:200], heartbeat_at=now
            )
        for index, write in enumerate(writes):
            if write.change is not None:
                try:
                    write.change()
                except ClaimLost as lost:
                    outcomes[index] = lost
    return outcomes


def task_provide_input(*, task: Task, request_id: str, value: str) -> Task:
    """Answer a parked task's question: the answer becomes the ``ask_user`` call's recorded
    result, the task goes back to PROCESSING, and a worker resumes it from its log."""
    if task.origin == Task.Origin.WEBSOCKET:
        raise Conflict("task_interactive", "This task takes its input over its WebSocket session.")
    if len(value) > MAX_ANSWER_CHARS:
        raise TooLarge("input_too_large", f"`value` is longer than {MAX_ANSWER_CHARS} characters.")
    with transaction.atomic():
        changed = Task.objects.filter(pk=task.pk, status=Task.Status.WAITING_INPUT, input_request_id=request_id).update(
            status=Task.Status.PROCESSING, input_request_id="", input_prompt="", heartbeat_at=None, worker=""
        )
        if changed != 1:
            raise _input_refusal(task.pk)
        _insert(task.pk, _answer_item(task.pk, request_id, value))
    task.refresh_from_db()
    task_enqueue_on_commit(task.pk, attempt=task.attempts)
    transaction.on_commit(lambda: task_log_nudge(task.pk))
    return task


def _answer_item(task_id: uuid.UUID, request_id: str, value: str) -> LogItem:
    question = (
        TaskEvent.objects.filter(task_id=task_id, type=TaskEvent.Type.NEED_INPUT, data__request_id=request_id)
        .order_by("-seq")
        .first()
    )
    if question is None:
        raise Conflict("input_request_mismatch", "No question with this request_id is waiting.")
    last_seq = TaskEvent.objects.filter(task_id=task_id).order_by("-seq").values_list("seq", flat=True).first() or 0
    data = {key: question.data[key] for key in ("step", "index", "call_id")}
    data["tool"] = "ask_user"
    return LogItem(last_seq + 1, TaskEvent.Type.TOOL_RESULT, value, data, timezone.now())


def _input_refusal(task_id: uuid.UUID) -> ServiceError:
    status = Task.objects.filter(pk=task_id).values_list("status", flat=True).first()
    if status != Task.Status.WAITING_INPUT:
        return Conflict("task_not_waiting", f"The task is {status}, not WAITING_INPUT.")
    return Conflict("input_request_mismatch", "This request_id does not match the question the task asked.")


def new_request_id() -> str:
    return f"inp_{uuid.uuid4().hex}"


def need_input_item(seq: int, prompt: str, ref: CallRef) -> LogItem:
    data = {"step": ref.step, "index": ref.index, "call_id": ref.call_id, "request_id": new_request_id()}
    return LogItem(seq, TaskEvent.Type.NEED_INPUT, prompt, data, timezone.now())


# --- cancelling ---------------------------------------------------------------------------------


def task_cancel(*, task_id: uuid.UUID | str, code: str = "cancelled", message: str = "Cancelled by the user.") -> bool:
    """Cancel an unfinished task; False when it had already finished. The worker running it
    sees a Redis flag within a fraction of a second; a WebSocket session gets a channel message."""
    changed = Task.objects.filter(pk=task_id, status__in=Task.UNFINISHED).update(
        status=Task.Status.CANCELLED,
        error={"code": code, "message": message},
        finished_at=timezone.now(),
        heartbeat_at=None,
        input_request_id="",
        input_prompt="",
        current_step="",
    )
    if changed == 1:
        transaction.on_commit(lambda: task_signal_cancel(task_id))
    return changed == 1


def task_signal_cancel(task_id: uuid.UUID | str) -> None:
    """Tell whoever runs the task at once. With Redis out of reach the cancel still holds: the row
    is CANCELLED, so a worker's next heartbeat finds its claim gone and stops the run
    (``agents.execution._beat``), and the caller is answered rather than failed."""
    try:
        redis_connection().set(cancel_key(task_id), 1, ex=int(agent_setting("DEADLINE_AGENT_S")) + 600)
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(
                task_control_group(task_id), {"type": "task.cancelled", "task_id": str(task_id)}
            )
    except (RedisError, OSError):
        logger.warning("task %s: could not signal its cancel; its worker sees it at its next beat", task_id)
    task_log_nudge(task_id)


def task_log_nudge(task_id: uuid.UUID | str) -> None:
    """Wake the SSE streams of this task; losing a nudge only delays them to their next poll."""
    async_to_sync(task_log_anudge)(task_id)


async def task_log_anudge(task_id: uuid.UUID | str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(task_log_group(task_id), {"type": "log.changed"})
    except Exception:
        logger.warning("could not nudge the log streams of task %s", task_id, exc_info=True)


# --- reaping ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reaped:
    requeued: int = 0
    timed_out: int = 0
    orphaned: int = 0
    unqueued: int = 0


_UNQUEUED_BATCH = 200


def task_reap(*, now: datetime | None = None) -> Reaped:
    """Requeue tasks whose worker stopped beating (a crash) and queued tasks that RQ has no job
    for, fail tasks left waiting for input past their deadline, and cancel WebSocket tasks
    whose server process went away."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=agent_setting("AGENT_STALE_S"))
    deadline = timedelta(seconds=agent_setting("DEADLINE_AGENT_S"))
    requeued = 0
    stalled = Task.objects.filter(origin=Task.Origin.API, status=Task.Status.PROCESSING, heartbeat_at__lt=stale_before)
    for task_id, attempt in list(stalled.values_list("pk", "attempts")[:100]):
        if stalled.filter(pk=task_id).update(heartbeat_at=None, worker="") == 1:
            logger.warning("task %s: its worker stopped beating; queued again", task_id)
            task_enqueue(task_id, attempt)
            requeued += 1
    unqueued = _requeue_unqueued(created_before=stale_before)
    timed_out = Task.objects.filter(status=Task.Status.WAITING_INPUT, started_at__lt=now - deadline).update(
        status=Task.Status.FAILED,
        error={"code": "timeout", "message": "No answer arrived before the task's deadline."},
        finished_at=now,
        input_request_id="",
        input_prompt="",
    )
    orphaned = Task.objects.filter(
        origin=Task.Origin.WEBSOCKET,
        status=Task.Status.PROCESSING,
        started_at__lt=now - deadline - timedelta(seconds=60),
    ).update(
        status=Task.Status.CANCELLED,
        error={"code": "session_lost", "message": "The WebSocket session running this task went away."},
        finished_at=now,
        heartbeat_at=None,
    )
    return Reaped(requeued, timed_out, orphaned, unqueued)


def _requeue_unqueued(*, created_before: datetime) -> int:
    """Queue again the tasks waiting for a worker whose RQ job does not exist (or ended without
    a claim): a task is queued in the database, whatever happened to its job in Redis."""
    return requeue_jobless(
        waiting=Task.objects.filter(QUEUED, origin=Task.Origin.API),
        created_before=created_before,
        batch=_UNQUEUED_BATCH,
        job_id=task_job_id,
        enqueue=task_enqueue,
        connection=redis_connection(),
        noun="task",
        logger=logger,
    )


def task_reap_if_due() -> Reaped | None:
    """Reap at most once per interval across all processes (a Redis lock decides who)."""
    return reap_if_due(
        connection=redis_connection(),
        lock_key="agents:reaper",
        interval_s=agent_setting("AGENT_REAP_INTERVAL_S"),
        reap=task_reap,
    )

"""Writes to stored responses, and the claims of background runs.

Background responses are run by the RQ workers with the agent tasks' crash recovery
(``agents/services.py``): a worker *claims* a queued response with a conditional UPDATE
(``attempts`` becomes the claim number), beats while it runs, and every later write names its
claim, so a worker that lost the response (cancelled, or presumed dead and taken over) can no
longer write to it. The reaper queues again what a dead worker held.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import django_rq
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry

from orchestration.database import without_null_characters
from orchestration.errors import InvalidRequest
from orchestration.jobrecovery import reap_if_due, requeue_jobless
from orchestration.responses import eventlog
from orchestration.responses.models import StoredResponse
from orchestration.responses.objects import ResponseDraft
from orchestration.responses.selectors import draft_of, response_get_owned

logger = logging.getLogger(__name__)

JOB = "orchestration.responses.jobs.response_run"
QUEUE = "default"


@functools.cache
def responses_queue() -> Queue:
    return django_rq.get_queue(QUEUE)


def redis_connection() -> Redis:
    return responses_queue().connection


def recovery_setting(name: str) -> float:
    """Background responses recover on the agent tasks' clock (heartbeat, stale, reap interval)."""
    return float(settings.SWITCHYARD[name])


def background_deadline_s() -> float:
    """A background response may run as long as an agent task: nobody waits on the connection."""
    return recovery_setting("DEADLINE_AGENT_S")


def _when(timestamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, tz=UTC) if timestamp is not None else None


# --- stored responses ----------------------------------------------------------------------------


def response_create(*, draft: ResponseDraft, owner_id: int, api_key_id: int | None) -> StoredResponse:
    """Store a response: a background one when it is queued (its job is queued once the row is
    committed), one made in its request once it has ended (one write on the hot path, not two)."""
    row = StoredResponse.objects.create(
        id=draft.id,
        owner_id=owner_id,
        api_key_id=api_key_id,
        model=draft.model,
        background=draft.background,
        previous_response_id=draft.previous_response_id,
        settings=draft.settings,
        input_items=draft.input_items,
        created_at=datetime.fromtimestamp(draft.created_at, tz=UTC),
        **(_finished_fields(draft) if draft.finished else {"status": draft.status}),
    )
    if draft.background:
        transaction.on_commit(lambda: _enqueue_or_leave_to_reaper(draft.id, 0))
    return row


def _finished_fields(draft: ResponseDraft) -> dict[str, Any]:
    # A model may write a null character, which PostgreSQL's jsonb cannot hold (the input's were
    # refused at the door, ``wire.response_input_from``).
    return {
        "status": draft.status,
        "output": without_null_characters(draft.output),
        "usage": draft.usage,
        "error": without_null_characters(draft.error),
        "incomplete_details": draft.incomplete_details,
        "completed_at": _when(draft.completed_at) or timezone.now(),
    }


def response_delete(*, user_id: int, response_id: str) -> None:
    row = response_get_owned(user_id=user_id, response_id=response_id)
    if row.status in StoredResponse.UNFINISHED and row.background:
        response_signal_cancel(row.id)
    row.delete()


def response_cancel(*, user_id: int, response_id: str) -> ResponseDraft:
    """Cancel a background response that has not finished; a finished one is answered as it is
    (cancelling twice is harmless, as OpenAI documents it)."""
    row = response_get_owned(user_id=user_id, response_id=response_id)
    if not row.background:
        message = "Only responses created with background=true can be cancelled."
        raise InvalidRequest("invalid_request", message)
    changed = StoredResponse.objects.filter(pk=row.id, status__in=StoredResponse.UNFINISHED).update(
        status=StoredResponse.Status.CANCELLED, completed_at=timezone.now(), heartbeat_at=None
    )
    if changed == 1:
        transaction.on_commit(lambda: response_signal_cancel(row.id))
    row.refresh_from_db()
    return draft_of(row)


def response_signal_cancel(response_id: str) -> None:
    """Tell the worker running it (a Redis flag it polls) and end the streams that follow it. With
    Redis out of reach the cancel still holds: the worker's next beat finds its claim gone (the row
    is cancelled or deleted), and the streams end by themselves once the response has finished."""
    connection = redis_connection()
    try:
        connection.set(eventlog.cancel_key(response_id), 1, ex=int(background_deadline_s()) + 600)
        eventlog.end_sync(connection, response_id)
    except (RedisError, OSError):
        logger.warning("response %s: could not signal its cancel; its worker sees it at its next beat", response_id)


# --- background runs -------------------------------------------------------------------------------


def response_job_id(response_id: str, attempt: int) -> str:
    """The RQ job that is to take claim ``attempt + 1``: the reaper asks RQ whether it exists."""
    return f"response-{response_id}-{attempt}"


def response_enqueue(response_id: str, attempt: int) -> None:
    responses_queue().enqueue_call(
        JOB,
        args=(response_id,),
        job_id=response_job_id(response_id, attempt),
        timeout=int(background_deadline_s()) + 60,
        retry=Retry(max=2),
        result_ttl=600,
        failure_ttl=86_400,
        description=f"background response {response_id}",
    )


def _enqueue_or_leave_to_reaper(response_id: str, attempt: int) -> None:
    try:
        response_enqueue(response_id, attempt)
    except (RedisError, OSError):
        logger.warning("response %s: could not queue its job; the reaper will", response_id, exc_info=True)


# Waiting for a worker: new, or given up by one (released or reaped).
WAITING = Q(status=StoredResponse.Status.QUEUED) | Q(
    status=StoredResponse.Status.IN_PROGRESS, heartbeat_at__isnull=True
)


def _claimed(response_id: str, attempt: int) -> Any:
    return StoredResponse.objects.filter(pk=response_id, attempts=attempt, status=StoredResponse.Status.IN_PROGRESS)


def response_claim(*, response_id: str, worker: str) -> int | None:
    """Take a waiting background response for this worker: its claim number, or None when it is
    not waiting (another worker has it, it finished, it was cancelled or deleted)."""
    changed = StoredResponse.objects.filter(WAITING, pk=response_id, background=True).update(
        status=StoredResponse.Status.IN_PROGRESS, attempts=F("attempts") + 1, worker=worker, heartbeat_at=timezone.now()
    )
    if changed != 1:
        return None
    return StoredResponse.objects.values_list("attempts", flat=True).get(pk=response_id)


def response_heartbeat(*, response_id: str, attempt: int) -> bool:
    return _claimed(response_id, attempt).update(heartbeat_at=timezone.now()) == 1


def response_finish_claimed(*, draft: ResponseDraft, attempt: int) -> bool:
    """Store the end of a background run under its claim (False when the claim was lost)."""
    return _claimed(draft.id, attempt).update(**_finished_fields(draft), heartbeat_at=None, worker="") == 1


def response_release(*, response_id: str, worker: str) -> bool:
    """Queue again a response whose work horse died (its worker's parent saw it)."""
    held = StoredResponse.objects.filter(pk=response_id, status=StoredResponse.Status.IN_PROGRESS, worker=worker)
    attempt = held.values_list("attempts", flat=True).first()
    if attempt is None or held.filter(attempts=attempt).update(heartbeat_at=None, worker="") != 1:
        return False
    _enqueue_or_leave_to_reaper(response_id, attempt)
    return True


# --- reaping -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reaped:
    requeued: int = 0
    unqueued: int = 0


_BATCH = 100


def response_reap(*, now: datetime | None = None) -> Reaped:
    """Queue again background responses whose worker stopped beating (a crash) and waiting ones
    that RQ has no job for (Redis refused the job, or lost it)."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=recovery_setting("AGENT_STALE_S"))
    stalled = StoredResponse.objects.filter(status=StoredResponse.Status.IN_PROGRESS, heartbeat_at__lt=stale_before)
    requeued = 0
    for response_id, attempt in list(stalled.values_list("pk", "attempts")[:_BATCH]):
        if stalled.filter(pk=response_id).update(heartbeat_at=None, worker="") == 1:
            logger.warning("response %s: its worker stopped beating; queued again", response_id)
            response_enqueue(response_id, attempt)
            requeued += 1
    return Reaped(requeued=requeued, unqueued=_requeue_jobless(created_before=stale_before))


def _requeue_jobless(*, created_before: datetime) -> int:
    return requeue_jobless(
        waiting=StoredResponse.objects.filter(WAITING, background=True),
        created_before=created_before,
        batch=_BATCH,
        job_id=response_job_id,
        enqueue=response_enqueue,
        connection=redis_connection(),
        noun="response",
        logger=logger,
    )


def response_reap_if_due() -> Reaped | None:
    """Reap at most once per interval across all processes (a Redis lock decides who)."""
    return reap_if_due(
        connection=redis_connection(),
        lock_key="responses:reaper",
        interval_s=recovery_setting("AGENT_REAP_INTERVAL_S"),
        reap=response_reap,
    )

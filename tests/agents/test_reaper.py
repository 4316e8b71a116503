"""Claims and the reaper, in process with an injected clock: who may write, and what a stall leads to."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from agents import services
from agents.models import Task
from agents.services import ClaimLost, LogItem

pytestmark = pytest.mark.django_db(transaction=True)


def make_task(owner: Any, **fields: Any) -> Task:
    return Task.objects.create(owner=owner, agent="research-assistant", input="hi", model="m", **fields)


def queued_task_ids() -> list[str]:
    return [job.args[0] for job in services.agents_queue().get_jobs()]


def test_a_claim_is_taken_once_and_a_lost_claim_cannot_write(alice) -> None:
    task = make_task(alice)
    first = services.task_claim(task_id=task.pk, worker="host:1")
    assert first == 1
    assert services.task_claim(task_id=task.pk, worker="host:2") is None

    services.task_cancel(task_id=task.pk)
    item = LogItem(1, "thought", "late", {"step": 1}, timezone.now())
    with pytest.raises(ClaimLost):
        services.task_event_append(task_id=task.pk, attempt=first, item=item)
    assert not services.task_heartbeat(task_id=task.pk, attempt=first)
    assert not services.task_finish(task_id=task.pk, attempt=first, status=Task.Status.COMPLETED, result="x")
    assert Task.objects.get(pk=task.pk).status == Task.Status.CANCELLED


def test_a_task_whose_worker_stopped_beating_is_requeued_and_its_old_worker_locked_out(alice) -> None:
    stale = make_task(alice)
    old_claim = services.task_claim(task_id=stale.pk, worker="host:1")
    fresh = make_task(alice)
    services.task_claim(task_id=fresh.pk, worker="host:2")
    stale_s = settings.SWITCHYARD["AGENT_STALE_S"]
    later = timezone.now() + timedelta(seconds=stale_s + 1)
    Task.objects.filter(pk=fresh.pk).update(heartbeat_at=later)

    reaped = services.task_reap(now=later)

    assert reaped.requeued == 1 and queued_task_ids() == [str(stale.pk)]
    stale.refresh_from_db()
    assert stale.status == Task.Status.PROCESSING and stale.heartbeat_at is None and stale.worker == ""
    new_claim = services.task_claim(task_id=stale.pk, worker="host:3")
    assert new_claim == 2
    assert not services.task_heartbeat(task_id=stale.pk, attempt=old_claim)
    assert Task.objects.get(pk=fresh.pk).worker == "host:2"
    assert services.task_reap().requeued == 0  # the new claim is fresh


def test_questions_left_unanswered_past_the_deadline_fail_with_timeout(alice) -> None:
    deadline_s = settings.SWITCHYARD["DEADLINE_AGENT_S"]
    started = timezone.now()
    waiting = make_task(alice, status=Task.Status.WAITING_INPUT, started_at=started, input_request_id="inp_1")

    assert services.task_reap(now=started + timedelta(seconds=deadline_s - 1)).timed_out == 0
    assert services.task_reap(now=started + timedelta(seconds=deadline_s + 1)).timed_out == 1
    waiting.refresh_from_db()
    assert waiting.status == Task.Status.FAILED and waiting.error["code"] == "timeout"
    assert waiting.input_request_id == ""


def test_websocket_tasks_whose_server_went_away_are_cancelled_after_their_deadline(alice) -> None:
    started = timezone.now()
    orphan = make_task(alice, origin=Task.Origin.WEBSOCKET, status=Task.Status.PROCESSING, started_at=started)
    too_soon = started + timedelta(seconds=settings.SWITCHYARD["DEADLINE_AGENT_S"])

    assert services.task_reap(now=too_soon).orphaned == 0
    assert services.task_reap(now=too_soon + timedelta(seconds=61)).orphaned == 1
    orphan.refresh_from_db()
    assert orphan.status == Task.Status.CANCELLED and orphan.error["code"] == "session_lost"


def test_only_one_process_reaps_per_interval(alice) -> None:
    assert services.task_reap_if_due() is not None
    assert services.task_reap_if_due() is None


def test_the_default_settings_bound_recovery_after_a_kill_under_two_minutes() -> None:
    """Worst case: the last beat just before the kill, the task counted stale ``AGENT_STALE_S``
    after it, then up to one reap interval plus one idle dequeue wait before a reaper looks."""
    from agents.workers import AgentWorker

    agent = settings.SWITCHYARD
    worker = AgentWorker(["agents"], connection=services.redis_connection(), worker_ttl=420)
    worst_case = agent["AGENT_STALE_S"] + agent["AGENT_REAP_INTERVAL_S"] + worker.dequeue_timeout
    assert worst_case < 120
    assert worker.maintenance_interval == agent["AGENT_REAP_INTERVAL_S"]


def test_queued_tasks_that_rq_has_no_job_for_are_queued_again_once(alice) -> None:
    """Redis refused the enqueue, or lost the job: the task still waits in the database."""
    never_queued = make_task(alice)
    released = make_task(alice, status=Task.Status.PROCESSING, attempts=1)  # its worker died, no job followed
    queued = make_task(alice)
    services.task_enqueue(queued.pk, 0)
    later = timezone.now() + timedelta(seconds=settings.SWITCHYARD["AGENT_STALE_S"] + 1)

    assert services.task_reap().unqueued == 0  # just created: their jobs may be on their way
    assert services.task_reap(now=later).unqueued == 2
    assert sorted(queued_task_ids()) == sorted(str(task.pk) for task in (queued, never_queued, released))
    assert services.task_claim(task_id=released.pk, worker="host:1") == 2
    assert services.task_reap(now=later).unqueued == 0

"""Workers that die or run out of time: each test starts its own worker processes."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils import timezone

from agents.models import SupportTicket, Task
from tests.agents.conftest import MODEL, call, script, wait_for_status, wait_until
from tests.agents.test_task_workers import log_types, submit
from tests.proxy import CuttingProxy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def test_a_task_that_outlives_its_deadline_fails_with_timeout(alice_api, agent_model, simulator, workers) -> None:
    simulator.configure(MODEL, latency_ms=20_000)
    workers(SWITCHYARD_DEADLINE_AGENT_S="1.5")
    task_id = submit(alice_api)

    task = wait_for_status(task_id, Task.Status.FAILED, timeout=10)
    assert task.error["code"] == "timeout"
    assert (task.finished_at - task.started_at).total_seconds() < 5


def test_a_killed_worker_s_task_finishes_on_another_worker_and_its_ticket_is_filed_once(
    alice_api, agent_model, simulator, workers
) -> None:
    simulator.configure(
        MODEL,
        latency_ms=1500,
        script=script(
            {"tool_calls": [call("create_ticket", subject="Checkout 500s", description="Since 9:00", priority="high")]},
            {"content": "Filed a ticket; an engineer will reply today."},
        ),
    )
    first = workers()
    task_id = submit(alice_api, agent="support-triage", text="Checkout returns 500 since 9:00, request req_1.")

    wait_until(lambda: SupportTicket.objects.filter(task_id=task_id).exists(), what="the ticket")
    wait_until(lambda: simulator.stats(MODEL)["in_flight"] == 1, what="the second model call")
    holder = wait_until(lambda: Task.objects.get(pk=task_id).worker, what="the claim's holder")
    os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)  # the work horse running the task
    first.kill()  # and its parent: the whole worker is gone

    workers()
    task = wait_for_status(task_id, Task.Status.COMPLETED, timeout=45)
    assert task.result == "Filed a ticket; an engineer will reply today."
    assert SupportTicket.objects.filter(task_id=task_id).count() == 1
    ticket = SupportTicket.objects.get(task_id=task_id)
    assert ticket.priority == "high" and ticket.owner.username == "alice"
    assert log_types(task_id) == ["action", "tool_result"]
    assert task.attempts == 2


def test_when_only_the_work_horse_dies_its_worker_requeues_the_task_at_once(
    alice_api, agent_model, simulator, workers
) -> None:
    simulator.configure(
        MODEL,
        latency_ms=1000,
        script=script({"tool_calls": [call("calculator", expression="2+2")]}, {"content": "4."}),
    )
    workers(SWITCHYARD_AGENT_STALE_S="600")  # so the reaper cannot be what brings it back
    task_id = submit(alice_api)

    wait_until(lambda: log_types(task_id) == ["action", "tool_result"], what="the calculator result")
    wait_until(lambda: simulator.stats(MODEL)["in_flight"] == 1, what="the second model call")
    holder = wait_until(lambda: Task.objects.get(pk=task_id).worker, what="the claim's holder")
    os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)

    task = wait_for_status(task_id, Task.Status.COMPLETED, timeout=20)
    assert task.result == "4." and task.attempts == 2
    assert log_types(task_id) == ["action", "tool_result"]


def test_a_task_keeps_its_claim_while_its_worker_cannot_reach_redis(alice_api, agent_model, simulator, workers) -> None:
    redis_url = urlsplit(settings.REDIS_URL)
    proxy = CuttingProxy(redis_url.port or 6379)  # the worker's way to Redis, which the test cuts
    simulator.configure(MODEL, latency_ms=4000)
    workers(REDIS_URL=f"redis://127.0.0.1:{proxy.port}{redis_url.path}")
    task_id = submit(alice_api)
    wait_until(lambda: simulator.stats(MODEL)["in_flight"] == 1, what="the model call")

    with proxy.outage():
        cut_at = timezone.now()
        # Beats go on in the database while the cancel flag cannot be read: no reaper may take it over.
        wait_until(
            lambda: (Task.objects.get(pk=task_id).heartbeat_at or cut_at) > cut_at + timedelta(seconds=1),
            timeout=6,
            what="a heartbeat during the outage",
        )

    task = wait_for_status(task_id, Task.Status.COMPLETED, timeout=20)
    assert task.attempts == 1 and simulator.stats(MODEL)["requests"] == 1
    proxy.close()

"""Agents behind nginx: interactive sessions over WebSocket, and tasks that outlive their worker."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agents.models import SupportTicket, Task, TaskEvent
from tests.scale.conftest import AGENT_MODEL, api
from tests.scale.fleet import Fleet
from tests.support import ManagedProcess

pytestmark = pytest.mark.scale


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def wait_until(condition: Callable[[], Any], *, timeout: float = 20.0, what: str = "the condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def log_types(task_id: str) -> list[str]:
    return list(TaskEvent.objects.filter(task_id=task_id).order_by("seq").values_list("type", flat=True))


async def test_an_interactive_agent_runs_over_a_websocket_through_nginx(
    fleet: Fleet, alice_key: str, simulator: Any
) -> None:
    simulator.configure(
        AGENT_MODEL, script=[{"tool_calls": [call("calculator", expression="6*7")]}, {"content": "It is 42."}]
    )
    url = fleet.proxy.replace("http://", "ws://") + "/ws/agents/"
    headers = {"Authorization": f"Bearer {alice_key}"}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers, origin="http://evil.example", open_timeout=10):
            pass
    assert refused.value.response.status_code == 403

    async with connect(url, additional_headers=headers, origin=fleet.proxy, open_timeout=10) as ws:
        assert json.loads(await ws.recv())["type"] == "session"
        start = {"type": "start_task", "agent": "research-assistant", "input": "What is 6*7?", "model": AGENT_MODEL}
        await ws.send(json.dumps(start))
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["type"] not in ("complete", "error"):
            frames.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}

    assert [f["type"] for f in frames] == ["action", "tool_result", "complete"], frames
    assert frames[1]["output"] == "42" and frames[-1]["result"] == "It is 42."


def submit(fleet: Fleet, secret: str, agent: str, text: str) -> str:
    with api(fleet.proxy, secret) as client:
        answer = client.post("/api/v1/tasks", json={"agent": agent, "input": text, "model": AGENT_MODEL})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def holder(fleet: Fleet, task_id: str) -> tuple[int, ManagedProcess]:
    """The work horse running the task, and the fleet's worker that forked it."""
    horse = int(Task.objects.get(pk=task_id).worker.rsplit(":", 1)[1])
    parent = psutil.Process(horse).ppid()
    return horse, next(w for w in fleet.workers if w.pid == parent)


def finished(fleet: Fleet, secret: str, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """The task as the API shows it (through nginx), once it has finished."""

    def done() -> dict[str, Any] | None:
        with api(fleet.proxy, secret) as client:
            task = client.get(f"/api/v1/tasks/{task_id}").json()
        return task if task["status"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    return dict(wait_until(done, timeout=timeout, what=f"task {task_id} to finish"))


def test_a_killed_worker_leaves_its_task_to_the_other_which_completes_it(
    fleet: Fleet, alice_key: str, simulator: Any
) -> None:
    simulator.configure(
        AGENT_MODEL,
        latency_ms=1500,
        script=[
            {"tool_calls": [call("create_ticket", subject="Checkout 500s", description="Since 9:00", priority="high")]},
            {"content": "Filed a ticket."},
        ],
    )
    task_id = submit(fleet, alice_key, "support-triage", "Checkout returns 500 since 9:00.")
    wait_until(lambda: SupportTicket.objects.filter(task_id=task_id).exists(), what="the ticket")
    wait_until(lambda: simulator.stats(AGENT_MODEL)["in_flight"] == 1, what="the second model call")
    horse, worker = holder(fleet, task_id)
    os.kill(horse, signal.SIGKILL)
    worker.kill()

    task = finished(fleet, alice_key, task_id)
    assert task["status"] == "COMPLETED" and task["result"] == "Filed a ticket.", task
    row = Task.objects.get(pk=task_id)
    assert row.attempts == 2
    assert int(row.worker.rsplit(":", 1)[1]) != horse
    assert SupportTicket.objects.filter(task_id=task_id).count() == 1  # the tool call was not made again
    assert log_types(task_id) == ["action", "tool_result"]


def test_sigterm_lets_a_worker_finish_its_task_before_it_exits(fleet: Fleet, alice_key: str, simulator: Any) -> None:
    simulator.configure(
        AGENT_MODEL,
        latency_ms=1500,
        script=[{"tool_calls": [call("calculator", expression="2+2")]}, {"content": "4."}],
    )
    task_id = submit(fleet, alice_key, "research-assistant", "What is 2+2?")
    wait_until(lambda: log_types(task_id) == ["action", "tool_result"], what="the calculator result")
    horse, worker = holder(fleet, task_id)
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)  # what docker stop and Kubernetes send

    task = finished(fleet, alice_key, task_id)
    assert task["status"] == "COMPLETED" and task["result"] == "4.", task
    assert worker.process.wait(timeout=15) == 0
    row = Task.objects.get(pk=task_id)
    assert row.attempts == 1 and int(row.worker.rsplit(":", 1)[1]) == horse

"""Agent tasks end to end: the Task API in process, a real RQ worker process, the real simulator.

Every test here shares the module's one worker; tests that need their own workers (other
settings, or killing them) are in ``test_task_recovery.py``."""

from __future__ import annotations

import time
from typing import Any

import pytest

from agents.models import Task, TaskEvent
from tests.agents.conftest import MODEL, call, script, wait_for_status, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]


def submit(api: Any, agent: str = "research-assistant", text: str = "How do I revoke an API key?", **extra: Any) -> str:
    response = api.post("/api/v1/tasks", {"agent": agent, "input": text, "model": MODEL, **extra}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def log_types(task_id: str) -> list[str]:
    return list(TaskEvent.objects.filter(task_id=task_id).order_by("seq").values_list("type", flat=True))


def test_a_worker_runs_a_scripted_agent_through_its_tools_to_the_answer(
    alice_api, agent_model, knowledge_base, simulator, worker
) -> None:
    simulator.configure(
        MODEL,
        latency_ms=300,
        script=script(
            {"content": "Let me look that up.", "tool_calls": [call("search_knowledge_base", query="revoke api key")]},
            {"tool_calls": [call("calculator", expression="(2 + 3) * 4")]},
            {"content": "Revoke it on /keys/. Also, 20."},
        ),
    )
    task_id = submit(alice_api)

    wait_for_status(task_id, Task.Status.PROCESSING)
    polled = alice_api.get(f"/api/v1/tasks/{task_id}")
    assert polled["Retry-After"] == "2"

    wait_for_status(task_id, Task.Status.COMPLETED)
    body = alice_api.get(f"/api/v1/tasks/{task_id}")
    assert "Retry-After" not in body
    task = body.json()
    assert task["result"] == "Revoke it on /keys/. Also, 20."
    assert task["progress"] == 100 and task["error"] is None
    assert [item["type"] for item in task["log"]] == ["thought", "action", "tool_result", "action", "tool_result"]
    search_result, calculation = task["log"][2], task["log"][4]
    assert "Creating, using and revoking API keys" in search_result["content"]
    assert calculation["content"] == "20" and calculation["data"]["tool"] == "calculator"
    assert [item["seq"] for item in task["log"]] == [1, 2, 3, 4, 5]
    assert task["started_at"] and task["finished_at"] and task["attempts"] == 1


def test_without_a_script_the_agent_answers_in_one_step(alice_api, agent_model, simulator, worker) -> None:
    task_id = submit(alice_api, text="Say something.")

    task = wait_for_status(task_id, Task.Status.COMPLETED)
    assert task.result and log_types(task_id) == []
    assert simulator.stats(MODEL)["completed"] == 1


def test_a_question_parks_the_task_without_holding_the_worker_and_the_answer_resumes_it(
    alice_api, agent_model, simulator, worker
) -> None:
    simulator.configure(
        MODEL,
        script=script(
            {"tool_calls": [call("ask_user", question="Which key: production or staging?")]},
            {"content": "Revoke the production key on /keys/."},
        ),
    )
    asking = submit(alice_api)
    waiting = wait_for_status(asking, Task.Status.WAITING_INPUT)
    body = alice_api.get(f"/api/v1/tasks/{asking}")
    request = body.json()["input_request"]
    assert body["Retry-After"] == "2"
    assert request["prompt"] == "Which key: production or staging?"
    assert request["request_id"] == waiting.input_request_id

    # The only worker is free while the first task waits: a second task runs to the end.
    simulator.configure(MODEL, script=None)
    other = submit(alice_api, text="Something else.")
    wait_for_status(other, Task.Status.COMPLETED)

    wrong = alice_api.post(f"/api/v1/tasks/{asking}/input", {"request_id": "inp_wrong", "value": "x"}, format="json")
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "input_request_mismatch"

    simulator.configure(MODEL, script=script({"content": "unused"}, {"content": "Revoke the production key."}))
    answer = {"request_id": request["request_id"], "value": "production"}
    answered = alice_api.post(f"/api/v1/tasks/{asking}/input", answer, format="json")
    assert answered.status_code == 202 and answered.json()["status"] == "PROCESSING"

    task = wait_for_status(asking, Task.Status.COMPLETED)
    assert task.result == "Revoke the production key."
    log = list(TaskEvent.objects.filter(task_id=asking).order_by("seq"))
    assert [event.type for event in log] == ["action", "need_input", "tool_result"]
    assert log[2].content == "production" and log[2].data["call_id"] == log[0].data["call_id"]
    assert task.attempts == 2  # claimed once to ask, once to resume

    again = alice_api.post(f"/api/v1/tasks/{asking}/input", answer, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_not_waiting"


def test_cancel_stops_the_worker_and_its_upstream_call_within_two_seconds(
    alice_api, agent_model, simulator, worker
) -> None:
    simulator.configure(MODEL, latency_ms=30_000)
    task_id = submit(alice_api)
    wait_until(lambda: simulator.stats(MODEL)["in_flight"] == 1, what="the model call to start")

    started = time.monotonic()
    cancelled = alice_api.post(f"/api/v1/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    wait_until(lambda: simulator.stats(MODEL)["disconnects"] == 1, timeout=2.0, what="the upstream call to end")
    assert time.monotonic() - started < 2.0

    again = alice_api.post(f"/api/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "task_finished"
    task = Task.objects.get(pk=task_id)
    assert task.status == Task.Status.CANCELLED and task.error["code"] == "cancelled"

"""The Task API against a live daphne process: API-key creates and polls take the lean path of
``agents.edge`` and answer as the DRF views do; browser sessions keep the full stack."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from agents import services
from agents.models import Task
from tests.agents.conftest import MODEL
from tests.support import free_port, start_web

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

BODY = {"agent": "research-assistant", "input": "What is a fallback?", "model": MODEL}


def keyed(live_web: Any, secret: str) -> httpx.Client:
    return httpx.Client(base_url=live_web.url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)


def full_stack_ran(response: httpx.Response) -> bool:
    """Whether Django's full middleware stack answered (its XFrameOptionsMiddleware marks every response)."""
    return "X-Frame-Options" in response.headers


def test_an_api_client_creates_and_polls_tasks_on_the_lean_path(live_web, alice_key, bob_key, agent_model) -> None:
    alice = keyed(live_web, alice_key)

    created = alice.post("/api/v1/tasks", json=BODY)
    assert created.status_code == 202 and not full_stack_ran(created)
    task = created.json()
    assert created.headers["Location"] == f"/api/v1/tasks/{task['id']}" and created.headers["Retry-After"] == "5"
    assert created.headers["X-Request-ID"].startswith("req_") and created.headers["Content-Type"] == "application/json"
    assert int(created.headers["Content-Length"]) == len(created.content)
    assert task["status"] == "PENDING" and task["log"] == [] and task["model"] == MODEL
    assert services.agents_queue().fetch_job(services.task_job_id(task["id"], 0)) is not None

    polled = alice.get(created.headers["Location"])
    assert polled.status_code == 200 and not full_stack_ran(polled)
    assert polled.headers["Retry-After"] == "5" and polled.json() == task

    assert keyed(live_web, bob_key).get(created.headers["Location"]).json()["error"]["code"] == "task_not_found"
    refused = keyed(live_web, "sy-not-a-key").post("/api/v1/tasks", json=BODY)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="switchyard"'


def test_the_idempotency_key_returns_the_same_task_on_the_lean_path(live_web, alice_key, agent_model) -> None:
    alice = keyed(live_web, alice_key)
    first = alice.post("/api/v1/tasks", json=BODY, headers={"Idempotency-Key": "order-7"})
    again = alice.post("/api/v1/tasks", json=BODY, headers={"Idempotency-Key": "order-7"})
    other = alice.post("/api/v1/tasks", json={**BODY, "input": "Else"}, headers={"Idempotency-Key": "order-7"})

    assert first.status_code == again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert Task.objects.count() == 1


BAD_REQUESTS: list[tuple[Any, str]] = [
    ({"agent": "nobody", "input": "hi"}, "application/json"),
    ({"agent": "research-assistant", "input": "   "}, "application/json"),
    ({"input": "hi"}, "application/json"),
    ({"agent": ["research-assistant"], "input": None, "model": 3}, "application/json"),
    ({"agent": "research-assistant", "input": "hi", "model": "no-such-model"}, "application/json"),
    ({"agent": "research-assistant", "input": "x" * 20_001}, "application/json"),
    ({"agent": "research-assistant", "input": 42}, "application/json"),
    (["not", "an", "object"], "application/json"),
    ("{not json", "application/json"),
    ("", "application/json"),
    ("agent=research-assistant", "text/plain"),
]


def test_bad_requests_get_the_same_errors_as_from_the_drf_view(live_web, alice_key, alice_api, agent_model) -> None:
    lean = keyed(live_web, alice_key)
    for body, content_type in BAD_REQUESTS:
        raw = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
        answered = lean.post("/api/v1/tasks", content=raw, headers={"Content-Type": content_type})
        expected = alice_api.post("/api/v1/tasks", raw, content_type=content_type)

        assert answered.status_code == expected.status_code, (body, answered.text)
        error, expected_error = answered.json()["error"], expected.json()["error"]
        assert {**error, "request_id": ""} == {**expected_error, "request_id": ""}, body
        assert error["request_id"] == answered.headers["X-Request-ID"]
    assert Task.objects.count() == 0


def test_a_browser_session_keeps_the_full_stack_with_its_csrf_check(live_web, alice, alice_api, agent_model) -> None:
    task_id = alice_api.post("/api/v1/tasks", BODY, format="json").json()["id"]
    browser = Client()
    browser.force_login(alice)
    session = httpx.Client(base_url=live_web.url, cookies={"sessionid": browser.cookies["sessionid"].value})

    polled = session.get(f"/api/v1/tasks/{task_id}")
    assert polled.status_code == 200 and full_stack_ran(polled) and polled.json()["id"] == task_id
    without_token = session.post("/api/v1/tasks", json=BODY)
    assert without_token.status_code == 403 and full_stack_ran(without_token)


def test_a_task_whose_enqueue_redis_refused_is_accepted_and_queued_later_by_the_reaper(
    transactional_db, alice_key, agent_model, simulator
) -> None:
    no_redis = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        created = keyed(no_redis, alice_key).post("/api/v1/tasks", json=BODY)
    finally:
        no_redis.stop()
    assert created.status_code == 202, created.text
    task_id = created.json()["id"]
    assert services.agents_queue().fetch_job(services.task_job_id(task_id, 0)) is None

    later = timezone.now() + timedelta(seconds=settings.SWITCHYARD["AGENT_STALE_S"] + 1)
    assert services.task_reap(now=later).unqueued == 1
    assert services.agents_queue().fetch_job(services.task_job_id(task_id, 0)) is not None
    assert Task.objects.get(pk=task_id).status == Task.Status.PENDING

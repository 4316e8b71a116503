"""The Task API in process (no worker needed): shapes, headers, validation, ownership, idempotency."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from agents.models import Task
from agents.services import MAX_ANSWER_CHARS, task_cancel
from tests.agents.conftest import MODEL

pytestmark = pytest.mark.django_db(transaction=True)


def post_task(api: APIClient, body: Any = None, **headers: str) -> Any:
    body = {"agent": "research-assistant", "input": "What is a fallback?", "model": MODEL} if body is None else body
    return api.post("/api/v1/tasks", body, format="json", headers=headers)


def error_code(response: Any) -> str:
    return response.json()["error"]["code"]


def test_a_new_task_is_accepted_with_202_location_and_retry_after(alice_api, agent_model) -> None:
    response = post_task(alice_api)

    assert response.status_code == 202
    task = response.json()
    assert response["Location"] == f"/api/v1/tasks/{task['id']}"
    assert response["Retry-After"] == "5"
    assert task["status"] == "PENDING" and task["progress"] == 0 and task["log"] == []
    assert task["agent"] == "research-assistant" and task["model"] == MODEL
    assert task["result"] is None and task["error"] is None and task["started_at"] is None

    polled = alice_api.get(response["Location"])
    assert polled.status_code == 200 and polled["Retry-After"] == "5" and polled.json()["id"] == task["id"]


def test_the_model_defaults_to_a_routable_model_that_takes_tools(alice_api, agent_model) -> None:
    response = post_task(alice_api, {"agent": "support-triage", "input": "Help"})
    assert response.status_code == 202 and response.json()["model"] == MODEL


def test_the_same_idempotency_key_returns_the_same_task(alice_api, bob_api, agent_model) -> None:
    first = post_task(alice_api, **{"Idempotency-Key": "order-42"})
    again = post_task(alice_api, **{"Idempotency-Key": "order-42"})

    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true" and again["Location"] == first["Location"]
    assert Task.objects.count() == 1

    other_body = {"agent": "research-assistant", "input": "Something else", "model": MODEL}
    reused = post_task(alice_api, other_body, **{"Idempotency-Key": "order-42"})
    assert reused.status_code == 409 and error_code(reused) == "idempotency_key_reused"

    bobs = post_task(bob_api, **{"Idempotency-Key": "order-42"})
    assert bobs.status_code == 202 and bobs.json()["id"] != first.json()["id"]
    fresh = post_task(alice_api, **{"Idempotency-Key": "order-43"})
    assert fresh.json()["id"] != first.json()["id"]
    assert Task.objects.count() == 3


def test_another_users_task_is_not_found_anywhere(alice_api, bob_api, agent_model) -> None:
    task_id = post_task(alice_api).json()["id"]

    for response in (
        bob_api.get(f"/api/v1/tasks/{task_id}"),
        bob_api.post(f"/api/v1/tasks/{task_id}/cancel"),
        bob_api.post(f"/api/v1/tasks/{task_id}/input", {"request_id": "inp_x", "value": "y"}, format="json"),
    ):
        assert response.status_code == 404 and error_code(response) == "task_not_found"
    assert bob_api.get("/api/v1/tasks").json()["results"] == []
    assert Task.objects.get(pk=task_id).status == Task.Status.PENDING

    for bad_id in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert alice_api.get(f"/api/v1/tasks/{bad_id}").status_code == 404


def test_the_list_holds_only_my_tasks_newest_first_and_is_paginated(alice_api, bob_api, agent_model) -> None:
    mine = [post_task(alice_api).json()["id"] for _ in range(3)]
    post_task(bob_api)

    page = alice_api.get("/api/v1/tasks?limit=2").json()
    assert page["count"] == 3 and [t["id"] for t in page["results"]] == mine[::-1][:2]
    assert page["next"] and "log" not in page["results"][0]
    rest = alice_api.get("/api/v1/tasks?limit=2&offset=2").json()
    assert [t["id"] for t in rest["results"]] == [mine[0]]


def test_cancel_of_a_queued_task_cancels_it_and_a_finished_one_is_409(alice_api, agent_model) -> None:
    task_id = post_task(alice_api).json()["id"]

    cancelled = alice_api.post(f"/api/v1/tasks/{task_id}/cancel")
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "CANCELLED" and body["error"]["code"] == "cancelled" and body["finished_at"]
    assert "Retry-After" not in cancelled

    again = alice_api.post(f"/api/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409 and error_code(again) == "task_finished"
    assert not task_cancel(task_id=task_id)


def test_input_for_a_task_that_asks_nothing_is_409_and_a_bad_body_is_400(alice_api, agent_model) -> None:
    task_id = post_task(alice_api).json()["id"]
    url = f"/api/v1/tasks/{task_id}/input"

    not_waiting = alice_api.post(url, {"request_id": "inp_x", "value": "y"}, format="json")
    assert not_waiting.status_code == 409 and error_code(not_waiting) == "task_not_waiting"
    bodies = ({"value": "y"}, {"request_id": "inp_x"}, ["x"], {"request_id": "inp_x", "value": 5 * [1]})
    # A number is not taken for its text, as the WebSocket door does not take it.
    bodies += ({"request_id": "inp_x", "value": 42}, {"request_id": 7, "value": "y"})
    for body in bodies:
        response = alice_api.post(url, body, format="json")
        assert response.status_code == 400 and error_code(response) == "invalid_request", body
    # An answer too long is refused as the WebSocket door refuses it.
    too_long = alice_api.post(url, {"request_id": "inp_x", "value": "y" * (MAX_ANSWER_CHARS + 1)}, format="json")
    assert too_long.status_code == 413 and error_code(too_long) == "input_too_large"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"agent": "nobody", "input": "hi"}, 400, "unknown_agent"),
        ({"agent": "research-assistant", "input": "   "}, 400, "invalid_request"),
        ({"agent": "research-assistant"}, 400, "invalid_request"),
        ({"input": "hi"}, 400, "invalid_request"),
        ({"agent": "research-assistant", "input": "hi", "model": "no-such-model"}, 404, "model_not_found"),
        # As the WebSocket door refuses it: 413, whatever else the body holds.
        ({"agent": "research-assistant", "input": "x" * 20_001}, 413, "input_too_large"),
        ({"agent": "research-assistant", "input": 42}, 400, "invalid_request"),
        ({"agent": "research-assistant", "input": "hi", "model": 3.5}, 400, "invalid_request"),
        (["not", "an", "object"], 400, "invalid_request"),
    ],
)
def test_bad_requests_get_the_one_error_shape(alice_api, agent_model, body, status, code) -> None:
    response = post_task(alice_api, body)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and "request_id" in error
    assert Task.objects.count() == 0


def test_malformed_json_and_missing_credentials_are_refused(agent_model) -> None:
    anonymous = APIClient()
    assert anonymous.get("/api/v1/tasks").status_code == 401
    assert anonymous.get("/api/v1/agents").status_code == 401
    refused = anonymous.post("/api/v1/tasks", {"agent": "research-assistant", "input": "hi"}, format="json")
    assert refused.status_code == 401 and error_code(refused) in ("invalid_api_key", "not_authenticated")

    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer sy-not-a-key")
    assert wrong.get("/api/v1/tasks").status_code == 401


def test_a_key_limited_to_other_models_may_not_start_tasks_on_this_one(alice, agent_model) -> None:
    from orchestration.access.keys import api_key_create
    from tests.agents.conftest import client_for

    limited = client_for(api_key_create(user=alice, allowed_models=["some-other-model"])[1])
    response = post_task(limited)
    assert response.status_code == 403 and error_code(response) == "model_not_allowed"


def test_the_agents_are_listed_with_their_tools(alice_api) -> None:
    agents = {agent["name"]: agent for agent in alice_api.get("/api/v1/agents").json()["results"]}

    assert set(agents) == {"research-assistant", "support-triage"}
    assert agents["research-assistant"]["safe_to_rerun"] is True
    assert agents["support-triage"]["safe_to_rerun"] is False
    tools = {tool["name"]: tool for tool in agents["support-triage"]["tools"]}
    assert tools["create_ticket"]["safe_to_rerun"] is False
    assert tools["create_ticket"]["parameters"]["required"] == ["subject", "description"]
    assert "ask_user" in tools and agents["support-triage"]["description"]


def test_a_browser_session_can_use_the_task_api(client, alice, agent_model) -> None:
    client.force_login(alice)
    response = client.post(
        "/api/v1/tasks",
        {"agent": "research-assistant", "input": "Hi", "model": MODEL},
        content_type="application/json",
    )
    assert response.status_code == 202
    assert Task.objects.get().owner == alice and Task.objects.get().api_key is None


def test_the_openapi_document_describes_the_task_api(client) -> None:
    schema = client.get("/api/schema/", headers={"Accept": "application/json"}).json()
    paths = schema["paths"]
    create = paths["/api/v1/tasks"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TaskCreateInput")
    assert create["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/TaskDetailOutput")
    assert "Idempotency-Key" in [parameter["name"] for parameter in create["parameters"]]
    assert {"get"} <= set(paths["/api/v1/tasks/{task_id}"]) and "post" in paths["/api/v1/tasks/{task_id}/input"]
    assert "log" in schema["components"]["schemas"]["TaskDetailOutput"]["properties"]


def test_a_task_on_an_embeddings_only_model_is_refused_as_v1_chat_refuses_it(alice_api, agent_model) -> None:
    from orchestration.models import LanguageModel
    from orchestration.registry import snapshot_invalidate

    LanguageModel.objects.create(
        name="sim-embed", provider=agent_model.provider, upstream="sim-embed", capabilities=["embeddings"]
    )
    snapshot_invalidate()
    refused = post_task(alice_api, {"agent": "research-assistant", "input": "Hi", "model": "sim-embed"})
    assert refused.status_code == 400 and error_code(refused) == "model_not_supported"
    assert refused.json()["error"]["param"] == "model"
    assert Task.objects.count() == 0


def test_a_call_without_a_key_or_a_session_is_not_authenticated_as_documented(agent_model) -> None:
    """docs/api.md, Authentication: ``not_authenticated`` when a task call presents neither; a key
    that does not exist stays ``invalid_api_key``."""
    anonymous = APIClient()
    for refused in (
        anonymous.get("/api/v1/tasks"),
        anonymous.post("/api/v1/tasks/00000000-0000-0000-0000-000000000000/cancel"),
        anonymous.post("/api/v1/tasks/00000000-0000-0000-0000-000000000000/input", {}, format="json"),
    ):
        assert refused.status_code == 401 and error_code(refused) == "not_authenticated"
        assert refused["WWW-Authenticate"] == 'Bearer realm="switchyard"'
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Bearer sy-not-a-key")
    assert error_code(wrong.get("/api/v1/tasks")) == "invalid_api_key"

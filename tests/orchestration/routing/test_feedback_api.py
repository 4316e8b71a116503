"""``POST /api/v1/feedback`` from an API client: lands on the caller's own call and its variant;
anyone else's call is 404; bad input is 400 with a plain sentence."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from orchestration.models import Experiment, Feedback
from orchestration.registry import snapshot_invalidate
from orchestration.routing.services import experiment_create
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    assert_error,
    chat_body,
    in_thread,
    make_key,
    post_json,
    sim_models,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _split(sim_models: Any) -> None:
    experiment_create(
        name="mini-or-not",
        model=sim_models.chat,
        sticky_by=Experiment.Sticky.KEY,
        variants=[{"name": "control", "percent": 50}, {"name": "mini", "percent": 50, "target": sim_models.mini}],
    )
    snapshot_invalidate()


async def test_feedback_lands_on_the_callers_row_with_its_variant_and_can_be_changed(
    sim_models: Any, make_key: Any
) -> None:
    await in_thread(_split, sim_models)
    secret = await in_thread(make_key)
    answered = await post_json(AsyncClient(), "/v1/chat/completions", chat_body(), secret, **{"X-Request-ID": "ask-1"})
    assert answered.status_code == 200, answered.content
    served_model = answered["X-Served-Model"]

    given = await post_json(
        AsyncClient(), "/api/v1/feedback", {"request_id": "ask-1", "score": -1, "comment": "too short"}, secret
    )
    assert given.status_code == 201, given.content
    body = given.json()
    assert (body["request_id"], body["score"], body["comment"], body["experiment"]) == (
        "ask-1",
        -1,
        "too short",
        "mini-or-not",
    )
    assert body["variant"] == ("mini" if served_model == "gpt-sim-mini" else "control")
    assert body["model"] == served_model and body["deployment"] == "sim"

    changed = await post_json(AsyncClient(), "/api/v1/feedback", {"request_id": "ask-1", "score": 1}, secret)
    assert changed.status_code == 201 and changed.json()["id"] == body["id"]
    assert await sync_to_async(lambda: list(Feedback.objects.values_list("score", "comment")))() == [(1, "")]


async def test_feedback_on_someone_elses_call_is_not_found(sim_models: Any, make_key: Any, mallory: Any) -> None:
    secret = await in_thread(make_key)
    answered = await post_json(AsyncClient(), "/v1/chat/completions", chat_body(), secret, **{"X-Request-ID": "a-1"})
    assert answered.status_code == 200
    intruder = await in_thread(make_key, user=mallory)
    refused = await post_json(AsyncClient(), "/api/v1/feedback", {"request_id": "a-1", "score": 1}, intruder)
    error = assert_error(refused, 404, "call_not_found")
    assert "a-1" in error["message"]
    unknown = await post_json(AsyncClient(), "/api/v1/feedback", {"message_id": 99999, "score": 1}, secret)
    assert_error(unknown, 404, "call_not_found")
    assert not await sync_to_async(Feedback.objects.exists)()


@pytest.mark.parametrize(
    "body",
    [
        {"request_id": "x", "score": 2},
        {"request_id": "x"},
        {"score": 1},
        {"request_id": "x", "message_id": 1, "score": 1},
        {"request_id": "x", "score": 1, "comment": "c" * 2001},
    ],
)
async def test_bad_feedback_is_a_400_with_a_plain_sentence(
    sim_models: Any, make_key: Any, body: dict[str, Any]
) -> None:
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), "/api/v1/feedback", body, secret)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["message"]


async def test_feedback_needs_a_caller(sim_models: Any) -> None:
    response = await post_json(AsyncClient(), "/api/v1/feedback", {"request_id": "x", "score": 1}, None)
    assert response.status_code in (401, 403)

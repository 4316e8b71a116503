"""The OpenAPI document also describes the /api/v1 routes that are not DRF views, and API keys."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from chat.apis import MessageInput

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_posting_a_message_and_listing_them_are_described(schema: dict[str, Any]) -> None:
    messages = schema["paths"]["/api/v1/conversations/{conversation_id}/messages"]
    post = messages["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == set(MessageInput().fields)
    created = post["responses"]["201"]["content"]["application/json"]["schema"]
    assert created["properties"]["assistant_message"]["$ref"].endswith("/MessageOutput")
    assert {"400", "401", "404", "409", "413"} <= set(post["responses"])
    listed = messages["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed["properties"]["results"]["items"]["$ref"].endswith("/MessageOutput")


@pytest.mark.parametrize("path", ["/api/v1/messages/{message_id}/stream", "/api/v1/tasks/{task_id}/events"])
def test_the_event_streams_are_described_with_how_to_resume(schema: dict[str, Any], path: str) -> None:
    operation = schema["paths"][path]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    assert {"Last-Event-ID", "last_event_id"} <= {parameter["name"] for parameter in operation["parameters"]}
    assert "404" in operation["responses"]


def test_every_referenced_component_exists(schema: dict[str, Any]) -> None:
    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
            return found.union(*(refs(value) for value in node.values()))
        if isinstance(node, list):
            return set().union(*(refs(value) for value in node))
        return set()

    names = {ref.rsplit("/", 1)[-1] for ref in refs(schema["paths"])}
    assert names <= set(schema["components"]["schemas"])


def test_drf_views_take_api_keys_as_well_as_sessions(schema: dict[str, Any]) -> None:
    security = schema["paths"]["/api/v1/conversations"]["get"]["security"]
    assert {"ApiKeyBearer": []} in security and {"cookieAuth": []} in security
    assert schema["components"]["securitySchemes"]["ApiKeyBearer"]["scheme"] == "bearer"

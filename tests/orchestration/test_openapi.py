"""The OpenAPI document describes /v1, and its browsable page needs nothing from the internet."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from orchestration.openapi import SCHEMAS
from orchestration.validation import CHAT_FIELDS, EMBEDDING_FIELDS, TEXT_COMPLETION_FIELDS

pytestmark = pytest.mark.django_db


def test_the_schema_has_the_v1_operations_with_their_bodies() -> None:
    response = Client().get("/api/schema/", headers={"Accept": "application/json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    chat = paths["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ChatCompletionRequest")
    assert {"200", "400", "401", "403", "404", "413", "429", "504"} <= set(chat["responses"])
    assert "x-ratelimit-remaining-requests" in chat["responses"]["429"]["headers"]
    assert "text/event-stream" in chat["responses"]["200"]["content"]
    assert (
        "post" in paths["/v1/completions"]
        and "post" in paths["/v1/embeddings"]
        and "get" in paths["/v1/models"]
        and "get" in paths["/v1/models/{model}"]
    )
    components = schema["components"]
    assert {"ChatCompletionRequest", "ChatCompletion", "EmbeddingRequest", "ModelList"} <= set(components["schemas"])
    assert {"ApiKeyBearer", "ApiKeyHeader"} <= set(components["securitySchemes"])


def test_the_description_accepts_exactly_what_the_validator_accepts() -> None:
    assert set(SCHEMAS["ChatCompletionRequest"]["properties"]) == CHAT_FIELDS
    assert SCHEMAS["ChatCompletionRequest"]["additionalProperties"] is False
    assert set(SCHEMAS["EmbeddingRequest"]["properties"]) == EMBEDDING_FIELDS
    assert set(SCHEMAS["TextCompletionRequest"]["properties"]) == TEXT_COMPLETION_FIELDS


def test_the_docs_page_loads_only_local_assets() -> None:
    client = Client()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert client.get(asset).status_code == 200, asset
    assert "http://" not in html and "https://" not in html


def test_the_docs_page_answers_options_with_the_methods_it_allows() -> None:
    answer = Client().options("/api/docs/")  # DRF rendered its metadata with the page's template: a 500
    assert answer.status_code == 200 and answer.content == b""
    assert set(answer["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}

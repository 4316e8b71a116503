"""The Responses API through the official ``openai`` SDK, unchanged, against a live server."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import json
from typing import Any

import openai
import pydantic
import pytest

from orchestration.models import RequestLog, StoredResponse
from tests.agents.conftest import wait_until
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    make_key,
    sim_models,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def client(live_web: Any, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_web.url}/v1", api_key=secret, max_retries=0, timeout=20)


def test_a_plain_response_is_created_stored_retrieved_and_continued(sim_models, make_key, live_web) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key(rpm=100, tpm=100_000))

    raw = sdk.responses.with_raw_response.create(model="gpt-sim", input="Name three colours.", max_output_tokens=16)
    response = raw.parse()
    assert response.id.startswith("resp_") and response.object == "response"
    # The simulator writes until max_output_tokens: a response cut there is incomplete, as OpenAI's is.
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]
    assert response.output_text and response.output[0].type == "message" and response.output[0].id.startswith("msg_")
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert raw.headers["x-served-model"] == "gpt-sim" and raw.headers["x-ratelimit-remaining-requests"] == "99"

    again = sdk.responses.retrieve(response.id)
    assert again.output_text == response.output_text and again.status == "incomplete"

    follow_up = sdk.responses.create(
        model="gpt-sim", input="And three more?", previous_response_id=response.id, instructions="Be brief."
    )
    assert follow_up.previous_response_id == response.id and follow_up.instructions == "Be brief."
    assert follow_up.usage is not None and follow_up.usage.input_tokens > response.usage.input_tokens

    items = sdk.responses.input_items.list(follow_up.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "And three more?"  # type: ignore[union-attr]

    # The server writes its request log in batches: both calls appear there, as "responses".
    wait_until(lambda: RequestLog.objects.filter(endpoint="responses").count() == 2, what="the request log")


def test_store_false_is_not_kept_and_deleted_responses_are_gone(sim_models, make_key, live_web) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key())
    unstored = sdk.responses.create(model="gpt-sim", input="Hi.", store=False)
    assert unstored.status == "completed" and not StoredResponse.objects.filter(pk=unstored.id).exists()
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(unstored.id)

    kept = sdk.responses.create(model="gpt-sim", input="Hi.")
    sdk.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(kept.id)


def test_a_streamed_response_sends_the_documented_events_in_order(sim_models, make_key, live_web) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key())
    events = list(sdk.responses.create(model="gpt-sim", input="Tell me a story.", stream=True))

    types = [event.type for event in events]
    assert types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    done = events[-1].response  # type: ignore[union-attr]
    assert text and done.output_text == text and done.usage.output_tokens > 0

    with sdk.responses.stream(model="gpt-sim", input="Tell me a story.") as stream:
        streamed = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.output_text == streamed and sdk.responses.retrieve(final.id).output_text == streamed


def test_a_function_tool_round_trip_works_with_previous_response_id(sim_models, make_key, live_web, simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.configure(
        "gpt-sim",
        script=[
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"content": "It is sunny in Paris."},
        ],
    )
    sdk = client(live_web, make_key())
    first = sdk.responses.create(model="gpt-sim", input="Weather in Paris?", tools=[WEATHER_TOOL])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.id.startswith("fc_")  # type: ignore[union-attr]
    assert json.loads(call.arguments) == {"city": "Paris"}  # type: ignore[union-attr]

    second = sdk.responses.create(
        model="gpt-sim",
        previous_response_id=first.id,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"}],  # type: ignore[union-attr]
    )
    assert second.output_text == "It is sunny in Paris."


def test_streamed_tool_calls_send_argument_deltas(sim_models, make_key, live_web, simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", script=[{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    sdk = client(live_web, make_key())
    with sdk.responses.stream(model="gpt-sim", input="Weather in Oslo?", tools=[WEATHER_TOOL]) as stream:  # type: ignore[list-item]
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in types
    assert types[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert final.output[0].type == "function_call" and json.loads(final.output[0].arguments) == {"city": "Oslo"}  # type: ignore[union-attr]


class Colour(pydantic.BaseModel):
    colour: str


def test_structured_output_parses_into_the_sdks_model(sim_models, make_key, live_web, simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", script=[{"content": '{"colour": "teal"}'}])
    sdk = client(live_web, make_key())
    parsed = sdk.responses.parse(model="gpt-sim", input="A colour, as JSON.", text_format=Colour)
    assert parsed.output_parsed == Colour(colour="teal")
    assert parsed.text is not None and parsed.text.format.type == "json_schema"


def test_the_sdk_pages_through_input_items_with_its_cursor(sim_models, make_key, live_web) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key())
    said = ["One.", "Two.", "Three."]
    response = sdk.responses.create(model="gpt-sim", input=[{"role": "user", "content": text} for text in said])
    items = list(sdk.responses.input_items.list(response.id, limit=1, order="asc"))  # three pages
    assert [item.content[0].text for item in items] == said  # type: ignore[union-attr]

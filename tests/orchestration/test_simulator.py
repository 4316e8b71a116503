"""The provider simulator, driven over real HTTP with plain httpx: wire formats and behaviour knobs."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Simulator
from tests.support import start_simulator

USER = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def client(simulator: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.url, timeout=5, headers={"Authorization": "Bearer any-key"}) as http:
        yield http


def sse_payloads(response: httpx.Response) -> list[Any]:
    """The JSON payloads of ``data:`` lines; ``[DONE]`` kept as the string."""
    payloads: list[Any] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            payloads.append(data if data == "[DONE]" else json.loads(data))
    return payloads


def openai_stream(client: httpx.Client, **body: Any) -> list[Any]:
    with client.stream("POST", "/v1/chat/completions", json={"stream": True, **body}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_payloads(response)


# OpenAI wire format -----------------------------------------------------------------------------


def test_openai_completion_is_deterministic_with_consistent_usage(client: httpx.Client) -> None:
    first = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}).json()
    second = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}).json()

    choice = first["choices"][0]
    assert first["object"] == "chat.completion"
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == second["choices"][0]["message"]["content"]
    words = choice["message"]["content"].split()
    assert 20 <= len(words) <= 40
    assert first["usage"] == {
        "prompt_tokens": 6,
        "completion_tokens": len(words),
        "total_tokens": 6 + len(words),
    }


def test_openai_completion_differs_for_a_different_prompt(client: httpx.Client) -> None:
    france = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}).json()
    spain = client.post(
        "/v1/chat/completions", json={"model": "sim-a", "messages": [{"role": "user", "content": "And Spain?"}]}
    ).json()

    assert france["choices"][0]["message"]["content"] != spain["choices"][0]["message"]["content"]


def test_openai_max_tokens_cuts_the_reply_with_finish_reason_length(client: httpx.Client) -> None:
    body = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER, "max_tokens": 4}).json()

    assert body["choices"][0]["finish_reason"] == "length"
    assert len(body["choices"][0]["message"]["content"].split()) == 4
    assert body["usage"]["completion_tokens"] == 4


def test_openai_stream_carries_the_same_text_and_usage_last(client: httpx.Client) -> None:
    whole = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}).json()
    payloads = openai_stream(client, model="sim-a", messages=USER, stream_options={"include_usage": True})

    assert payloads[-1] == "[DONE]"
    chunks = payloads[:-1]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]
    assert all(chunk["usage"] is None for chunk in chunks[:-1])


def test_a_model_set_to_omit_stream_usage_sends_none_even_when_asked(
    client: httpx.Client, simulator: Simulator
) -> None:
    simulator.configure("sim-a", stream_omits_usage=True)
    payloads = openai_stream(client, model="sim-a", messages=USER, stream_options={"include_usage": True})
    assert payloads[-1] == "[DONE]" and all(chunk["choices"] and "usage" not in chunk for chunk in payloads[:-1])
    whole = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}).json()
    assert whole["usage"]["completion_tokens"] > 0  # a whole reply keeps its usage


def test_openai_stream_without_include_usage_has_no_usage(client: httpx.Client) -> None:
    payloads = openai_stream(client, model="sim-a", messages=USER)

    assert all("usage" not in chunk for chunk in payloads[:-1])


def test_openai_scripted_tool_call_then_answer(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure(
        "sim-tools",
        script=[
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"content": "It is sunny in Paris."},
        ],
    )
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

    first = client.post("/v1/chat/completions", json={"model": "sim-tools", "messages": USER, "tools": tools}).json()
    call = first["choices"][0]["message"]["tool_calls"][0]
    history = [
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    second = client.post("/v1/chat/completions", json={"model": "sim-tools", "messages": history}).json()

    assert first["choices"][0]["finish_reason"] == "tool_calls"
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert second["choices"][0]["message"]["content"] == "It is sunny in Paris."
    assert second["choices"][0]["finish_reason"] == "stop"


def test_openai_streamed_tool_call_arrives_as_deltas(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-tools", script=[{"tool_calls": [{"name": "lookup", "arguments": {"q": "a long query"}}]}])

    chunks = openai_stream(client, model="sim-tools", messages=USER)[:-1]
    deltas = [
        chunk["choices"][0]["delta"]["tool_calls"][0]
        for chunk in chunks
        if "tool_calls" in chunk["choices"][0]["delta"]
    ]

    assert deltas[0]["id"].startswith("call_")
    assert deltas[0]["function"] == {"name": "lookup", "arguments": ""}
    assert len(deltas) > 2
    assert json.loads("".join(delta["function"]["arguments"] for delta in deltas)) == {"q": "a long query"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def test_openai_tool_choice_none_answers_in_text_even_when_a_call_is_scripted(
    client: httpx.Client, simulator: Simulator
) -> None:
    simulator.configure("sim-tools", script=[{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    body = {"model": "sim-tools", "messages": USER, "tools": [WEATHER], "tool_choice": "none"}
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"]
    assert "tool_calls" not in choice["message"]


def test_openai_tool_choice_required_or_named_makes_the_call_from_the_schema(client: httpx.Client) -> None:
    required = {"model": "sim-plain", "messages": USER, "tools": [WEATHER, CLOCK], "tool_choice": "required"}
    choice = client.post("/v1/chat/completions", json=required).json()["choices"][0]
    [call] = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "simulated", "unit": "C"}
    named = {**required, "tool_choice": {"type": "function", "function": {"name": "get_time"}}}
    [call] = client.post("/v1/chat/completions", json=named).json()["choices"][0]["message"]["tool_calls"]
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == ("get_time", {})
    streamed = openai_stream(client, **named)[:-1]
    assert streamed[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_tool_choice_auto_leaves_the_choice_to_the_script(client: httpx.Client) -> None:
    body = {"model": "sim-plain", "messages": USER, "tools": [WEATHER], "tool_choice": "auto"}
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]


def test_openai_logprobs_come_one_per_token_whole_and_streamed(client: httpx.Client) -> None:
    body = {"model": "sim-plain", "messages": USER, "logprobs": True, "top_logprobs": 2}
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(entry["token"] for entry in content) == choice["message"]["content"]
    assert all(entry["logprob"] <= 0 and len(entry["top_logprobs"]) == 2 for entry in content)
    assert all(entry["top_logprobs"][0]["token"] == entry["token"] for entry in content)
    streamed = [chunk for chunk in openai_stream(client, **body)[:-1] if chunk["choices"][0]["delta"].get("content")]
    assert [chunk["choices"][0]["logprobs"]["content"][0] for chunk in streamed] == content
    plain = client.post("/v1/chat/completions", json={"model": "sim-plain", "messages": USER}).json()
    assert plain["choices"][0]["logprobs"] is None


def test_openai_embeddings_are_unit_vectors_and_similar_texts_are_close(client: httpx.Client) -> None:
    texts = ["What is the capital of France?", "what is the capital of France", "Best pizza in Naples"]
    body = client.post("/v1/embeddings", json={"model": "sim-embed", "input": texts}).json()
    vectors = [item["embedding"] for item in body["data"]]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert body["object"] == "list"
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert all(len(vector) == 256 for vector in vectors)
    assert cosine(vectors[0], vectors[0]) == pytest.approx(1.0)
    assert cosine(vectors[0], vectors[1]) > 0.99
    assert cosine(vectors[0], vectors[2]) < 0.5
    assert body["usage"]["prompt_tokens"] == 6 + 6 + 4


def test_openai_embeddings_honour_dimensions(client: httpx.Client) -> None:
    body = client.post("/v1/embeddings", json={"model": "sim-embed", "input": "hello", "dimensions": 64}).json()

    assert len(body["data"][0]["embedding"]) == 64


def test_openai_base64_embeddings_decode_to_the_float_vector(client: httpx.Client) -> None:
    request = {"model": "sim-embed", "input": "hello world", "dimensions": 8}
    floats = client.post("/v1/embeddings", json=request).json()["data"][0]["embedding"]
    encoded = client.post("/v1/embeddings", json={**request, "encoding_format": "base64"}).json()["data"][0]

    decoded = struct.unpack("<8f", base64.b64decode(encoded["embedding"]))
    assert decoded == pytest.approx(floats, abs=1e-6)


def test_openai_stop_sequence_cuts_the_reply(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", reply="One two. Three four.")

    body = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER, "stop": ["Three"]}).json()

    assert body["choices"][0]["message"]["content"] == "One two. "
    assert body["choices"][0]["finish_reason"] == "stop"


def test_openai_models_lists_configured_models(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-listed", latency_ms=0)

    body = client.get("/v1/models").json()

    assert body["object"] == "list"
    assert {"id": "sim-listed", "object": "model", "created": 1700000000, "owned_by": "simulator"} in body["data"]


def test_openai_bad_body_gets_an_openai_shaped_400(client: httpx.Client) -> None:
    response = client.post("/v1/chat/completions", content=b"{not json")
    missing = client.post("/v1/chat/completions", json={"model": "sim-a"})

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "messages"


# Anthropic wire format --------------------------------------------------------------------------


def anthropic_events(client: httpx.Client, **body: Any) -> list[tuple[str, Any]]:
    with client.stream("POST", "/v1/messages", json={"stream": True, **body}) as response:
        assert response.status_code == 200
        events, name = [], ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                payload = json.loads(line[len("data: ") :])
                assert payload["type"] == name
                events.append((name, payload))
        return events


def test_anthropic_message_has_text_block_stop_reason_and_usage(client: httpx.Client) -> None:
    body = client.post(
        "/v1/messages", json={"model": "sim-c", "max_tokens": 100, "system": "Be brief.", "messages": USER}
    ).json()

    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["id"].startswith("msg_")
    assert body["stop_reason"] == "end_turn"
    assert [block["type"] for block in body["content"]] == ["text"]
    assert body["usage"]["input_tokens"] == 2 + 6
    assert body["usage"]["output_tokens"] == len(body["content"][0]["text"].split())


def test_anthropic_requires_max_tokens(client: httpx.Client) -> None:
    response = client.post("/v1/messages", json={"model": "sim-c", "messages": USER})

    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert response.headers["request-id"] == response.json()["request_id"]


def test_anthropic_stream_follows_the_event_sequence(client: httpx.Client) -> None:
    whole = client.post("/v1/messages", json={"model": "sim-c", "max_tokens": 5, "messages": USER}).json()
    events = anthropic_events(client, model="sim-c", max_tokens=5, messages=USER)
    names = [name for name, _ in events]

    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [payload["delta"] for name, payload in events if name == "content_block_delta"]
    assert "".join(delta["text"] for delta in deltas) == whole["content"][0]["text"]
    assert all(delta["type"] == "text_delta" for delta in deltas)
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] == whole["usage"]["input_tokens"]
    message_delta = events[-2][1]
    assert message_delta["delta"]["stop_reason"] == "max_tokens" == whole["stop_reason"]
    assert message_delta["usage"]["output_tokens"] == 5


def test_anthropic_tool_use_whole_and_streamed(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure(
        "sim-c",
        script=[{"content": "Checking.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}],
    )

    whole = client.post("/v1/messages", json={"model": "sim-c", "max_tokens": 100, "messages": USER}).json()
    events = anthropic_events(client, model="sim-c", max_tokens=100, messages=USER)

    assert whole["stop_reason"] == "tool_use"
    text, tool = whole["content"]
    assert text == {"type": "text", "text": "Checking."}
    assert tool["type"] == "tool_use" and tool["id"].startswith("toolu_")
    assert (tool["name"], tool["input"]) == ("get_weather", {"city": "Oslo"})
    starts = [payload for name, payload in events if name == "content_block_start"]
    assert starts[1]["index"] == 1
    assert starts[1]["content_block"] == {"type": "tool_use", "id": tool["id"], "name": "get_weather", "input": {}}
    partial = [
        payload["delta"]["partial_json"]
        for name, payload in events
        if name == "content_block_delta" and payload["delta"]["type"] == "input_json_delta"
    ]
    assert json.loads("".join(partial)) == {"city": "Oslo"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] == whole["usage"]["output_tokens"]


def test_anthropic_script_turn_follows_the_assistant_messages(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-c", script=[{"tool_calls": [{"name": "search", "arguments": {}}]}, {"content": "Done."}])
    history = [
        *USER,
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"}]},
    ]

    body = client.post("/v1/messages", json={"model": "sim-c", "max_tokens": 100, "messages": history}).json()

    assert body["content"] == [{"type": "text", "text": "Done."}]
    assert body["stop_reason"] == "end_turn"


def test_anthropic_errors_have_anthropic_shapes(client: httpx.Client, simulator: Simulator) -> None:
    request = {"model": "sim-c", "max_tokens": 10, "messages": USER}
    simulator.configure("sim-c", error_status=529)
    overloaded = client.post("/v1/messages", json=request)
    simulator.configure("sim-c", error_status=401)
    unauthorised = client.post("/v1/messages", json=request)
    simulator.configure("sim-c", error_status=None, error_kind="context_window")
    too_long = client.post("/v1/messages", json=request)

    assert overloaded.status_code == 529
    assert overloaded.json()["error"]["type"] == "overloaded_error"
    assert unauthorised.status_code == 401
    assert unauthorised.json()["error"]["type"] == "authentication_error"
    assert too_long.status_code == 400
    assert too_long.json()["error"]["message"].startswith("prompt is too long")


def test_anthropic_stop_sequence_is_reported(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-c", reply="First part. STOP second part.")

    body = client.post(
        "/v1/messages", json={"model": "sim-c", "max_tokens": 100, "messages": USER, "stop_sequences": ["STOP"]}
    ).json()

    assert body["content"][0]["text"] == "First part. "
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "STOP")


# Gemini wire format -----------------------------------------------------------------------------

GEMINI_CONTENTS = [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}]


def gemini_sse(client: httpx.Client, model: str, **body: Any) -> list[Any]:
    url = f"/v1beta/models/{model}:streamGenerateContent"
    with client.stream("POST", url, params={"alt": "sse"}, json={"contents": GEMINI_CONTENTS, **body}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_payloads(response)


def test_gemini_generate_content_has_candidates_and_usage_metadata(client: httpx.Client) -> None:
    body = client.post(
        "/v1beta/models/sim-g:generateContent",
        headers={"x-goog-api-key": "any"},
        json={"contents": GEMINI_CONTENTS, "generationConfig": {"maxOutputTokens": 7}},
    ).json()

    candidate = body["candidates"][0]
    assert candidate["content"]["role"] == "model"
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert len(candidate["content"]["parts"][0]["text"].split()) == 7
    assert body["usageMetadata"] == {"promptTokenCount": 6, "candidatesTokenCount": 7, "totalTokenCount": 13}


def test_gemini_sse_stream_matches_the_whole_reply(client: httpx.Client) -> None:
    whole = client.post("/v1beta/models/sim-g:generateContent", json={"contents": GEMINI_CONTENTS}).json()
    chunks = gemini_sse(client, "sim-g")

    text = "".join(part.get("text", "") for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"])
    assert text == whole["candidates"][0]["content"]["parts"][0]["text"]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]


def test_gemini_stream_without_alt_sse_is_a_json_array(client: httpx.Client) -> None:
    response = client.post("/v1beta/models/sim-g:streamGenerateContent", json={"contents": GEMINI_CONTENTS})

    chunks = response.json()
    assert isinstance(chunks, list) and len(chunks) > 2
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_gemini_function_call_parts_whole_and_streamed(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-g", script=[{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}])

    whole = client.post("/v1beta/models/sim-g:generateContent", json={"contents": GEMINI_CONTENTS}).json()
    chunks = gemini_sse(client, "sim-g")

    call = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
    assert whole["candidates"][0]["content"]["parts"] == [call]
    assert whole["candidates"][0]["finishReason"] == "STOP"
    assert call in [part for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"]]


def test_gemini_script_turn_counts_model_messages(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-g", script=[{"tool_calls": [{"name": "f", "arguments": {}}]}, {"content": "Done."}])
    history = [
        *GEMINI_CONTENTS,
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"ok": True}}}]},
    ]

    body = client.post("/v1beta/models/sim-g:generateContent", json={"contents": history}).json()

    assert body["candidates"][0]["content"]["parts"] == [{"text": "Done."}]


def test_gemini_errors_have_google_shapes(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-g", error_status=429, retry_after=3)
    limited = client.post("/v1beta/models/sim-g:generateContent", json={"contents": GEMINI_CONTENTS})
    simulator.configure("sim-g", error_status=None, error_kind="context_window")
    too_long = client.post("/v1beta/models/sim-g:generateContent", json={"contents": GEMINI_CONTENTS})
    invalid = client.post("/v1beta/models/sim-g:generateContent", json={"contents": []})

    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert limited.json()["error"]["details"][0]["retryDelay"] == "3s"
    assert too_long.status_code == 400
    assert too_long.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "exceeds the maximum number of tokens" in too_long.json()["error"]["message"]
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == 400


def test_gemini_content_policy_blocks_the_prompt_in_a_200(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-g", error_kind="content_policy")

    whole = client.post("/v1beta/models/sim-g:generateContent", json={"contents": GEMINI_CONTENTS})
    chunks = gemini_sse(client, "sim-g")

    assert whole.status_code == 200
    assert whole.json()["promptFeedback"]["blockReason"] == "SAFETY"
    assert "candidates" not in whole.json()
    assert chunks[0]["promptFeedback"]["blockReason"] == "SAFETY"


def test_gemini_embeddings_single_and_batch_agree(client: httpx.Client) -> None:
    content = {"parts": [{"text": "capital of France"}]}
    single = client.post("/v1beta/models/sim-embed:embedContent", json={"content": content}).json()
    batch = client.post(
        "/v1beta/models/sim-embed:batchEmbedContents",
        json={
            "requests": [
                {"model": "models/sim-embed", "content": content},
                {"model": "models/sim-embed", "content": {"parts": [{"text": "capital of Spain"}]}},
            ]
        },
    ).json()

    assert single["embedding"]["values"] == batch["embeddings"][0]["values"]
    assert len(batch["embeddings"]) == 2
    similarity = sum(
        a * b for a, b in zip(batch["embeddings"][0]["values"], batch["embeddings"][1]["values"], strict=True)
    )
    assert similarity < 0.9


# Behaviour knobs --------------------------------------------------------------------------------


def test_error_status_fails_every_call_with_the_provider_shape(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", error_status=503)

    responses = [client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}) for _ in range(3)]

    assert [response.status_code for response in responses] == [503, 503, 503]
    assert set(responses[0].json()["error"]) == {"message", "type", "param", "code"}
    assert responses[0].json()["error"]["type"] == "server_error"


def test_error_401_is_the_openai_auth_error(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", error_status=401)

    response = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_error_rate_fails_a_deterministic_share_of_calls(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", error_status=500, error_rate=0.5)

    statuses = [
        client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}).status_code for _ in range(6)
    ]

    assert statuses == [200, 500, 200, 500, 200, 500]


def test_rate_limit_sends_retry_after_headers(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", error_status=429, retry_after=2, retry_after_ms=1500)

    response = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "1500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_context_window_error_looks_like_openais(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", error_kind="context_window")

    response = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["type"] == "invalid_request_error"
    assert "maximum context length" in error["message"]


def test_content_policy_error_is_a_400(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", error_kind="content_policy")

    response = client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_policy_violation"


def test_latency_delays_the_response(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", latency_ms=150)

    started = time.monotonic()
    client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER})

    assert time.monotonic() - started >= 0.15


def test_tokens_per_second_paces_the_stream(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", tokens_per_s=100, ttft_ms=50)

    started = time.monotonic()
    chunks = openai_stream(client, model="sim-a", messages=USER, max_tokens=11)
    elapsed = time.monotonic() - started

    assert sum(1 for chunk in chunks[:-1] if chunk["choices"][0]["delta"].get("content")) == 11
    assert 0.05 + 10 / 100 <= elapsed < 1.5


def test_hang_never_answers_and_counts_a_disconnect(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", hang=True)

    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}, timeout=0.2)

    assert wait_for_stats(simulator, "sim-a", disconnects=1, in_flight=0) == {
        "requests": 1,
        "completed": 0,
        "disconnects": 1,
        "in_flight": 0,
    }


def test_in_flight_counts_calls_being_answered(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", latency_ms=800)
    worker = threading.Thread(
        target=lambda: client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER})
    )

    worker.start()
    during = wait_for_stats(simulator, "sim-a", in_flight=1)
    worker.join()

    assert during["in_flight"] == 1
    assert wait_for_stats(simulator, "sim-a", completed=1)["in_flight"] == 0


def test_drop_after_tokens_closes_the_stream_mid_way(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", drop_after_tokens=3)
    received: list[Any] = []

    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream(
            "POST", "/v1/chat/completions", json={"model": "sim-a", "messages": USER, "stream": True}
        ) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line[6:]))

    assert sum(1 for chunk in received if chunk["choices"][0]["delta"].get("content")) == 3
    assert simulator.stats("sim-a") == {"requests": 1, "completed": 0, "disconnects": 0, "in_flight": 0}


def test_drop_on_a_whole_reply_closes_without_an_answer(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", drop_after_tokens=0)

    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER})


def test_malformed_after_tokens_sends_a_broken_chunk_and_no_done(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", malformed_after_tokens=2)

    with client.stream(
        "POST", "/v1/chat/completions", json={"model": "sim-a", "messages": USER, "stream": True}
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]

    contents = [json.loads(line[6:])["choices"][0]["delta"].get("content") for line in lines[:-1]]
    assert [content for content in contents if content] and len([c for c in contents if c]) == 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(lines[-1][6:])
    assert "data: [DONE]" not in lines


def test_client_closing_a_stream_early_counts_a_disconnect(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", tokens_per_s=50, max_tokens_default=200)

    with client.stream(
        "POST", "/v1/chat/completions", json={"model": "sim-a", "messages": USER, "stream": True}
    ) as response:
        for index, _ in enumerate(response.iter_lines()):
            if index > 4:
                break

    assert wait_for_stats(simulator, "sim-a", disconnects=1, in_flight=0)["completed"] == 0


def test_fixed_reply_and_max_tokens_default(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-fixed", reply="Exactly these five words.")
    simulator.configure("sim-long", max_tokens_default=120)

    fixed = client.post("/v1/chat/completions", json={"model": "sim-fixed", "messages": USER}).json()
    long = client.post("/v1/chat/completions", json={"model": "sim-long", "messages": USER}).json()

    assert fixed["choices"][0]["message"]["content"] == "Exactly these five words."
    assert fixed["usage"]["completion_tokens"] == 4
    assert long["usage"]["completion_tokens"] == 120


def test_star_sets_the_default_for_every_model(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("*", error_status=500)
    simulator.configure("sim-healthy", error_status=None)

    assert client.post("/v1/chat/completions", json={"model": "sim-x", "messages": USER}).status_code == 500
    assert client.post("/v1/chat/completions", json={"model": "sim-healthy", "messages": USER}).status_code == 200


def test_reset_restores_defaults_and_clears_stats(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-a", error_status=500)
    client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER})

    simulator.reset()

    assert simulator.stats() == {"models": {}}
    assert client.post("/v1/chat/completions", json={"model": "sim-a", "messages": USER}).status_code == 200
    assert simulator.stats("sim-a") == {"requests": 1, "completed": 1, "disconnects": 0, "in_flight": 0}


def test_control_refuses_unknown_knobs_and_bad_values(simulator: Simulator) -> None:
    unknown = simulator.client.put("/_sim/models/sim-a", json={"latency": 5})
    bad = simulator.client.put("/_sim/models/sim-a", json={"error_rate": 2})

    assert unknown.status_code == 400
    assert "latency" in unknown.json()["error"]["message"]
    assert bad.status_code == 400


def test_control_merges_knobs_into_the_current_behaviour(simulator: Simulator) -> None:
    simulator.configure("sim-a", latency_ms=10)
    simulator.configure("sim-a", ttft_ms=20)

    behaviour = simulator.client.get("/_sim/models/sim-a").json()["behaviour"]

    assert (behaviour["latency_ms"], behaviour["ttft_ms"]) == (10, 20)


def wait_for_stats(simulator: Simulator, upstream: str, **expected: int) -> dict[str, int]:
    """The model's stats once they show ``expected`` (the server notices a gone client a moment later)."""
    deadline = time.monotonic() + 3
    while True:
        stats = simulator.stats(upstream)
        if all(stats[key] == value for key, value in expected.items()):
            return stats
        if time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def test_faults_apply_to_every_wire_format(client: httpx.Client, simulator: Simulator) -> None:
    simulator.configure("sim-c", drop_after_tokens=2)
    simulator.configure("sim-g", malformed_after_tokens=1)

    with pytest.raises(httpx.RemoteProtocolError):
        anthropic_events(client, model="sim-c", max_tokens=50, messages=USER)
    url = "/v1beta/models/sim-g:streamGenerateContent"
    with client.stream("POST", url, params={"alt": "sse"}, json={"contents": GEMINI_CONTENTS}) as response:
        frames = [line for line in response.iter_lines() if line.startswith("data: ")]

    assert len(frames) == 2
    json.loads(frames[0][6:])
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[1][6:])


def test_token_counting_endpoints_agree_with_usage(client: httpx.Client) -> None:
    anthropic = client.post("/v1/messages/count_tokens", json={"model": "sim-c", "messages": USER}).json()
    gemini = client.post("/v1beta/models/sim-g:countTokens", json={"contents": GEMINI_CONTENTS}).json()

    assert anthropic == {"input_tokens": 6}
    assert gemini == {"totalTokens": 6}


def test_unknown_urls_get_a_json_404(client: httpx.Client) -> None:
    openai = client.post("/v1/nothing-here", json={})
    gemini = client.post("/v1beta/models/sim-g:unknownMethod", json={})

    assert openai.status_code == 404 and openai.json()["error"]["type"] == "invalid_request_error"
    assert gemini.status_code == 404 and gemini.json()["error"]["status"] == "NOT_FOUND"


def test_json_mode_replies_with_json(client: httpx.Client) -> None:
    body = client.post(
        "/v1/chat/completions",
        json={"model": "sim-a", "messages": USER, "response_format": {"type": "json_object"}},
    ).json()

    assert set(json.loads(body["choices"][0]["message"]["content"])) == {"answer"}


@pytest.mark.live
def test_sigterm_stops_the_simulator_even_with_a_call_hanging() -> None:
    process = start_simulator()
    outcome: list[BaseException] = []

    def hanging_call() -> None:
        try:
            httpx.post(f"{process.url}/v1/chat/completions", json={"model": "sim-a", "messages": USER}, timeout=10)
        except httpx.HTTPError as error:
            outcome.append(error)

    try:
        httpx.put(f"{process.url}/_sim/models/sim-a", json={"hang": True}).raise_for_status()
        caller = threading.Thread(target=hanging_call)
        caller.start()
        wait_http_stats_in_flight(process.url)
        started = time.monotonic()
        process.stop()
        caller.join(timeout=5)
        stopped_in = time.monotonic() - started
    finally:
        process.kill()

    assert process.process is not None and process.process.returncode == 0
    assert stopped_in < 5
    assert len(outcome) == 1


def wait_http_stats_in_flight(url: str) -> None:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/_sim/stats").json()["models"].get("sim-a", {}).get("in_flight"):
            return
        time.sleep(0.02)


def test_anthropic_and_gemini_wires_honour_tool_choice_too(client: httpx.Client, simulator: Simulator) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    anthropic = {
        "model": "sim-c",
        "max_tokens": 100,
        "messages": USER,
        "tools": [{"name": "get_weather", "input_schema": schema}],
    }
    forced = client.post(
        "/v1/messages", json={**anthropic, "tool_choice": {"type": "tool", "name": "get_weather"}}
    ).json()
    assert forced["stop_reason"] == "tool_use"
    assert forced["content"][-1]["name"] == "get_weather" and forced["content"][-1]["input"] == {"city": "simulated"}
    simulator.configure("sim-c", script=[{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    refused = client.post("/v1/messages", json={**anthropic, "tool_choice": {"type": "none"}}).json()
    assert refused["stop_reason"] == "end_turn" and [block["type"] for block in refused["content"]] == ["text"]

    tools = [{"functionDeclarations": [{"name": "get_weather", "parameters": schema}]}]
    config = {"functionCallingConfig": {"mode": "ANY"}}
    gemini = {"contents": GEMINI_CONTENTS, "tools": tools, "toolConfig": config}
    parts = client.post("/v1beta/models/sim-g:generateContent", json=gemini).json()["candidates"][0]["content"]["parts"]
    assert parts[-1]["functionCall"] == {"name": "get_weather", "args": {"city": "simulated"}}


def test_a_json_schema_response_format_gets_a_document_that_fits_the_schema(client: httpx.Client) -> None:
    """What ``client.chat.completions.parse`` sends for a Pydantic model with a nested and an optional field."""
    schema = {
        "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "where": {"$ref": "#/$defs/Place"},
            "guests": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "kind": {"enum": ["party", "fair"]},
        },
        "required": ["name", "where", "guests", "kind"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "Event", "strict": True, "schema": schema}}
    body = client.post(
        "/v1/chat/completions", json={"model": "sim-a", "messages": USER, "response_format": response_format}
    ).json()

    document = json.loads(body["choices"][0]["message"]["content"])
    assert document == {"name": "simulated", "where": {"city": "simulated"}, "guests": 1, "kind": "party"}

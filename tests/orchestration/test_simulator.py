"""The provider simulator, driven over real HTTP with plain httpx: wire formats and behaviour knobs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Simulator

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
    simulator.configure("sim-a", latency_ms=300)
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

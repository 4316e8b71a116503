"""Each popular client on its own default quick-start path, against a live Switchyard.

The simulator writes deterministic text; where a client needs a tool call or a JSON document
first, the test scripts the simulated model's turns (``simulator.configure(..., script=...)``), as
a real model would answer them. Every scenario runs the client's own code, unmodified, in a process
of its own (tests/clients/conftest.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.clients.conftest import CHAT_MODEL, Gateway, needs_responses

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

WEATHER_THEN_ANSWER = [
    {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
    {"content": "It is 12 C and raining in Oslo."},
]


def script(simulator: Any, *turns: dict[str, Any]) -> None:
    simulator.configure(CHAT_MODEL, script=list(turns))


# --- openai-python ---------------------------------------------------------------------------------


def test_openai_python_chat_stream_and_embeddings(gateway: Gateway) -> None:
    chat = gateway.python("openai_python.py", "chat")
    streamed = gateway.python("openai_python.py", "stream")
    vectors = gateway.python("openai_python.py", "embeddings")
    assert chat["text"] and chat["usage"] > 0
    assert streamed["text"] == chat["text"]
    assert vectors["dimensions"] > 0


def test_openai_python_tool_loop_sends_the_sdk_message_back(gateway: Gateway, simulator: Any) -> None:
    script(simulator, *WEATHER_THEN_ANSWER)
    seen = gateway.python("openai_python.py", "tools")
    assert seen == {"tool": "get_weather", "finish_reason": "tool_calls", "text": "It is 12 C and raining in Oslo."}


def test_openai_python_parse_returns_the_pydantic_object(gateway: Gateway, simulator: Any) -> None:
    event = {"name": "Science fair", "date": "Friday", "participants": ["Alice", "Bob"]}
    script(simulator, {"content": json.dumps(event)})
    assert gateway.python("openai_python.py", "parse") == {"parsed": event}


def test_openai_python_parse_fits_the_schema_without_a_script(gateway: Gateway) -> None:
    seen = gateway.python("openai_python.py", "parse_unscripted")
    assert seen == {"parsed": {"name": "simulated", "venue": {"city": "simulated"}, "guests": 1}}


def test_openai_python_a_lost_response_chain_is_openais_previous_response_not_found(gateway: Gateway) -> None:
    needs_responses(gateway)
    seen = gateway.python("openai_python.py", "responses_lost_chain")
    assert seen == {
        "error": "BadRequestError",
        "status": 400,
        "code": "previous_response_not_found",
        "param": "previous_response_id",
    }


def test_openai_python_responses_plain_stream_tools_and_background(
    gateway: Gateway, simulator: Any, worker: Any
) -> None:
    needs_responses(gateway)
    plain = gateway.python("openai_python.py", "responses")
    assert plain["status"] == "completed" and plain["text"]
    streamed = gateway.python("openai_python.py", "responses_stream")
    assert streamed["types"][0] == "response.created" and streamed["types"][-1] == "response.completed"
    assert streamed["text"]
    background = gateway.python("openai_python.py", "responses_background")
    assert background["first_status"] == "queued" and background["status"] == "completed" and background["text"]
    script(simulator, *WEATHER_THEN_ANSWER)
    tools = gateway.python("openai_python.py", "responses_tools")
    assert tools == {"tool": "get_weather", "text": "It is 12 C and raining in Oslo."}


# --- agents, frameworks ----------------------------------------------------------------------------


def test_openai_agents_sdk_runs_an_agent_with_one_tool(gateway: Gateway, simulator: Any) -> None:
    needs_responses(gateway)
    script(simulator, *WEATHER_THEN_ANSWER)
    seen = gateway.python("openai_agents_client.py", "agent")
    assert seen == {"text": "It is 12 C and raining in Oslo.", "tool_calls": ["Oslo"]}


def test_langchain_chat_openai_invoke_stream_tools_and_structured_output(gateway: Gateway, simulator: Any) -> None:
    invoked = gateway.python("langchain_openai_client.py", "invoke")
    streamed = gateway.python("langchain_openai_client.py", "stream")
    assert invoked["text"] and invoked["usage"] > 0
    assert streamed["text"] == invoked["text"] and streamed["chunks"] > 1
    script(simulator, *WEATHER_THEN_ANSWER)
    assert gateway.python("langchain_openai_client.py", "tools") == {
        "tool": "get_weather",
        "text": "It is 12 C and raining in Oslo.",
    }
    joke = {"setup": "Why did the cat sit on the computer?", "punchline": "To keep an eye on the mouse."}
    script(simulator, {"content": json.dumps(joke)})
    assert gateway.python("langchain_openai_client.py", "structured") == {"parsed": joke}


def test_langchain_openai_embeddings_defaults_send_token_arrays(gateway: Gateway) -> None:
    seen = gateway.python("langchain_openai_client.py", "embeddings")
    assert seen["count"] == 2 and seen["dimensions"] > 0


def test_langchain_openai_embeddings_of_a_thousand_chunks_go_up_in_one_request(gateway: Gateway) -> None:
    assert gateway.python("langchain_openai_client.py", "embeddings_batch") == {"count": 1000}


def test_litellm_as_a_client(gateway: Gateway) -> None:
    whole = gateway.python("litellm_client.py", "completion")
    streamed = gateway.python("litellm_client.py", "stream")
    vectors = gateway.python("litellm_client.py", "embedding")
    assert whole["text"] and whole["usage"] > 0 and streamed["text"] == whole["text"]
    assert vectors["dimensions"] > 0


def test_pydantic_ai_agent_calls_its_tool(gateway: Gateway, simulator: Any) -> None:
    script(simulator, *WEATHER_THEN_ANSWER)
    seen = gateway.python("pydantic_ai_client.py", "agent")
    assert seen == {"text": "It is 12 C and raining in Oslo.", "tool_calls": ["Oslo"]}


def test_llama_index_openai_like_defaults_use_legacy_completions(gateway: Gateway) -> None:
    whole = gateway.llamaindex("complete")
    streamed = gateway.llamaindex("stream_complete")
    assert whole["text"] and streamed["text"] == whole["text"]


# --- JavaScript ------------------------------------------------------------------------------------


def test_openai_node_chat_stream_and_embeddings(gateway: Gateway) -> None:
    chat = gateway.node("openai_node.mjs", "chat")
    streamed = gateway.node("openai_node.mjs", "stream")
    vectors = gateway.node("openai_node.mjs", "embeddings")
    assert chat["text"] and chat["usage"] > 0 and streamed["text"] == chat["text"]
    assert vectors["dimensions"] > 0


def test_openai_node_responses(gateway: Gateway) -> None:
    needs_responses(gateway)
    seen = gateway.node("openai_node.mjs", "responses")
    assert seen["status"] == "completed" and seen["text"]


def test_vercel_ai_sdk_chat_model(gateway: Gateway) -> None:
    assert gateway.node("ai_sdk.mjs", "chat")["text"]


def test_vercel_ai_sdk_default_openai_model_generates_and_streams(gateway: Gateway) -> None:
    needs_responses(gateway)
    whole = gateway.node("ai_sdk.mjs", "generate")
    streamed = gateway.node("ai_sdk.mjs", "stream")
    assert whole["text"] and whole["usage"] > 0 and streamed["text"] == whole["text"]

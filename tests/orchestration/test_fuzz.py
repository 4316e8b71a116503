"""Property-based fuzzing of ``/v1/chat/completions`` and ``/v1/embeddings``: whatever a client
sends, the answer is never a 5xx, and every refusal is in the one error shape.

Bodies are built from the fields the endpoints know, each given either a plausible value or
any JSON at all, plus unknown fields and raw bytes; valid ones really reach the simulator.
"""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import AsyncClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from orchestration.validation import CHAT_FIELDS, CHAT_UNSUPPORTED, EMBEDDING_FIELDS, TEXT_COMPLETION_FIELDS
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    make_key,
    post_json,
    sim_models,
)

pytestmark = pytest.mark.django_db(transaction=True)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
any_json = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def either(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(plausible, plausible, any_json)


message = st.fixed_dictionaries(
    {"role": either(st.sampled_from(["system", "developer", "user", "assistant", "tool", "robot"]))},
    optional={
        "content": either(
            st.text(max_size=30) | st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text()}))
        ),
        "tool_call_id": either(st.text(min_size=1, max_size=8)),
        "tool_calls": either(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "id": st.text(min_size=1, max_size=5),
                        "type": st.just("function"),
                        "function": st.fixed_dictionaries(
                            {"name": st.text(min_size=1, max_size=5), "arguments": st.text()}
                        ),
                    }
                ),
                max_size=2,
            )
        ),
        "name": either(st.text(max_size=5)),
    },
)
tool = st.fixed_dictionaries(
    {
        "type": either(st.just("function")),
        "function": either(
            st.fixed_dictionaries(
                {"name": st.text(min_size=1, max_size=8)},
                optional={"description": st.text(max_size=10), "parameters": st.just({"type": "object"})},
            )
        ),
    }
)
CHAT_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["gpt-sim", "gpt-sim-mini", "no-such-model", ""]),
    "messages": st.lists(message, max_size=3),
    "temperature": st.floats(min_value=-1, max_value=3),
    "top_p": st.floats(min_value=-0.5, max_value=1.5),
    "max_tokens": st.integers(min_value=-2, max_value=40),
    "max_completion_tokens": st.integers(min_value=-2, max_value=40),
    "n": st.integers(min_value=0, max_value=3),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "stop": st.text(max_size=4) | st.lists(st.text(max_size=4), max_size=5),
    "seed": st.integers(),
    "user": st.text(max_size=8),
    "presence_penalty": st.floats(min_value=-3, max_value=3),
    "frequency_penalty": st.floats(min_value=-3, max_value=3),
    "tools": st.lists(tool, max_size=2),
    "tool_choice": st.sampled_from(["none", "auto", "required", "sometimes"])
    | st.just({"type": "function", "function": {"name": "f"}}),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}, {"type": "xml"}])
    | st.just({"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}),
    "logprobs": st.booleans(),
    "top_logprobs": st.integers(min_value=-1, max_value=30),
    "prompt": st.fixed_dictionaries({"name": st.text(max_size=6)}, optional={"variables": st.just({"a": "b"})}),
}
UNKNOWN_FIELD = st.text(min_size=1, max_size=10).filter(lambda name: name not in CHAT_FIELDS | CHAT_UNSUPPORTED)


valid_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant"]), "content": st.text(max_size=30)}
)
VALID_CHAT: dict[str, st.SearchStrategy[Any]] = {
    "temperature": st.floats(min_value=0, max_value=2),
    "top_p": st.floats(min_value=0, max_value=1),
    "max_tokens": st.integers(min_value=1, max_value=20),
    "max_completion_tokens": st.integers(min_value=1, max_value=20),
    "n": st.just(1),
    "stop": st.text(min_size=1, max_size=4) | st.lists(st.text(min_size=1, max_size=4), max_size=4),
    "seed": st.integers(min_value=-(2**63), max_value=2**63),
    "user": st.text(max_size=8),
    "presence_penalty": st.floats(min_value=-2, max_value=2),
    "frequency_penalty": st.floats(min_value=-2, max_value=2),
    "tools": st.lists(
        st.builds(lambda name: {"type": "function", "function": {"name": name}}, st.text(min_size=1, max_size=8)),
        max_size=2,
    ),
    "tool_choice": st.sampled_from(["none", "auto"]),
    "parallel_tool_calls": st.booleans(),
    "response_format": st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
    "logprobs": st.just(False),
    "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
    "store": st.booleans(),
}


@st.composite
def valid_chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["gpt-sim", "gpt-sim-mini"])),
        "messages": draw(st.lists(valid_message, min_size=1, max_size=3)),
        "max_tokens": draw(st.integers(min_value=1, max_value=20)),
    }
    for name in draw(st.lists(st.sampled_from(sorted(VALID_CHAT)), max_size=6, unique=True)):
        body[name] = draw(VALID_CHAT[name])
    if draw(st.booleans()):
        body["stream"] = True
        body["stream_options"] = {"include_usage": draw(st.booleans())}
    return body


@st.composite
def chat_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Half valid requests (they reach the simulator), half a valid one with one thing broken."""
    body = draw(valid_chat_bodies())
    if draw(st.booleans()):
        return body
    mutation = draw(st.sampled_from(["plausible", "any", "unknown", "drop"]))
    if mutation == "plausible":
        name = draw(st.sampled_from(sorted(CHAT_VALUES)))
        body[name] = draw(CHAT_VALUES[name])
    elif mutation == "any":
        body[draw(st.sampled_from(sorted(CHAT_FIELDS | CHAT_UNSUPPORTED)))] = draw(any_json)
    elif mutation == "unknown":
        body[draw(UNKNOWN_FIELD)] = draw(any_json)
    else:
        body.pop(draw(st.sampled_from(["model", "messages"])))
    return body


EMBEDDING_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["embed-sim", "gpt-sim", "nope"]),
    "input": st.text(max_size=20) | st.lists(st.text(max_size=20), max_size=4) | st.lists(st.integers(), max_size=3),
    "encoding_format": st.sampled_from(["float", "base64", "hex"]),
    "dimensions": st.integers(min_value=-1, max_value=300),
    "user": st.text(max_size=5),
}


@st.composite
def embedding_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Half valid requests, half a valid one with one field replaced or added."""
    body: dict[str, Any] = {
        "model": "embed-sim",
        "input": draw(st.text(min_size=1, max_size=20) | st.lists(st.text(min_size=1, max_size=20), min_size=1)),
    }
    if draw(st.booleans()):
        body["encoding_format"] = draw(st.sampled_from(["float", "base64"]))
    if draw(st.booleans()):
        return body
    name = draw(st.sampled_from(sorted(EMBEDDING_FIELDS)) | UNKNOWN_FIELD)
    body[name] = draw(EMBEDDING_VALUES[name] if name in EMBEDDING_VALUES and draw(st.booleans()) else any_json)
    return body


TEXT_COMPLETION_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["gpt-sim", "embed-sim", "nope", ""]),
    "prompt": st.text(max_size=20) | st.lists(st.text(max_size=10), max_size=20) | st.lists(st.integers(), max_size=3),
    "max_tokens": st.integers(min_value=-2, max_value=40),
    "stop": st.text(max_size=4) | st.lists(st.text(max_size=4), max_size=5),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "echo": st.booleans(),
    "suffix": st.none() | st.text(max_size=4),
    "n": st.integers(min_value=0, max_value=3),
    "best_of": st.integers(min_value=0, max_value=3),
    "logprobs": st.none() | st.integers(min_value=-1, max_value=6),
    "temperature": st.floats(min_value=-1, max_value=3),
}


@st.composite
def text_completion_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Half valid legacy completions (one prompt or several, whole or streamed), half with one field broken."""
    prompt = draw(st.text(min_size=1, max_size=20) | st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=3))
    body: dict[str, Any] = {"model": "gpt-sim", "prompt": prompt, "max_tokens": draw(st.integers(1, 20))}
    if draw(st.booleans()):
        body["stream"] = True
    if draw(st.booleans()):
        return body
    name = draw(st.sampled_from(sorted(TEXT_COMPLETION_FIELDS)) | UNKNOWN_FIELD)
    use_plausible = name in TEXT_COMPLETION_VALUES and draw(st.booleans())
    body[name] = draw(TEXT_COMPLETION_VALUES[name] if use_plausible else any_json)
    return body


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


# One client for every example: a new one would load the middleware (and scan static files) again.
CLIENT = AsyncClient()


async def exchange(path: str, body: Any, secret: str) -> tuple[int, bytes]:
    response = await post_json(CLIENT, path, body, secret)
    if response.streaming:
        return response.status_code, b"".join([part async for part in response.streaming_content])
    return response.status_code, response.content


def assert_no_server_error(status: int, content: bytes) -> None:
    event(f"status {status}")  # pytest --hypothesis-show-statistics shows how many got through
    assert status < 500, (status, content[:500])
    if status >= 400:
        error = json.loads(content)["error"]
        assert error["code"] and error["message"] and error["type"], error
    elif content.startswith(b"data: "):
        assert content.endswith(b"data: [DONE]\n\n"), content[-200:]
        assert b'"error"' not in content, content[-500:]
    else:
        assert json.loads(content)["object"] in ("chat.completion", "text_completion", "list"), content[:200]


@pytest.fixture
def secret(sim_models, make_key) -> str:  # type: ignore[no-untyped-def]
    return make_key()  # type: ignore[no-any-return]


@FUZZ
@given(body=chat_bodies())
def test_chat_completions_never_fail_on_client_input(secret: str, loop: asyncio.AbstractEventLoop, body: Any) -> None:
    assert_no_server_error(*loop.run_until_complete(exchange("/v1/chat/completions", body, secret)))


@FUZZ
@given(body=embedding_bodies())
def test_embeddings_never_fail_on_client_input(secret: str, loop: asyncio.AbstractEventLoop, body: Any) -> None:
    assert_no_server_error(*loop.run_until_complete(exchange("/v1/embeddings", body, secret)))


@FUZZ
@given(body=text_completion_bodies())
def test_legacy_completions_never_fail_on_client_input(secret: str, loop: asyncio.AbstractEventLoop, body: Any) -> None:
    assert_no_server_error(*loop.run_until_complete(exchange("/v1/completions", body, secret)))


@settings(FUZZ, max_examples=60)
@given(body=st.binary(max_size=200) | st.text(max_size=100).map(str.encode), chat=st.booleans())
def test_raw_bytes_never_fail(secret: str, loop: asyncio.AbstractEventLoop, body: bytes, chat: bool) -> None:
    url = "/v1/chat/completions" if chat else "/v1/embeddings"
    status, content = loop.run_until_complete(exchange(url, body or b" ", secret))
    assert status == 400, (status, content)
    assert json.loads(content)["error"]["code"] in ("invalid_json", "invalid_type", "missing_required_parameter")

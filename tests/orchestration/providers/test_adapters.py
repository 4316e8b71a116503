"""Every wire format's adapter against the running simulator: replies, streams, tools, errors,
time limits and early close. Parametrised over OpenAI, Anthropic and Gemini."""

from __future__ import annotations

import asyncio
import gc
import json
import time
import uuid
from typing import Any

import pytest

from orchestration.providers.base import CallTimeout
from orchestration.providers.transport import HttpProvider
from orchestration.types import Chunk, EmbeddingRequest, ErrorKind, Message, ProviderError, ToolCall
from tests.conftest import Simulator
from tests.orchestration.providers.conftest import MODEL, QUESTION, ROOMY, AdapterFactory, ask
from tests.support import free_port

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_CALL = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}


async def collect(adapter: HttpProvider, request: Any, limits: CallTimeout = ROOMY) -> list[Chunk]:
    return [chunk async for chunk in adapter.stream(request, timeout=limits)]


async def collect_until_error(adapter: HttpProvider, request: Any, limits: CallTimeout) -> tuple[list[Chunk], Any]:
    chunks: list[Chunk] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in adapter.stream(request, timeout=limits):
            chunks.append(chunk)
    return chunks, caught.value


def assembled_calls(chunks: list[Chunk]) -> list[ToolCall]:
    calls: dict[int, ToolCall] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            call = calls.setdefault(delta.index, ToolCall(id="", name="", arguments=""))
            call.id = delta.id or call.id
            call.name = delta.name or call.name
            call.arguments += delta.arguments
    return [calls[index] for index in sorted(calls)]


# Replies --------------------------------------------------------------------------------------


async def test_complete_returns_the_deterministic_reply_with_its_usage(adapter: HttpProvider) -> None:
    first = await adapter.complete(ask(), timeout=ROOMY)
    second = await adapter.complete(ask(), timeout=ROOMY)

    assert first.content and first.content == second.content
    assert first.finish_reason == "stop"
    assert first.tool_calls == []
    assert first.usage.input_tokens > 0
    assert first.usage.output_tokens == len(first.content.split())


async def test_streamed_deltas_join_to_the_complete_text_with_finish_and_usage(adapter: HttpProvider) -> None:
    whole = await adapter.complete(ask(), timeout=ROOMY)

    chunks = await collect(adapter, ask())

    assert "".join(chunk.delta for chunk in chunks) == whole.content
    assert len(chunks) > 3
    assert [chunk.finish_reason for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == whole.usage


async def test_a_system_prompt_changes_the_deterministic_reply(adapter: HttpProvider) -> None:
    plain = await adapter.complete(ask(), timeout=ROOMY)
    request = ask()
    request.messages.insert(0, Message("system", "You answer like a pirate."))

    with_system = await adapter.complete(request, timeout=ROOMY)

    assert with_system.content != plain.content
    assert with_system.usage.input_tokens > plain.usage.input_tokens


async def test_max_tokens_cuts_the_reply_with_finish_length(adapter: HttpProvider) -> None:
    whole = await adapter.complete(ask(max_tokens=3), timeout=ROOMY)
    chunks = await collect(adapter, ask(max_tokens=3))

    assert whole.finish_reason == "length"
    assert whole.usage.output_tokens == 3
    assert chunks[-1].finish_reason == "length"
    assert "".join(chunk.delta for chunk in chunks) == whole.content


async def test_a_stop_sequence_ends_the_reply_before_it(adapter: HttpProvider) -> None:
    full = await adapter.complete(ask(), timeout=ROOMY)
    assert full.content is not None
    stop = full.content.split()[4]

    cut = await adapter.complete(ask(stop=[stop]), timeout=ROOMY)

    assert cut.content is not None and full.content.startswith(cut.content)
    assert stop not in cut.content
    assert cut.finish_reason == "stop"


# Tools ----------------------------------------------------------------------------------------


async def test_a_tool_call_comes_back_whole(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, script=[WEATHER_CALL])

    reply = await adapter.complete(ask("Weather in Paris?", tools=[WEATHER_TOOL]), timeout=ROOMY)

    assert reply.finish_reason == "tool_calls"
    assert [(call.name, json.loads(call.arguments)) for call in reply.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert reply.tool_calls[0].id


async def test_streamed_tool_call_deltas_assemble_into_the_call(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, script=[WEATHER_CALL])

    chunks = await collect(adapter, ask("Weather in Paris?", tools=[WEATHER_TOOL], tool_choice="required"))

    calls = assembled_calls(chunks)
    assert [(call.name, json.loads(call.arguments)) for call in calls] == [("get_weather", {"city": "Paris"})]
    assert calls[0].id
    assert chunks[-1].finish_reason == "tool_calls"


async def test_a_tool_result_is_sent_back_and_answered(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, script=[WEATHER_CALL, {"content": "It is sunny in Paris."}])
    first = await adapter.complete(ask("Weather in Paris?", tools=[WEATHER_TOOL]), timeout=ROOMY)
    call = first.tool_calls[0]
    follow_up = ask("Weather in Paris?", tools=[WEATHER_TOOL])
    follow_up.messages += [
        Message("assistant", None, tool_calls=[call]),
        Message("tool", json.dumps({"sky": "sunny"}), tool_call_id=call.id),
    ]

    second = await adapter.complete(follow_up, timeout=ROOMY)

    assert second.content == "It is sunny in Paris."
    assert second.finish_reason == "stop"


@pytest.mark.parametrize("kind", ["openai", "gemini"])
async def test_a_json_response_format_gives_a_json_object(kind: str, make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(kind)

    reply = await adapter.complete(ask(response_format={"type": "json_object"}), timeout=ROOMY)

    assert isinstance(json.loads(reply.content or ""), dict)


# Errors ---------------------------------------------------------------------------------------

ERRORS = [
    ({"error_status": 429, "retry_after": 2}, ErrorKind.RATE_LIMITED),
    ({"error_status": 401}, ErrorKind.AUTH),
    ({"error_status": 403}, ErrorKind.AUTH),
    ({"error_status": 400}, ErrorKind.BAD_REQUEST),
    ({"error_status": 404}, ErrorKind.NOT_FOUND),
    ({"error_status": 500}, ErrorKind.SERVER),
    ({"error_status": 503}, ErrorKind.SERVER),
    ({"error_kind": "context_window"}, ErrorKind.CONTEXT_WINDOW),
    ({"error_kind": "content_policy"}, ErrorKind.CONTENT_POLICY),
]


@pytest.mark.parametrize(("behaviour", "kind"), ERRORS, ids=[kind.value + str(b) for b, kind in ERRORS])
async def test_each_failure_becomes_its_error_kind(
    adapter: HttpProvider, simulator: Simulator, behaviour: dict[str, Any], kind: ErrorKind
) -> None:
    simulator.configure(MODEL, **behaviour)

    with pytest.raises(ProviderError) as whole:
        await adapter.complete(ask(), timeout=ROOMY)
    chunks, streamed = await collect_until_error(adapter, ask(), ROOMY)

    assert (whole.value.kind, streamed.kind) == (kind, kind)
    assert chunks == []
    assert whole.value.provider == adapter.config.name
    if kind is ErrorKind.RATE_LIMITED:
        assert whole.value.retry_after == streamed.retry_after == 2.0
        assert whole.value.retryable


async def test_openai_retry_after_ms_gives_the_wait(make_adapter: AdapterFactory, simulator: Simulator) -> None:
    simulator.configure(MODEL, error_status=429, retry_after_ms=1500)

    with pytest.raises(ProviderError) as caught:
        await make_adapter("openai").complete(ask(), timeout=ROOMY)

    assert (caught.value.kind, caught.value.retry_after) == (ErrorKind.RATE_LIMITED, 1.5)


async def test_anthropic_overloaded_529_is_a_server_error(make_adapter: AdapterFactory, simulator: Simulator) -> None:
    simulator.configure(MODEL, error_status=529)

    with pytest.raises(ProviderError) as caught:
        await make_adapter("anthropic").complete(ask(), timeout=ROOMY)

    assert (caught.value.kind, caught.value.status, caught.value.retryable) == (ErrorKind.SERVER, 529, True)


async def test_anthropic_has_no_embeddings(make_adapter: AdapterFactory) -> None:
    with pytest.raises(ProviderError) as caught:
        await make_adapter("anthropic").embed(EmbeddingRequest(model=MODEL, inputs=["a"]), timeout=ROOMY)

    assert caught.value.kind is ErrorKind.BAD_REQUEST


async def test_a_truncated_reply_is_malformed(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, malformed_after_tokens=0)

    with pytest.raises(ProviderError) as caught:
        await adapter.complete(ask(), timeout=ROOMY)

    assert caught.value.kind is ErrorKind.MALFORMED


async def test_a_broken_chunk_is_malformed_after_the_tokens_before_it(
    adapter: HttpProvider, simulator: Simulator
) -> None:
    simulator.configure(MODEL, malformed_after_tokens=3)

    chunks, error = await collect_until_error(adapter, ask(), ROOMY)

    assert error.kind is ErrorKind.MALFORMED
    assert len([chunk for chunk in chunks if chunk.delta]) == 3


async def test_a_dropped_stream_is_a_connection_error_after_its_tokens(
    adapter: HttpProvider, simulator: Simulator
) -> None:
    simulator.configure(MODEL, drop_after_tokens=3)

    chunks, error = await collect_until_error(adapter, ask(), ROOMY)

    assert error.kind is ErrorKind.CONNECTION
    assert len([chunk for chunk in chunks if chunk.delta]) == 3


async def test_a_dropped_reply_is_a_connection_error(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, drop_after_tokens=0)

    with pytest.raises(ProviderError) as caught:
        await adapter.complete(ask(), timeout=ROOMY)

    assert caught.value.kind is ErrorKind.CONNECTION


async def test_a_refused_connection_is_a_connection_error(make_adapter: AdapterFactory) -> None:
    adapter = make_adapter("openai", url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(ProviderError) as caught:
        await adapter.complete(ask(), timeout=ROOMY)

    assert caught.value.kind is ErrorKind.CONNECTION


# Time limits and early close -------------------------------------------------------------------


async def test_a_hanging_model_fails_at_the_total_limit(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, hang=True)
    limit = CallTimeout(total=0.4)

    started = time.monotonic()
    with pytest.raises(ProviderError) as whole:
        await adapter.complete(ask(), timeout=limit)
    _, streamed = await collect_until_error(adapter, ask(), limit)
    elapsed = time.monotonic() - started

    assert (whole.value.kind, streamed.kind) == (ErrorKind.TIMEOUT, ErrorKind.TIMEOUT)
    assert "total" in whole.value.message
    assert 0.8 <= elapsed < 2.0


async def test_a_slow_first_token_fails_at_the_first_token_limit(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, ttft_ms=3000)

    started = time.monotonic()
    chunks, error = await collect_until_error(adapter, ask(), CallTimeout(total=10, first_token=0.3))

    assert error.kind is ErrorKind.TIMEOUT
    assert "first-token" in error.message
    assert chunks == []
    assert time.monotonic() - started < 1.5


async def test_a_stalled_stream_fails_at_the_idle_limit(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, tokens_per_s=2)  # half a second between tokens

    chunks, error = await collect_until_error(adapter, ask(), CallTimeout(total=10, idle=0.2))

    assert error.kind is ErrorKind.TIMEOUT
    assert "idle" in error.message
    assert len([chunk for chunk in chunks if chunk.delta]) == 1


async def test_a_stream_longer_than_its_idle_limit_runs_on_while_its_gaps_are_shorter(
    adapter: HttpProvider, simulator: Simulator
) -> None:
    """One timer serves every read of a stream: armed for the first read's deadline, it fires
    early for the later ones and moves on to theirs, without failing them."""
    simulator.configure(MODEL, tokens_per_s=20)  # 50 ms gaps; the reply lasts well past 0.3 s

    started = time.monotonic()
    chunks = [chunk async for chunk in adapter.stream(ask(max_tokens=20), timeout=CallTimeout(total=10, idle=0.3))]

    assert time.monotonic() - started > 0.6
    assert chunks[-1].finish_reason and len([chunk for chunk in chunks if chunk.delta]) > 10


async def test_a_read_whose_bytes_come_as_its_deadline_passes_fails_at_that_limit(
    adapter: HttpProvider, simulator: Simulator
) -> None:
    """A loop running late wakes with the first token's bytes in and the first-token deadline
    passed at once: the timer fails the read then waiting. That read ends at its limit, as when
    the bytes came late: the stream is not left to fail at its next read, at a limit that never
    passed ("idle" with its whole reply already in)."""
    simulator.configure(MODEL, ttft_ms=300)  # headers at once; the first token 0.3 s later
    stalled = asyncio.get_running_loop().call_later(0.15, time.sleep, 0.75)  # the loop blocked past 0.6 s

    chunks, error = await collect_until_error(adapter, ask(max_tokens=5), CallTimeout(total=10, first_token=0.6))
    stalled.cancel()

    assert (error.kind, chunks) == (ErrorKind.TIMEOUT, [])
    assert "first-token" in error.message


async def test_closing_a_stream_early_disconnects_upstream(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, tokens_per_s=20)
    stream = adapter.stream(ask(), timeout=ROOMY)
    read = [await anext(stream), await anext(stream)]

    await stream.aclose()  # type: ignore[attr-defined]

    assert all(chunk.delta for chunk in read)
    assert await eventually(lambda: simulator.stats(MODEL)["disconnects"] == 1)
    assert simulator.stats(MODEL)["completed"] == 0


def _a_body_with(thing: object, text: str, depth: int = 5, listed: bool = False) -> bool:
    """``thing`` holds ``text`` somewhere inside a list, as a wire body holds its messages."""
    if isinstance(thing, str):
        return listed and thing == text
    if depth and isinstance(thing, dict):
        return any(_a_body_with(value, text, depth - 1, listed) for value in list(thing.values()))
    if depth and isinstance(thing, list):
        return any(_a_body_with(item, text, depth - 1, True) for item in list(thing))
    return False


async def test_an_open_stream_keeps_no_copy_of_the_body_it_sent(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, tokens_per_s=20)
    marker = f"Remember {uuid.uuid4().hex}."
    stream = adapter.stream(ask(marker), timeout=ROOMY)
    await anext(stream)
    # The request's messages hold the text. The body made to send them (a dictionary per message)
    # is not needed once sent; kept, it lasted as long as the stream, walked by every collection.
    holders = [thing for thing in gc.get_objects() if type(thing) is dict and _a_body_with(thing, marker)]
    await stream.aclose()  # type: ignore[attr-defined]
    assert holders == []


async def test_a_timed_out_call_disconnects_upstream(adapter: HttpProvider, simulator: Simulator) -> None:
    simulator.configure(MODEL, hang=True)

    with pytest.raises(ProviderError):
        await adapter.complete(ask(), timeout=CallTimeout(total=0.2))

    assert await eventually(lambda: simulator.stats(MODEL)["disconnects"] == 1)


async def eventually(condition: Any, within: float = 3.0) -> bool:
    """Poll another process's state (the simulator's counters) until ``condition`` holds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


# Embeddings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai", "openai-compatible", "simulator", "gemini"])
async def test_embeddings_give_one_vector_per_input_in_order(kind: str, make_adapter: AdapterFactory) -> None:
    adapter = make_adapter(kind)

    many = await adapter.embed(EmbeddingRequest(model="embed-model", inputs=["alpha", "beta", "alpha"]), timeout=ROOMY)
    one = await adapter.embed(EmbeddingRequest(model="embed-model", inputs=["beta"]), timeout=ROOMY)

    assert len(many.vectors) == 3
    assert many.vectors[0] == many.vectors[2] != many.vectors[1]
    assert one.vectors == [many.vectors[1]]
    assert len(set(map(len, many.vectors))) == 1


@pytest.mark.parametrize("kind", ["openai", "gemini"])
async def test_embedding_failures_become_error_kinds(
    kind: str, make_adapter: AdapterFactory, simulator: Simulator
) -> None:
    simulator.configure("embed-model", error_status=503)

    with pytest.raises(ProviderError) as caught:
        await make_adapter(kind).embed(EmbeddingRequest(model="embed-model", inputs=["a", "b"]), timeout=ROOMY)

    assert caught.value.kind is ErrorKind.SERVER


# The other OpenAI-format kinds ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["openai-compatible", "simulator"])
async def test_openai_format_kinds_complete_and_stream_against_the_simulator(
    kind: str, make_adapter: AdapterFactory
) -> None:
    adapter = make_adapter(kind, api_key="")

    whole = await adapter.complete(ask(QUESTION), timeout=ROOMY)
    chunks = await collect(adapter, ask(QUESTION))

    assert "".join(chunk.delta for chunk in chunks) == whole.content
    assert chunks[-1].usage == whole.usage
    assert adapter.simulated is (kind == "simulator")

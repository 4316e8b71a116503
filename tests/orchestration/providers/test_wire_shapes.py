"""Wire shapes the simulator does not produce, replayed by a canned upstream: what each adapter
sends, and how it reads the loose or unusual answers real servers give."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestration.providers.base import CallTimeout
from orchestration.types import ErrorKind, Message, ProviderError, ToolCall
from tests.orchestration.providers.conftest import ROOMY, AdapterFactory, CannedUpstream, ask, sse

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    return sse({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra})


async def stream_all(adapter: Any, request: Any = None, limits: CallTimeout = ROOMY) -> list[Any]:
    return [chunk async for chunk in adapter.stream(request or ask(), timeout=limits)]


# OpenAI and compatible servers ------------------------------------------------------------------


async def test_openai_sends_max_completion_tokens_and_asks_for_stream_usage(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.stream([openai_chunk({"content": "hi"}, "stop"), sse(b"[DONE]")])

    await stream_all(make_adapter("openai", url=canned.url), ask(max_tokens=5, temperature=0))

    body = canned.received[0]
    assert body["max_completion_tokens"] == 5 and "max_tokens" not in body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0
    assert canned.headers[0]["authorization"] == "Bearer test-key"
    assert canned.paths[0] == "/v1/chat/completions"


async def test_a_gzipped_stream_reads_as_a_plain_one(make_adapter: AdapterFactory, canned: CannedUpstream) -> None:
    canned.stream([openai_chunk({"content": "caf\u00e9 "}), openai_chunk({"content": "ok"}, "stop"), sse(b"[DONE]")])
    canned.gzipped = True

    chunks = await stream_all(make_adapter("openai", url=canned.url))

    assert "".join(chunk.delta for chunk in chunks) == "caf\u00e9 ok"
    assert chunks[-1].finish_reason == "stop"


async def test_any_text_a_client_sends_reaches_the_provider(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.reply({"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})
    text = "caf\u00e9 \U0001f600 and a lone \ud800 surrogate"

    await make_adapter("openai", url=canned.url).complete(ask(text), timeout=ROOMY)

    assert canned.received[0]["messages"][0]["content"] == text


async def test_a_compatible_server_gets_max_tokens_and_no_auth_without_a_key(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.reply({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]})

    await make_adapter("openai-compatible", url=canned.url, api_key="").complete(ask(max_tokens=5), timeout=ROOMY)

    assert canned.received[0]["max_tokens"] == 5
    assert "authorization" not in canned.headers[0]


async def test_a_reply_without_usage_or_ids_still_reads(make_adapter: AdapterFactory, canned: CannedUpstream) -> None:
    canned.reply({"choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}]})

    reply = await make_adapter("openai-compatible", url=canned.url).complete(ask(), timeout=ROOMY)

    assert (reply.content, reply.usage.total_tokens, reply.model) == ("hi", 0, "sim-model")
    assert reply.id


async def test_tool_calls_with_object_arguments_and_a_stop_finish_are_tool_calls(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    message = {"content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]}
    canned.reply({"choices": [{"message": message, "finish_reason": "stop"}]})

    reply = await make_adapter("openai-compatible", url=canned.url).complete(ask(tools=[TOOL]), timeout=ROOMY)

    assert reply.finish_reason == "tool_calls"
    assert json.loads(reply.tool_calls[0].arguments) == {"city": "Oslo"}
    assert reply.tool_calls[0].id


async def test_reasoning_is_not_reply_text(make_adapter: AdapterFactory, canned: CannedUpstream) -> None:
    canned.stream(
        [
            openai_chunk({"reasoning_content": "Let me think."}),
            openai_chunk({"content": "Paris."}),
            openai_chunk({}, "stop"),
            sse(b"[DONE]"),
        ]
    )

    chunks = await stream_all(make_adapter("openai-compatible", url=canned.url))

    assert "".join(chunk.delta for chunk in chunks) == "Paris."


async def test_streamed_tool_calls_without_index_fields_assemble(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.stream(
        [
            openai_chunk({"tool_calls": [{"id": "a", "function": {"name": "get_weather", "arguments": '{"ci'}}]}),
            openai_chunk({"tool_calls": [{"function": {"arguments": 'ty": "Oslo"}'}}]}),
            openai_chunk({"tool_calls": [{"id": "b", "function": {"name": "get_time", "arguments": "{}"}}]}),
            openai_chunk({}, "tool_calls"),
            sse(b"[DONE]"),
        ]
    )

    chunks = await stream_all(make_adapter("openai-compatible", url=canned.url))

    calls: dict[int, ToolCall] = {}
    for chunk in chunks:
        for delta in chunk.tool_calls:
            call = calls.setdefault(delta.index, ToolCall(id=delta.id or "", name=delta.name or "", arguments=""))
            call.arguments += delta.arguments
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls.values()] == [
        ("a", "get_weather", {"city": "Oslo"}),
        ("b", "get_time", {}),
    ]


async def test_done_without_a_finish_reason_is_a_stop_only_for_compatible_servers(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.stream([openai_chunk({"content": "hi"}), sse(b"[DONE]")])

    chunks = await stream_all(make_adapter("openai-compatible", url=canned.url))
    with pytest.raises(ProviderError) as strict:
        await stream_all(make_adapter("openai", url=canned.url))

    assert chunks[-1].finish_reason == "stop"
    assert strict.value.kind is ErrorKind.MALFORMED


async def test_the_end_of_a_finished_stream_is_read_so_its_connection_is_reused(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.stream([openai_chunk({"content": "hi"}, "stop"), sse(b"[DONE]")])
    canned.end_delay_s = 0.05
    adapter = make_adapter("openai", url=canned.url)

    for _ in range(3):
        await stream_all(adapter)

    assert len(canned.peers) == 1


async def test_a_stream_that_just_ends_is_malformed(make_adapter: AdapterFactory, canned: CannedUpstream) -> None:
    canned.stream([openai_chunk({"content": "hi"})])

    with pytest.raises(ProviderError) as caught:
        await stream_all(make_adapter("openai-compatible", url=canned.url))

    assert caught.value.kind is ErrorKind.MALFORMED


async def test_an_error_inside_a_stream_becomes_its_kind(make_adapter: AdapterFactory, canned: CannedUpstream) -> None:
    error = {"error": {"message": "The server had an error", "type": "server_error", "code": None}}
    canned.stream([openai_chunk({"content": "hi"}), sse(error)])

    with pytest.raises(ProviderError) as caught:
        await stream_all(make_adapter("openai", url=canned.url))

    assert caught.value.kind is ErrorKind.SERVER


async def test_a_content_filter_stop_before_any_text_is_a_content_policy_error(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.reply({"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]})

    with pytest.raises(ProviderError) as caught:
        await make_adapter("openai", url=canned.url).complete(ask(), timeout=ROOMY)

    assert caught.value.kind is ErrorKind.CONTENT_POLICY


async def test_a_non_json_error_body_still_gives_the_kind(make_adapter: AdapterFactory, canned: CannedUpstream) -> None:
    canned.status, canned.body, canned.content_type = 502, b"<html>Bad gateway</html>", "text/html"

    with pytest.raises(ProviderError) as caught:
        await make_adapter("openai-compatible", url=canned.url).complete(ask(), timeout=ROOMY)

    assert (caught.value.kind, caught.value.status) == (ErrorKind.SERVER, 502)


# Anthropic ------------------------------------------------------------------------------------


def anthropic_message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    usage = {"input_tokens": 5, "output_tokens": 3}
    return {"id": "msg_1", "type": "message", "content": content, "stop_reason": stop_reason, "usage": usage}


async def test_anthropic_request_splits_the_system_prompt_and_groups_tool_results(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.reply(anthropic_message([{"type": "text", "text": "Sunny."}]))
    calls = [ToolCall("toolu_1", "get_weather", '{"city": "Paris"}'), ToolCall("toolu_2", "get_weather", "{}")]
    request = ask("Weather?", tools=[TOOL], tool_choice="required", stop=["END"])
    request.messages = [
        Message("system", "Be brief."),
        *request.messages,
        Message("assistant", "Checking.", tool_calls=calls),
        Message("tool", "sunny", tool_call_id="toolu_1"),
        Message("tool", "cloudy", tool_call_id="toolu_2"),
    ]

    reply = await make_adapter("anthropic", url=canned.url).complete(request, timeout=ROOMY)

    body = canned.received[0]
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 4096
    assert body["stop_sequences"] == ["END"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"] == [{"name": "get_weather", "input_schema": {"type": "object"}}]
    assert [turn["role"] for turn in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert [block["tool_use_id"] for block in body["messages"][2]["content"]] == ["toolu_1", "toolu_2"]
    assert canned.headers[0]["x-api-key"] == "test-key"
    assert canned.headers[0]["anthropic-version"] == "2023-06-01"
    assert canned.paths[0] == "/v1/messages"
    assert (reply.content, reply.usage.input_tokens, reply.usage.output_tokens) == ("Sunny.", 5, 3)


async def test_anthropic_json_schema_asks_for_structured_output(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.reply(anthropic_message([{"type": "text", "text": "{}"}]))
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}

    await make_adapter("anthropic", url=canned.url).complete(
        ask(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}), timeout=ROOMY
    )

    assert canned.received[0]["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


async def test_anthropic_overloaded_inside_a_stream_is_a_server_error(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    canned.stream([sse(start, "message_start"), sse(delta, "content_block_delta"), sse(error, "error")])

    with pytest.raises(ProviderError) as caught:
        await stream_all(make_adapter("anthropic", url=canned.url))

    assert (caught.value.kind, caught.value.status) == (ErrorKind.SERVER, 529)


async def test_anthropic_thinking_is_not_reply_text_and_a_refusal_without_text_is_refused(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    thinking = {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}}
    stop = {"type": "message_delta", "delta": {"stop_reason": "refusal"}, "usage": {"output_tokens": 2}}
    canned.stream([sse(thinking, "content_block_delta"), sse(stop, "message_delta"), sse({"type": "message_stop"})])

    with pytest.raises(ProviderError) as caught:
        await stream_all(make_adapter("anthropic", url=canned.url))

    assert caught.value.kind is ErrorKind.CONTENT_POLICY


# Gemini ---------------------------------------------------------------------------------------


def gemini_reply(parts: list[dict[str, Any]], finish: str = "STOP") -> dict[str, Any]:
    usage = {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 3}
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish}
    return {"candidates": [candidate], "usageMetadata": usage}


async def test_gemini_request_uses_contents_system_instruction_and_the_key_header(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.reply(gemini_reply([{"text": "{}"}]))
    schema = {"type": "object"}
    request = ask(
        tools=[TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=7,
        response_format={"type": "json_schema", "json_schema": {"schema": schema}},
    )
    request.messages.insert(0, Message("system", "Be brief."))

    reply = await make_adapter("gemini", url=canned.url).complete(request, timeout=ROOMY)

    body = canned.received[0]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}]
    assert body["tools"] == [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": schema}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    assert body["generationConfig"] == {
        "maxOutputTokens": 7,
        "responseMimeType": "application/json",
        "responseJsonSchema": schema,
    }
    assert canned.paths[0] == "/v1beta/models/sim-model:generateContent"
    assert canned.headers[0]["x-goog-api-key"] == "test-key"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (4, 5)  # thinking counts as output


async def test_gemini_thought_signatures_survive_the_round_trip(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}, "thoughtSignature": "c2lnbmF0dXJl"}
    canned.reply(gemini_reply([call]))
    adapter = make_adapter("gemini", url=canned.url)
    first = await adapter.complete(ask(tools=[TOOL]), timeout=ROOMY)
    request = ask(tools=[TOOL])
    request.messages += [
        Message("assistant", None, tool_calls=first.tool_calls),
        Message("tool", "sunny", tool_call_id=first.tool_calls[0].id),
    ]

    await adapter.complete(request, timeout=ROOMY)

    model_turn, result_turn = canned.received[1]["contents"][1:]
    assert first.finish_reason == "tool_calls"
    assert model_turn == {"role": "model", "parts": [call]}
    assert result_turn == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}],
    }


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (gemini_reply([], finish="SAFETY"), ErrorKind.CONTENT_POLICY),
        (gemini_reply([], finish="MALFORMED_FUNCTION_CALL"), ErrorKind.MALFORMED),
        ({"usageMetadata": {}}, ErrorKind.MALFORMED),
    ],
)
async def test_gemini_answers_without_a_usable_candidate(
    make_adapter: AdapterFactory, canned: CannedUpstream, payload: dict[str, Any], kind: ErrorKind
) -> None:
    canned.reply(payload)

    with pytest.raises(ProviderError) as caught:
        await make_adapter("gemini", url=canned.url).complete(ask(), timeout=ROOMY)

    assert caught.value.kind is kind


async def test_gemini_invalid_api_key_is_an_auth_error(make_adapter: AdapterFactory, canned: CannedUpstream) -> None:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    message = "API key not valid. Please pass a valid API key."
    error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT", "details": details}
    canned.reply({"error": error}, status=400)

    with pytest.raises(ProviderError) as caught:
        await make_adapter("gemini", url=canned.url).complete(ask(), timeout=ROOMY)

    assert caught.value.kind is ErrorKind.AUTH


async def test_gemini_error_inside_a_stream_becomes_its_kind(
    make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    canned.stream([sse(gemini_reply([{"text": "Hi"}], finish="")), sse(error)])

    with pytest.raises(ProviderError) as caught:
        await stream_all(make_adapter("gemini", url=canned.url))

    assert caught.value.kind is ErrorKind.SERVER
    assert canned.paths[0] == "/v1beta/models/sim-model:streamGenerateContent?alt=sse"


@pytest.mark.parametrize("kind", ["anthropic", "gemini"])
@pytest.mark.parametrize(
    "options",
    [
        {"tools": [{"type": "function", "function": {"description": "no name"}}]},
        {"tools": ["get_weather"]},
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": "get_weather"}},
        {"response_format": {"type": "json_schema", "json_schema": "not an object"}},
    ],
)
async def test_a_request_that_cannot_be_translated_is_a_bad_request(
    kind: str, options: dict[str, Any], make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    adapter = make_adapter(kind, url=canned.url)

    with pytest.raises(ProviderError) as whole:
        await adapter.complete(ask(**options), timeout=ROOMY)
    with pytest.raises(ProviderError) as streamed:
        await stream_all(adapter, ask(**options))

    assert whole.value.kind is streamed.value.kind is ErrorKind.BAD_REQUEST
    assert canned.received == []


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("openai", {"choices": [{"message": ["not", "an", "object"]}]}),
        ("openai", {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": "many"}}),
        ("anthropic", {"content": [{"type": "text", "text": 5}], "stop_reason": "end_turn"}),
        ("gemini", {"candidates": [{"content": ["not", "an", "object"]}]}),
    ],
)
async def test_an_answer_of_an_unexpected_shape_is_malformed(
    kind: str, payload: dict[str, Any], make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.reply(payload)

    with pytest.raises(ProviderError) as caught:
        await make_adapter(kind, url=canned.url).complete(ask(), timeout=ROOMY)

    assert caught.value.kind is ErrorKind.MALFORMED


# A well-formed end of stream after the odd chunk: only the odd chunk can make the call fail.
FINISHING_FRAMES = {
    "openai": openai_chunk({}, "stop") + sse(b"[DONE]"),
    "anthropic": sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}) + sse({"type": "message_stop"}),
    "gemini": sse(gemini_reply([{"text": "ok"}])),
}


@pytest.mark.parametrize(
    ("kind", "frame"),
    [
        ("openai", sse({"choices": [{"delta": "not an object"}]})),
        ("anthropic", sse({"type": "content_block_start", "index": 0, "content_block": "text"})),
        ("gemini", sse({"candidates": ["not an object"]})),
    ],
)
async def test_a_chunk_of_an_unexpected_shape_is_malformed(
    kind: str, frame: bytes, make_adapter: AdapterFactory, canned: CannedUpstream
) -> None:
    canned.stream([frame, FINISHING_FRAMES[kind]])

    with pytest.raises(ProviderError) as caught:
        await stream_all(make_adapter(kind, url=canned.url))

    assert caught.value.kind is ErrorKind.MALFORMED

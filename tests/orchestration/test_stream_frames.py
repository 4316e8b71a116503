"""The bytes of a ``/v1`` stream: the pre-rendered text frame is exactly what encoding the chunk writes."""

from __future__ import annotations

import json

import pytest

from orchestration.apis import _ChunkWriter
from orchestration.sse import sse_event
from orchestration.types import Chunk, ToolCallDelta, Usage


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("text", [" zq", 'he said "hi"\n', "ünïcode ✓ \u2028 \\ end", "</script>"])
def test_a_text_frame_is_byte_for_byte_the_encoded_chunk(text: str, include_usage: bool) -> None:
    writer = _ChunkWriter(model="m-1", include_usage=include_usage)

    frame = writer.frames(Chunk(delta=text))

    expected = writer._chunk([writer._choice({"content": text})])
    assert frame == sse_event(expected)
    assert json.loads(frame.removeprefix(b"data: ").removesuffix(b"\n\n"))["choices"][0]["delta"]["content"] == text


def test_chunks_that_are_not_plain_text_are_encoded_event_by_event() -> None:
    writer = _ChunkWriter(model="m-1", include_usage=True)
    call = ToolCallDelta(index=0, id="call_1", name="lookup", arguments='{"q":')

    frames = writer.frames(Chunk(delta="", tool_calls=[call], finish_reason="tool_calls", usage=Usage(3, 4)))

    events = [json.loads(line.removeprefix(b"data: ")) for line in frames.split(b"\n\n") if line]
    assert [event["choices"][0]["finish_reason"] for event in events] == [None, "tool_calls"]
    assert events[0]["choices"][0]["delta"]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q":'}
    assert writer.frames(Chunk()) == b""

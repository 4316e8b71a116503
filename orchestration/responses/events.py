"""Normalized chunks in, the Responses API's semantic stream events out.

The order is OpenAI's: ``response.created`` and ``response.in_progress``; per output item
``response.output_item.added``, then for a message ``response.content_part.added``, its
``response.output_text.delta``s, ``response.output_text.done`` and ``response.content_part.done``,
or for a function call its ``response.function_call_arguments.delta``s and ``.done``; then
``response.output_item.done``; last ``response.completed`` (``.incomplete`` when cut short) or
``response.failed``. Every event carries ``sequence_number``, counted from 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestration.responses.objects import ResponseDraft, function_call_item, message_item
from orchestration.responses.wire import item_id
from orchestration.types import Chunk, ToolCallDelta, Usage

Event = dict[str, Any]


@dataclass(slots=True)
class _OpenItem:
    output_index: int
    item_id: str
    kind: str  # "message" | "function_call"
    text: str = ""
    call_id: str = ""
    name: str = ""


class ResponseEventWriter:
    def __init__(self, draft: ResponseDraft, *, next_sequence: int = 0) -> None:
        self.draft = draft
        self.sequence = next_sequence
        self._open: _OpenItem | None = None
        self._calls: dict[int, _OpenItem] = {}  # chat tool-call index -> its output item

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def response_event(self, kind: str) -> Event:
        return self._event(kind, response=self.draft.body())

    def opening(self) -> list[Event]:
        return [self.response_event("response.created"), self.response_event("response.in_progress")]

    def chunk(self, chunk: Chunk) -> list[Event]:
        events: list[Event] = []
        if chunk.delta:
            events += self.text(chunk.delta)
        for call in chunk.tool_calls:
            events += self.tool_call(call)
        return events

    def text(self, delta: str) -> list[Event]:
        events: list[Event] = []
        item = self._open
        if item is None or item.kind != "message":
            events += self.close_open()
            item = self._add(_OpenItem(len(self.draft.output), self._item_id("msg"), "message"))
            events.append(self._event("response.output_item.added", output_index=item.output_index,
                                      item=message_item(item.item_id, "", status="in_progress")))  # fmt: skip
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(self._part_event("response.content_part.added", item, part))
        item.text += delta
        events.append(self._event("response.output_text.delta", item_id=item.item_id, output_index=item.output_index,
                                  content_index=0, delta=delta, logprobs=[]))  # fmt: skip
        return events

    def tool_call(self, call: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        item = self._calls.get(call.index)
        if item is None:
            events += self.close_open()
            call_id = call.id or self._item_id("call")
            item = self._add(_OpenItem(len(self.draft.output), self._item_id("fc"), "function_call", call_id=call_id))
            item.name = call.name or ""
            self._calls[call.index] = item
            added = function_call_item(item.item_id, call_id, item.name, "", status="in_progress")
            events.append(self._event("response.output_item.added", output_index=item.output_index, item=added))
        elif call.name and not item.name:
            item.name = call.name
        if call.arguments:
            item.text += call.arguments
            events.append(self._event("response.function_call_arguments.delta", item_id=item.item_id,
                                      output_index=item.output_index, delta=call.arguments))  # fmt: skip
        return events

    def _item_id(self, prefix: str) -> str:
        return item_id(self.draft.id, prefix, f"o{len(self.draft.output)}")

    def _add(self, item: _OpenItem) -> _OpenItem:
        self._open = item
        placeholder = message_item(item.item_id, "", "in_progress") if item.kind == "message" else {}
        self.draft.output.append(placeholder)
        return item

    def _part_event(self, kind: str, item: _OpenItem, part: dict[str, Any]) -> Event:
        return self._event(kind, item_id=item.item_id, output_index=item.output_index, content_index=0, part=part)

    def close_open(self) -> list[Event]:
        item, self._open = self._open, None
        if item is None:
            return []
        if item.kind == "message":
            done = message_item(item.item_id, item.text)
            events = [
                self._event("response.output_text.done", item_id=item.item_id, output_index=item.output_index,
                            content_index=0, text=item.text, logprobs=[]),
                self._part_event("response.content_part.done", item, done["content"][0]),
            ]  # fmt: skip
        else:
            done = function_call_item(item.item_id, item.call_id, item.name, item.text)
            events = [self._event("response.function_call_arguments.done", item_id=item.item_id,
                                  output_index=item.output_index, name=item.name, arguments=item.text)]  # fmt: skip
        self.draft.output[item.output_index] = done
        events.append(self._event("response.output_item.done", output_index=item.output_index, item=done))
        return events

    def close(self, finish_reason: str, usage: Usage) -> list[Event]:
        """The stream ended: close the open item, then ``response.completed`` (or ``.incomplete``)."""
        events = self.close_open()
        self.draft.finish(finish_reason, usage)
        kind = "response.incomplete" if self.draft.status == "incomplete" else "response.completed"
        return [*events, self.response_event(kind)]

    def fail(self, code: str, message: str) -> list[Event]:
        """The generation failed after the stream began: what was said stays, marked failed."""
        self._open = None
        self.draft.output = [item for item in self.draft.output if item.get("status") == "completed"]
        self.draft.fail(code, message)
        return [self.response_event("response.failed")]


def replayed_events(draft: ResponseDraft) -> list[Event]:
    """The events of a finished response, written again from what was stored (its live events
    have expired): the same items and texts, each text in one delta."""
    output, draft.output = draft.output, []
    status, draft.status = draft.status, "in_progress"
    writer = ResponseEventWriter(draft)
    events = writer.opening()
    for index, item in enumerate(output):
        if item["type"] == "message":
            events += writer.text("".join(part.get("text", "") for part in item["content"]))
        elif item["type"] == "function_call":
            call = ToolCallDelta(index=index, id=item["call_id"], name=item["name"],
                                 arguments=item["arguments"])  # fmt: skip
            events += writer.tool_call(call)
    events += writer.close_open()
    draft.output, draft.status = output, status
    final = {"completed": "response.completed", "incomplete": "response.incomplete", "failed": "response.failed"}
    if status in final:  # a cancelled response's stream just ends
        events.append(writer.response_event(final[status]))
    return events

"""The Response object in OpenAI's shape, as it is built and as it is stored.

A ``ResponseDraft`` is one response from creation to its end: its settings, its input items, and
the output, usage, status and error it gathers. ``body()`` writes the ``response`` object every
endpoint answers with and every stream event carries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from orchestration.responses.wire import item_id
from orchestration.types import ChatResponse, Usage

# Why a response stopped short, from the chat finish reason.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    )
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


@dataclass(slots=True)
class ResponseDraft:
    id: str
    model: str
    settings: dict[str, Any]
    input_items: list[dict[str, Any]]
    created_at: int = field(default_factory=lambda: int(time.time()))
    background: bool = False
    store: bool = True
    previous_response_id: str = ""
    status: str = "in_progress"
    output: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    completed_at: int | None = None

    @property
    def finished(self) -> bool:
        return self.status not in ("queued", "in_progress")

    def finish(self, finish_reason: str, usage: Usage) -> None:
        """The generation ended: completed, or incomplete when it was cut short."""
        reason = INCOMPLETE_REASONS.get(finish_reason)
        self.status = "incomplete" if reason else "completed"
        self.incomplete_details = {"reason": reason} if reason else None
        self.usage = usage_body(usage)
        self.completed_at = int(time.time())

    def fail(self, code: str, message: str) -> None:
        self.status = "failed"
        self.error = {"code": code, "message": message}

    def take_output(self, response: ChatResponse) -> None:
        """The whole output of a chat response that was not streamed."""
        if response.content:
            self.output.append(message_item(self._item_id("msg"), response.content))
        for call in response.tool_calls:
            self.output.append(function_call_item(self._item_id("fc"), call.id, call.name, call.arguments))
        self.finish(response.finish_reason, response.usage)

    def _item_id(self, prefix: str) -> str:
        return item_id(self.id, prefix, f"o{len(self.output)}")

    def body(self) -> dict[str, Any]:
        """The ``response`` object."""
        settings = self.settings
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "background": self.background,
            "completed_at": self.completed_at,
            "error": self.error,
            "incomplete_details": self.incomplete_details,
            "instructions": settings.get("instructions"),
            "max_output_tokens": settings.get("max_output_tokens"),
            "metadata": settings.get("metadata") or {},
            "model": self.model,
            "output": [dict(item) for item in self.output],  # a snapshot: events are written later
            "parallel_tool_calls": settings.get("parallel_tool_calls", True),
            "previous_response_id": self.previous_response_id or None,
            "reasoning": {"effort": None, "summary": None},
            "store": self.store,
            "temperature": _or_default(settings.get("temperature"), 1.0),
            "text": settings.get("text") or {"format": {"type": "text"}},
            "tool_choice": settings.get("tool_choice", "auto"),
            "tools": settings.get("tools") or [],
            "top_p": _or_default(settings.get("top_p"), 1.0),
            "truncation": "disabled",
            "usage": self.usage,
            "user": settings.get("user"),
        }


def _or_default(value: float | None, default: float) -> float:
    return default if value is None else value

"""The canonical form of what the caches store and compare: requests as canonical JSON (the
same request, the same bytes), generation parameters, answers as JSON, and the tags of keys.

The exact and the semantic cache both build on this module and on nothing of each other's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from orchestration.types import ChatRequest, ChatResponse, Message, ToolCall, Usage

# Request fields that are not generation parameters: what is asked and who asks.
NOT_GENERATION = frozenset({"model", "messages", "user"})


def _plain(value: Any) -> Any:
    """JSON-ready, with 0.0 and 0 (and 1.0 and 1) written alike: the same request, the same key."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical_json(document: Any) -> str:
    return json.dumps(_plain(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def message_fields(message: Message) -> dict[str, Any]:
    fields: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        fields["tool_calls"] = [{"id": t.id, "name": t.name, "arguments": t.arguments} for t in message.tool_calls]
    if message.tool_call_id:
        fields["tool_call_id"] = message.tool_call_id
    if message.name:
        fields["name"] = message.name
    return fields


def generation_parameters(request: ChatRequest) -> dict[str, Any]:
    """Every set field of the request that can change the answer (new fields count by default)."""
    return {
        f.name: getattr(request, f.name)
        for f in dataclasses.fields(request)
        if f.name not in NOT_GENERATION and getattr(request, f.name) is not None
    }


def model_tag(model: str) -> str:
    """A short, key-safe tag of a model name: every Redis key of a model carries it (purge by model)."""
    return hashlib.sha256(model.encode()).hexdigest()[:12]


def response_to_json(response: ChatResponse) -> str:
    return json.dumps(dataclasses.asdict(response), separators=(",", ":"))


def response_from_json(data: str | bytes) -> ChatResponse:
    fields = json.loads(data)
    fields["tool_calls"] = [ToolCall(**t) for t in fields.get("tool_calls") or []]
    fields["usage"] = Usage(**fields.get("usage") or {})
    return ChatResponse(**fields)


def question_of(request: ChatRequest) -> str:
    """The last user message (what the admin shows as the question)."""
    for message in reversed(request.messages):
        if message.role == "user" and message.content:
            return message.content
    return ""

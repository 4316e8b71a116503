"""Anthropic wire format: the Messages API, whole and streamed.

Shapes follow https://docs.anthropic.com/en/api/messages and .../messages-streaming: a stream is
``message_start``, then per content block ``content_block_start`` / ``content_block_delta``
(``text_delta`` or ``input_json_delta``) / ``content_block_stop``, then ``message_delta`` (stop
reason and output usage) and ``message_stop``. Errors are ``{"type": "error", "error": {...}}``.
"""

from __future__ import annotations

import uuid
from typing import Any

from orchestration.simulator.behaviour import Behaviour
from orchestration.simulator.frames import StreamPlan, sse_event
from orchestration.simulator.reply import Prompt, Reply, WireInvalid

STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "stop_sequence": "stop_sequence"}
MALFORMED_FRAME = (
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\n\n'
)


def _block_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            texts.extend([str(block.get("name", "")), str(block.get("input", ""))])
        elif block.get("type") == "tool_result":
            texts.extend(_block_texts(block.get("content", "")))
    return texts


def _stop_sequences(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise WireInvalid("stop_sequences: Input should be a valid list of strings")


def messages_prompt(body: Any, *, counting: bool = False) -> Prompt:
    """The prompt of a Messages request; ``counting`` for count_tokens, which takes no max_tokens."""
    if not isinstance(body, dict):
        raise WireInvalid("Input should be a valid dictionary")
    model, messages, max_tokens = body.get("model"), body.get("messages"), body.get("max_tokens")
    if not isinstance(model, str) or not model:
        raise WireInvalid("model: Field required")
    if max_tokens is None and not counting:
        raise WireInvalid("max_tokens: Field required")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise WireInvalid("max_tokens: Input should be a valid integer greater than or equal to 1")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise WireInvalid("messages: at least one message is required")
    texts = _block_texts(body.get("system", "")) + [
        text for message in messages for text in _block_texts(message.get("content"))
    ]
    return Prompt(
        model=model,
        texts=[text for text in texts if text],
        assistant_turns=sum(1 for message in messages if message.get("role") == "assistant"),
        max_tokens=max_tokens,
        stops=_stop_sequences(body.get("stop_sequences")),
        stream=body.get("stream") is True,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
    )


def _tools(value: Any) -> dict[str, dict[str, Any]]:
    tools: dict[str, dict[str, Any]] = {}
    for tool in value if isinstance(value, list) else []:
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            schema = tool.get("input_schema")
            tools[tool["name"]] = schema if isinstance(schema, dict) else {}
    return tools


def _tool_choice(value: Any) -> str:
    """Anthropic's ``tool_choice``: {"type": "auto" | "any" | "none"} or {"type": "tool", "name"}."""
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "tool":
        return str(value.get("name") or "auto")  # type: ignore[union-attr]
    return {"any": "required", "none": "none"}.get(str(kind), "auto")


def _message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def _content(reply: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.tokens or not reply.tool_calls:
        blocks.append({"type": "text", "text": reply.text})
    blocks.extend(
        {"type": "tool_use", "id": f"toolu_{call.id}", "name": call.name, "input": call.arguments}
        for call in reply.tool_calls
    )
    return blocks


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def messages_body(prompt: Prompt, reply: Reply) -> dict[str, Any]:
    return {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": prompt.model,
        "content": _content(reply),
        "stop_reason": STOP_REASON[reply.finish],
        "stop_sequence": reply.stop_sequence,
        "usage": _usage(reply.prompt_tokens, reply.completion_tokens),
    }


def messages_stream(prompt: Prompt, reply: Reply) -> StreamPlan:
    plan = StreamPlan()
    message: dict[str, Any] = {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": prompt.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(reply.prompt_tokens, 1),
    }
    plan.add(sse_event("message_start", {"type": "message_start", "message": message}))
    index = 0
    if reply.tokens or not reply.tool_calls:
        _text_block(plan, reply.tokens)
        index = 1
    for offset, call in enumerate(reply.tool_calls):
        _tool_block(plan, index + offset, call.id, call.name, call.pieces)
    plan.tail = sse_event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": STOP_REASON[reply.finish], "stop_sequence": reply.stop_sequence},
            "usage": {"output_tokens": reply.completion_tokens},
        },
    ) + sse_event("message_stop", {"type": "message_stop"})
    return plan


def _text_block(plan: StreamPlan, tokens: list[str]) -> None:
    start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    plan.add(sse_event("content_block_start", start))
    plan.add(sse_event("ping", {"type": "ping"}))
    for token in tokens:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}}
        plan.add(sse_event("content_block_delta", delta), 1)
    plan.add(sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}))


def _tool_block(plan: StreamPlan, index: int, call_id: str, name: str, pieces: list[str]) -> None:
    block = {"type": "tool_use", "id": f"toolu_{call_id}", "name": name, "input": {}}
    plan.add(
        sse_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}), 1
    )
    for piece in pieces:
        delta = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": piece},
        }
        plan.add(sse_event("content_block_delta", delta), 1)
    plan.add(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))


_STATUS_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: not found"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


def error_body(
    status: int, kind: str | None, prompt: Prompt | None, behaviour: Behaviour | None = None
) -> tuple[int, dict[str, Any]]:
    if kind == "context_window":
        used = (prompt.prompt_tokens if prompt else 0) + 200000
        return status, _error("invalid_request_error", f"prompt is too long: {used} tokens > 200000 maximum")
    if kind == "content_policy":
        return status, _error("invalid_request_error", "Output blocked by content filtering policy")
    fallback = _STATUS_ERRORS[500] if status >= 500 else _STATUS_ERRORS[400]
    error_type, message = _STATUS_ERRORS.get(status, fallback)
    return status, _error(error_type, message)


def invalid_body(error: WireInvalid) -> dict[str, Any]:
    return _error("invalid_request_error", error.message)


def _error(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": _request_id()}


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:24]}"


def error_headers(body: dict[str, Any]) -> dict[str, str]:
    return {"request-id": str(body.get("request_id", ""))}

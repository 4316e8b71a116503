"""Anthropic: the Messages API, whole and streamed. Anthropic has no embeddings endpoint.

Wire format: https://docs.anthropic.com/en/api/messages. Differences from OpenAI that this
adapter bridges: system prompts go in a top-level ``system`` field; ``max_tokens`` is required;
an assistant's tool calls are ``tool_use`` content blocks and their results ``tool_result``
blocks inside a user turn; a stream is named events (``message_start``,
``content_block_start/delta/stop``, ``message_delta``, ``message_stop``, ``ping``, ``error``);
errors are ``{"type": "error", "error": {"type", "message"}}``, with 529 ``overloaded_error``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from orchestration.providers.base import CallTimeout, ProviderConfig
from orchestration.providers.errors import (
    UNREADABLE,
    refusal_error,
    status_error,
    unreadable_error,
    untranslatable_error,
)
from orchestration.providers.transport import HttpProvider, json_parsed
from orchestration.types import (
    ChatRequest,
    ChatResponse,
    Chunk,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorKind,
    Message,
    ProviderError,
    ToolCall,
    ToolCallDelta,
    Usage,
)

API_VERSION = "2023-06-01"
# The API requires max_tokens; this is what a request without one may use.
DEFAULT_MAX_TOKENS = 4096
JSON_INSTRUCTION = "Answer with a single JSON object and nothing else."

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The HTTP status each error type comes with, for errors reported inside a stream.
ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def _tool_input(arguments: str) -> Any:
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls or ():
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call.arguments)})
    return blocks


def _turn(message: Message) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "assistant":
        return "assistant", _assistant_blocks(message)
    if message.role == "tool":
        block = {"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.content or ""}
        return "user", [block]
    return "user", [{"type": "text", "text": message.content or ""}]


def wire_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system prompt, turns): system messages joined; consecutive same-role turns merged,
    because the API wants user and assistant turns to alternate and all the results of one
    round of tool calls in one user turn."""
    system = [m.content for m in messages if m.role == "system" and m.content]
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role, blocks = _turn(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system), turns


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool)
    wire = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
    if function.get("description"):
        wire["description"] = function["description"]
    return wire


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        return {"type": "tool", "name": name} if name else {"type": "auto"}
    return {"type": {"required": "any", "none": "none"}.get(choice, "auto")}


def _output_config(response_format: dict[str, Any]) -> dict[str, Any] | None:
    if response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
    return {"format": {"type": "json_schema", "schema": schema}}


def messages_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    system, turns = wire_messages(request.messages)
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    elif request.top_p is not None:
        # Recent models refuse temperature and top_p together; temperature is the one kept.
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = request.stop
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    response_format = request.response_format or {}
    output_config = _output_config(response_format)
    if output_config is not None:
        body["output_config"] = output_config
    elif response_format.get("type") == "json_object":
        # No schema to enforce: ask for JSON in the system prompt, which every model honours.
        system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
    if system:
        body["system"] = system
    if stream:
        body["stream"] = True
    return body


def usage_from(data: Any, previous: Usage | None = None) -> Usage:
    """Usage from a ``usage`` object; cache writes and reads count as input tokens."""
    usage = previous or Usage()
    if not isinstance(data, dict):
        return usage
    if any(key in data for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")):
        usage.input_tokens = sum(
            int(data.get(key) or 0)
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
        )
    if "output_tokens" in data:
        usage.output_tokens = int(data.get("output_tokens") or 0)
    return usage


def messages_response(data: Any, request: ChatRequest, provider: str) -> ChatResponse:
    blocks = data.get("content") if isinstance(data, dict) else None
    if not isinstance(blocks, list):
        raise ProviderError(ErrorKind.MALFORMED, f"{provider} answered without content blocks", provider=provider)
    texts = [block.get("text", "") for block in blocks if isinstance(block, dict) and block.get("type") == "text"]
    calls = [
        ToolCall(id=block.get("id", ""), name=block.get("name", ""), arguments=json.dumps(block.get("input") or {}))
        for block in blocks
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]
    reason = STOP_REASONS.get(data.get("stop_reason") or "", "stop")
    if reason == "content_filter" and not any(texts) and not calls:
        raise refusal_error(provider, data.get("stop_reason", ""))
    return ChatResponse(
        id=data.get("id") or "",
        model=data.get("model") or request.model,
        content="".join(texts) if texts else None,
        tool_calls=calls,
        finish_reason=reason,
        usage=usage_from(data.get("usage")),
    )


def _error_parts(payload: Any) -> tuple[str, str]:
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return (str(payload) if payload else ""), ""
    details = error.get("details")
    detail = f"{error.get('type', '')} {json.dumps(details) if details else ''}".strip()
    return str(error.get("message") or ""), detail


def anthropic_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> ProviderError:
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = body[:1000].decode("utf-8", "replace")
    message, detail = _error_parts(payload)
    return status_error(status, message, detail=detail, headers=headers, provider=provider)


def stream_error(payload: Any, provider: str) -> ProviderError:
    message, detail = _error_parts(payload)
    status = ERROR_TYPE_STATUS.get(detail.split(" ", 1)[0], 500)
    return status_error(status, message or "the stream reported an error", detail=detail, provider=provider)


class MessageStreamState:
    """What a Messages stream has said so far; turns each event into a ``Chunk``."""

    __slots__ = ("answered", "finish", "generating", "provider", "stopped", "tool_index", "tools_with_input", "usage")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.usage = Usage()
        self.finish: str | None = None
        self.stopped = False
        self.generating = False
        self.answered = False
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.tools_with_input: set[int] = set()

    def read(self, payload: Any) -> Chunk | None:
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "content_block_delta":
            return self._delta(payload.get("index"), payload.get("delta") or {})
        if kind == "content_block_start":
            return self._block_start(payload.get("index"), payload.get("content_block") or {})
        if kind == "content_block_stop":
            return self._block_stop(payload.get("index"))
        if kind == "message_start":
            self.usage = usage_from((payload.get("message") or {}).get("usage"), self.usage)
        elif kind == "message_delta":
            self.finish = (payload.get("delta") or {}).get("stop_reason") or self.finish
            self.usage = usage_from(payload.get("usage"), self.usage)
        elif kind == "message_stop":
            self.stopped = True
        elif kind == "error":
            raise stream_error(payload, self.provider)
        elif kind is None:
            message = f"{self.provider} sent an event without a type"
            raise ProviderError(ErrorKind.MALFORMED, message, provider=self.provider)
        return None

    def _block_start(self, index: Any, block: dict[str, Any]) -> Chunk | None:
        if block.get("type") == "text" and block.get("text"):
            self.generating = self.answered = True
            return Chunk(delta=block["text"])
        if block.get("type") != "tool_use":
            return None
        self.generating = self.answered = True
        position = self.tool_index[index] = len(self.tool_index)
        return Chunk(tool_calls=[ToolCallDelta(index=position, id=block.get("id"), name=block.get("name"))])

    def _delta(self, index: Any, delta: dict[str, Any]) -> Chunk | None:
        self.generating = True
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            self.answered = True
            return Chunk(delta=delta["text"])
        if kind == "input_json_delta" and index in self.tool_index and delta.get("partial_json"):
            self.tools_with_input.add(index)
            fragment = delta["partial_json"]
            return Chunk(tool_calls=[ToolCallDelta(index=self.tool_index[index], arguments=fragment)])
        return None  # thinking and signature deltas: generation, not reply text

    def _block_stop(self, index: Any) -> Chunk | None:
        if index not in self.tool_index or index in self.tools_with_input:
            return None
        # A call without arguments streams no JSON at all; its arguments are still an object.
        return Chunk(tool_calls=[ToolCallDelta(index=self.tool_index[index], arguments="{}")])

    def last_chunk(self) -> Chunk:
        if self.finish is None:
            message = f"the stream from {self.provider} ended without a stop reason"
            raise ProviderError(ErrorKind.MALFORMED, message, provider=self.provider)
        reason = STOP_REASONS.get(self.finish, "stop")
        if reason == "content_filter" and not self.answered:
            raise refusal_error(self.provider, self.finish)
        return Chunk(finish_reason=reason, usage=self.usage)


class AnthropicProvider(HttpProvider):
    kind = "anthropic"
    default_base_url = "https://api.anthropic.com"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        base = (config.base_url or self.default_base_url).rstrip("/")
        self.messages_url = f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    def auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        return headers

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return anthropic_error(status, headers, body, self.config.name)

    def _body(self, request: ChatRequest, *, stream: bool) -> dict[str, Any]:
        try:
            return messages_body(request, stream=stream)
        except (KeyError, TypeError, AttributeError) as error:
            raise untranslatable_error(self.config.name, error) from error

    async def complete(self, request: ChatRequest, *, timeout: CallTimeout) -> ChatResponse:
        data = await self.post_json(self.messages_url, self._body(request, stream=False), timeout)
        try:
            return messages_response(data, request, self.config.name)
        except UNREADABLE as error:
            raise unreadable_error(self.config.name, error) from error

    async def stream(self, request: ChatRequest, *, timeout: CallTimeout) -> AsyncIterator[Chunk]:
        name = self.config.name
        async with self.open_stream(self.messages_url, self._body(request, stream=True), timeout) as events:
            state = MessageStreamState(name)
            async for event in events:
                try:
                    chunk = state.read(json_parsed(event.data, name))
                except UNREADABLE as error:
                    raise unreadable_error(name, error) from error
                if state.generating:
                    events.token_arrived()
                if chunk is not None:
                    yield chunk
                if state.stopped:
                    await events.drain()
                    break
            yield state.last_chunk()

    async def embed(self, request: EmbeddingRequest, *, timeout: CallTimeout) -> EmbeddingResponse:
        message = f"{self.config.name} (Anthropic) has no embeddings endpoint"
        raise ProviderError(ErrorKind.BAD_REQUEST, message, provider=self.config.name)

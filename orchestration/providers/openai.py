"""OpenAI: Chat Completions (whole and streamed) and Embeddings.

Wire format: https://platform.openai.com/docs/api-reference/chat. A stream is ``data: {chunk}``
events ending with ``data: [DONE]``; with ``stream_options.include_usage`` one last chunk with
empty ``choices`` carries the usage. Errors are ``{"error": {"message", "type", "param",
"code"}}``; a 429 may say how long to wait in ``retry-after-ms`` or ``Retry-After``.

The parsing is tolerant on purpose (missing ids, usage or index fields, arguments given as an
object): the OpenAI-compatible and simulator adapters reuse it for servers that follow the
format loosely.
"""

from __future__ import annotations

import base64
import json
import struct
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from orchestration.providers.base import CallTimeout, ProviderConfig
from orchestration.providers.errors import UNREADABLE, refusal_error, status_error, unreadable_error
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

FINISH_REASONS = {
    "stop": "stop",
    "eos": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_OPTIONAL_FIELDS = ("temperature", "top_p", "seed", "user", "presence_penalty", "frequency_penalty")


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def finish_reason(value: Any, has_tool_calls: bool) -> str:
    reason = FINISH_REASONS.get(value, "stop") if isinstance(value, str) else "stop"
    # Some servers (Ollama among them) report "stop" for a turn that called tools.
    return "tool_calls" if has_tool_calls and reason == "stop" else reason


def usage_from(data: Any) -> Usage | None:
    if not isinstance(data, dict):
        return None
    return Usage(
        input_tokens=int(data.get("prompt_tokens") or 0), output_tokens=int(data.get("completion_tokens") or 0)
    )


def arguments_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value if value is not None else {}, separators=(",", ":"))


def wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role}
    if message.content is not None or not message.tool_calls:
        wire["content"] = message.content or ""
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        wire["name"] = message.name
    return wire


def chat_body(request: ChatRequest, *, stream: bool, max_tokens_field: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "messages": [wire_message(m) for m in request.messages]}
    for name in _OPTIONAL_FIELDS:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.stop:
        body["stop"] = request.stop
    if request.tools:
        body["tools"] = request.tools
    if request.tool_choice is not None:
        body["tool_choice"] = request.tool_choice
    if request.response_format is not None:
        body["response_format"] = request.response_format
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _content_text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _tool_call(data: Any, provider: str) -> ToolCall:
    if not isinstance(data, dict):
        raise ProviderError(
            ErrorKind.MALFORMED, f"{provider} sent a tool call that is not an object", provider=provider
        )
    function = data.get("function") or {}
    return ToolCall(
        id=data.get("id") or new_call_id(),
        name=str(function.get("name") or ""),
        arguments=arguments_text(function.get("arguments")),
    )


def chat_response(data: Any, request: ChatRequest, provider: str) -> ChatResponse:
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ProviderError(ErrorKind.MALFORMED, f"{provider} answered without choices", provider=provider)
    choice = choices[0]
    message = choice.get("message") or {}
    tool_calls = [_tool_call(call, provider) for call in message.get("tool_calls") or ()]
    content = _content_text(message.get("content"))
    if content is None and message.get("refusal"):
        content = message["refusal"]
    reason = finish_reason(choice.get("finish_reason"), bool(tool_calls))
    if reason == "content_filter" and not content and not tool_calls:
        raise refusal_error(provider, "content_filter")
    return ChatResponse(
        id=data.get("id") or f"chatcmpl-{uuid.uuid4().hex[:24]}",
        model=data.get("model") or request.model,
        content=content,
        tool_calls=tool_calls,
        finish_reason=reason,
        usage=usage_from(data.get("usage")) or Usage(),
        logprobs=logprobs_content(choice) if request.logprobs else None,
    )


def logprobs_content(choice: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A choice's ``logprobs.content``: one entry per token, passed on as the provider wrote it."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return [entry for entry in content if isinstance(entry, dict)] if isinstance(content, list) else None


def error_parts(payload: Any) -> tuple[str, str, Any]:
    """(message, machine-readable detail, code) of an OpenAI-style error object, or of the
    looser shapes compatible servers send (``{"error": "text"}``, ``{"detail": ...}``)."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return (str(payload) if payload is not None else ""), "", None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error, str(payload.get("type") or ""), payload.get("code")
    if not isinstance(error, dict):
        return str(error), "", None
    message = error.get("message") or error.get("detail") or payload.get("detail") or ""
    detail = " ".join(str(error[key]) for key in ("type", "code", "param", "status") if error.get(key))
    return (message if isinstance(message, str) else json.dumps(message)), detail, error.get("code")


def openai_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> ProviderError:
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = body[:1000].decode("utf-8", "replace")
    message, detail, _ = error_parts(payload)
    return status_error(status, message, detail=detail, headers=headers, provider=provider)


def stream_error(payload: Any, provider: str) -> ProviderError:
    """An error reported inside a stream, where there is no HTTP status to go by."""
    message, detail, code = error_parts(payload)
    if isinstance(code, int) and 400 <= code < 600:
        status = code
    elif "invalid_request" in detail:
        status = 400
    elif "rate_limit" in detail:
        status = 429
    else:
        status = 500
    return status_error(status, message or "the stream reported an error", detail=detail, provider=provider)


class ChatStreamState:
    """What a Chat Completions stream has said so far; turns each chunk into a ``Chunk``."""

    __slots__ = ("answered", "done", "finish", "generating", "ids", "provider", "usage")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.done = False
        self.generating = False
        self.answered = False
        self.ids: dict[int, str] = {}

    def read(self, payload: Any) -> Chunk | None:
        # Nearly every chunk of a stream: one choice whose delta is a piece of text.
        if type(payload) is dict and payload.get("usage") is None and not payload.get("error"):
            choices = payload.get("choices")
            if type(choices) is list and choices and type(choice := choices[0]) is dict:
                delta = choice.get("delta")
                if (
                    type(delta) is dict
                    and type(text := delta.get("content")) is str
                    and text
                    and not delta.get("tool_calls")
                    and not choice.get("logprobs")
                    and not choice.get("finish_reason")
                ):
                    self.generating = self.answered = True
                    return Chunk(delta=text)
        if not isinstance(payload, dict):
            message = f"{self.provider} sent a chunk that is not an object"
            raise ProviderError(ErrorKind.MALFORMED, message, provider=self.provider)
        if payload.get("error"):
            raise stream_error(payload, self.provider)
        usage = usage_from(payload.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = payload.get("choices")
        if not choices or not isinstance(choices[0], dict):
            return None
        choice = choices[0]
        delta = choice.get("delta") or {}
        chunk = self._chunk(delta)
        if chunk is not None and choice.get("logprobs"):
            chunk.logprobs = logprobs_content(choice)
        if choice.get("finish_reason"):
            self.finish = choice["finish_reason"]
        return chunk

    def _chunk(self, delta: dict[str, Any]) -> Chunk | None:
        if delta.get("reasoning_content") or delta.get("reasoning"):
            self.generating = True
        text = _content_text(delta.get("content")) or ""
        calls = [self._tool_delta(call) for call in delta.get("tool_calls") or ()]
        if not text and not calls:
            return None
        self.generating = self.answered = True
        return Chunk(delta=text, tool_calls=calls)

    def _tool_delta(self, call: Any) -> ToolCallDelta:
        if not isinstance(call, dict):
            message = f"{self.provider} sent a tool call delta that is not an object"
            raise ProviderError(ErrorKind.MALFORMED, message, provider=self.provider)
        call_id = call.get("id")
        index = call.get("index")
        if not isinstance(index, int):
            index = self._index_without_field(call_id)
        if index not in self.ids:
            call_id = self.ids[index] = call_id or new_call_id()
        function = call.get("function") or {}
        arguments = function.get("arguments")
        return ToolCallDelta(
            index=index,
            id=call_id,
            name=function.get("name"),
            arguments="" if arguments is None else arguments_text(arguments),
        )

    def _index_without_field(self, call_id: str | None) -> int:
        # For servers that leave out "index": a new id opens the next call, anything else
        # continues the call with that id, or the latest one.
        for index, known in self.ids.items():
            if known == call_id:
                return index
        return len(self.ids) if call_id or not self.ids else len(self.ids) - 1

    def last_chunk(self, *, tolerate_missing_finish: bool) -> Chunk:
        if self.finish is None and not (tolerate_missing_finish and self.done):
            raise ProviderError(
                ErrorKind.MALFORMED,
                f"the stream from {self.provider} ended without a finish reason",
                provider=self.provider,
            )
        return Chunk(finish_reason=finish_reason(self.finish, bool(self.ids)), usage=self.usage)


def embedding_vector(value: Any) -> list[float]:
    if isinstance(value, str):
        raw = base64.b64decode(value)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return [float(number) for number in value]


def embedding_response(data: Any, request: EmbeddingRequest, provider: str) -> EmbeddingResponse:
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != len(request.inputs):
        raise ProviderError(ErrorKind.MALFORMED, f"{provider} did not return one vector per input", provider=provider)
    try:
        ordered = sorted(items, key=lambda item: item.get("index", 0))
        vectors = [embedding_vector(item["embedding"]) for item in ordered]
    except (KeyError, TypeError, ValueError, struct.error) as error:
        raise ProviderError(
            ErrorKind.MALFORMED, f"{provider} sent an unreadable embedding", provider=provider
        ) from error
    usage = data.get("usage") or {}
    return EmbeddingResponse(
        model=data.get("model") or request.model,
        vectors=vectors,
        usage=Usage(input_tokens=int(usage.get("prompt_tokens") or 0)),
    )


class OpenAIProvider(HttpProvider):
    kind = "openai"
    default_base_url = "https://api.openai.com/v1"
    # OpenAI deprecated ``max_tokens`` for chat, and its reasoning models refuse it.
    max_tokens_field = "max_completion_tokens"
    tolerate_missing_finish = False

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        base = (config.base_url or self.default_base_url).rstrip("/")
        self.chat_url = f"{base}/chat/completions"
        self.embeddings_url = f"{base}/embeddings"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return openai_error(status, headers, body, self.config.name)

    async def complete(self, request: ChatRequest, *, timeout: CallTimeout) -> ChatResponse:
        body = chat_body(request, stream=False, max_tokens_field=self.max_tokens_field)
        data = await self.post_json(self.chat_url, body, timeout)
        try:
            return chat_response(data, request, self.config.name)
        except UNREADABLE as error:
            raise unreadable_error(self.config.name, error) from error

    async def stream(self, request: ChatRequest, *, timeout: CallTimeout) -> AsyncIterator[Chunk]:
        body = chat_body(request, stream=True, max_tokens_field=self.max_tokens_field)
        name = self.config.name
        async with self.open_stream(self.chat_url, body, timeout) as events:
            del body  # sent: the stream keeps no second copy of the conversation
            state = ChatStreamState(name)
            while batch := await events.batch():
                for event in batch:
                    if event.data == b"[DONE]":
                        state.done = True
                        break
                    try:
                        chunk = state.read(json_parsed(event.data, name))
                    except UNREADABLE as error:
                        raise unreadable_error(name, error) from error
                    if chunk is not None:
                        yield chunk
                if state.generating:
                    events.token_arrived()
                if state.done:
                    await events.drain()
                    break
            yield state.last_chunk(tolerate_missing_finish=self.tolerate_missing_finish)

    async def embed(self, request: EmbeddingRequest, *, timeout: CallTimeout) -> EmbeddingResponse:
        body = {"model": request.model, "input": request.inputs, "encoding_format": "float"}
        data = await self.post_json(self.embeddings_url, body, timeout)
        try:
            return embedding_response(data, request, self.config.name)
        except UNREADABLE as error:
            raise unreadable_error(self.config.name, error) from error

"""Google Gemini: ``generateContent``, ``streamGenerateContent?alt=sse``, ``embedContent`` and
``batchEmbedContents`` of the Generative Language API.

Wire format: https://ai.google.dev/api. Messages become ``contents`` of ``parts`` with roles
``user`` and ``model``; system prompts go in ``systemInstruction``; tools are
``functionDeclarations``, calls ``functionCall`` parts and results ``functionResponse`` parts;
generation settings live in ``generationConfig`` (JSON output via ``responseMimeType``).
The key travels in the ``x-goog-api-key`` header, never in the URL. Errors are
``{"error": {"code", "message", "status", "details"}}``; a prompt the safety filters block
comes back as a 200 with ``promptFeedback.blockReason`` and no candidates.

Gemini gives function calls no id (or its own) and, on thinking models, a ``thoughtSignature``
that must be sent back with the call in the next turn. Our ``ToolCall`` has only an id, which
clients echo back verbatim, so the signature rides in the id after ``SIGNATURE_SEPARATOR``.
"""

from __future__ import annotations

import json
import uuid
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

SIGNATURE_SEPARATOR = "__thought__"
API_VERSIONS = ("v1", "v1beta", "v1alpha")
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
_GENERATION_FIELDS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("max_tokens", "maxOutputTokens"),
    ("seed", "seed"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)


def _function_response(content: str | None) -> dict[str, Any]:
    try:
        value = json.loads(content) if content else None
    except ValueError:
        value = content
    return value if isinstance(value, dict) else {"result": value}


def _function_call_part(call: ToolCall) -> dict[str, Any]:
    try:
        args = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        args = {}
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args if isinstance(args, dict) else {}}}
    _, separator, signature = call.id.partition(SIGNATURE_SEPARATOR)
    if separator and signature:
        part["thoughtSignature"] = signature
    return part


def _turn(message: Message, names: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    if message.role == "assistant":
        parts: list[dict[str, Any]] = [{"text": message.content}] if message.content else []
        parts += [_function_call_part(call) for call in message.tool_calls or ()]
        return "model", parts
    if message.role == "tool":
        name = message.name or names.get(message.tool_call_id or "", "")
        return "user", [{"functionResponse": {"name": name, "response": _function_response(message.content)}}]
    return "user", [{"text": message.content or ""}]


def wire_contents(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    """(system instruction, contents), consecutive same-role turns merged (all results of one
    round of function calls belong in one turn)."""
    names = {call.id: call.name for message in messages for call in message.tool_calls or ()}
    system = [m.content for m in messages if m.role == "system" and m.content]
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role, parts = _turn(message, names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return "\n\n".join(system), contents


def _declaration(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function", tool)
    declaration: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def _tool_config(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        config: dict[str, Any] = {"mode": "ANY"}
        if name:
            config["allowedFunctionNames"] = [name]
        return {"functionCallingConfig": config}
    return {"functionCallingConfig": {"mode": {"required": "ANY", "none": "NONE"}.get(choice, "AUTO")}}


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    config = {wire: getattr(request, name) for name, wire in _GENERATION_FIELDS if getattr(request, name) is not None}
    if request.stop:
        config["stopSequences"] = request.stop
    response_format = request.response_format or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    return config


def generate_body(request: ChatRequest) -> dict[str, Any]:
    system, contents = wire_contents(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in request.tools]}]
        if request.tool_choice is not None:
            body["toolConfig"] = _tool_config(request.tool_choice)
    config = _generation_config(request)
    if config:
        body["generationConfig"] = config
    return body


def usage_from(data: Any) -> Usage | None:
    """Thinking tokens are billed as output, so they count as output here."""
    if not isinstance(data, dict):
        return None
    return Usage(
        input_tokens=int(data.get("promptTokenCount") or 0) + int(data.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(data.get("candidatesTokenCount") or 0) + int(data.get("thoughtsTokenCount") or 0),
    )


def _call_id(part: dict[str, Any], call: dict[str, Any]) -> str:
    call_id = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
    signature = part.get("thoughtSignature")
    return f"{call_id}{SIGNATURE_SEPARATOR}{signature}" if signature else call_id


def _tool_call(part: dict[str, Any]) -> ToolCall:
    call = part["functionCall"]
    return ToolCall(
        id=_call_id(part, call), name=str(call.get("name") or ""), arguments=json.dumps(call.get("args") or {})
    )


def blocked_error(payload: Any, provider: str) -> ProviderError | None:
    """The error for a prompt the safety filters refused (no candidates, a block reason)."""
    feedback = payload.get("promptFeedback") if isinstance(payload, dict) else None
    reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if not reason:
        return None
    message = f"{provider} blocked the prompt ({reason})"
    return ProviderError(ErrorKind.CONTENT_POLICY, message, status=200, provider=provider)


def finish_reason(value: Any, has_tool_calls: bool, provider: str) -> str:
    if value == "MALFORMED_FUNCTION_CALL":
        message = f"{provider} produced a function call it could not parse"
        raise ProviderError(ErrorKind.MALFORMED, message, provider=provider)
    reason = FINISH_REASONS.get(value, "stop") if isinstance(value, str) else "stop"
    return "tool_calls" if has_tool_calls and reason == "stop" else reason


def _candidate(data: Any, provider: str) -> dict[str, Any]:
    candidates = data.get("candidates") if isinstance(data, dict) else None
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    raise blocked_error(data, provider) or ProviderError(
        ErrorKind.MALFORMED, f"{provider} answered without candidates", provider=provider
    )


def _parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    parts = (candidate.get("content") or {}).get("parts") or []
    return [part for part in parts if isinstance(part, dict)]


def generate_response(data: Any, request: ChatRequest, provider: str) -> ChatResponse:
    candidate = _candidate(data, provider)
    parts = _parts(candidate)
    texts = [part["text"] for part in parts if "text" in part and not part.get("thought")]
    calls = [_tool_call(part) for part in parts if isinstance(part.get("functionCall"), dict)]
    reason = finish_reason(candidate.get("finishReason"), bool(calls), provider)
    if reason == "content_filter" and not any(texts) and not calls:
        raise refusal_error(provider, candidate.get("finishReason", ""))
    return ChatResponse(
        id=data.get("responseId") or f"gemini-{uuid.uuid4().hex[:24]}",
        model=data.get("modelVersion") or request.model,
        content="".join(texts) if texts else None,
        tool_calls=calls,
        finish_reason=reason,
        usage=usage_from(data.get("usageMetadata")) or Usage(),
    )


def _error_parts(payload: Any) -> tuple[int | None, str, str, float | None]:
    """(code, message, detail, retry delay) of a Google error object."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None, (str(payload) if payload else ""), "", None
    details = [item for item in error.get("details") or () if isinstance(item, dict)]
    reasons = " ".join(str(item.get("reason", "")) for item in details)
    retry_after = None
    for item in details:
        delay = item.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                retry_after = float(delay[:-1])
            except ValueError:
                pass
    code = error.get("code") if isinstance(error.get("code"), int) else None
    return code, str(error.get("message") or ""), f"{error.get('status', '')} {reasons}".strip(), retry_after


def gemini_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> ProviderError:
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = body[:1000].decode("utf-8", "replace")
    _, message, detail, retry_after = _error_parts(payload)
    if "API_KEY_INVALID" in detail:
        status = 401  # Google answers a bad key with 400 INVALID_ARGUMENT
    return status_error(status, message, detail=detail, headers=headers, provider=provider, retry_after=retry_after)


class GenerateStreamState:
    """What a ``streamGenerateContent`` stream has said so far; each event becomes a ``Chunk``."""

    __slots__ = ("calls", "finish", "generating", "provider", "usage")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.calls = 0
        self.generating = False

    def read(self, payload: Any) -> Chunk | None:
        if not isinstance(payload, dict) or "error" in payload:
            code, message, detail, retry_after = _error_parts(payload)
            status = code if code and 400 <= code < 600 else 500
            raise status_error(status, message, detail=detail, provider=self.provider, retry_after=retry_after)
        usage = usage_from(payload.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        candidates = payload.get("candidates")
        if not candidates:
            blocked = blocked_error(payload, self.provider)
            if blocked is not None:
                raise blocked
            return None
        candidate = candidates[0]
        chunk = self._chunk(_parts(candidate))
        if candidate.get("finishReason"):
            self.finish = candidate["finishReason"]
        return chunk

    def _chunk(self, parts: list[dict[str, Any]]) -> Chunk | None:
        if parts:
            self.generating = True
        text = "".join(part["text"] for part in parts if "text" in part and not part.get("thought"))
        deltas = []
        for part in parts:
            if isinstance(part.get("functionCall"), dict):
                call = _tool_call(part)
                deltas.append(ToolCallDelta(index=self.calls, id=call.id, name=call.name, arguments=call.arguments))
                self.calls += 1
        return Chunk(delta=text, tool_calls=deltas) if text or deltas else None

    def last_chunk(self, *, answered: bool) -> Chunk:
        if self.finish is None:
            message = f"the stream from {self.provider} ended without a finish reason"
            raise ProviderError(ErrorKind.MALFORMED, message, provider=self.provider)
        reason = finish_reason(self.finish, bool(self.calls), self.provider)
        if reason == "content_filter" and not answered:
            raise refusal_error(self.provider, self.finish)
        return Chunk(finish_reason=reason, usage=self.usage)


class GeminiProvider(HttpProvider):
    kind = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        base = (config.base_url or self.default_base_url).rstrip("/")
        self.base = base if base.rsplit("/", 1)[-1] in API_VERSIONS else f"{base}/v1beta"

    def model_url(self, model: str, method: str) -> str:
        path = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        return f"{self.base}/{path}:{method}"

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.config.api_key} if self.config.api_key else {}

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        return gemini_error(status, headers, body, self.config.name)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        try:
            return generate_body(request)
        except (KeyError, TypeError, AttributeError) as error:
            raise untranslatable_error(self.config.name, error) from error

    async def complete(self, request: ChatRequest, *, timeout: CallTimeout) -> ChatResponse:
        url = self.model_url(request.model, "generateContent")
        data = await self.post_json(url, self._body(request), timeout)
        try:
            return generate_response(data, request, self.config.name)
        except UNREADABLE as error:
            raise unreadable_error(self.config.name, error) from error

    async def stream(self, request: ChatRequest, *, timeout: CallTimeout) -> AsyncIterator[Chunk]:
        url = self.model_url(request.model, "streamGenerateContent") + "?alt=sse"
        name = self.config.name
        async with self.open_stream(url, self._body(request), timeout) as events:
            state = GenerateStreamState(name)
            answered = False
            async for event in events:
                try:
                    chunk = state.read(json_parsed(event.data, name))
                except UNREADABLE as error:
                    raise unreadable_error(name, error) from error
                if state.generating:
                    events.token_arrived()
                if chunk is not None:
                    answered = True
                    yield chunk
            yield state.last_chunk(answered=answered)

    async def embed(self, request: EmbeddingRequest, *, timeout: CallTimeout) -> EmbeddingResponse:
        name = self.config.name
        model = request.model if request.model.startswith("models/") else f"models/{request.model}"
        if len(request.inputs) == 1:
            body: dict[str, Any] = {"content": {"parts": [{"text": request.inputs[0]}]}}
            data = await self.post_json(self.model_url(request.model, "embedContent"), body, timeout)
            items = [data.get("embedding")] if isinstance(data, dict) else None
        else:
            requests = [{"model": model, "content": {"parts": [{"text": text}]}} for text in request.inputs]
            data = await self.post_json(
                self.model_url(request.model, "batchEmbedContents"), {"requests": requests}, timeout
            )
            items = data.get("embeddings") if isinstance(data, dict) else None
        try:
            return embedding_response(items, data, request, name)
        except UNREADABLE as error:
            raise unreadable_error(name, error) from error


def embedding_response(items: Any, data: Any, request: EmbeddingRequest, provider: str) -> EmbeddingResponse:
    if not isinstance(items, list) or len(items) != len(request.inputs):
        raise ProviderError(ErrorKind.MALFORMED, f"{provider} did not return one vector per input", provider=provider)
    try:
        vectors = [[float(value) for value in item["values"]] for item in items]
    except (KeyError, TypeError, ValueError) as error:
        message = f"{provider} sent an unreadable embedding"
        raise ProviderError(ErrorKind.MALFORMED, message, provider=provider) from error
    usage = usage_from(data.get("usageMetadata")) if isinstance(data, dict) else None
    return EmbeddingResponse(model=request.model, vectors=vectors, usage=usage or Usage())

"""The OpenAI-compatible Completion API: ``/v1/chat/completions``, ``/v1/models``, ``/v1/embeddings``.

Plain async Django views (docs/architecture.md, decision 5): a call waits on a provider
for seconds, so it must not hold a thread. Each view is a thin door: find the caller and admit
the call through the access pipeline (``orchestration.access.admission``: key, model access,
RPM/TPM, budget reservation), ask the Orchestrator, answer in OpenAI's shape with the ``X-*``
headers, then settle the admission with the real usage and cost. Every view is a lean route (the
edge serves it without Django's middleware) and answers errors in the one shape. The door, the
admission and the settling are ``orchestration/calls.py``, shared with the other ``/v1`` views.
"""

from __future__ import annotations

import asyncio
import base64
import math
import secrets
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from orchestration.access.admission import Caller, route_of
from orchestration.caching.feedback import semantic_hit_from_token, semantic_hit_report_wrong
from orchestration.calls import (
    Call,
    answer_spent,
    answered,
    answers_spent,
    call_admitted,
    caller_of,
    complete_all,
    context_of,
    json_body,
    require_capability,
    served_headers,
    stream_failure_event,
    stream_opened,
    stream_response,
    usage_body,
    v1_view,
)
from orchestration.errors import InvalidRequest, NotFound
from orchestration.http import json_response, raw_route
from orchestration.orchestrator import CallContext, ReplyStream, get_orchestrator
from orchestration.prompts import aprompt_render, prompt_apply
from orchestration.registry import ModelRoute, asnapshot
from orchestration.sse import DONE, Final, json_compact, sse_event
from orchestration.tokens import CL100K_KINDS, TokensUnknown, tokens_decode
from orchestration.types import ChatRequest, ChatResponse, Chunk, Served, ToolCallDelta, Usage
from orchestration.validation import (
    CompletionInput,
    EmbeddingInput,
    completion_input_from,
    embedding_input_from,
    prompt_chars,
)

# --- POST /v1/chat/completions ---------------------------------------------------------------


@raw_route
@v1_view("POST")
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    """Create a chat completion, streamed (``stream: true``) or whole."""
    caller = await caller_of(request)
    payload = completion_input_from(json_body(request))
    ctx = context_of(request, caller, "completion")
    chat = await _with_prompt(payload, ctx)
    chars = prompt_chars(chat) * payload.choices  # each choice reads the whole prompt upstream
    call = await call_admitted(
        request, caller, chat.model, "completion", chars=chars, max_tokens=chat.max_tokens, chat=chat, ctx=ctx
    )
    if payload.choices > 1 or chat.logprobs:
        # n answers from one cache entry would be n copies of one answer; cached answers keep no logprobs.
        ctx.cache_control = "no-store"
    if payload.stream:
        return await _stream_response(call, chat, include_usage=payload.include_usage)
    return await _complete_response(call, chat, payload.choices)


async def _with_prompt(payload: CompletionInput, ctx: CallContext) -> ChatRequest:
    """The request with its managed prompt template applied, recorded in ``ctx`` for the log."""
    if payload.prompt is None:
        return payload.request
    rendered = await aprompt_render(
        name=payload.prompt.name, variables=payload.prompt.variables, version=payload.prompt.version, ctx=ctx
    )
    ctx.prompt_template, ctx.prompt_version = rendered.name, rendered.version
    chat = prompt_apply(payload.request, rendered)
    if not chat.model:
        message = f"The prompt template {rendered.name!r} names no default model; send a model parameter."
        raise InvalidRequest("missing_required_parameter", message, param="model")
    return chat


async def _complete_response(call: Call, chat: ChatRequest, choices: int = 1) -> HttpResponse:
    """One completion, or ``n`` of them: n calls made side by side (each its own upstream call, so
    each may differ), answered as one ``chat.completion`` with the usage and cost summed."""
    answers: list[tuple[ChatResponse, Served]] = await answered(
        call, complete_all(get_orchestrator(), [chat] * choices, call.ctx), answers_spent
    )
    response, served = answers[0]
    body = completion_body(response, served)
    headers = {**call.headers(), **served_headers(served)}
    if choices > 1:
        usage, cost = answers_spent(answers)
        body["choices"] = [_choice(index, one) for index, (one, _) in enumerate(answers)]
        body["usage"] = usage_body(usage)
        headers["X-Cost-USD"] = f"{cost:f}"
    return json_response(body, headers)


def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(16)}"


def _choice(index: int, response: ChatResponse) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": response.content, "refusal": None}
    if response.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in response.tool_calls
        ]
    logprobs = {"content": response.logprobs, "refusal": None} if response.logprobs is not None else None
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": response.finish_reason}


def completion_body(response: ChatResponse, served: Served) -> dict[str, Any]:
    """A ``ChatResponse`` in OpenAI's ``chat.completion`` shape."""
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": served.model or response.model,
        "choices": [_choice(0, response)],
        "usage": usage_body(response.usage),
        "system_fingerprint": None,
    }


# --- streaming -------------------------------------------------------------------------------


async def _stream_response(call: Call, chat: ChatRequest, *, include_usage: bool) -> HttpResponseBase:
    stream = get_orchestrator().stream(chat, call.ctx)
    first = await stream_opened(call, stream)
    writer = _ChunkWriter(model=stream.served.model or chat.model, include_usage=include_usage)
    return stream_response(call, stream, _sse(call, stream, aiter(stream), first, writer))


async def _sse(
    call: Call, stream: ReplyStream, chunks: AsyncIterator[Chunk], first: Chunk | None, writer: _ChunkWriter
) -> AsyncGenerator[bytes, None]:
    """The SSE body. A failure after the first byte cannot change the status any more, so it
    ends the stream with an error event, then ``[DONE]``, never a silent clean end."""
    # The events from the finish on: the provider's end follows the finish at once, so they go out
    # with the ending and ``[DONE]``, one send through the server where they took two.
    held = b""
    try:
        # The opening goes out with the first chunk's events: one write, not two.
        yield writer.event(writer.opening(first)) + (writer.frames(first) if first is not None else b"")
        if first is not None:
            async for chunk in chunks:
                frames = writer.frames(chunk)
                if writer.finish_reason is not None:
                    held += frames
                elif frames:
                    yield frames
        ending = b"" if writer.finish_reason is not None else writer.event(writer.finish("stop"))
        if writer.include_usage:
            ending += writer.event(writer.usage(stream.usage))
    except Exception as error:
        ending = stream_failure_event(call, error)
    finally:
        await stream.aclose()
        await call.settle(stream.served.usage, stream.served.cost_usd)
    # The ending goes out with ``[DONE]`` once the call is settled: one write, not two.
    yield Final(held + ending + DONE)


class _ChunkWriter:
    """Turns normalized ``Chunk``s into OpenAI ``chat.completion.chunk`` objects."""

    def __init__(self, *, model: str, include_usage: bool) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.finish_reason: str | None = None
        # A text delta is nearly every event of a stream: its bytes around the text are made once,
        # exactly as ``event(self._chunk([self._choice({"content": text})]))`` would write them.
        before, after = self.event(self._chunk([self._choice({"content": ""})])).split(b'"content":""', 1)
        self._text_before, self._text_after = before + b'"content":', after

    @staticmethod
    def event(body: dict[str, Any]) -> bytes:
        return sse_event(body)

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            body["usage"] = None
        return body

    def _choice(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def opening(self, first: Chunk | None) -> dict[str, Any]:
        """The role, with empty content, or none when the answer opens with a tool call: as OpenAI
        streams it, so the message a client builds from the chunks has ``content: null`` as the
        whole answer has."""
        calls_first = first is not None and bool(first.tool_calls) and not first.delta
        return self._chunk([self._choice({"role": "assistant", "content": None if calls_first else ""})])

    def frames(self, chunk: Chunk) -> bytes:
        """The SSE bytes of one chunk (nothing for a chunk that carries nothing to send)."""
        if chunk.delta and not chunk.tool_calls and chunk.finish_reason is None and chunk.logprobs is None:
            return self._text_before + json_compact(chunk.delta) + self._text_after
        return b"".join(self.event(body) for body in self.bodies(chunk))

    def bodies(self, chunk: Chunk) -> list[dict[str, Any]]:
        bodies = []
        delta: dict[str, Any] = {}
        if chunk.delta:
            delta["content"] = chunk.delta
        if chunk.tool_calls:
            delta["tool_calls"] = [_tool_call_delta(call) for call in chunk.tool_calls]
        if delta:
            choice = self._choice(delta)
            if chunk.logprobs is not None:
                choice["logprobs"] = {"content": chunk.logprobs, "refusal": None}
            bodies.append(self._chunk([choice]))
        if chunk.finish_reason is not None and self.finish_reason is None:
            bodies.append(self.finish(chunk.finish_reason))
        return bodies

    def finish(self, reason: str) -> dict[str, Any]:
        self.finish_reason = reason
        return self._chunk([self._choice({}, reason)])

    def usage(self, usage: Usage) -> dict[str, Any]:
        body = self._chunk([])
        body["usage"] = usage_body(usage)
        return body


def _tool_call_delta(call: ToolCallDelta) -> dict[str, Any]:
    body: dict[str, Any] = {"index": call.index}
    function: dict[str, Any] = {"arguments": call.arguments}
    if call.id is not None:
        body["id"] = call.id
        body["type"] = "function"
    if call.name is not None:
        function["name"] = call.name
    body["function"] = function
    return body


# --- POST /v1/embeddings -------------------------------------------------------------------------


@v1_view("POST")
async def embeddings(request: HttpRequest) -> HttpResponseBase:
    """Embed one text or a list of texts (or token arrays, read back by the model's tokenizer)."""
    caller = await caller_of(request)
    payload = embedding_input_from(json_body(request))
    route = route_of(caller, payload.model, await asnapshot())
    require_capability(route, "embeddings")
    texts = await _embedding_texts(payload, route)
    call = await call_admitted(
        request, caller, payload.model, "embedding", chars=sum(map(len, texts)), max_tokens=0, capability="embeddings"
    )
    response, served = await answered(call, get_orchestrator().embed(payload.request(texts), call.ctx), answer_spent)
    _check_dimensions(payload.dimensions, response.vectors)
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": _vector(vector, payload.dimensions, payload.encoding_format),
        }
        for index, vector in enumerate(response.vectors)
    ]
    body = {
        "object": "list",
        "data": data,
        "model": served.model,
        "usage": {"prompt_tokens": response.usage.input_tokens, "total_tokens": response.usage.total_tokens},
    }
    return json_response(body, {**call.headers(), **served_headers(served)})


async def _embedding_texts(payload: EmbeddingInput, route: ModelRoute) -> list[str]:
    """The inputs as texts: token arrays (what LangChain's ``OpenAIEmbeddings`` sends by default)
    are read back with OpenAI's cl100k tokenizer, which is the one the model family counts in."""
    return await texts_of(payload.inputs, route, "input")


async def texts_of(items: list[str | list[int]], route: ModelRoute, param: str) -> list[str]:
    """Texts and cl100k token arrays, all as texts; token arrays only for OpenAI-family models."""
    if not any(isinstance(item, list) for item in items):
        return [item for item in items if isinstance(item, str)]
    if route.provider_kind not in CL100K_KINDS:
        message = f"Token arrays are only read for models with OpenAI's tokenizer; send '{route.name}' text."
        raise InvalidRequest("unsupported_value", message, param=param)
    try:
        # The first use loads the tokenizer (tens of MB): off the event loop.
        return await asyncio.to_thread(_decoded, items)
    except TokensUnknown as error:
        raise InvalidRequest("invalid_value", f"Invalid value for '{param}': {error}.", param=param) from None


def _decoded(inputs: list[str | list[int]]) -> list[str]:
    return [item if isinstance(item, str) else tokens_decode(item) for item in inputs]


def _check_dimensions(dimensions: int | None, vectors: list[list[float]]) -> None:
    """A vector is shortened on request, never lengthened: more dimensions than the model has is a 400.
    The model's size is only known from its answer, so this is checked after the call."""
    size = len(vectors[0]) if vectors else 0
    if dimensions is not None and size and dimensions > size:
        message = f"dimensions is {dimensions}, but this model's embeddings have {size}; send {size} or fewer."
        raise InvalidRequest("invalid_value", message, param="dimensions")


def _vector(vector: list[float], dimensions: int | None, encoding: str) -> list[float] | str:
    if dimensions is not None and dimensions < len(vector):
        # Shortened as OpenAI's text-embedding-3 models do it: cut, then scale back to unit length.
        vector = vector[:dimensions]
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        vector = [x / norm for x in vector]
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


# --- GET /v1/models ------------------------------------------------------------------------------


def _model_body(route: ModelRoute) -> dict[str, Any]:
    # "switchyard" is our extension (docs/api.md, Deployments): OpenAI's clients ignore unknown fields.
    deployments = [
        {"name": d.name, "provider": d.route.provider, "region": d.region, "tag": d.tag, "weight": d.weight}
        for d in route.deployments
    ]
    return {
        "id": route.name,
        "object": "model",
        "created": route.created,
        "owned_by": route.provider,
        "switchyard": {"routing": route.strategy, "deployments": deployments},
    }


async def _visible_models(caller: Caller) -> list[ModelRoute]:
    """The routable models this key may use, by name, from the registry snapshot (no query)."""
    routes = (await asnapshot()).models
    return [routes[name] for name in sorted(routes) if caller.may_use(name)]


@v1_view("GET")
async def models(request: HttpRequest) -> HttpResponseBase:
    """The models this key may use."""
    caller = await caller_of(request)
    data = [_model_body(model) for model in await _visible_models(caller)]
    return json_response({"object": "list", "data": data})


@v1_view("GET")
async def model_detail(request: HttpRequest, model: str) -> HttpResponseBase:
    """One model this key may use."""
    caller = await caller_of(request)
    for candidate in await _visible_models(caller):
        if candidate.name == model:
            return json_response(_model_body(candidate))
    message = f"The model '{model}' does not exist or you do not have access to it."
    raise NotFound("model_not_found", message, param="model")


# --- POST /v1/cache/wrong-hits -------------------------------------------------------------------


@v1_view("POST")
async def cache_wrong_hit(request: HttpRequest) -> HttpResponseBase:
    """Report a semantic cache hit as the wrong answer: its entry is evicted and the model's policy learns."""
    caller = await caller_of(request)
    token = json_body(request).get("cache_entry")
    if not isinstance(token, str) or not token:
        raise InvalidRequest("missing_cache_entry", "Send the X-Cache-Entry header of the reply as 'cache_entry'.")
    hit = semantic_hit_from_token(token)
    if hit is None:
        raise InvalidRequest("invalid_cache_entry", "This is not a cache entry token this server gave out.")
    if not caller.may_use(hit.model):
        raise NotFound("cache_entry_not_found", "No such cache entry for the models this key may use.")
    floor = await sync_to_async(semantic_hit_report_wrong)(
        entry_key=hit.entry_key, model=hit.model, similarity=hit.similarity, source="api"
    )
    body = {"object": "cache.wrong_hit", "model": hit.model, "evicted": True, "learned_floor": floor}
    return json_response(body)


@v1_view("GET", "POST", "PUT", "PATCH", "DELETE")
async def unknown_endpoint(request: HttpRequest, path: str = "") -> HttpResponseBase:
    """Anything else under ``/v1/``: OpenAI's JSON 404, not an HTML page."""
    raise NotFound("unknown_url", f"Unknown request URL: {request.method} {request.path}.")

"""The OpenAI-compatible Completion API: ``/v1/chat/completions``, ``/v1/models``, ``/v1/embeddings``.

Plain async Django views (docs/architecture.md, decision 5): a call waits on a provider
for seconds, so it must not hold a thread. Each view is a thin door: find the caller and admit
the call through the access pipeline (``orchestration.access.admission``: key, model access,
RPM/TPM, budget reservation), ask the Orchestrator, answer in OpenAI's shape with the ``X-*``
headers, then settle the admission with the real usage and cost. Every view is a lean route (the
edge serves it without Django's middleware) and answers errors in the one shape.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import math
import struct
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from orchestration.access.admission import (
    Admission,
    Caller,
    admit,
    caller_for_secret,
    missing_credentials,
    prompt_tokens_from_chars,
    route_of,
)
from orchestration.access.credentials import api_key_secret_from
from orchestration.caching.feedback import semantic_hit_from_token, semantic_hit_report_wrong
from orchestration.cors import cors_is_preflight, cors_mark, cors_origin_allowed, cors_preflight
from orchestration.deadlines import deadline_for
from orchestration.errors import DeadlinePassed, InvalidRequest, NotFound, ServiceError, error_body, error_body_of
from orchestration.http import door, json_response, keys_only, lean_route, raw_body, request_id_of
from orchestration.orchestrator import CallContext, ReplyStream, get_orchestrator
from orchestration.prompts import aprompt_render, prompt_apply
from orchestration.registry import ModelRoute, Snapshot, asnapshot
from orchestration.sse import DONE, EventStreamResponse, json_compact, sse_event
from orchestration.tokens import CL100K_KINDS, TokensUnknown, tokens_count, tokens_decode
from orchestration.types import ChatRequest, ChatResponse, Chunk, Served, ToolCallDelta, Usage
from orchestration.validation import (
    CompletionInput,
    EmbeddingInput,
    completion_input_from,
    embedding_input_from,
    json_object_from,
    prompt_chars,
    prompt_text,
)

logger = logging.getLogger("switchyard.api")

View = Callable[..., Awaitable[HttpResponseBase]]
# The Orchestrator keeps the deadline; this margin only catches a call that somehow outlives it.
_DEADLINE_MARGIN_S = 1.0


@dataclass(slots=True)
class Call:
    """One admitted API call: who made it, what it may cost, and how it is settled."""

    request: HttpRequest
    admission: Admission
    ctx: CallContext
    max_tokens: int | None = None  # what the call asked to write at most; it stretches the deadline

    @property
    def route(self) -> ModelRoute:
        return self.admission.route

    def headers(self) -> dict[str, str]:
        return self.admission.headers()

    async def settle(self, usage: Usage | None, cost_usd: Decimal) -> None:
        await self.admission.settle(usage, cost_usd)


# --- the door ------------------------------------------------------------------------------


def v1_view(*methods: str) -> Callable[[View], View]:
    """A ``/v1`` view: a lean route for API keys only, its methods checked, its errors answered,
    its time to answer in ``openai-processing-ms``."""

    def decorate(view: View) -> View:
        return lean_route(keys_only(_cors(methods, _timed(door(*methods)(view)))))

    return decorate


def _cors(methods: tuple[str, ...], view: View) -> View:
    """CORS for allowed browser origins (orchestration/cors.py); nothing changes for anyone else."""

    @functools.wraps(view)
    async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        origin = cors_origin_allowed(request)
        if origin is None:
            return await view(request, *args, **kwargs)
        if cors_is_preflight(request):
            return cors_preflight(request, origin, methods)
        return cors_mark(await view(request, *args, **kwargs), origin)

    return wrapped


def _timed(view: View) -> View:
    """``openai-processing-ms``, as OpenAI sends it: the time until the response (a stream's headers) is ready."""

    @functools.wraps(view)
    async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        started = time.perf_counter()
        response = await view(request, *args, **kwargs)
        response["openai-processing-ms"] = str(round((time.perf_counter() - started) * 1000))
        return response

    return wrapped


async def _caller(request: HttpRequest) -> Caller:
    secret = api_key_secret_from(request.headers)
    if secret is None:
        raise missing_credentials()
    return await caller_for_secret(secret)


def _json_body(request: HttpRequest) -> dict[str, Any]:
    return json_object_from(raw_body(request))


def _hold_s(endpoint: str, route: ModelRoute, max_tokens: int | None) -> float:
    generates = endpoint != "embedding"
    return deadline_for(
        endpoint, requested_s=None, route=route, max_tokens=_writes(route, max_tokens, generates)
    ).total_s


def _writes(route: ModelRoute, max_tokens: int | None, generates: bool) -> int | None:
    """The most a call may write, which stretches its deadline (orchestration/deadlines.py)."""
    return (max_tokens or route.max_output_tokens) if generates else None


# The provider kinds whose wire carries OpenAI's ``logprobs`` (orchestration/providers/openai.py).
LOGPROBS_KINDS = frozenset({"openai", "openai-compatible", "simulator"})


def _require_logprobs(route: ModelRoute, chat: ChatRequest) -> None:
    if chat.logprobs and route.provider_kind not in LOGPROBS_KINDS:
        message = f"logprobs are not available for '{route.name}' (its provider, {route.provider_kind}, has none)."
        raise InvalidRequest("unsupported_value", message, param="logprobs")


async def _require_fit(route: ModelRoute, registry: Snapshot, chat: ChatRequest) -> None:
    """A prompt that no model of the fallback chain can read is a 400 before any call: retrying
    cannot help. Counted only when its UTF-8 size says it might not fit (a token is never shorter
    than a byte), and only with the tokenizer the model family uses. ``max_tokens`` is left to the
    providers: they differ on whether the answer's room counts against the window."""
    chain = [route, *(registry.models[name] for name in route.fallbacks if name in registry.models)]
    window = max(candidate.context_window for candidate in chain)
    text = prompt_text(chat)
    if len(text.encode()) <= window or route.provider_kind not in CL100K_KINDS:
        return
    tokens = await asyncio.to_thread(tokens_count, text)
    if tokens > window:
        message = (
            f"This model's maximum context length is {window} tokens; the messages need about {tokens}. "
            "Shorten the messages."
        )
        raise InvalidRequest("context_length_exceeded", message, param="messages")


def _require_capability(route: ModelRoute, capability: str) -> None:
    """Chat on an embeddings-only model, or embeddings on a model without that capability, is a 400."""
    embeds = "embeddings" in route.capabilities
    chats = not embeds or "chat" in route.capabilities
    if (capability == "embeddings" and not embeds) or (capability == "chat" and not chats):
        doing = "embeddings" if capability == "embeddings" else "chat completions"
        message = f"The model '{route.name}' does not support {doing} (it lacks the '{capability}' capability)."
        raise InvalidRequest("model_not_supported", message, param="model")


async def _admitted(
    caller: Caller,
    model: str,
    endpoint: str,
    *,
    chars: int,
    max_tokens: int | None,
    capability: str = "chat",
    chat: ChatRequest | None = None,
) -> Admission:
    registry = await asnapshot()
    route = route_of(caller, model, registry)
    _require_capability(route, capability)
    if chat is not None:
        _require_logprobs(route, chat)
        await _require_fit(route, registry, chat)
    return await admit(
        caller,
        model=model,
        input_tokens=prompt_tokens_from_chars(chars),
        max_tokens=max_tokens,
        hold_s=_hold_s(endpoint, route, max_tokens),
    )


def _cache_control(request: HttpRequest) -> str:
    directives = request.headers.get("Cache-Control", "").lower()
    if "no-store" in directives:
        return "no-store"
    if "no-cache" in directives:
        return "no-cache"
    return "default"


def _context(request: HttpRequest, caller: Caller, endpoint: str) -> CallContext:
    return CallContext(
        endpoint=endpoint,
        request_id=request_id_of(request),
        api_key_id=caller.api_key_id,
        user_id=caller.user_id,
        cache_control=_cache_control(request),
    )


def _served_headers(served: Served, *, with_cost: bool = True) -> dict[str, str]:
    headers = {"X-Cache": served.cache, "X-Served-Model": served.model, "X-Served-Provider": served.provider}
    if served.deployment:
        headers["X-Served-Deployment"] = served.deployment
    if served.fallback_from:
        headers["X-Fallback-From"] = served.fallback_from
    if served.cache_entry:
        headers["X-Cache-Entry"] = served.cache_entry
    if with_cost:
        headers["X-Cost-USD"] = f"{served.cost_usd:f}"
    return headers


async def _within_deadline(call: Call, awaitable: Awaitable[Any]) -> Any:
    """Await an Orchestrator call with a last-resort timeout just past its own deadline."""
    writes = _writes(call.route, call.max_tokens, call.ctx.endpoint != "embedding")
    seconds = deadline_for(
        call.ctx.endpoint, requested_s=call.ctx.deadline_s, route=call.route, max_tokens=writes
    ).total_s
    try:
        async with asyncio.timeout(seconds + _DEADLINE_MARGIN_S):
            return await awaitable
    except TimeoutError:
        raise DeadlinePassed("deadline_exceeded", f"No answer within the deadline of {seconds:g} s.") from None


def _with_limit_headers(error: ServiceError, call: Call) -> ServiceError:
    error.meta = {**call.headers(), **error.meta}
    return error


# --- POST /v1/chat/completions ---------------------------------------------------------------


@v1_view("POST")
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    """Create a chat completion, streamed (``stream: true``) or whole."""
    caller = await _caller(request)
    payload = completion_input_from(_json_body(request))
    ctx = _context(request, caller, "completion")
    chat = await _with_prompt(payload, ctx)
    chars = prompt_chars(chat) * payload.choices  # each choice reads the whole prompt upstream
    admission = await _admitted(caller, chat.model, "completion", chars=chars, max_tokens=chat.max_tokens, chat=chat)
    call = Call(request, admission, ctx, chat.max_tokens)
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
    usage, cost = None, Decimal(0)
    orchestrator = get_orchestrator()
    try:
        answers: list[tuple[ChatResponse, Served]] = await _within_deadline(
            call, asyncio.gather(*(orchestrator.complete(chat, call.ctx) for _ in range(choices)))
        )
        usage = Usage(
            input_tokens=sum(served.usage.input_tokens for _, served in answers),
            output_tokens=sum(served.usage.output_tokens for _, served in answers),
        )
        cost = sum((served.cost_usd for _, served in answers), Decimal(0))
    except ServiceError as error:
        raise _with_limit_headers(error, call) from None
    finally:
        await call.settle(usage, cost)
    response, served = answers[0]
    body = completion_body(response, served)
    headers = {**call.headers(), **_served_headers(served)}
    if choices > 1:
        body["choices"] = [_choice(index, one) for index, (one, _) in enumerate(answers)]
        body["usage"] = _usage_body(usage or Usage())
        headers["X-Cost-USD"] = f"{cost:f}"
    return json_response(body, headers)


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def _usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


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
        "usage": _usage_body(response.usage),
        "system_fingerprint": None,
    }


# --- streaming -------------------------------------------------------------------------------


async def _stream_response(call: Call, chat: ChatRequest, *, include_usage: bool) -> HttpResponseBase:
    stream = get_orchestrator().stream(chat, call.ctx)
    chunks = aiter(stream)
    try:
        # The first chunk decides between an HTTP error and a 200 stream, and sets ``served``.
        first: Chunk | None = await _within_deadline(call, anext(chunks, None))
    except BaseException as error:
        await stream.aclose()
        await call.settle(None, Decimal(0))
        if isinstance(error, ServiceError):
            raise _with_limit_headers(error, call) from None
        raise
    writer = _ChunkWriter(model=stream.served.model or chat.model, include_usage=include_usage)
    response = EventStreamResponse(_sse(call, stream, chunks, first, writer))
    for name, value in {**call.headers(), **_served_headers(stream.served, with_cost=False)}.items():
        response[name] = value
    return response


async def _sse(
    call: Call, stream: ReplyStream, chunks: AsyncIterator[Chunk], first: Chunk | None, writer: _ChunkWriter
) -> AsyncGenerator[bytes, None]:
    """The SSE body. A failure after the first byte cannot change the status any more, so it
    ends the stream with an error event, then ``[DONE]``, never a silent clean end."""
    try:
        # The opening goes out with the first chunk's events: one write, not two.
        yield writer.event(writer.opening()) + (writer.frames(first) if first is not None else b"")
        if first is not None:
            async for chunk in chunks:
                if frames := writer.frames(chunk):
                    yield frames
        ending = b"" if writer.finish_reason is not None else writer.event(writer.finish("stop"))
        if writer.include_usage:
            ending += writer.event(writer.usage(stream.served.usage))
        if ending:
            yield ending
    except ServiceError as error:
        yield writer.event(error_body_of(error, request_id_of(call.request)))
    except Exception:
        logger.exception("A completion stream failed after it began (request %s)", request_id_of(call.request))
        yield writer.event(error_body(502, "stream_failed", "The stream failed.", request_id_of(call.request)))
    finally:
        await stream.aclose()
        await call.settle(stream.served.usage, stream.served.cost_usd)
    yield DONE


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

    def opening(self) -> dict[str, Any]:
        return self._chunk([self._choice({"role": "assistant", "content": ""})])

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
        body["usage"] = _usage_body(usage)
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
    caller = await _caller(request)
    payload = embedding_input_from(_json_body(request))
    route = route_of(caller, payload.model, await asnapshot())
    _require_capability(route, "embeddings")
    texts = await _embedding_texts(payload, route)
    admission = await _admitted(
        caller, payload.model, "embedding", chars=sum(map(len, texts)), max_tokens=0, capability="embeddings"
    )
    call = Call(request, admission, _context(request, caller, "embedding"))
    usage, cost = None, Decimal(0)
    try:
        response, served = await _within_deadline(call, get_orchestrator().embed(payload.request(texts), call.ctx))
        usage, cost = served.usage, served.cost_usd
    except ServiceError as error:
        raise _with_limit_headers(error, call) from None
    finally:
        await call.settle(usage, cost)
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
    return json_response(body, {**call.headers(), **_served_headers(served)})


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
    caller = await _caller(request)
    data = [_model_body(model) for model in await _visible_models(caller)]
    return json_response({"object": "list", "data": data})


@v1_view("GET")
async def model_detail(request: HttpRequest, model: str) -> HttpResponseBase:
    """One model this key may use."""
    caller = await _caller(request)
    for candidate in await _visible_models(caller):
        if candidate.name == model:
            return json_response(_model_body(candidate))
    message = f"The model '{model}' does not exist or you do not have access to it."
    raise NotFound("model_not_found", message, param="model")


# --- POST /v1/cache/wrong-hits -------------------------------------------------------------------


@v1_view("POST")
async def cache_wrong_hit(request: HttpRequest) -> HttpResponseBase:
    """Report a semantic cache hit as the wrong answer: its entry is evicted and the model's policy learns."""
    caller = await _caller(request)
    token = _json_body(request).get("cache_entry")
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

"""One admitted ``/v1`` call, from the door to its settlement, shared by every ``/v1`` view
(``orchestration/apis.py``, ``orchestration/textcompletions.py``, ``orchestration/responses/apis.py``).

The door (``v1_view``) makes a view a lean route for API keys, with CORS, its methods checked, its
errors answered and ``openai-processing-ms``. A view finds the caller (``caller_of``), reads its
body, and admits the call (``call_admitted``: model access and capability, a prompt that fits,
RPM/TPM, the budget's reservation). It then asks the Orchestrator through ``answered`` (a whole
answer, the call settled with what it spent) or ``stream_opened`` (a stream's first chunk; the view
settles the call when the stream ends). Both keep the deadline and give a refusal the key's limit
headers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponseBase

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
from orchestration.cors import cors_is_preflight, cors_mark, cors_origin_allowed, cors_preflight
from orchestration.deadlines import deadline_for
from orchestration.errors import DeadlinePassed, InvalidRequest, ServiceError, error_body, error_body_of
from orchestration.http import door, keys_only, lean_route, raw_body, request_id_of
from orchestration.orchestrator import CallContext, Orchestrator, ReplyStream
from orchestration.registry import ModelRoute, Snapshot, asnapshot
from orchestration.sse import EventStreamResponse, header_set, sse_event
from orchestration.tokens import CL100K_KINDS, tokens_count, tokens_kept, utf8_size
from orchestration.types import ChatRequest, ChatResponse, Chunk, Served, Usage
from orchestration.validation import json_object_from, prompt_parts

logger = logging.getLogger("switchyard.api")

T = TypeVar("T")

View = Callable[..., Awaitable[HttpResponseBase]]
# The Orchestrator keeps the deadline; this margin only catches a call that somehow outlives it.
_DEADLINE_MARGIN_S = 1.0
# A prompt with this many characters left to count (about 0.1 ms of the tokenizer) is counted in a
# thread; less is counted on the loop, cheaper than the hop.
COUNT_IN_THREAD_FROM = 2000


@dataclass(slots=True)
class Call:
    """One admitted API call: who made it, what it may cost, and how it is settled."""

    request: HttpRequest
    admission: Admission
    ctx: CallContext
    max_tokens: int | None = None  # what the call asked to write at most; it stretches the deadline
    deadline_s: float | None = None  # its deadline's length, once known (``_deadline_s``)

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
        header_set(response, "openai-processing-ms", str(round((time.perf_counter() - started) * 1000)))
        return response

    return wrapped


async def caller_of(request: HttpRequest) -> Caller:
    secret = api_key_secret_from(request.headers)
    if secret is None:
        raise missing_credentials()
    return await caller_for_secret(secret)


def json_body(request: HttpRequest) -> dict[str, Any]:
    return json_object_from(raw_body(request))


# --- admission ---------------------------------------------------------------------------


def _hold_s(endpoint: str, route: ModelRoute, max_tokens: int | None, requested_s: float | None = None) -> float:
    """The length of a call's deadline: how long its admission holds its reservation."""
    generates = endpoint != "embedding"
    return deadline_for(
        endpoint, requested_s=requested_s, route=route, max_tokens=_writes(route, max_tokens, generates)
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
    parts = prompt_parts(chat)
    if sum(map(utf8_size, parts)) + len(parts) - 1 <= window or route.provider_kind not in CL100K_KINDS:
        return
    tokens = await _prompt_tokens(parts)
    if tokens > window:
        message = (
            f"This model's maximum context length is {window} tokens; the messages need about {tokens}. "
            "Shorten the messages."
        )
        raise InvalidRequest("context_length_exceeded", message, param="messages")


async def _prompt_tokens(parts: list[str]) -> int:
    """The parts' tokens and a newline's between each two: never under the count of the text they
    make together, at most a token more per part (still under what the model reads: the chat
    format spends about four a message). Counted in a thread when much is left to count."""
    known, rest = tokens_kept(parts)
    if sum(len(text) for text in rest) >= COUNT_IN_THREAD_FROM:
        counted = await asyncio.to_thread(_tokens_sum, rest)
    else:
        counted = _tokens_sum(rest)
    return known + counted + len(parts) - 1


def _tokens_sum(texts: list[str]) -> int:
    return sum(tokens_count(text) for text in texts)


def require_capability(route: ModelRoute, capability: str) -> None:
    """Chat on an embeddings-only model, or embeddings on a model without that capability, is a 400."""
    embeds = "embeddings" in route.capabilities
    chats = not embeds or "chat" in route.capabilities
    if (capability == "embeddings" and not embeds) or (capability == "chat" and not chats):
        doing = "embeddings" if capability == "embeddings" else "chat completions"
        message = f"The model '{route.name}' does not support {doing} (it lacks the '{capability}' capability)."
        raise InvalidRequest("model_not_supported", message, param="model")


async def call_admitted(
    request: HttpRequest,
    caller: Caller,
    model: str,
    endpoint: str,
    *,
    chars: int,
    max_tokens: int | None,
    capability: str = "chat",
    chat: ChatRequest | None = None,
    ctx: CallContext | None = None,
) -> Call:
    """Admit the call and make it the ``Call`` that is settled once answered. ``chat``: a chat
    request, checked for logprobs and a prompt that fits before anything is reserved. ``ctx``: the
    call's context when the view needed it before admission (a managed prompt records itself in it)."""
    registry = await asnapshot()
    route = route_of(caller, model, registry)
    require_capability(route, capability)
    if chat is not None:
        _require_logprobs(route, chat)
        await _require_fit(route, registry, chat)
    hold_s = _hold_s(endpoint, route, max_tokens)
    admission = await admit(
        caller, model=model, input_tokens=prompt_tokens_from_chars(chars), max_tokens=max_tokens, hold_s=hold_s
    )
    ctx = ctx or context_of(request, caller, endpoint)
    # The deadline the door keeps is the hold's, unless the caller set one of its own.
    same = ctx.deadline_s is None and ctx.endpoint == endpoint and admission.route is route
    return Call(request, admission, ctx, max_tokens, deadline_s=hold_s if same else None)


def _cache_control(request: HttpRequest) -> str:
    directives = request.headers.get("Cache-Control", "").lower()
    if "no-store" in directives:
        return "no-store"
    if "no-cache" in directives:
        return "no-cache"
    return "default"


def context_of(request: HttpRequest, caller: Caller, endpoint: str) -> CallContext:
    return CallContext(
        endpoint=endpoint,
        request_id=request_id_of(request),
        api_key_id=caller.api_key_id,
        user_id=caller.user_id,
        cache_control=_cache_control(request),
    )


def served_headers(served: Served, *, with_cost: bool = True) -> dict[str, str]:
    headers = {"X-Cache": served.cache, "X-Served-Model": served.model, "X-Served-Provider": served.provider}
    if served.deployment:
        headers["X-Served-Deployment"] = served.deployment
    if served.simulated:  # the simulator's text is labelled wherever someone reads it
        headers["X-Served-Simulated"] = "true"
    if served.fallback_from:
        headers["X-Fallback-From"] = served.fallback_from
    if served.cache_entry:
        headers["X-Cache-Entry"] = served.cache_entry
    if with_cost:
        headers["X-Cost-USD"] = f"{served.cost_usd:f}"
    return headers


async def _within_deadline(call: Call, awaitable: Awaitable[Any]) -> Any:
    """Await an Orchestrator call with a last-resort timeout just past its own deadline."""
    seconds = _deadline_s(call)
    try:
        async with asyncio.timeout(seconds + _DEADLINE_MARGIN_S):
            return await awaitable
    except TimeoutError:
        raise DeadlinePassed("deadline_exceeded", f"No answer within the deadline of {seconds:g} s.") from None


def _deadline_s(call: Call) -> float:
    """The length of the call's deadline, worked out once per call."""
    if call.deadline_s is None:
        call.deadline_s = _hold_s(call.ctx.endpoint, call.route, call.max_tokens, call.ctx.deadline_s)
    return call.deadline_s


def _with_limit_headers(error: ServiceError, call: Call) -> ServiceError:
    error.meta = {**call.headers(), **error.meta}
    return error


# --- the answer -------------------------------------------------------------------------------


def usage_total(usages: Iterable[Usage]) -> Usage:
    """Several answers' usage as one."""
    counted = list(usages)
    return Usage(
        input_tokens=sum(one.input_tokens for one in counted),
        output_tokens=sum(one.output_tokens for one in counted),
    )


def served_total(served: Iterable[Served]) -> tuple[Usage, Decimal]:
    """The usage and cost of several upstream calls answered as one."""
    calls = list(served)
    return usage_total(one.usage for one in calls), sum((one.cost_usd for one in calls), Decimal(0))


def answer_spent(answer: tuple[Any, Served]) -> tuple[Usage, Decimal]:
    """What one ``(response, served)`` answer of the Orchestrator spent."""
    return answer[1].usage, answer[1].cost_usd


def answers_spent(answers: list[tuple[Any, Served]]) -> tuple[Usage, Decimal]:
    """What ``(response, served)`` answers made side by side spent together."""
    return served_total(served for _, served in answers)


async def answered(call: Call, awaitable: Awaitable[T], spent: Callable[[T], tuple[Usage, Decimal]]) -> T:
    """The Orchestrator's whole answer, within the deadline. The call is settled with what the
    answer ``spent`` (nothing when it failed); a refusal carries the key's limit headers."""
    usage, cost = None, Decimal(0)
    try:
        answer: T = await _within_deadline(call, awaitable)
        usage, cost = spent(answer)
    except ServiceError as error:
        raise _with_limit_headers(error, call) from None
    finally:
        await call.settle(usage, cost)
    return answer


async def complete_all(
    orchestrator: Orchestrator, chats: list[ChatRequest], ctx: CallContext
) -> list[tuple[ChatResponse, Served]]:
    """The Orchestrator's answer to each of ``chats``, made side by side. A lone one is awaited
    in the caller's own task: ``asyncio.gather`` wraps even one in a task of its own, with a
    callback and two more turns of the event loop, and nearly every call asks for one answer."""
    if len(chats) == 1:
        return [await orchestrator.complete(chats[0], ctx)]
    return list(await asyncio.gather(*(orchestrator.complete(chat, ctx) for chat in chats)))


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


# --- streams ------------------------------------------------------------------------------------


async def stream_opened(call: Call, stream: ReplyStream) -> Chunk | None:
    """The stream's first chunk, which decides between an HTTP error and a 200 stream, and sets
    ``stream.served``. When it fails the stream is closed and the call settled with nothing spent;
    a refusal carries the key's limit headers."""
    try:
        first: Chunk | None = await _within_deadline(call, anext(aiter(stream), None))
    except BaseException as error:
        await stream.aclose()
        await call.settle(None, Decimal(0))
        if isinstance(error, ServiceError):
            raise _with_limit_headers(error, call) from None
        raise
    return first


def stream_response(call: Call, stream: ReplyStream, events: AsyncGenerator[bytes, None]) -> EventStreamResponse:
    """The 200 event stream, with the key's limit headers and what serves it (its cost comes at the end)."""
    return EventStreamResponse(events, headers={**call.headers(), **served_headers(stream.served, with_cost=False)})


def stream_failure_event(call: Call, error: Exception) -> bytes:
    """The event that ends a stream failing after its 200, which can no longer change the status:
    the error in the one shape; one we did not expect is logged and told as a 502."""
    request_id = request_id_of(call.request)
    if isinstance(error, ServiceError):
        return sse_event(error_body_of(error, request_id))
    logger.exception("A completion stream failed after it began (request %s)", request_id)
    return sse_event(error_body(502, "stream_failed", "The stream failed.", request_id))

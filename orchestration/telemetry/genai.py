"""The spans of LLM work, named and attributed after OpenTelemetry's GenAI semantic conventions.

One Orchestrator call is one span (``chat sim-small``: the model asked for, what served it, the
tokens, the cost, the cache outcome), with a child per cache lookup, per attempt at a provider
(a client span, parent of the HTTP call that carries ``traceparent`` upstream), per retry wait
and per fallback hop. An agent run is an ``invoke_agent`` span with a child per step, and each
step holds its model call and an ``execute_tool`` span per tool call. Prompt and completion text
are recorded only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is on.

Every function returns at once while tracing is off (its span argument is None).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.trace import Span, SpanKind

from orchestration.telemetry.tracing import (
    REQUEST_ID,
    content_captured,
    span_current,
    span_end,
    span_failed,
    span_start,
    tracer,
)
from orchestration.types import ChatRequest, FallbackHop, Message, ProviderError

if TYPE_CHECKING:
    from orchestration.orchestrator import Call
    from orchestration.registry import ModelRoute, ProviderSettings

T = TypeVar("T")
Quiet = tuple[type[BaseException], ...]

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
AGENT_NAME = "gen_ai.agent.name"
TOOL_NAME = "gen_ai.tool.name"
# Switchyard's own.
CACHE = "switchyard.cache"
COST = "switchyard.cost_usd"
FALLBACK_REASON = "switchyard.fallback.reason"
BREAKER_STATE = "switchyard.breaker.state"

CACHE_LOOKUP = "cache lookup"
RETRY_WAIT = "retry wait"
FALLBACK = "fallback"
AGENT_STEP = "agent step"


# --- one Orchestrator call -------------------------------------------------------------------


def call_span(operation: str, request: Any, endpoint: str, request_id: str) -> Span | None:
    """The span of one Orchestrator call, started in the caller's context; None while tracing is off."""
    if tracer() is None:
        return None
    span = span_start(
        f"{operation} {request.model}",
        {
            OPERATION: operation,
            REQUEST_MODEL: request.model,
            "gen_ai.request.max_tokens": getattr(request, "max_tokens", None),
            "gen_ai.request.temperature": getattr(request, "temperature", None),
            "switchyard.endpoint": endpoint,
            REQUEST_ID: request_id or None,
        },
    )
    if span is not None and content_captured() and isinstance(request, ChatRequest):
        span.set_attribute(INPUT_MESSAGES, _messages_json(request.messages))
    return span


def call_span_end(call: Call, status: str, error_code: str, error: BaseException | None) -> None:
    """What the call came to: the serving model and provider, tokens, cost, cache, fallbacks."""
    span, served = call.span, call.served
    if span is None:
        return
    route = call.tried[-1] if call.tried else call.requested
    span.set_attributes(
        _present(
            {
                RESPONSE_MODEL: served.model or None,
                PROVIDER: route.provider_kind if route is not None else None,
                "switchyard.provider": served.provider or None,
                INPUT_TOKENS: served.usage.input_tokens,
                OUTPUT_TOKENS: served.usage.output_tokens,
                CACHE: served.cache,
                COST: float(served.cost_usd),
                "switchyard.attempts": served.attempts,
                "switchyard.fallback.from": served.fallback_from,
                "gen_ai.response.time_to_first_chunk": served.ttft_ms / 1000 if served.ttft_ms is not None else None,
                "switchyard.status": status,
            }
        )
    )
    if status == "error" and error is not None:
        span_failed(span, error, error_code)
    span.end()


def call_span_output(span: Span | None, content: str | None, finish_reason: str = "") -> None:
    """The completion's text, when an operator turned content capture on."""
    if span is None or not content_captured():
        return
    part = {"type": "text", "content": content or ""}
    span.set_attribute(
        OUTPUT_MESSAGES, json.dumps([{"role": "assistant", "parts": [part], "finish_reason": finish_reason}])
    )


def cache_span(call: Call) -> Span | None:
    return span_start(CACHE_LOOKUP, {}, parent=call.span) if call.span is not None else None


def cache_span_end(span: Span | None, status: str) -> None:
    span_end(span, {CACHE: status})


Attempt = Callable[["ModelRoute", "ProviderSettings"], Awaitable[T]]


def attempts_traced(call: Call, attempt: Attempt[T]) -> Attempt[T]:
    """``attempt`` with a client span around each try at a provider, current while it runs, so
    the HTTP call below it is its child and sends its ``traceparent``."""

    async def traced(route: ModelRoute, provider: ProviderSettings) -> T:
        span = span_start(
            f"{call.operation} {route.name}", _attempt_attributes(call, route), parent=call.span, kind=SpanKind.CLIENT
        )
        try:
            with span_current(span):
                result = await attempt(route, provider)
        except BaseException as error:
            span_end(span, _failure_attributes(error), error=error if isinstance(error, Exception) else None)
            raise
        span_end(span, _result_attributes(result))
        return result

    return traced


def _attempt_attributes(call: Call, route: ModelRoute) -> dict[str, Any]:
    return {
        OPERATION: call.operation,
        REQUEST_MODEL: route.upstream,
        PROVIDER: route.provider_kind,
        "switchyard.model": route.name,
        "switchyard.provider": route.provider,
        "switchyard.attempt": call.served.attempts,
    }


def _failure_attributes(error: BaseException) -> dict[str, Any]:
    if not isinstance(error, ProviderError):
        return {}
    return {
        "error.type": error.kind.value,
        "http.response.status_code": error.status,
        "switchyard.retryable": error.retryable,
    }


def _result_attributes(result: Any) -> dict[str, Any]:
    usage = getattr(result, "usage", None)
    return {
        RESPONSE_MODEL: getattr(result, "model", None),
        "gen_ai.response.id": getattr(result, "id", None),
        INPUT_TOKENS: usage.input_tokens if usage is not None else None,
        OUTPUT_TOKENS: usage.output_tokens if usage is not None else None,
    }


async def retry_wait_traced(call: Call, wait: Awaitable[Any], wait_s: float, reason: str) -> None:
    span = span_start(
        RETRY_WAIT, {"switchyard.retry.wait_s": wait_s, "switchyard.retry.reason": reason}, parent=call.span
    )
    try:
        await wait
    finally:
        span_end(span)


def fallback_traced(call: Call, hop: FallbackHop) -> None:
    """A short span per hop: from which model to which, and why."""
    attributes = {
        FALLBACK_REASON: hop.reason,
        "switchyard.fallback.from": hop.from_model,
        "switchyard.fallback.to": hop.to_model,
        BREAKER_STATE: "open" if hop.reason == "breaker_open" else None,
    }
    span_end(span_start(FALLBACK, attributes, parent=call.span))


# --- agents ----------------------------------------------------------------------------------


@contextmanager
def _spanning(span: Span | None, quiet: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """``span`` current inside the block, and ended after it; an exception marks it failed unless
    it is ``quiet`` (a task parking itself for input is no failure) or a cancellation."""
    try:
        with span_current(span):
            yield
    except BaseException as error:
        failed = isinstance(error, Exception) and not isinstance(error, quiet)
        span_end(span, error=error if failed else None)
        raise
    span_end(span)


def agent_run_span(agent: str, model: str, *, task_id: str | None, request_id: str, quiet: Quiet = ()) -> Any:
    """The span of one agent run (``invoke_agent``), current inside the ``with`` block."""
    attributes = {OPERATION: "invoke_agent", AGENT_NAME: agent, REQUEST_MODEL: model, "switchyard.task_id": task_id}
    return _spanning(span_start(f"invoke_agent {agent}", {**attributes, REQUEST_ID: request_id or None}), quiet)


def agent_step_span(agent: str, step: int, quiet: Quiet = ()) -> Any:
    return _spanning(span_start(AGENT_STEP, {AGENT_NAME: agent, "switchyard.agent.step": step}), quiet)


@contextmanager
def tool_span(tool: str, call_id: str, arguments: str, quiet: Quiet = ()) -> Iterator[Callable[[str], None]]:
    """An ``execute_tool`` span; the block reports the tool's output through the function it gets."""
    if tracer() is None:
        yield _ignored
        return
    capture = content_captured()
    attributes = {OPERATION: "execute_tool", TOOL_NAME: tool, "gen_ai.tool.call.id": call_id}
    span = span_start(
        f"execute_tool {tool}",
        {**attributes, "gen_ai.tool.type": "function", "gen_ai.tool.call.arguments": arguments if capture else None},
    )

    def result(output: str) -> None:
        if span is not None and capture:
            span.set_attribute("gen_ai.tool.call.result", output)

    with _spanning(span, quiet):
        yield result


def _ignored(output: str) -> None:
    return None


# --- helpers ---------------------------------------------------------------------------------


def _messages_json(messages: list[Message]) -> str:
    return json.dumps([{"role": m.role, "parts": [{"type": "text", "content": m.content or ""}]} for m in messages])


def _present(attributes: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if value is not None}

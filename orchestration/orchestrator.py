"""The Orchestrator: every LLM call of Switchyard goes through ``complete``, ``stream`` or ``embed``.

It routes the public model name through the registry snapshot, calls the provider adapter
within the call's deadline, and reports what served the call (``Served``) with its cost.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from orchestration.deadlines import Deadline, call_timeout, deadline_for, embed_timeout
from orchestration.pricing import cost_usd
from orchestration.providers.base import Provider, ProviderConfig
from orchestration.registry import ModelRoute, ProviderSettings, Snapshot, asnapshot
from orchestration.types import (
    ChatRequest,
    ChatResponse,
    Chunk,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorKind,
    OrchestrationError,
    ProviderError,
    Served,
    Usage,
)


@dataclass
class CallContext:
    endpoint: str  # "completion" | "chat" | "agent" | "embedding"
    request_id: str = ""
    api_key_id: int | None = None
    user_id: int | None = None
    deadline_s: float | None = None  # seconds from now; None = the endpoint's/model's default
    cache_control: str = "default"  # "default" | "no-cache" | "no-store"
    prompt_template: str = ""
    prompt_version: int | None = None


_CLIENT_ERRORS = {
    ErrorKind.CONTEXT_WINDOW: "context_length_exceeded",
    ErrorKind.CONTENT_POLICY: "content_policy",
    ErrorKind.BAD_REQUEST: "invalid_request",
}


def orchestration_error_from(error: ProviderError, model: str) -> OrchestrationError:
    """The public error for a provider failure that nothing else could serve."""
    if error.kind in _CLIENT_ERRORS:
        return OrchestrationError(_CLIENT_ERRORS[error.kind], error.message, status=400, cause=error)
    if error.retryable:
        message = f"Model {model!r} is unavailable upstream ({error.kind.value}): {error.message}"
        return OrchestrationError("upstream_unavailable", message, status=503, cause=error)
    message = f"Model {model!r} failed upstream ({error.kind.value}): {error.message}"
    return OrchestrationError("upstream_error", message, status=502, cause=error)


def model_not_found(name: str) -> OrchestrationError:
    return OrchestrationError("model_not_found", f"The model {name!r} does not exist.", status=404)


class Orchestrator:
    """Routes calls to provider adapters; one instance per process (``get_orchestrator``)."""

    def __init__(self) -> None:
        self._adapters: dict[str, Provider] = {}

    def adapter(self, config: ProviderConfig) -> Provider:
        """The pooled adapter of a provider, rebuilt when its configuration changed."""
        current = self._adapters.get(config.name)
        if current is None or current.config != config:
            from orchestration.providers import provider_for

            current = provider_for(config)
            self._adapters[config.name] = current
        return current

    async def route(self, name: str) -> tuple[Snapshot, ModelRoute, ProviderSettings]:
        snap = await asnapshot()
        route = snap.models.get(name)
        if route is None or route.provider not in snap.providers:
            raise model_not_found(name)
        return snap, route, snap.providers[route.provider]

    async def complete(self, request: ChatRequest, ctx: CallContext) -> tuple[ChatResponse, Served]:
        _, route, provider = await self.route(request.model)
        deadline = deadline_for(ctx.endpoint, requested_s=ctx.deadline_s, route=route)
        deadline.check()
        served = Served(model=route.name, provider=route.provider, simulated=route.simulated, attempts=1)
        upstream_request = replace(request, model=route.upstream)
        timeout = call_timeout(deadline, request, route, provider, stream=False)
        try:
            response = await self.adapter(provider.config).complete(upstream_request, timeout=timeout)
        except ProviderError as error:
            raise orchestration_error_from(error, route.name) from error
        response.model = route.name
        served.usage = response.usage
        served.cost_usd = cost_usd(route, response.usage)
        return response, served

    def stream(self, request: ChatRequest, ctx: CallContext) -> ReplyStream:
        return ReplyStream(self, request, ctx)

    async def embed(self, request: EmbeddingRequest, ctx: CallContext) -> tuple[EmbeddingResponse, Served]:
        _, route, provider = await self.route(request.model)
        deadline = deadline_for(ctx.endpoint, requested_s=ctx.deadline_s, route=route)
        deadline.check()
        served = Served(model=route.name, provider=route.provider, simulated=route.simulated, attempts=1)
        try:
            response = await self.adapter(provider.config).embed(
                replace(request, model=route.upstream), timeout=embed_timeout(deadline, provider)
            )
        except ProviderError as error:
            raise orchestration_error_from(error, route.name) from error
        response.model = route.name
        served.usage = response.usage
        served.cost_usd = cost_usd(route, response.usage)
        return response, served


class ReplyStream:
    """``async for chunk in stream`` yields ``Chunk``s; ``await stream.aclose()`` cancels upstream.

    ``served`` names the model and provider before the first chunk is yielded; its usage and
    cost are final once iteration ends.
    """

    def __init__(self, orchestrator: Orchestrator, request: ChatRequest, ctx: CallContext) -> None:
        self.served = Served()
        self._orchestrator = orchestrator
        self._request = request
        self._ctx = ctx
        self._iterator: AsyncIterator[Chunk] | None = None

    def __aiter__(self) -> AsyncIterator[Chunk]:
        if self._iterator is None:
            self._iterator = self._chunks()
        return self._iterator

    async def aclose(self) -> None:
        iterator = self._iterator
        if iterator is not None and hasattr(iterator, "aclose"):
            await iterator.aclose()

    async def _chunks(self) -> AsyncIterator[Chunk]:
        _, route, provider = await self._orchestrator.route(self._request.model)
        deadline: Deadline = deadline_for(self._ctx.endpoint, requested_s=self._ctx.deadline_s, route=route)
        deadline.check()
        self.served = Served(model=route.name, provider=route.provider, simulated=route.simulated, attempts=1)
        timeout = call_timeout(deadline, self._request, route, provider, stream=True)
        upstream = self._orchestrator.adapter(provider.config).stream(
            replace(self._request, model=route.upstream), timeout=timeout
        )
        started = time.monotonic()
        usage = Usage()
        try:
            async for chunk in upstream:
                if self.served.ttft_ms is None:
                    self.served.ttft_ms = (time.monotonic() - started) * 1000
                if chunk.usage is not None:
                    usage = chunk.usage
                yield chunk
        except ProviderError as error:
            if self.served.ttft_ms is not None:
                message = f"The stream from {route.name!r} broke after it began: {error.message}"
                raise OrchestrationError("upstream_error", message, status=502, cause=error) from error
            raise orchestration_error_from(error, route.name) from error
        finally:
            if hasattr(upstream, "aclose"):
                await upstream.aclose()
        self.served.usage = usage
        self.served.cost_usd = cost_usd(route, usage)


_orchestrator: Orchestrator | None = None


def get_orchestrator() -> Orchestrator:
    """The process's Orchestrator (its adapters pool connections)."""
    global _orchestrator
    if _orchestrator is None:
        _orchestrator = Orchestrator()
    return _orchestrator

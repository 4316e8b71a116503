"""The Orchestrator: every LLM call of Switchyard goes through ``complete``, ``stream`` or ``embed``.

One call: cache -> route -> breaker -> attempt (with retries: backoff and jitter, or the
provider's ``Retry-After``) -> next model of the fallback chain -> a stale cached answer -> an
honest 503. All of it inside one deadline. Every call ends in exactly one request-log row and
one set of metrics, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn, TypeVar

from orchestration.access.admission import prompt_tokens_from_chars
from orchestration.breaker import Admission, BreakerPolicy, Breakers, BreakerView, breaker_key, breaker_state_mirror
from orchestration.caching import exact as exact_cache
from orchestration.caching.feedback import ServedHit, semantic_hit_token
from orchestration.caching.provider_embedding import embed_through
from orchestration.cancellation import cancellation_swallowed_raise
from orchestration.deadlines import (
    MIN_ATTEMPT_S,
    Clock,
    Deadline,
    call_timeout,
    deadline_exceeded,
    deadline_for,
    embed_timeout,
)
from orchestration.metrics import metrics_breaker_transition, metrics_call_finished, metrics_fallback, metrics_retry
from orchestration.pricing import cost_usd
from orchestration.providers.base import CallTimeout, Provider, ProviderConfig
from orchestration.redaction import redact
from orchestration.redisclients import redis_async_close
from orchestration.registry import DeploymentRoute, ModelRoute, ProviderSettings, Snapshot, asnapshot
from orchestration.requestlog import log_entry_from, requestlog_record
from orchestration.retry import RetryPolicy, Rng, retry_wait_s
from orchestration.routing.accounts import WINDOW_S, Accounts
from orchestration.routing.experiments import request_varied, variant_for
from orchestration.routing.latency import LatencyBoard
from orchestration.routing.strategies import LEAST_BUSY, deployments_order
from orchestration.telemetry.genai import (
    attempts_traced,
    cache_span,
    cache_span_end,
    call_span,
    call_span_end,
    call_span_output,
    fallback_traced,
    retry_wait_traced,
)
from orchestration.telemetry.tracing import content_captured
from orchestration.types import (
    CallContext,
    ChatRequest,
    ChatResponse,
    Chunk,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorKind,
    FallbackHop,
    OrchestrationError,
    ProviderError,
    Served,
    Usage,
)
from orchestration.validation import prompt_chars
from orchestration.watchdog import ReadWatchdog

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]

MAX_HOPS = 5
# Our own guard fires this long after the adapter's timeout should have: it only catches an
# adapter that ignores its CallTimeout, so the deadline still holds.
GUARD_S = 1.0
# The request-log word for a fallback to a cached answer.
CACHE_HOP = "cache"


_CLIENT_ERRORS = {
    ErrorKind.CONTEXT_WINDOW: "context_length_exceeded",
    ErrorKind.CONTENT_POLICY: "content_policy",
    ErrorKind.BAD_REQUEST: "invalid_request",
}


# What a client or end user reads of a provider's failure: a plain sentence per kind. What the
# provider said (it may echo a key, it names internals) goes to the request log and the server log.
_CLIENT_MESSAGES = {
    ErrorKind.CONTEXT_WINDOW: "The conversation is longer than the model can read at once (its context window).",
    ErrorKind.CONTENT_POLICY: "The model provider declined to answer this request under its content policy.",
    ErrorKind.BAD_REQUEST: "The model provider refused the request as invalid.",
}


def _staff_detail(error: ProviderError) -> str:
    return f"provider {error.provider or '?'} ({error.kind.value}, HTTP {error.status or '-'}): {error.message}"


def orchestration_error_from(error: ProviderError, model: str) -> OrchestrationError:
    """The public error for a provider failure that nothing else could serve."""
    detail = _staff_detail(error)
    if error.kind in _CLIENT_ERRORS:
        message = _CLIENT_MESSAGES[error.kind]
        return OrchestrationError(_CLIENT_ERRORS[error.kind], message, status=400, cause=error, detail=detail)
    if error.retryable:
        message = f"The model '{model}' is unavailable right now. {retry_hint(error.retry_after)}"
        return OrchestrationError(
            "upstream_unavailable", message, status=503, retry_after=error.retry_after, cause=error, detail=detail
        )
    message = f"The model provider failed while answering with '{model}'."
    return OrchestrationError("upstream_error", message, status=502, cause=error, detail=detail)


def retry_hint(retry_after: float | None) -> str:
    """The sentence that tells a caller when to retry: it points at Retry-After only when the
    answer carries one (a provider's 500 gives no hint, and no breaker may be open yet)."""
    if retry_after is None:
        return "Retry in a few seconds."
    return "Retry after the time in Retry-After."


def model_not_found(name: str) -> OrchestrationError:
    return OrchestrationError("model_not_found", f"The model {name!r} does not exist.", status=404)


class BreakerOpen(Exception):
    """The breaker refused the call before it was made."""

    def __init__(self, key: str, retry_at: float | None) -> None:
        super().__init__(f"circuit breaker {key!r} is open")
        self.key = key
        self.retry_at = retry_at


Failure = ProviderError | BreakerOpen


class ChainExhausted(Exception):
    """Every model the call may use failed; ``failure`` is the last reason."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


@dataclass
class Lease:
    """The breaker admission of the attempt that succeeded, until its outcome is recorded."""

    key: str
    provider: str
    policy: BreakerPolicy
    admission: Admission = field(default_factory=lambda: Admission(True))
    in_flight: str = ""  # the deployment counted in flight until the outcome is recorded (least-busy)


@dataclass
class Call:
    """One call in progress: what was asked, its deadline, and what has happened so far."""

    model: str
    ctx: CallContext
    started: float
    served: Served = field(default_factory=Served)
    snap: Snapshot | None = None
    requested: ModelRoute | None = None
    deadline: Deadline | None = None
    chain: tuple[str, ...] = ()
    tried: list[ModelRoute] = field(default_factory=list)
    reopen_at: float | None = None  # earliest breaker-clock time an open breaker of this call half-opens
    operation: str = "chat"  # the GenAI operation: "chat" or "embeddings"
    streaming: bool = False
    deployment: DeploymentRoute | None = None  # the deployment of the attempt in progress or that served
    parameters: dict[str, object] = field(default_factory=dict)  # an experiment variant's overrides
    span: Any = None  # the call's trace span; None while tracing is off (orchestration/telemetry/genai.py)
    max_tokens: int | None = None  # what a chat call asked to write at most (None: the model's limit)

    def generation_tokens(self, route: ModelRoute) -> int | None:
        """What stretches the deadline: the most a chat call may write; nothing for embeddings."""
        if self.operation != "chat":
            return None
        return self.max_tokens or route.max_output_tokens

    def note_reopen(self, retry_at: float | None) -> None:
        if retry_at is not None and (self.reopen_at is None or retry_at < self.reopen_at):
            self.reopen_at = retry_at


def _breaker_transitioned(key: str, provider: str, view: BreakerView) -> None:
    metrics_breaker_transition(key, view.state)
    breaker_state_mirror(key, provider, view)


class Orchestrator:
    """Routes, retries and falls back; one instance per process (``get_orchestrator``).

    ``clock`` (monotonic seconds) drives deadlines, ``sleep`` the waits between attempts, ``rng``
    the jitter, ``breakers`` the circuit breakers (with their own wall clock), ``routing_rng`` the
    choice between deployments, ``latency`` the deployments' latency estimates and ``accounts``
    their quotas and in-flight counts (both with their own clocks): tests inject them.
    """

    def __init__(
        self,
        *,
        breakers: Breakers | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Rng = random.random,
        routing_rng: Rng = random.random,
        latency: LatencyBoard | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.breakers = breakers or Breakers(on_transition=_breaker_transitioned)
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.routing_rng = routing_rng
        self.latency = latency or LatencyBoard()
        self.accounts = accounts or Accounts()

    # --- public API ----------------------------------------------------------------------

    async def complete(self, request: ChatRequest, ctx: CallContext) -> tuple[ChatResponse, Served]:
        call = self._call(request, ctx)
        try:
            response = await self._complete(request, call)
        except BaseException as error:
            self._finish(call, error)
            raise
        if call.span is not None:
            call_span_output(call.span, response.content, response.finish_reason)
        self._finish(call, None)
        return response, call.served

    def stream(self, request: ChatRequest, ctx: CallContext) -> ReplyStream:
        return ReplyStream(self, request, ctx)

    async def embed(self, request: EmbeddingRequest, ctx: CallContext) -> tuple[EmbeddingResponse, Served]:
        call = self._call(request, ctx, "embeddings")
        try:
            response = await self._embed(request, call)
        except BaseException as error:
            self._finish(call, error)
            raise
        self._finish(call, None)
        return response, call.served

    async def drain(self) -> None:
        """Count the successes the breakers of this event loop have waiting, now."""
        await self.breakers.flush()

    async def aclose(self) -> None:
        """Finish background work and close this loop's Redis clients (adapters are closed by
        ``adapters_aclose``)."""
        await self.drain()
        await self.breakers.aclose()
        await redis_async_close()

    def adapter(self, config: ProviderConfig) -> Provider:
        """The process's pooled adapter of a provider."""
        from orchestration.providers import provider_for

        return provider_for(config)

    # --- one call --------------------------------------------------------------------------

    def _call(self, request: ChatRequest | EmbeddingRequest, ctx: CallContext, operation: str = "chat") -> Call:
        span = call_span(operation, request, ctx.endpoint, ctx.request_id)
        max_tokens = request.max_tokens if isinstance(request, ChatRequest) else None
        call = Call(model=request.model, ctx=ctx, started=self.clock(), operation=operation, span=span)
        call.max_tokens = max_tokens
        return call

    async def _route(self, call: Call, *, with_fallbacks: bool = True) -> ModelRoute:
        snap = await asnapshot()
        route = snap.models.get(call.model)
        if route is None or route.provider not in snap.providers:
            raise model_not_found(call.model)
        # The deadline is the one of the model the caller asked for, whichever variant serves it:
        # the door's backstop and the budget's hold (orchestration/calls.py) count with that model too.
        call.deadline = deadline_for(
            call.ctx.endpoint,
            requested_s=call.ctx.deadline_s,
            route=route,
            max_tokens=call.generation_tokens(route),
            clock=self.clock,
            started=call.started,
        )
        if call.operation == "chat":  # embeddings stay out of experiments: a variant's vectors would not compare
            route = self._experiment_arm(call, snap, route)
        call.snap, call.requested = snap, route
        call.chain = route.fallbacks if with_fallbacks else ()
        self._serve_from(call, route)
        return route

    def _experiment_arm(self, call: Call, snap: Snapshot, route: ModelRoute) -> ModelRoute:
        """The route of the call's variant when an experiment splits this model's traffic. A call
        already in a prompt experiment stays out: one call is measured for one experiment."""
        if call.ctx.experiment:
            call.served.experiment, call.served.variant = call.ctx.experiment, call.ctx.variant
            return route
        experiment = snap.experiments.get(route.name)
        variant = variant_for(experiment, call.ctx) if experiment is not None else None
        if experiment is None or variant is None:
            return route
        call.served.experiment, call.served.variant = experiment.name, variant.name
        call.parameters = variant.parameters
        target = snap.models.get(variant.target) if variant.target else None
        return target if target is not None and target.provider in snap.providers else route

    def _serve_from(self, call: Call, route: ModelRoute) -> None:
        call.served.model, call.served.provider, call.served.simulated = route.name, route.provider, route.simulated
        call.served.deployment = route.deployment

    async def _complete(self, request: ChatRequest, call: Call) -> ChatResponse:
        requested = await self._route(call)
        request = request_varied(request, call.parameters)
        cached = await self._cache_lookup(request, call)
        if cached is not None:
            return cached

        async def attempt(route: ModelRoute, provider: ProviderSettings) -> ChatResponse:
            timeout = call_timeout(_deadline(call), request, route, provider, stream=False)
            upstream = replace(request, model=route.upstream)
            return await _guarded(self.adapter(provider.config).complete(upstream, timeout=timeout), timeout)

        try:
            response, route, _ = await self._serve(call, attempt, settle=True)
        except ChainExhausted as exhausted:
            stale = await self._cache_stale(request, call, exhausted.failure)
            if stale is None:
                raise await self._final_error(call, exhausted.failure) from None
            return stale
        response.model = route.name
        self._charge(call, route, response.usage)
        await self._count_tokens(call, response.usage)
        if route is requested:
            await self._cache_store(request, call, response)
        return response

    async def _embed(self, request: EmbeddingRequest, call: Call) -> EmbeddingResponse:
        await self._route(call, with_fallbacks=False)
        call.served.cache = "BYPASS"

        async def attempt(route: ModelRoute, provider: ProviderSettings) -> EmbeddingResponse:
            timeout = embed_timeout(_deadline(call), provider)
            upstream = replace(request, model=route.upstream)
            return await _guarded(self.adapter(provider.config).embed(upstream, timeout=timeout), timeout)

        try:
            response, route, _ = await self._serve(call, attempt, settle=True)
        except ChainExhausted as exhausted:
            raise await self._final_error(call, exhausted.failure) from None
        response.model = route.name
        self._charge(call, route, response.usage)
        await self._count_tokens(call, response.usage)
        return response

    def _charge(self, call: Call, route: ModelRoute, usage: Usage, *, estimated: bool = False) -> None:
        call.served.usage = usage
        call.served.usage_estimated = estimated
        call.served.cost_usd = cost_usd(call.deployment.route if call.deployment else route, usage)

    def _charge_relayed(self, call: Call, route: ModelRoute, request: ChatRequest, relayed: Relayed) -> Usage:
        """Charge a stream the usage its provider reported, else an estimate of what it read and wrote."""
        usage = relayed.usage if relayed.usage is not None else _usage_estimated(request, relayed)
        self._charge(call, route, usage, estimated=relayed.usage is None)
        return usage

    async def _count_tokens(self, call: Call, usage: Usage) -> None:
        if call.deployment is not None:
            await self.accounts.tokens_used(call.deployment, usage.input_tokens + usage.output_tokens)

    # --- routing, breakers, retries, fallbacks ---------------------------------------------

    async def _serve(
        self, call: Call, attempt: Callable[[ModelRoute, ProviderSettings], Awaitable[T]], *, settle: bool
    ) -> tuple[T, ModelRoute, Lease]:
        """Try the requested model, then its fallbacks, until one answers."""
        if call.span is not None:
            attempt = attempts_traced(call, attempt)
        route = call.requested
        assert route is not None
        while True:
            try:
                result, lease = await self._try_model(call, route, attempt, settle=settle)
                return result, route, lease
            except (ProviderError, BreakerOpen) as failure:
                route = self._next_route(call, route, failure)

    async def _try_model(
        self,
        call: Call,
        route: ModelRoute,
        attempt: Callable[[ModelRoute, ProviderSettings], Awaitable[T]],
        *,
        settle: bool,
    ) -> tuple[T, Lease]:
        """One model: its deployments in its strategy's order. A deployment whose quota is spent or
        whose breaker is open is skipped before any call; one that fails hands over to the next at
        once; only the last one left is retried with backoff. Raises the last failure."""
        order = await self._deployments_order(call, route)
        failure: Failure | None = None
        for index, deployment in enumerate(order):
            if not await self.accounts.quota_admit(deployment):
                continue
            last = index == len(order) - 1
            try:
                return await self._try_deployment(call, deployment, attempt, settle=settle, last=last)
            except BreakerOpen as refused:
                failure = refused
            except ProviderError as error:
                if error.kind in _CLIENT_ERRORS:
                    raise  # the request itself is refused: another deployment would refuse it too
                failure = error
        if failure is None:
            raise _quota_spent(route, self.accounts.clock())
        raise failure

    async def _deployments_order(self, call: Call, route: ModelRoute) -> list[DeploymentRoute]:
        deployments = route.deployments or (DeploymentRoute(route.provider, 1, None, None, "", "", route, route.name),)
        in_flight: dict[str, int] = {}
        if route.strategy == LEAST_BUSY and len(deployments) > 1:
            in_flight = await self.accounts.in_flight(deployments)
        return deployments_order(
            route.strategy,
            deployments,
            rng=self.routing_rng,
            in_flight=in_flight,
            board=self.latency,
            streaming=call.streaming,
        )

    async def _try_deployment(
        self,
        call: Call,
        deployment: DeploymentRoute,
        attempt: Callable[[ModelRoute, ProviderSettings], Awaitable[T]],
        *,
        settle: bool,
        last: bool,
    ) -> tuple[T, Lease]:
        """One deployment, with its retries when it is the ``last`` one left to try."""
        assert call.snap is not None
        route = deployment.route
        provider = call.snap.providers[route.provider]
        call.tried.append(route)
        lease = Lease(breaker_key(route, provider), route.provider, BreakerPolicy.of(provider))
        policy = RetryPolicy.of(provider)
        retries = 0
        while True:
            await self._attempt_admit(call, deployment, lease)
            # Named as serving only once it is called: a deadline or a breaker that stops the call
            # first leaves the log row (and the costs page's errors) on the model that was.
            call.deployment = deployment
            self._serve_from(call, route)
            began = self.clock()
            try:
                # A client gone meanwhile, whose cancellation a Redis command above lost, gets no
                # upstream call (orchestration/cancellation.py).
                cancellation_swallowed_raise()
                result = await attempt(route, provider)
            except ProviderError as error:
                failure = error
            except Exception as error:
                failure = _adapter_bug(route, error)
            except BaseException:
                # Cancelled: the call says nothing about the provider's health.
                await self._release(lease)
                raise
            else:
                self.latency.record(deployment.key, (self.clock() - began) * 1000, streaming=call.streaming)
                if settle:
                    await self._succeeded(lease)
                return result, lease
            await self._settle(lease, failure)
            wait = retry_wait_s(policy, retries, failure, _deadline(call), self.rng) if last else None
            if wait is None:
                raise failure
            retries += 1
            metrics_retry(route.name, route.provider, failure.kind.value)
            if call.span is None:
                await self.sleep(wait)
            else:
                await retry_wait_traced(call, self.sleep(wait), wait, failure.kind.value)

    async def _attempt_admit(self, call: Call, deployment: DeploymentRoute, lease: Lease) -> None:
        """Within the deadline, past the breaker (or BreakerOpen), and counted: attempts, and calls
        in flight for least-busy routing."""
        _deadline(call).check()
        lease.admission = await self.breakers.acquire(lease.key, lease.provider, lease.policy)
        if not lease.admission.allowed:
            call.note_reopen(lease.admission.retry_at)
            raise BreakerOpen(lease.key, lease.admission.retry_at)
        call.served.attempts += 1
        if deployment.route.strategy == LEAST_BUSY:  # the model being tried: a fallback counts too
            lease.in_flight = deployment.key
            await self.accounts.start(deployment.key)

    async def _lease_out_of_flight(self, lease: Lease) -> None:
        if lease.in_flight:
            key, lease.in_flight = lease.in_flight, ""
            await self.accounts.end(key)

    async def _release(self, lease: Lease) -> None:
        """The attempt was cancelled: free its breaker admission and its in-flight count."""
        await self._lease_out_of_flight(lease)
        await self.breakers.release(lease.key, lease.admission)

    async def _succeeded(self, lease: Lease) -> None:
        """Count a success. A probe's closes the breaker before the next caller asks; any other is
        counted off the caller's latency, batched with the successes of the next moments
        (``SUCCESS_BATCH_S``): its order relative to other calls does not change what the window
        holds for long."""
        await self._lease_out_of_flight(lease)
        if lease.admission.probe_token:
            await self.breakers.record(lease.key, lease.provider, lease.policy, lease.admission, failed=False)
        else:
            self.breakers.record_success_soon(lease.key, lease.provider, lease.policy)

    async def _settle(self, lease: Lease, error: ProviderError) -> None:
        """Count a failed attempt against the breaker, or not (400/404/422 say nothing of health)."""
        await self._lease_out_of_flight(lease)
        if error.counts_against_breaker:
            await self.breakers.record(lease.key, lease.provider, lease.policy, lease.admission, failed=True)
        else:
            await self.breakers.release(lease.key, lease.admission)

    def _next_route(self, call: Call, failed: ModelRoute, failure: Failure) -> ModelRoute:
        """The model to switch to after ``failed`` gave up, recorded as a hop; raises when none."""
        candidates = self._candidates(call, failed, failure)
        target = next((route for route in candidates if all(route.name != t.name for t in call.tried)), None)
        if target is None or len(call.served.fallbacks) >= MAX_HOPS:
            raise ChainExhausted(failure)
        reason = failure.kind.value if isinstance(failure, ProviderError) else "breaker_open"
        self._hop(call, FallbackHop(reason=reason, from_model=failed.name, to_model=target.name))
        return target

    def _candidates(self, call: Call, failed: ModelRoute, failure: Failure) -> list[ModelRoute]:
        assert call.snap is not None and call.requested is not None
        kind = failure.kind if isinstance(failure, ProviderError) else None
        if kind is ErrorKind.BAD_REQUEST:
            return []
        if kind is ErrorKind.CONTENT_POLICY:
            names: tuple[str, ...] = tuple(
                name for name in (failed.content_policy_fallback, call.requested.content_policy_fallback) if name
            )
        else:
            names = call.chain
        routes = [call.snap.models[name] for name in names if name in call.snap.models]
        routes = [route for route in routes if route.provider in call.snap.providers]
        if kind is ErrorKind.CONTEXT_WINDOW:
            routes = [route for route in routes if route.context_window > failed.context_window]
        return routes

    def _hop(self, call: Call, hop: FallbackHop) -> None:
        call.served.fallbacks.append(hop)
        metrics_fallback(hop)
        if call.span is not None:
            fallback_traced(call, hop)
        logger.info("fallback %s -> %s (%s) request %s", hop.from_model, hop.to_model, hop.reason, call.ctx.request_id)

    async def _final_error(self, call: Call, failure: Failure) -> OrchestrationError:
        """What the caller hears once nothing could answer."""
        assert call.requested is not None
        if isinstance(failure, ProviderError) and failure.kind in _CLIENT_ERRORS:
            return orchestration_error_from(failure, call.requested.name)
        deadline = _deadline(call)
        if deadline.remaining() < MIN_ATTEMPT_S:
            return deadline_exceeded(deadline)
        retry_after = await self._retry_after(call, failure)
        names = ", ".join(route.name for route in call.tried)
        detail = f"tried {names}; last: " + (
            _staff_detail(failure) if isinstance(failure, ProviderError) else f"breaker {failure.key} open"
        )
        message = f"No model could answer for '{call.requested.name}' right now (tried {names})."
        if isinstance(failure, BreakerOpen) or failure.retryable:
            return OrchestrationError(
                "upstream_unavailable",
                f"{message} {retry_hint(retry_after)}",
                status=503,
                retry_after=retry_after,
                cause=failure if isinstance(failure, ProviderError) else None,
                detail=detail,
            )
        error = orchestration_error_from(failure, call.requested.name)
        error.message, error.detail = message, detail
        return error

    async def _retry_after(self, call: Call, failure: Failure) -> float | None:
        """Seconds until the first breaker of this call lets a probe through, else the provider's hint."""
        reopen_at = call.reopen_at
        assert call.snap is not None
        for route in call.tried:
            provider = call.snap.providers[route.provider]
            policy = BreakerPolicy.of(provider)
            view = await self.breakers.view(breaker_key(route, provider), policy)
            if view.state == "open" and view.next_probe_at is not None:
                reopen_at = view.next_probe_at if reopen_at is None else min(reopen_at, view.next_probe_at)
        if reopen_at is not None:
            return float(max(1, math.ceil(reopen_at - self.breakers.clock())))
        return failure.retry_after if isinstance(failure, ProviderError) else None

    # --- cache -----------------------------------------------------------------------------

    async def _cache_lookup(self, request: ChatRequest, call: Call) -> ChatResponse | None:
        """A cached answer (its usage is not charged again), else None with X-Cache MISS or BYPASS."""
        assert call.requested is not None  # routed before the cache is asked
        span = cache_span(call) if call.span is not None else None
        try:
            answer = await exact_cache.cache_lookup(request, call.requested, call.ctx)
            if answer is None:
                call.served.cache = exact_cache.cache_status_on_miss(request, call.requested, call.ctx)
                return None
            call.served.cache = answer.status
            if answer.status == "SEMANTIC-HIT":
                hit = ServedHit(answer.key, call.requested.name, answer.similarity or 0.0)
                call.served.cache_entry = semantic_hit_token(hit)
            return answer.response
        except Exception:
            logger.exception("cache lookup failed; answering from the provider")
            return None
        finally:
            if span is not None:
                cache_span_end(span, call.served.cache)

    def _cacheable_stream(self, request: ChatRequest, call: Call) -> bool:
        """Whether a stream's chunks are worth keeping: its answer may go into the cache."""
        if call.ctx.cache_control == "no-store" or call.requested is None:
            return False
        return exact_cache.store_applies(request, call.requested)

    async def _cache_store(self, request: ChatRequest, call: Call, response: ChatResponse) -> None:
        if call.ctx.cache_control == "no-store" or call.requested is None:
            return
        try:
            await exact_cache.cache_store(request, call.requested, response, call.ctx)
        except Exception:
            logger.exception("cache store failed")

    async def _cache_stale(self, request: ChatRequest, call: Call, failure: Failure) -> ChatResponse | None:
        """A cached answer when every provider failed; None when there is none (or it would be wrong)."""
        if call.ctx.cache_control == "no-store" or call.requested is None:
            return None
        if isinstance(failure, ProviderError) and failure.kind in _CLIENT_ERRORS:
            return None
        try:
            answer = await exact_cache.cache_lookup_stale(request, call.requested, call.ctx)
        except Exception:
            logger.exception("stale cache lookup failed")
            return None
        if answer is None:
            return None
        reason = failure.kind.value if isinstance(failure, ProviderError) else "breaker_open"
        last = call.tried[-1].name if call.tried else call.requested.name
        self._hop(call, FallbackHop(reason=reason, from_model=last, to_model=CACHE_HOP))
        self._serve_from(call, call.requested)
        call.served.cache = answer.status
        return answer.response

    # --- the end of every call -------------------------------------------------------------

    def _finish(self, call: Call, error: BaseException | None) -> None:
        """One request-log row and the metrics, whatever happened."""
        try:
            status, kind = _outcome(error)
            detail = _failure_detail(error)
            if detail:
                logger.warning("call %s (%s) failed: %s", call.ctx.request_id, call.model, detail)
            duration_s = self.clock() - call.started
            metrics_call_finished(call.ctx.endpoint, call.model, call.served, status=status, duration_s=duration_s)
            if call.span is not None:
                call_span_end(call, status, kind, error)
            requestlog_record(
                log_entry_from(
                    request_id=call.ctx.request_id,
                    endpoint=call.ctx.endpoint,
                    model_requested=call.model,
                    served=call.served,
                    api_key_id=call.ctx.api_key_id,
                    user_id=call.ctx.user_id,
                    status=status,
                    error_kind=kind,
                    error_detail=detail,
                    latency_ms=duration_s * 1000,
                    prompt_template=call.ctx.prompt_template,
                    prompt_version=call.ctx.prompt_version,
                    message_id=call.ctx.message_id,
                )
            )
        except Exception:
            logger.exception("could not record call %s", call.ctx.request_id)


def _failure_detail(error: BaseException | None) -> str:
    """What staff read of a failure (request log, server log): the provider's own words, with
    anything that looks like a secret redacted."""
    if error is None or isinstance(error, asyncio.CancelledError | GeneratorExit):
        return ""
    if isinstance(error, OrchestrationError):
        text = error.detail or (_staff_detail(error.cause) if error.cause is not None else "")
    else:
        text = f"{type(error).__name__}: {error}"
    return redact(text)[:2000]


def _outcome(error: BaseException | None) -> tuple[str, str]:
    if error is None:
        return "ok", ""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "cancelled", ""
    if isinstance(error, OrchestrationError):
        return "error", error.code
    return "error", type(error).__name__


def _adapter_bug(route: ModelRoute, error: Exception) -> ProviderError:
    """An adapter broke its contract (every failure a ProviderError): treat it as a malformed
    reply, so the call still retries and falls back instead of failing with a 500."""
    logger.error("adapter of %s raised %r", route.provider, error, exc_info=error)
    return ProviderError(ErrorKind.MALFORMED, f"the adapter failed: {error!r}", provider=route.provider)


def _quota_spent(route: ModelRoute, now: float) -> ProviderError:
    """Every deployment of the model used its account's quota this minute: no call was made."""
    retry_after = float(max(1, math.ceil(WINDOW_S - now % WINDOW_S)))
    message = f"every deployment of {route.name} is at its provider quota this minute"
    return ProviderError(ErrorKind.RATE_LIMITED, message, retry_after=retry_after, provider=route.provider)


def _deadline(call: Call) -> Deadline:
    assert call.deadline is not None
    return call.deadline


async def _guarded(call: Awaitable[T], limits: CallTimeout) -> T:
    """Await an adapter call, turning a run past its own timeout into a timeout error."""
    try:
        async with asyncio.timeout(limits.total + GUARD_S):
            return await call
    except TimeoutError:
        raise ProviderError(ErrorKind.TIMEOUT, f"no answer within {limits.total:.1f} s") from None


# --- streams -------------------------------------------------------------------------------


@dataclass(slots=True)
class OpenedStream:
    upstream: AsyncIterator[Chunk]
    first: Chunk
    timeout: CallTimeout
    watchdog: ReadWatchdog
    bounded: bool  # the adapter ends every read within the call's limits itself (Provider.bounds_stream_reads)


@dataclass(slots=True)
class Relayed:
    """What a stream sent: its usage, how it finished, the length of its text, and (when it may be
    cached, or its text is captured) its chunks."""

    keep: bool
    chunks: list[Chunk] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str = ""
    chars: int = 0

    @property
    def finished(self) -> bool:
        return bool(self.finish_reason)

    def add(self, chunk: Chunk) -> None:
        if self.keep:
            self.chunks.append(chunk)
        self.chars += len(chunk.delta)
        if chunk.tool_calls:
            self.chars += sum(len(call.name or "") + len(call.arguments) for call in chunk.tool_calls)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason


class ReplyStream:
    """``async for chunk in stream`` yields ``Chunk``s; ``await stream.aclose()`` cancels upstream.

    ``served`` names the model and provider before the first chunk is yielded; its usage and
    cost are final once iteration ends. A failure before the first chunk falls back like
    ``complete``; after it, iteration raises ``OrchestrationError("upstream_error")`` (or
    ``deadline_exceeded``): a stream never ends silently on a failure.
    """

    def __init__(self, orchestrator: Orchestrator, request: ChatRequest, ctx: CallContext) -> None:
        self._orchestrator = orchestrator
        self._request = request
        self._call = orchestrator._call(request, ctx)
        self.served = self._call.served
        self._iterator: AsyncGenerator[Chunk, None] | None = None
        self._cached_usage: Usage | None = None

    @property
    def usage(self) -> Usage:
        """The usage the answer reports, as ``complete``'s response carries it: a cached answer's
        own (``served.usage`` stays zero for it, since it is not charged again), else the charged one."""
        return self._cached_usage if self._cached_usage is not None else self.served.usage

    @property
    def from_cache(self) -> bool:
        """Whether a cached answer (HIT, SEMANTIC-HIT or STALE) was streamed: it costs nothing."""
        return self._cached_usage is not None

    def __aiter__(self) -> AsyncIterator[Chunk]:
        if self._iterator is None:
            self._iterator = self._chunks()
        return self._iterator

    async def aclose(self) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()

    async def _chunks(self) -> AsyncGenerator[Chunk, None]:
        """The stream, in one generator: a token passes one frame here on its way from the
        adapter to the caller, not one per stage (route, cache, relay, request log), each of which
        cost a resumption per token. The stages are the nested ``try``s: a failure or a close
        unwinds them innermost first (the lease, the charge, then the request-log row)."""
        orchestrator, call = self._orchestrator, self._call
        error: BaseException | None = None
        # Content capture records the text that went out (from the chunks ``relayed`` keeps).
        captured = call.span is not None and content_captured()
        relayed = Relayed(keep=captured)
        try:
            call.streaming = True
            requested = await orchestrator._route(call)
            request = self._request = request_varied(self._request, call.parameters)
            cached = await orchestrator._cache_lookup(request, call)
            if cached is None:
                try:
                    opened, route, lease = await orchestrator._serve(call, self._open, settle=False)
                except ChainExhausted as exhausted:
                    cached = await orchestrator._cache_stale(request, call, exhausted.failure)
                    if cached is None:
                        raise await orchestrator._final_error(call, exhausted.failure) from None
            if cached is not None:
                self._cached_usage = cached.usage
                for chunk in exact_cache.chunks_from_response(cached):
                    relayed.add(chunk)
                    yield chunk
                return
            cacheable = route is requested and orchestrator._cacheable_stream(request, call)
            relayed.keep = captured or cacheable
            try:
                # Pass chunks on; a failure from here on ends the stream with an error.
                deadline, upstream = _deadline(call), opened.upstream
                call.served.ttft_ms = (orchestrator.clock() - call.started) * 1000
                try:
                    relayed.add(opened.first)
                    yield opened.first
                    if opened.bounded:  # a second time limit per token would only repeat the adapter's
                        async for chunk in upstream:
                            relayed.add(chunk)
                            yield chunk
                    else:
                        while True:
                            limit_s = min(opened.timeout.idle, deadline.remaining()) + GUARD_S
                            following = await _next_chunk(upstream, limit_s, opened.watchdog)
                            if following is None:
                                break
                            relayed.add(following)
                            yield following
                except Exception as failure:
                    await self._relay_failed(failure, route, lease, deadline)
                except BaseException:
                    await orchestrator._release(lease)
                    raise
                finally:
                    opened.watchdog.close()
                    await _close(upstream)
                await orchestrator._succeeded(lease)
            except BaseException:
                # Cut short (the client left, the provider failed, the deadline passed): what the
                # provider read and wrote is charged all the same, by its own usage when it sent one,
                # else estimated. Hanging up before the usage chunk came must not make a call free.
                orchestrator._charge_relayed(call, route, request, relayed)
                raise
            # Many OpenAI-compatible servers (Ollama, vLLM) never send usage in a stream, even when
            # asked with stream_options.include_usage: such a stream is estimated as one cut short is.
            usage = orchestrator._charge_relayed(call, route, request, relayed)
            await orchestrator._count_tokens(call, usage)
            if cacheable and relayed.finished:
                answer = exact_cache.response_from_chunks(
                    relayed.chunks, response_id=call.ctx.request_id or "stream", model=route.name, usage=usage
                )
                if answer is not None:
                    await orchestrator._cache_store(request, call, answer)
        except BaseException as failure:
            error = failure
            raise
        finally:
            if captured:
                call_span_output(call.span, "".join(chunk.delta for chunk in relayed.chunks), relayed.finish_reason)
            orchestrator._finish(call, error)

    async def _relay_failed(self, failure: Exception, route: ModelRoute, lease: Lease, deadline: Deadline) -> NoReturn:
        """End the stream on a failure after its first chunk, with its lease settled."""
        error = failure if isinstance(failure, ProviderError) else _adapter_bug(route, failure)
        await self._orchestrator._settle(lease, error)
        if error.kind is ErrorKind.TIMEOUT and deadline.remaining() < MIN_ATTEMPT_S:
            raise deadline_exceeded(deadline, "the stream was cut off") from error
        message = "The model provider failed while writing the reply."
        raise OrchestrationError(
            "upstream_error", message, status=502, cause=error, detail=_staff_detail(error)
        ) from error

    async def _open(self, route: ModelRoute, provider: ProviderSettings) -> OpenedStream:
        """Start the upstream stream and wait for its first chunk (nothing reached the caller yet)."""
        timeout = call_timeout(_deadline(self._call), self._request, route, provider, stream=True)
        adapter = self._orchestrator.adapter(provider.config)
        request = self._request
        if request.model != route.upstream:
            request = replace(request, model=route.upstream)
        upstream = adapter.stream(request, timeout=timeout)
        watchdog = ReadWatchdog()
        try:
            if adapter.bounds_stream_reads:  # its own limits end the wait for the first chunk too
                first = await anext(upstream, None)
            else:
                first = await _next_chunk(upstream, timeout.first_token + GUARD_S, watchdog)
            if first is None:
                raise ProviderError(ErrorKind.MALFORMED, "the stream ended before its first chunk")
        except BaseException:
            watchdog.close()
            await _close(upstream)
            raise
        return OpenedStream(upstream, first, timeout, watchdog, adapter.bounds_stream_reads)


def _usage_estimated(request: ChatRequest, relayed: Relayed) -> Usage:
    """A stream's usage when its provider did not say it (the stream ended early, or the server never
    sends usage): the prompt and the text sent, counted as the admission counts a prompt
    (``prompt_tokens_from_chars``)."""
    return Usage(
        input_tokens=prompt_tokens_from_chars(prompt_chars(request)),
        output_tokens=prompt_tokens_from_chars(relayed.chars),
    )


async def _next_chunk(upstream: AsyncIterator[Chunk], limit_s: float, watchdog: ReadWatchdog) -> Chunk | None:
    """The next chunk, None at the end; a silence longer than ``limit_s`` is a timeout."""
    try:
        return await watchdog.read(upstream.__anext__, asyncio.get_running_loop().time() + limit_s)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        raise ProviderError(ErrorKind.TIMEOUT, f"no chunk within {limit_s:.1f} s") from None


async def _close(upstream: AsyncIterator[Chunk]) -> None:
    close = getattr(upstream, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:
            logger.debug("closing an upstream stream failed", exc_info=True)


_orchestrator: Orchestrator | None = None


def get_orchestrator() -> Orchestrator:
    """The process's Orchestrator (its adapters pool connections, its breakers share Redis)."""
    global _orchestrator
    if _orchestrator is None:
        _orchestrator = Orchestrator()
    return _orchestrator


async def _embed_for_the_cache(request: EmbeddingRequest) -> list[list[float]]:
    """How the semantic cache embeds with a provider's model: an ordinary Orchestrator call."""
    response, _ = await get_orchestrator().embed(request, CallContext(endpoint="embedding"))
    return response.vectors


embed_through(_embed_for_the_cache)

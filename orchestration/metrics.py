"""The LLM metrics of docs/operations.md ("Health, readiness, metrics"), correct across processes.

Settings point ``PROMETHEUS_MULTIPROC_DIR`` at a directory before prometheus_client is imported,
so every web process and worker writes its samples there and ``/metrics``
(``orchestration.telemetry.exposition``) sums them, django-prometheus' own metrics included.
What is a state rather than a count (``llm_circuit_breaker_state``, the task queues) is read from
Redis when ``/metrics`` is asked, so every process reports the one truth, even one that never
saw the change.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import logging
import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Histogram, values

from orchestration.types import FallbackHop, Served, Usage

logger = logging.getLogger(__name__)

if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and values.ValueClass.__name__ == "MutexValue":
    logger.warning("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set: metrics stay per process")

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

REQUESTS = Counter(
    "llm_requests", "LLM calls through the Orchestrator.", ["endpoint", "model", "provider", "status", "cache"]
)
DURATION = Histogram(
    "llm_request_duration_seconds", "Whole call, retries and fallbacks included.", ["endpoint", "model"],
    buckets=_LATENCY_BUCKETS,
)  # fmt: skip
TTFT = Histogram(
    "llm_time_to_first_token_seconds", "Until the first streamed chunk.", ["model", "provider"], buckets=_TTFT_BUCKETS
)
TOKENS = Counter("llm_tokens", "Tokens used, by direction.", ["model", "provider", "direction"])
COST = Counter("llm_cost_usd", "Spend in USD from the models' prices.", ["model", "provider"])
CACHE = Counter("llm_cache_requests", "Calls by cache outcome (X-Cache).", ["model", "status"])
BREAKER_TRANSITIONS = Counter(
    "llm_circuit_breaker_transitions", "Breaker state changes, by the state entered.", ["breaker", "state"]
)
FALLBACKS = Counter(
    "llm_fallbacks", "Switches to another model or a cached answer.", ["from_model", "to_model", "reason"]
)
RETRIES = Counter("llm_retries", "Second and later attempts at the same provider.", ["model", "provider", "reason"])
DEPLOYMENT_CALLS = Counter(
    "llm_deployment_requests", "Calls by the deployment that served them (or failed last).",
    ["model", "deployment", "provider", "status"],
)  # fmt: skip
REFUSALS = Counter(
    "llm_admission_refusals", "Calls refused at the door by a rate limit or a budget, by limit.", ["reason"]
)

# The limiter's verdicts that refuse a call (orchestration/access/limits.py, ``Verdict``).
REFUSAL_REASONS = ("requests", "tokens", "too_large", "budget_spent", "budget_too_small", "budget_short", "budget_held")

BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


# Each metric's child per label values. ``labels()`` checks and converts its values and takes the
# metric's lock on every call; a finished call makes eight of them (a third of what counting it
# cost). The children are prometheus_client's own, so nothing is counted twice or apart.
_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _child(metric: Any, *values: str) -> Any:
    child = _children.get((metric, values))
    if child is None:
        child = _children[(metric, values)] = metric.labels(*values)
    return child


# --- samples held, then written together ---------------------------------------------------
#
# Every sample write is prometheus_client's lock, a check that the process did not fork and a
# write to its shared file, and a finished call makes nine or ten: 15-30 µs a call, timed alone.
# A web process holds what its calls add instead (a sum per sample) and writes each sample once
# per HOLD_S, on a timer of the loop that serves it; ``/metrics`` writes what is held before it
# reads the files, and so does the process at its exit. Another web process's scrape sees these
# samples at most HOLD_S late; a process killed outright loses at most HOLD_S of them. Workers,
# commands and threads without a loop write at once (a job's work horse ends with ``os._exit``).

HOLD_S = 1.0

_holding = False
_hold_s = HOLD_S
_held: dict[Any, float] = {}  # prometheus_client's value of a sample -> what to add to it
_held_loop: asyncio.AbstractEventLoop | None = None  # the loop whose timer writes them
_held_lock = threading.Lock()


def metrics_hold(seconds: float = HOLD_S) -> None:
    """Hold the samples of calls made on a running loop, and write them every ``seconds``
    (the web process calls this at start)."""
    global _holding, _hold_s
    _hold_s = seconds
    if not _holding:
        atexit.register(metrics_flush)
        os.register_at_fork(after_in_child=_forget_held)  # the parent writes them, not each child too
    _holding = True


def metrics_flush() -> None:
    """Write every held sample now."""
    global _held, _held_loop
    with _held_lock:
        held, _held, _held_loop = _held, {}, None
    _write(held)


def _holder() -> bool:
    """Whether the samples of the calling code are held (the caller then holds ``_held_lock``)."""
    global _held_loop
    loop = asyncio._get_running_loop()
    if loop is None:
        return False
    if _held_loop is loop:
        return True
    if _held_loop is not None and not _held_loop.is_closed():
        return False  # another loop's timer writes the held samples: this one's are written at once
    if _held_loop is not None:
        _write_stranded()
    _held_loop = loop
    loop.call_later(_hold_s, metrics_flush)
    return True


def _write_stranded() -> None:
    """The loop that held these samples closed before its timer wrote them."""
    global _held
    held, _held = _held, {}
    _write(held)


def _write(held: dict[Any, float]) -> None:
    for value, amount in held.items():
        value.inc(amount)


def _forget_held() -> None:
    global _held, _held_loop, _held_lock
    _held, _held_loop, _held_lock = {}, None, threading.Lock()


def _hold(value: Any, amount: float) -> None:
    _held[value] = _held.get(value, 0.0) + amount


def _count(child: Any, amount: float, held: bool) -> None:
    if held:
        _hold(child._value, amount)
    else:
        child.inc(amount)


def _observe(child: Any, amount: float, held: bool) -> None:
    # What ``Histogram.observe`` writes, read from its attributes (tests/orchestration/test_metrics.py
    # compares the two): the sum, and the first bucket whose bound holds the amount.
    if held:
        _hold(child._sum, amount)
        _hold(child._buckets[bisect.bisect_left(child._upper_bounds, amount)], 1.0)
    else:
        child.observe(amount)


def metrics_call_finished(endpoint: str, model: str, served: Served, *, status: str, duration_s: float) -> None:
    """Count one finished call (any outcome)."""
    with _held_lock:
        held = _holding and _holder()
        served_model, provider = served.model or model, served.provider
        _count(_child(REQUESTS, endpoint, model, provider, status, served.cache), 1.0, held)
        if served.deployment:
            _count(_child(DEPLOYMENT_CALLS, served_model, served.deployment, provider, status), 1.0, held)
        _observe(_child(DURATION, endpoint, model), duration_s, held)
        _count(_child(CACHE, model, served.cache), 1.0, held)
        if served.ttft_ms is not None:
            _observe(_child(TTFT, served_model, provider), served.ttft_ms / 1000, held)
        _usage(served_model, provider, served.usage, served.cost_usd, held)


def _usage(model: str, provider: str, usage: Usage, cost: Decimal, held: bool) -> None:
    if usage.input_tokens:
        _count(_child(TOKENS, model, provider, "input"), usage.input_tokens, held)
    if usage.output_tokens:
        _count(_child(TOKENS, model, provider, "output"), usage.output_tokens, held)
    if cost:
        _count(_child(COST, model, provider), float(cost), held)


def metrics_fallback(hop: FallbackHop) -> None:
    FALLBACKS.labels(hop.from_model, hop.to_model, hop.reason).inc()


def metrics_retry(model: str, provider: str, reason: str) -> None:
    RETRIES.labels(model, provider, reason).inc()


def metrics_breaker_transition(key: str, state: str) -> None:
    BREAKER_TRANSITIONS.labels(key, state).inc()


def metrics_refusal(reason: str) -> None:
    REFUSALS.labels(reason).inc()


def metrics_dir_reset(directory: str | None = None) -> None:
    """Empty the multiprocess directory; ``serve`` calls this before starting its processes, so
    samples of processes from an earlier run do not linger."""
    path = Path(directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if not path.is_dir():
        return
    for sample_file in path.glob("*.db"):
        sample_file.unlink(missing_ok=True)

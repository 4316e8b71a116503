"""The LLM metrics of docs/operations.md ("Health, readiness, metrics"), correct across processes.

Settings point ``PROMETHEUS_MULTIPROC_DIR`` at a directory before prometheus_client is imported,
so every web process and worker writes its samples there and ``/metrics``
(``orchestration.telemetry.exposition``) sums them, django-prometheus' own metrics included.
What is a state rather than a count (``llm_circuit_breaker_state``, the task queues) is read from
Redis when ``/metrics`` is asked, so every process reports the one truth, even one that never
saw the change.
"""

from __future__ import annotations

import logging
import os
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


def metrics_call_finished(endpoint: str, model: str, served: Served, *, status: str, duration_s: float) -> None:
    """Count one finished call (any outcome)."""
    _child(REQUESTS, endpoint, model, served.provider, status, served.cache).inc()
    if served.deployment:
        _child(DEPLOYMENT_CALLS, served.model or model, served.deployment, served.provider, status).inc()
    _child(DURATION, endpoint, model).observe(duration_s)
    _child(CACHE, model, served.cache).inc()
    if served.ttft_ms is not None:
        _child(TTFT, served.model or model, served.provider).observe(served.ttft_ms / 1000)
    metrics_usage(served.model or model, served.provider, served.usage, served.cost_usd)


def metrics_usage(model: str, provider: str, usage: Usage, cost: Decimal) -> None:
    if usage.input_tokens:
        _child(TOKENS, model, provider, "input").inc(usage.input_tokens)
    if usage.output_tokens:
        _child(TOKENS, model, provider, "output").inc(usage.output_tokens)
    if cost:
        _child(COST, model, provider).inc(float(cost))


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

"""The LLM metrics at /metrics, summed over every process that writes them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from django.test import Client
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from orchestration.metrics import metrics_breaker_transition, metrics_retry
from orchestration.orchestrator import Orchestrator
from orchestration.telemetry.exposition import breaker_value, breakers_now
from tests.conftest import Simulator
from tests.orchestration.harness import FakeClock, ask, ctx
from tests.support import ROOT, child_env


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` whose labels include ``labels`` (0 when absent)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and all(item.labels.get(key) == value for key, value in labels.items()):
                total += item.value
    return total


def exposition() -> str:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry).decode()


@pytest.mark.django_db(transaction=True)
async def test_a_call_is_counted_with_its_tokens_cost_latency_fallback_and_retries(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    labels = {"endpoint": "completion", "model": "big"}
    figures: dict[str, tuple[str, dict[str, str]]] = {
        "requests": ("llm_requests_total", {"provider": "backup", "status": "ok", "cache": "BYPASS", **labels}),
        "durations": ("llm_request_duration_seconds_count", labels),
        "tokens": ("llm_tokens_total", {"model": "small", "direction": "output"}),
        "cost": ("llm_cost_usd_total", {"model": "small"}),
        "fallbacks": ("llm_fallbacks_total", {"from_model": "big", "to_model": "small", "reason": "server"}),
        "retries": ("llm_retries_total", {"model": "big", "provider": "primary", "reason": "server"}),
        "cache": ("llm_cache_requests_total", {"model": "big", "status": "BYPASS"}),
    }
    # Samples add up over the whole test run: compare before and after.
    before_text = exposition()
    before = {key: sample(before_text, name, **wanted) for key, (name, wanted) in figures.items()}
    simulator.configure("big", error_status=500)
    _, served = await orchestrator.complete(ask("big"), ctx())
    after_text = exposition()
    grew = {key: sample(after_text, name, **wanted) - before[key] for key, (name, wanted) in figures.items()}
    assert grew["requests"] == grew["durations"] == grew["fallbacks"] == grew["cache"] == 1
    assert grew["retries"] == 2
    assert grew["tokens"] == served.usage.output_tokens > 0
    assert grew["cost"] == pytest.approx(float(served.cost_usd), rel=1e-6)


@pytest.mark.django_db(transaction=True)
async def test_streams_report_time_to_first_token(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    async for _ in orchestrator.stream(ask("small"), ctx()):
        pass
    assert sample(exposition(), "llm_time_to_first_token_seconds_count", model="small", provider="backup") >= 1


@pytest.mark.django_db(transaction=True)
async def test_breaker_transitions_are_counted_and_the_state_is_read_from_redis(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, breaker_clock: FakeClock
) -> None:
    before = sample(exposition(), "llm_circuit_breaker_transitions_total", breaker="primary", state="open")
    simulator.configure("big", error_status=500)
    for _ in range(4):
        await orchestrator.complete(ask("big"), ctx())
    assert sample(exposition(), "llm_circuit_breaker_transitions_total", breaker="primary", state="open") == before + 1
    view = (await asyncio.to_thread(breakers_now) or {})["primary"]
    assert breaker_value(view, breaker_clock()) == 2
    # Past its open period the next call probes: the gauge says half-open before anyone has asked.
    assert breaker_value(view, breaker_clock() + 31) == 1


_OTHER_PROCESS = textwrap.dedent(
    """
    import os, sys, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    from orchestration.metrics import metrics_breaker_transition, metrics_retry
    metrics_retry(sys.argv[1], "p", "timeout")
    metrics_retry(sys.argv[1], "p", "timeout")
    metrics_breaker_transition(sys.argv[1], "half_open")
    """
)


def test_counts_from_several_processes_add_up() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    metrics_retry(model, "p", "timeout")
    metrics_breaker_transition(model, "half_open")
    done = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS, model],
        cwd=ROOT,
        env=child_env(DEBUG="1"),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    text = exposition()
    assert sample(text, "llm_retries_total", model=model) == 3
    assert sample(text, "llm_circuit_breaker_transitions_total", breaker=model, state="half_open") == 2


@pytest.mark.django_db
def test_the_metrics_page_serves_ours_and_django_prometheus_metrics() -> None:
    metrics_retry("page-model", "p", "server")
    response = Client().get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert sample(text, "llm_retries_total", model="page-model") >= 1
    assert "django_http_requests_before_middlewares_total" in text


@pytest.mark.django_db
def test_scrapes_reuse_their_redis_connections(redis_client: Any) -> None:
    assert Client().get("/metrics").status_code == 200  # the first scrape connects
    before = redis_client.info("stats")["total_connections_received"]
    for _ in range(10):
        assert Client().get("/metrics").status_code == 200
    assert redis_client.info("stats")["total_connections_received"] - before <= 2

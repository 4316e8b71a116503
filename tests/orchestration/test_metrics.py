"""The LLM metrics at /metrics, summed over every process that writes them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from orchestration import metrics
from orchestration.metrics import metrics_breaker_transition, metrics_call_finished, metrics_flush, metrics_retry
from orchestration.orchestrator import Orchestrator
from orchestration.telemetry.exposition import breaker_value, breakers_now
from orchestration.types import Served, Usage
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
    metrics_flush()  # as /metrics does: what this process holds (project.asgi turns holding on)
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


def in_another_process(code: str, model: str) -> None:
    """Run ``code`` (with ``model`` as its argument) in a Python process of its own, to its end."""
    done = subprocess.run(
        [sys.executable, "-c", code, model], cwd=ROOT, env=child_env(DEBUG="1"), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()


def test_counts_from_several_processes_add_up() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    metrics_retry(model, "p", "timeout")
    metrics_breaker_transition(model, "half_open")
    in_another_process(_OTHER_PROCESS, model)
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


# --- samples held by a web process, then written together ---------------------------------------


def finished(model: str, duration_s: float, ttft_ms: float | None = 120.0) -> None:
    served = Served(
        model=model, provider="p", cache="MISS", usage=Usage(7, 11), cost_usd=Decimal("0.0021"), ttft_ms=ttft_ms
    )
    metrics_call_finished("chat", model, served, status="ok", duration_s=duration_s)


def samples_of(text: str, model: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``model``, its name in the labels' place (to compare two models' samples)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.labels.get("model") == model:
                labels = tuple(sorted((key, "M" if key == "model" else value) for key, value in item.labels.items()))
                found[(item.name, labels)] = item.value
    return found


@pytest.fixture
def holding() -> Iterator[None]:
    """Holding on (``project.asgi`` turns it on in a web process), with a timer at the next turn."""
    was = metrics._holding, metrics._hold_s
    metrics_flush()
    metrics.metrics_hold(seconds=0)
    yield
    metrics_flush()
    metrics._holding, metrics._hold_s = was


DURATIONS = (0.01, 0.05, 0.07, 0.5, 2.0, 400.0)  # on bounds, between them, past the last


async def test_held_samples_are_written_as_direct_writes_would_be(holding: None) -> None:
    direct, held = f"direct-{uuid.uuid4().hex[:8]}", f"held-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(lambda: [finished(direct, seconds) for seconds in DURATIONS])  # no loop: at once
    written = samples_of(exposition(), direct)
    for seconds in DURATIONS:
        finished(held, seconds)
    assert samples_of(exposition(), held) == written
    assert written[("llm_request_duration_seconds_count", (("endpoint", "chat"), ("model", "M")))] == len(DURATIONS)
    assert written[("llm_tokens_total", (("direction", "output"), ("model", "M"), ("provider", "p")))] == 11 * 6


def _files_only() -> str:
    """What the processes' files hold, without writing what this one holds first."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry).decode()


async def test_held_samples_wait_for_the_loop_timer_then_are_written(holding: None) -> None:
    model = f"timer-{uuid.uuid4().hex[:8]}"
    finished(model, 0.2)
    finished(model, 0.3)
    assert sample(_files_only(), "llm_requests_total", model=model) == 0
    for _ in range(3):  # the timer's turn of the loop (held for 0 s here)
        await asyncio.sleep(0)
    text = _files_only()
    assert sample(text, "llm_requests_total", model=model) == 2
    assert sample(text, "llm_request_duration_seconds_sum", model=model) == pytest.approx(0.5)


@pytest.mark.django_db
def test_the_metrics_page_writes_what_its_process_holds(holding: None) -> None:
    model = f"page-{uuid.uuid4().hex[:8]}"
    metrics.metrics_hold(seconds=60)

    async def call() -> None:
        finished(model, 0.2)

    asyncio.run(call())  # held for that loop's timer, and the loop is gone long before it fires
    assert sample(_files_only(), "llm_requests_total", model=model) == 0
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert sample(response.content.decode(), "llm_requests_total", model=model) == 1


_HOLDING_PROCESS = textwrap.dedent(
    """
    import asyncio, os, sys, django
    from decimal import Decimal
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    from orchestration.metrics import metrics_call_finished, metrics_hold
    from orchestration.types import Served, Usage
    metrics_hold()  # a second: the loop below is gone long before its timer
    served = Served(model=sys.argv[1], provider="p", cache="MISS", usage=Usage(1, 2), cost_usd=Decimal(0))
    async def call():
        metrics_call_finished("chat", sys.argv[1], served, status="ok", duration_s=0.1)
    asyncio.run(call())
    """
)


def test_a_process_writes_what_it_holds_at_its_exit() -> None:
    model = f"exit-{uuid.uuid4().hex[:8]}"
    in_another_process(_HOLDING_PROCESS, model)
    assert sample(exposition(), "llm_requests_total", model=model) == 1

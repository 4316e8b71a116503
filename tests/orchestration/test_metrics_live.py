"""Every metric the docs list, read through one ``/metrics`` of a live web process while an RQ
worker writes its share: after a fallback, a breaker opening, a cache hit, a task run, a stream and
a rate-limit refusal, each series is there with the value those events give."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.models import Task
from orchestration.access.keys import api_key_create
from tests.agents.conftest import FAST_RECOVERY, wait_for_idle_workers, wait_for_status
from tests.conftest import Simulator
from tests.orchestration.harness import fallbacks, model_row, provider_row
from tests.orchestration.test_metrics import sample
from tests.support import ManagedProcess, start_web, start_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.live]

# What README and docs/operations.md list, and what the dashboard and alert rules in deploy/ read.
DOCUMENTED = (
    "llm_requests_total",
    "llm_request_duration_seconds_count",
    "llm_time_to_first_token_seconds_count",
    "llm_tokens_total",
    "llm_cost_usd_total",
    "llm_cache_requests_total",
    "llm_circuit_breaker_state",
    "llm_circuit_breaker_transitions_total",
    "llm_fallbacks_total",
    "llm_retries_total",
    "llm_admission_refusals_total",
    "switchyard_queue_jobs",
    "switchyard_queue_oldest_job_age_seconds",
    "switchyard_workers",
)


@pytest.fixture
def stack(simulator: Simulator) -> Iterator[tuple[ManagedProcess, ManagedProcess]]:
    """A web process and a worker sharing a metrics directory of their own (so the values are exact)."""
    env = {"SWITCHYARD_SIMULATOR_URL": simulator.url, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="sy-m-")}
    web = start_web(**env)
    worker = start_worker("agents", **FAST_RECOVERY, **env)
    yield web, worker
    wait_for_idle_workers()
    worker.stop()
    web.stop()


@pytest.fixture
def models(transactional_db: None, simulator: Simulator) -> None:
    """``big`` on ``primary`` (one quick retry, a breaker of four calls) falls back to ``small``."""
    primary = provider_row("primary", simulator.url, max_retries=1, retry_base_s=0.01, breaker_window=4)
    small = model_row("small", provider_row("backup", simulator.url), capabilities=["chat", "tools"])
    fallbacks(model_row("big", primary), small)


def names_in(text: str) -> set[str]:
    return {item.name for family in text_string_to_metric_families(text) for item in family.samples}


def test_every_documented_series_is_present_with_the_value_its_events_give(
    stack: tuple[ManagedProcess, ManagedProcess], models: None, alice: Any, simulator: Simulator
) -> None:
    web, _ = stack
    key = api_key_create(user=alice, name="metrics")[1]
    limited = api_key_create(user=alice, name="limited", rpm=1)[1]
    simulator.configure("big", error_status=500)
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:

        def ask(model: str, **extra: Any) -> httpx.Response:
            body = {"model": model, "messages": [{"role": "user", "content": "Which track?"}], **extra}
            return client.post("/v1/chat/completions", json=body)

        # Two calls fail twice each on primary (4 of 4 failed: its breaker opens), the third skips it.
        assert [ask("big").headers["X-Fallback-From"] for _ in range(3)] == ["big"] * 3
        assert [ask("small", temperature=0).headers["X-Cache"] for _ in range(2)] == ["MISS", "HIT"]
        assert ask("small", stream=True).status_code == 200
        refused = [
            client.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {limited}"},
                json={"model": "small", "messages": [{"role": "user", "content": "Hi"}]},
            ).status_code
            for _ in range(2)
        ]
        assert refused == [200, 429]
        task = client.post("/api/v1/tasks", json={"agent": "research-assistant", "input": "Hi", "model": "small"})
        assert task.status_code == 202, task.text
        wait_for_status(task.json()["id"], Task.Status.COMPLETED)
        wait_for_idle_workers()
        text = client.get("/metrics").text

    assert set(DOCUMENTED) <= names_in(text), set(DOCUMENTED) - names_in(text)
    assert sample(text, "llm_fallbacks_total", from_model="big", to_model="small", reason="server") == 2
    assert sample(text, "llm_fallbacks_total", from_model="big", to_model="small", reason="breaker_open") == 1
    assert sample(text, "llm_retries_total", model="big", provider="primary", reason="server") == 2
    assert sample(text, "llm_circuit_breaker_state", breaker="primary") == 2
    assert sample(text, "llm_circuit_breaker_state", breaker="backup") == 0
    assert sample(text, "llm_circuit_breaker_transitions_total", breaker="primary", state="open") == 1
    assert sample(text, "llm_requests_total", endpoint="completion", model="big", provider="backup", status="ok") == 3
    assert sample(text, "llm_request_duration_seconds_count", endpoint="completion", model="big") == 3
    assert sample(text, "llm_cache_requests_total", model="small", status="HIT") == 1
    assert sample(text, "llm_cache_requests_total", model="big", status="SEMANTIC-HIT") == 0  # served at zero
    assert sample(text, "llm_time_to_first_token_seconds_count", model="small", provider="backup") == 1
    assert sample(text, "llm_admission_refusals_total", reason="requests") == 1
    assert sample(text, "llm_admission_refusals_total", reason="budget_spent") == 0  # served at zero
    # The agent's call was made in the worker, and is read here.
    assert sample(text, "llm_requests_total", endpoint="agent", model="small", status="ok") == 1
    assert sample(text, "llm_tokens_total", model="small", direction="output") > 0
    assert sample(text, "llm_cost_usd_total", model="small") > 0
    assert sample(text, "switchyard_workers", queue="agents") == 1
    assert sample(text, "switchyard_queue_jobs", queue="agents", state="queued") == 0
    assert sample(text, "switchyard_queue_oldest_job_age_seconds", queue="agents") == 0

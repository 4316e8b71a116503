"""Helpers for orchestration tests: registry rows pointing at the real simulator, bare routes,
an injected clock and sleep, and the fixtures that ``conftest`` exposes to these tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from orchestration.breaker import Breakers, breaker_mirror_flush
from orchestration.caching.exact import cache_index_flush
from orchestration.models import Fallback, LanguageModel, Provider
from orchestration.orchestrator import CallContext, Orchestrator, _breaker_transitioned
from orchestration.providers.base import ProviderConfig
from orchestration.registry import ModelRoute, ProviderSettings, snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from orchestration.types import ChatRequest, Message

ROUTE = ModelRoute(
    name="m",
    provider="p",
    provider_kind="simulator",
    upstream="m-up",
    input_per_mtok=Decimal("1"),
    output_per_mtok=Decimal("2"),
    context_window=8192,
    max_output_tokens=4096,
    capabilities=("chat",),
    deadline_s=None,
    tokens_per_second=50.0,
    fallbacks=(),
    content_policy_fallback=None,
    cache_exact_enabled=True,
    cache_exact_ttl_s=3600,
    cache_semantic=False,
    cache_semantic_threshold=0.95,
    cache_semantic_max_turns=4,
    simulated=True,
)
PROVIDER = ProviderSettings(
    config=ProviderConfig(name="p", kind="simulator", base_url="http://127.0.0.1:1/v1", timeout_s=10.0),
    max_retries=2,
    retry_base_s=1.0,
    breaker_failure_rate=0.5,
    breaker_window=10,
    breaker_open_s=30.0,
    breaker_per_model=False,
)


def route(**changes: Any) -> ModelRoute:
    return replace(ROUTE, **changes)


def provider_row(name: str, simulator_url: str, **fields: Any) -> Provider:
    """A provider served by the simulator (OpenAI wire format)."""
    fields.setdefault("kind", Provider.Kind.SIMULATOR)
    provider = Provider.objects.create(name=name, base_url=simulator_url.rstrip("/") + "/v1", **fields)
    snapshot_invalidate()
    return provider


def model_row(name: str, provider: Provider, *, upstream: str | None = None, **fields: Any) -> LanguageModel:
    """A public model; its upstream name defaults to ``name``, which is what the simulator is configured by."""
    fields.setdefault("input_per_mtok", Decimal("1.00"))
    fields.setdefault("output_per_mtok", Decimal("2.00"))
    model = LanguageModel.objects.create(name=name, provider=provider, upstream=upstream or name, **fields)
    snapshot_invalidate()
    return model


def fallbacks(model: LanguageModel, *targets: LanguageModel) -> None:
    for position, target in enumerate(targets):
        Fallback.objects.create(model=model, target=target, position=position)
    snapshot_invalidate()


def ask(model: str, text: str = "What is the capital of France?", **fields: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=text)], **fields)


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """Records each wait instead of sleeping through it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# Registry rows are written from async tests through these.
add_model = sync_to_async(model_row)
add_fallbacks = sync_to_async(fallbacks)


def ctx(**fields: Any) -> CallContext:
    """A completion call's context; the cache stays out of the way unless a test asks for it."""
    fields.setdefault("cache_control", "no-store")
    fields.setdefault("endpoint", "completion")
    return CallContext(**fields)


@pytest.fixture
def registry(transactional_db: None, simulator: Any) -> dict[str, Any]:
    """Model "big" on provider "primary", falling back to "small" on provider "backup"."""
    primary = provider_row("primary", simulator.url)
    backup = provider_row("backup", simulator.url)
    big = model_row("big", primary, context_window=8_000, input_per_mtok=Decimal("3"), output_per_mtok=Decimal("15"))
    small = model_row("small", backup, context_window=16_000)
    fallbacks(big, small)
    return {"big": big, "small": small, "primary": primary, "backup": backup}


@pytest.fixture
def breaker_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recorded_sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def orchestrator(
    transactional_db: None, breaker_clock: FakeClock, recorded_sleep: RecordingSleep
) -> AsyncIterator[Orchestrator]:
    """An Orchestrator whose breakers use ``breaker_clock`` and whose waits go to ``recorded_sleep``."""
    instance = Orchestrator(
        breakers=Breakers(clock=breaker_clock, on_transition=_breaker_transitioned),
        sleep=recorded_sleep,
        rng=lambda: 0.5,
    )
    yield instance
    await instance.aclose()
    # Rows of this test must land before its database is emptied, not in the next test's.
    await asyncio.to_thread(requestlog_flush)
    await asyncio.to_thread(cache_index_flush)
    await asyncio.to_thread(breaker_mirror_flush)
    # The registry snapshot and async ORM calls ran in asgiref's worker thread: close its connection,
    # or PostgreSQL refuses to drop the test database at the end of the run.
    await sync_to_async(connections.close_all)()

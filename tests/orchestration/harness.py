"""Helpers for orchestration tests: registry rows pointing at the real simulator, and bare routes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from orchestration.models import Fallback, LanguageModel, Provider
from orchestration.providers.base import ProviderConfig
from orchestration.registry import ModelRoute, ProviderSettings, snapshot_invalidate
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

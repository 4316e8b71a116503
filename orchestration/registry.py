"""A process-local snapshot of the model registry, so the hot path never queries the database.

The snapshot is rebuilt when it is older than ``REFRESH_S`` or when a registry row changes in
this process (signals); other processes pick changes up within ``REFRESH_S``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from decimal import Decimal

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models.signals import post_delete, post_save

from orchestration.models import Fallback, LanguageModel, Provider
from orchestration.providers.base import ProviderConfig

REFRESH_S = 5.0


@dataclass(frozen=True, slots=True)
class ModelRoute:
    name: str
    provider: str
    provider_kind: str
    upstream: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    context_window: int
    max_output_tokens: int
    capabilities: tuple[str, ...]
    deadline_s: float | None
    tokens_per_second: float
    fallbacks: tuple[str, ...]
    content_policy_fallback: str | None
    cache_exact_enabled: bool
    cache_exact_ttl_s: int
    cache_semantic: bool
    cache_semantic_threshold: float | None  # a raw threshold, or None: derived from the error budget
    cache_semantic_max_turns: int
    simulated: bool
    cache_semantic_error_budget: float = 0.01
    cache_semantic_learned_floor: float = 0.0
    created: int = 0  # Unix time the model was added (``GET /v1/models`` reports it)


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    config: ProviderConfig
    max_retries: int
    retry_base_s: float
    breaker_failure_rate: float
    breaker_window: int
    breaker_open_s: float
    breaker_per_model: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    models: dict[str, ModelRoute]
    providers: dict[str, ProviderSettings]
    taken_at: float


_snapshot: Snapshot | None = None


def provider_secret(provider: Provider) -> str:
    """The provider's secret: from its environment variable, else its encrypted column."""
    if provider.api_key_env:
        from orchestration.secrets import api_key_env_allowed

        # A row saved before the allowlist (or past it) reads nothing rather than any variable.
        return os.environ.get(provider.api_key_env, "") if api_key_env_allowed(provider.api_key_env) else ""
    if provider.api_key_encrypted:
        from orchestration.secrets import secret_decrypt

        return secret_decrypt(provider.api_key_encrypted)
    return ""


def _provider_base_url(provider: Provider) -> str:
    if provider.kind == Provider.Kind.SIMULATOR and not provider.base_url:
        return str(settings.SWITCHYARD["SIMULATOR_URL"]).rstrip("/") + "/v1"
    return provider.base_url


def _provider_settings(provider: Provider) -> ProviderSettings:
    return ProviderSettings(
        config=ProviderConfig(
            name=provider.name,
            kind=provider.kind,
            base_url=_provider_base_url(provider),
            api_key=provider_secret(provider),
            timeout_s=provider.timeout_s,
        ),
        max_retries=provider.max_retries,
        retry_base_s=provider.retry_base_s,
        breaker_failure_rate=provider.breaker_failure_rate,
        breaker_window=provider.breaker_window,
        breaker_open_s=provider.breaker_open_s,
        breaker_per_model=provider.breaker_per_model,
    )


def provider_config(provider: Provider) -> ProviderConfig:
    """How to reach ``provider`` now, enabled or not (the admin's connection test uses it)."""
    return _provider_settings(provider).config


def _route(model: LanguageModel, fallbacks: tuple[str, ...]) -> ModelRoute:
    return ModelRoute(
        name=model.name,
        provider=model.provider.name,
        provider_kind=model.provider.kind,
        upstream=model.upstream,
        input_per_mtok=model.input_per_mtok,
        output_per_mtok=model.output_per_mtok,
        context_window=model.context_window,
        max_output_tokens=model.max_output_tokens,
        capabilities=tuple(model.capabilities or ()),
        deadline_s=model.deadline_s,
        tokens_per_second=model.tokens_per_second,
        fallbacks=fallbacks,
        content_policy_fallback=model.content_policy_fallback.name if model.content_policy_fallback else None,
        cache_exact_enabled=model.cache_exact_enabled,
        cache_exact_ttl_s=model.cache_exact_ttl_s,
        cache_semantic=model.cache_semantic,
        cache_semantic_threshold=model.cache_semantic_threshold,
        cache_semantic_error_budget=model.cache_semantic_error_budget,
        cache_semantic_learned_floor=model.cache_semantic_learned_floor,
        cache_semantic_max_turns=model.cache_semantic_max_turns,
        simulated=model.provider.kind == Provider.Kind.SIMULATOR,
        created=int(model.created_at.timestamp()),
    )


def snapshot_load() -> Snapshot:
    """Read the registry from the database (sync; call through ``sync_to_async`` in async code)."""
    chains: dict[int, list[str]] = {}
    for fallback in Fallback.objects.select_related("target").filter(target__enabled=True).order_by("position"):
        chains.setdefault(fallback.model_id, []).append(fallback.target.name)
    models = {
        model.name: _route(model, tuple(chains.get(model.pk, ())))
        for model in LanguageModel.objects.routable().select_related("provider", "content_policy_fallback")
    }
    providers = {p.name: _provider_settings(p) for p in Provider.objects.filter(enabled=True)}
    return Snapshot(models=models, providers=providers, taken_at=time.monotonic())


def snapshot() -> Snapshot:
    global _snapshot
    if _snapshot is None or time.monotonic() - _snapshot.taken_at > REFRESH_S:
        _snapshot = snapshot_load()
    return _snapshot


async def asnapshot() -> Snapshot:
    current = _snapshot
    if current is not None and time.monotonic() - current.taken_at <= REFRESH_S:
        return current
    return await database_sync_to_async(snapshot)()


def snapshot_invalidate(**_: object) -> None:
    global _snapshot
    _snapshot = None


for _model in (Provider, LanguageModel, Fallback):
    post_save.connect(snapshot_invalidate, sender=_model, dispatch_uid=f"registry-{_model.__name__}-save")
    post_delete.connect(snapshot_invalidate, sender=_model, dispatch_uid=f"registry-{_model.__name__}-delete")

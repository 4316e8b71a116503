"""A process-local snapshot of the model registry, so the hot path never queries the database.

The snapshot is rebuilt when it is older than ``REFRESH_S`` or when a registry row changes in
this process (signals); other processes pick changes up within ``REFRESH_S``. A stale snapshot is
read again by one caller while the others go on with it; a changed one is waited for.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models.signals import post_delete, post_save

from orchestration.models import (
    Deployment,
    Experiment,
    ExperimentVariant,
    Fallback,
    LanguageModel,
    PromptVersion,
    Provider,
)
from orchestration.providers.base import ProviderConfig

REFRESH_S = 5.0

_reloading = threading.Lock()  # held by the one caller reading a stale snapshot again
_generation = 0  # changes heard (``snapshot_invalidate``): a read that overlapped one is not kept


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
    strategy: str = "weighted"  # how a call picks one of ``deployments`` (orchestration/routing/strategies.py)
    deployments: tuple[DeploymentRoute, ...] = ()
    # Set on a deployment's own route: the deployment's name, and its breaker key when the model has
    # several deployments (each then has its own breaker).
    deployment: str = ""
    breaker_scope: str = ""


@dataclass(frozen=True, slots=True)
class DeploymentRoute:
    """One deployment of a model: ``route`` is the model's route with this deployment's provider,
    upstream and prices, ready for an attempt."""

    name: str
    weight: int
    rpm_limit: int | None
    tpm_limit: int | None
    region: str
    tag: str
    route: ModelRoute
    key: str  # "model/deployment": the name of its counters in Redis and of its latency estimate


@dataclass(frozen=True, slots=True)
class VariantRoute:
    name: str
    target: str | None  # the model that serves this arm; None = the experiment's own model
    parameters: dict[str, object]
    prompt_version: int | None  # prompt experiments: the version this arm uses; None = the latest
    upper: int  # cumulative percent: a subject in bucket b (0-99) gets the first variant with b < upper


@dataclass(frozen=True, slots=True)
class ExperimentRoute:
    name: str
    model: str  # the model it splits, or "" when it splits a prompt template
    sticky_by: str  # user | conversation | key
    variants: tuple[VariantRoute, ...]


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
    experiments: dict[str, ExperimentRoute] = field(default_factory=dict)  # by the model they split
    prompt_experiments: dict[str, ExperimentRoute] = field(default_factory=dict)  # by the template they split


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
        strategy=model.routing_strategy,
    )


def _deployment_route(base: ModelRoute, row: Deployment, shared_breaker: bool) -> DeploymentRoute:
    route = replace(
        base,
        provider=row.provider.name,
        provider_kind=row.provider.kind,
        upstream=row.upstream,
        input_per_mtok=base.input_per_mtok if row.input_per_mtok is None else row.input_per_mtok,
        output_per_mtok=base.output_per_mtok if row.output_per_mtok is None else row.output_per_mtok,
        simulated=row.provider.kind == Provider.Kind.SIMULATOR,
        deployment=row.name,
        breaker_scope="" if shared_breaker else f"{row.provider.name}:{row.upstream}",
    )
    return DeploymentRoute(
        name=row.name,
        weight=row.weight,
        rpm_limit=row.rpm_limit,
        tpm_limit=row.tpm_limit,
        region=row.region,
        tag=row.tag,
        route=route,
        key=f"{base.name}/{row.name}",
    )


def _with_deployments(base: ModelRoute, rows: list[Deployment]) -> ModelRoute:
    """The model's route, carrying its deployments; without rows, its own provider is its one
    deployment. The model-level provider and upstream are those of the first deployment."""
    if not rows:
        own = replace(base, deployment=base.provider)
        only = DeploymentRoute(base.provider, 1, None, None, "", "", own, f"{base.name}/{base.provider}")
        return replace(own, deployments=(only,))
    # One deployment keeps the breaker keyed as before (per provider, or per provider and model).
    deployments = tuple(_deployment_route(base, row, shared_breaker=len(rows) == 1) for row in rows)
    first = deployments[0].route
    return replace(first, deployment="", breaker_scope="", deployments=deployments)


def _experiments_load() -> tuple[dict[str, ExperimentRoute], dict[str, ExperimentRoute]]:
    """The running experiments, by the model they split and by the prompt template they split."""
    live = Experiment.objects.filter(status=Experiment.Status.RUNNING).select_related("model", "prompt_template")
    variants = ExperimentVariant.objects.filter(experiment__in=live).select_related("target").order_by("position", "id")
    arms: dict[int, list[ExperimentVariant]] = {}
    for variant in variants:
        arms.setdefault(variant.experiment_id, []).append(variant)
    by_model, by_prompt = {}, {}
    for experiment in live:
        upper, routes = 0, []
        for variant in arms.get(experiment.pk, []):
            upper += variant.percent
            target = variant.target.name if variant.target else None
            parameters = dict(variant.parameters or {})
            routes.append(VariantRoute(variant.name, target, parameters, variant.prompt_version, upper))
        model = experiment.model.name if experiment.model else ""
        route = ExperimentRoute(experiment.name, model, experiment.sticky_by, tuple(routes))
        if experiment.model is not None:
            by_model[model] = route
        elif experiment.prompt_template is not None:
            by_prompt[experiment.prompt_template.name] = route
    return by_model, by_prompt


def snapshot_load() -> Snapshot:
    """Read the registry from the database (sync; call through ``sync_to_async`` in async code)."""
    chains: dict[int, list[str]] = {}
    for fallback in Fallback.objects.select_related("target").filter(target__enabled=True).order_by("position"):
        chains.setdefault(fallback.model_id, []).append(fallback.target.name)
    deployments: dict[int, list[Deployment]] = {}
    enabled = Deployment.objects.filter(enabled=True, provider__enabled=True).select_related("provider")
    for row in enabled.order_by("position", "id"):
        deployments.setdefault(row.model_id, []).append(row)
    # A model whose deployments are all disabled is not routable (its own provider is not a spare).
    listed = set(Deployment.objects.values_list("model_id", flat=True))
    models = {
        model.name: _with_deployments(_route(model, tuple(chains.get(model.pk, ()))), deployments.get(model.pk, []))
        for model in LanguageModel.objects.routable().select_related("provider", "content_policy_fallback")
        if model.pk in deployments or model.pk not in listed
    }
    providers = {p.name: _provider_settings(p) for p in Provider.objects.filter(enabled=True)}
    by_model, by_prompt = _experiments_load()
    return Snapshot(
        models=models,
        providers=providers,
        taken_at=time.monotonic(),
        experiments=by_model,
        prompt_experiments=by_prompt,
    )


def snapshot() -> Snapshot:
    """The registry as last read. A stale one is read again by one caller at a time while the
    others go on with it: a burst of requests finding it stale all at once would otherwise each
    read it again, several milliseconds of CPU apiece, in the middle of their requests."""
    global _snapshot
    current = _snapshot
    if current is not None and time.monotonic() - current.taken_at <= REFRESH_S:
        return current
    if current is None:
        _reloading.acquire()
    elif not _reloading.acquire(blocking=False):
        return current  # being read again by someone else
    try:
        latest = _snapshot
        if latest is not None and time.monotonic() - latest.taken_at <= REFRESH_S:
            return latest
        generation = _generation
        latest = snapshot_load()
        if generation == _generation:  # no change was announced while the rows were read
            _snapshot = latest
        return latest
    finally:
        _reloading.release()


async def asnapshot() -> Snapshot:
    current = _snapshot
    if current is not None and (time.monotonic() - current.taken_at <= REFRESH_S or _reloading.locked()):
        return current
    return await database_sync_to_async(snapshot)()


def snapshot_invalidate(**_: object) -> None:
    global _snapshot, _generation
    _generation += 1
    _snapshot = None


for _model in (Provider, LanguageModel, Fallback, Deployment, Experiment, ExperimentVariant, PromptVersion):
    post_save.connect(snapshot_invalidate, sender=_model, dispatch_uid=f"registry-{_model.__name__}-save")
    post_delete.connect(snapshot_invalidate, sender=_model, dispatch_uid=f"registry-{_model.__name__}-delete")

"""A call served by another model than the one it names: a content-policy fallback priced into the
budget's reservation, calls in flight counted for a least-busy model reached by fallback, every
deployment's breaker listed in the admin, and one deadline for a call whatever variant serves it."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from orchestration.admin.observability import breaker_rows_ensure
from orchestration.models import BreakerState, Experiment, LanguageModel, RequestLog
from orchestration.orchestrator import Orchestrator
from orchestration.registry import asnapshot, snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from orchestration.routing.services import experiment_create
from tests.conftest import Simulator
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    assert_error,
    chat_body,
    in_thread,
    make_key,
    post_json,
    sim_models,
)
from tests.orchestration.harness import ask, ctx, fallbacks, model_row, provider_row

pytestmark = pytest.mark.django_db(transaction=True)


def _policy_fallback_to_a_dear_model(sim_models: Any) -> None:
    provider = sim_models.chat.provider
    dear = model_row("gpt-dear", provider, input_per_mtok=Decimal("50"), output_per_mtok=Decimal("100"))
    LanguageModel.objects.filter(pk=sim_models.chat.pk).update(content_policy_fallback=dear)
    snapshot_invalidate()


async def test_the_budget_reserves_at_the_price_of_the_content_policy_fallback(
    sim_models: Any, make_key: Any, simulator: Simulator
) -> None:
    # gpt-sim costs $2 per million output tokens: 400 of them fit a $0.001 budget. Its
    # content-policy fallback costs $100 per million: 400 of them ($0.04) never can.
    await in_thread(_policy_fallback_to_a_dear_model, sim_models)
    secret = await in_thread(make_key, monthly_budget_usd=Decimal("0.001"))
    simulator.configure("gpt-sim", error_kind="content_policy")
    response = await post_json(AsyncClient(), "/v1/chat/completions", chat_body(max_tokens=400), secret)
    assert_error(response, 400, "budget_exceeded")
    assert simulator.stats("gpt-dear")["requests"] == 0


async def test_a_least_busy_model_reached_by_fallback_counts_its_calls_in_flight(
    router: Orchestrator, pool: dict[str, Any], simulator: Simulator
) -> None:
    def rows() -> None:
        LanguageModel.objects.filter(pk=pool["model"].pk).update(routing_strategy="least-busy")
        front = model_row("front", provider_row("acct-front", simulator.url))
        fallbacks(front, pool["model"])

    await sync_to_async(rows)()
    simulator.configure("front", error_kind="content_policy")  # not retried: straight to "pool"
    await sync_to_async(LanguageModel.objects.filter(name="front").update)(content_policy_fallback=pool["model"])
    snapshot_invalidate()
    for upstream in ("pool-east", "pool-west"):
        simulator.configure(upstream, latency_ms=1500)
    call = asyncio.create_task(router.complete(ask("front", max_tokens=5), ctx()))
    route = (await asnapshot()).models["pool"]
    during = await router.accounts.in_flight(route.deployments)
    # Until the fallback's call is under way (its upstream answers after 1.5 s).
    while not sum(during.values()) and not call.done():
        await asyncio.sleep(0.01)
        during = await router.accounts.in_flight(route.deployments)
    _, served = await call
    assert (served.model, served.fallback_from) == ("pool", "front")
    assert sum(during.values()) == 1, during
    assert sum((await router.accounts.in_flight(route.deployments)).values()) == 0


def test_the_admin_lists_the_breaker_of_every_deployment(pool: dict[str, Any]) -> None:
    breaker_rows_ensure()
    keys = set(BreakerState.objects.values_list("key", flat=True))
    assert {"acct-east:pool-east", "acct-west:pool-west"} <= keys, keys


def _experiment_on_a_model_with_a_short_deadline(sim_models: Any) -> None:
    provider = sim_models.chat.provider
    LanguageModel.objects.filter(pk=sim_models.chat.pk).update(deadline_s=1.0)
    slow = model_row("gpt-slow", provider, deadline_s=20.0, cache_exact_enabled=False)
    experiment_create(
        name="slow-arm",
        model=LanguageModel.objects.get(pk=sim_models.chat.pk),
        sticky_by=Experiment.Sticky.KEY,
        variants=[{"name": "control", "percent": 0}, {"name": "slow", "percent": 100, "target": slow}],
    )
    snapshot_invalidate()


async def test_a_variant_with_a_longer_deadline_fails_as_deadline_exceeded_in_the_log(
    sim_models: Any, make_key: Any, simulator: Simulator
) -> None:
    await in_thread(_experiment_on_a_model_with_a_short_deadline, sim_models)
    secret = await in_thread(make_key)
    simulator.configure("gpt-slow", latency_ms=5000)
    response = await post_json(AsyncClient(), "/v1/chat/completions", chat_body(max_tokens=5), secret)
    assert_error(response, 504, "deadline_exceeded")
    await asyncio.to_thread(requestlog_flush)
    row = await RequestLog.objects.aget(request_id=response["X-Request-ID"])
    assert (row.status, row.error_kind, row.variant) == ("error", "deadline_exceeded", "slow")

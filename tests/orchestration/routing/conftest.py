"""Fixtures of the routing tests: a model "pool" with two deployments on two provider accounts,
both served by the real simulator ("pool-east" and "pool-west" upstream)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from orchestration.breaker import Breakers, breaker_mirror_flush
from orchestration.models import Deployment, LanguageModel
from orchestration.orchestrator import Orchestrator, _breaker_transitioned
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from orchestration.routing.accounts import Accounts
from orchestration.routing.latency import LatencyBoard
from tests.orchestration.harness import (
    FakeClock,
    RecordingSleep,
    breaker_clock,
    model_row,
    provider_row,
    recorded_sleep,
)

__all__ = ["breaker_clock", "recorded_sleep"]


def deployment_row(model: LanguageModel, name: str, provider: Any, **fields: Any) -> Deployment:
    fields.setdefault("upstream", f"{model.name}-{name}")
    row = Deployment.objects.create(model=model, name=name, provider=provider, **fields)
    snapshot_invalidate()
    return row


@pytest.fixture
def pool(transactional_db: None, simulator: Any) -> dict[str, Any]:
    """Model "pool": deployment "east" (account "acct-east", weight 80) and "west" ("acct-west", 20)."""
    east_account = provider_row("acct-east", simulator.url)
    west_account = provider_row("acct-west", simulator.url)
    model = model_row("pool", east_account, upstream="pool-east")
    east = deployment_row(model, "east", east_account, weight=80, position=0)
    west = deployment_row(model, "west", west_account, weight=20, position=1)
    return {"model": model, "east": east, "west": west, "east_account": east_account, "west_account": west_account}


@pytest.fixture
def latency_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def quota_clock() -> FakeClock:
    # The middle of a minute, so a test's calls all fall in one quota window.
    return FakeClock(start=1_800_000_030.0)


@pytest.fixture
async def router(
    transactional_db: None,
    breaker_clock: FakeClock,
    recorded_sleep: RecordingSleep,
    latency_clock: FakeClock,
    quota_clock: FakeClock,
) -> AsyncIterator[Orchestrator]:
    """An Orchestrator with a seeded routing RNG and injected clocks for breakers, latency and quotas."""
    instance = Orchestrator(
        breakers=Breakers(clock=breaker_clock, on_transition=_breaker_transitioned),
        sleep=recorded_sleep,
        rng=lambda: 0.5,
        routing_rng=random.Random(20261204).random,
        latency=LatencyBoard(clock=latency_clock),
        accounts=Accounts(clock=quota_clock),
    )
    yield instance
    await instance.aclose()
    await asyncio.to_thread(requestlog_flush)
    await asyncio.to_thread(breaker_mirror_flush)
    await sync_to_async(connections.close_all)()

"""The CPU cost of one routing decision: which deployment of a model serves a call.

Measured with the process's CPU clock over many decisions, for a model of four deployments under
each strategy, plus the experiment assignment that precedes it:
- "decision": the pure choice (orchestration/routing/strategies.py, experiments.py) from the
  registry snapshot and the state already read. Target: under 0.2 ms per call.
- "with Redis state": the same plus what a call asks Redis before choosing, against the embedded
  Valkey: the in-flight counts (least-busy only) and the quota check of the chosen deployment.
  This is client CPU in this process (building commands, parsing replies), not the round trip.
"""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal
from typing import Any

DECISIONS = 20_000
REDIS_DECISIONS = 2_000
STRATEGIES = ("weighted", "least-busy", "latency", "cost")


def _model(strategy: str) -> Any:
    from orchestration.registry import DeploymentRoute, ModelRoute

    base = ModelRoute(
        name="bench-pool", provider="p0", provider_kind="openai", upstream="u0",
        input_per_mtok=Decimal("1"), output_per_mtok=Decimal("2"), context_window=8192, max_output_tokens=4096,
        capabilities=("chat",), deadline_s=None, tokens_per_second=50.0, fallbacks=(), content_policy_fallback=None,
        cache_exact_enabled=False, cache_exact_ttl_s=0, cache_semantic=False, cache_semantic_threshold=0.9,
        cache_semantic_max_turns=4, simulated=False, strategy=strategy,
    )  # fmt: skip
    deployments = tuple(
        DeploymentRoute(f"d{i}", 10 * (i + 1), 1000, 100_000, "", "", base, f"bench-pool/d{i}") for i in range(4)
    )
    return base, deployments


def _experiment() -> Any:
    from orchestration.registry import ExperimentRoute, VariantRoute

    variants = (VariantRoute("control", None, {}, None, 80), VariantRoute("next", "other", {}, None, 100))
    return ExperimentRoute("bench-trial", "bench-pool", "user", variants)


def _decisions_cpu_ms(strategy: str) -> float:
    from orchestration.routing.experiments import variant_for
    from orchestration.routing.latency import LatencyBoard
    from orchestration.routing.strategies import deployments_order
    from orchestration.types import CallContext

    _, deployments = _model(strategy)
    board = LatencyBoard()
    for index, deployment in enumerate(deployments):
        board.record(deployment.key, 100.0 + index, streaming=False)
    in_flight = {deployment.key: index % 3 for index, deployment in enumerate(deployments)}
    experiment, rng = _experiment(), random.Random(1).random
    contexts = [CallContext(endpoint="completion", user_id=user) for user in range(1000)]
    started = time.process_time()
    for number in range(DECISIONS):
        variant_for(experiment, contexts[number % 1000])
        deployments_order(strategy, deployments, rng=rng, in_flight=in_flight, board=board, streaming=False)
    return (time.process_time() - started) * 1000 / DECISIONS


async def _with_redis_cpu_ms(strategy: str) -> float:
    from orchestration.routing.accounts import Accounts
    from orchestration.routing.latency import LatencyBoard
    from orchestration.routing.strategies import deployments_order

    _, deployments = _model(strategy)
    accounts, board, rng = Accounts(), LatencyBoard(), random.Random(1).random
    await accounts.in_flight(deployments)  # connect first
    started = time.process_time()
    for _ in range(REDIS_DECISIONS):
        in_flight = await accounts.in_flight(deployments) if strategy == "least-busy" else {}
        order = deployments_order(strategy, deployments, rng=rng, in_flight=in_flight, board=board, streaming=False)
        await accounts.quota_admit(order[0])
    return (time.process_time() - started) * 1000 / REDIS_DECISIONS


def run() -> dict[str, object]:
    figures: dict[str, object] = {}
    for strategy in STRATEGIES:
        figures[f"decision CPU per call, {strategy} (ms)"] = round(_decisions_cpu_ms(strategy), 4)
    for strategy in STRATEGIES:
        value = asyncio.run(_with_redis_cpu_ms(strategy))
        figures[f"with Redis state, {strategy} (ms)"] = round(value, 4)
    worst = max(value for name, value in figures.items() if name.startswith("decision"))  # type: ignore[type-var]
    figures["decision under 0.2 ms"] = "yes" if worst < 0.2 else "NO"  # type: ignore[operator]
    return figures

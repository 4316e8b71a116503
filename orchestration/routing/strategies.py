"""The order in which a call tries a model's deployments, per routing strategy.

Pure functions over the snapshot's deployments and the state read for this call: no I/O here,
so one decision costs microseconds (tests/bench/routing.py measures it). The first deployment of
the order serves unless its quota or breaker says no, or it fails; then the next one is tried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from orchestration.registry import DeploymentRoute
from orchestration.routing.latency import LatencyBoard

Rng = Callable[[], float]

WEIGHTED = "weighted"
LEAST_BUSY = "least-busy"
LATENCY = "latency"
COST = "cost"
STRATEGIES = (WEIGHTED, LEAST_BUSY, LATENCY, COST)

# Latency routing sends this share of calls in weighted order instead, so a deployment that was
# slow once is measured again and can win its traffic back.
EXPLORE_SHARE = 0.05
# Latency routing treats deployments this close to the fastest (20%, plus 10 ms) as equally fast.
LATENCY_BUFFER = 0.2
LATENCY_BUFFER_MS = 10.0


def weighted_order(deployments: Sequence[DeploymentRoute], rng: Rng) -> list[DeploymentRoute]:
    """Drawn without replacement, each draw in proportion to weight (a weight of 0 goes last)."""
    left = list(deployments)
    order: list[DeploymentRoute] = []
    while len(left) > 1:
        total = sum(d.weight for d in left)
        if total <= 0:
            break
        point = rng() * total
        for index, deployment in enumerate(left):
            point -= deployment.weight
            if point < 0:
                order.append(left.pop(index))
                break
        else:
            order.append(left.pop())
    return order + left


def least_busy_order(
    deployments: Sequence[DeploymentRoute], in_flight: Mapping[str, int], rng: Rng
) -> list[DeploymentRoute]:
    """Fewest calls in flight first; ties in weighted order."""
    shuffled = weighted_order(deployments, rng)
    return sorted(shuffled, key=lambda d: in_flight.get(d.key, 0))


def latency_order(
    deployments: Sequence[DeploymentRoute], board: LatencyBoard, rng: Rng, *, streaming: bool
) -> list[DeploymentRoute]:
    """Lowest estimated latency (TTFT for streams) first. Deployments within the buffer of the
    fastest count as equally fast and share the traffic by weight, so noise does not send it all
    to one; a deployment with no fresh estimate counts as fast, so it is measured; a small share
    of calls explores in weighted order."""
    shuffled = weighted_order(deployments, rng)
    if rng() < EXPLORE_SHARE:
        return shuffled
    estimates = {d.key: board.estimate_ms(d.key, streaming=streaming) for d in shuffled}
    known = [value for value in estimates.values() if value is not None]
    if not known:
        return shuffled
    fast_enough = min(known) * (1 + LATENCY_BUFFER) + LATENCY_BUFFER_MS

    def rank(deployment: DeploymentRoute) -> float:
        estimate = estimates[deployment.key]
        return 0.0 if estimate is None or estimate <= fast_enough else estimate

    return sorted(shuffled, key=rank)


def cost_order(deployments: Sequence[DeploymentRoute], rng: Rng) -> list[DeploymentRoute]:
    """Cheapest (input plus output price per million tokens) first; ties in weighted order."""
    shuffled = weighted_order(deployments, rng)
    return sorted(shuffled, key=lambda d: d.route.input_per_mtok + d.route.output_per_mtok)


def deployments_order(
    strategy: str,
    deployments: Sequence[DeploymentRoute],
    *,
    rng: Rng,
    in_flight: Mapping[str, int],
    board: LatencyBoard,
    streaming: bool,
) -> list[DeploymentRoute]:
    if len(deployments) == 1:
        return [deployments[0]]
    if strategy == LEAST_BUSY:
        return least_busy_order(deployments, in_flight, rng)
    if strategy == LATENCY:
        return latency_order(deployments, board, rng, streaming=streaming)
    if strategy == COST:
        return cost_order(deployments, rng)
    return weighted_order(deployments, rng)

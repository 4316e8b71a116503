"""The one place a call's cost is computed: the served model's prices times its token usage."""

from __future__ import annotations

from decimal import Decimal

from orchestration.registry import ModelRoute
from orchestration.types import Usage

_PER_MILLION = Decimal(1_000_000)
# Eight decimal places is the RequestLog column's precision.
_QUANTUM = Decimal("0.00000001")


def cost_usd(route: ModelRoute, usage: Usage) -> Decimal:
    """USD for ``usage`` at ``route``'s per-million-token prices, rounded to the log's precision."""
    cost = (route.input_per_mtok * usage.input_tokens + route.output_per_mtok * usage.output_tokens) / _PER_MILLION
    return cost.quantize(_QUANTUM)

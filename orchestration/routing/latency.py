"""Per-deployment latency estimates: exponentially weighted moving averages, kept per process.

Each process learns from its own calls (a process serves enough of them to learn quickly), so the
hot path reads a dict instead of Redis. The weight of a new sample grows with the time since the
previous one (``DECAY_S``): under steady traffic it is ``ALPHA``, but a sample after a quiet spell
(a deployment that lost its traffic and is measured again by exploration) mostly replaces the old
estimate, which is how a recovered deployment wins its traffic back. An estimate older than
``STALE_S`` is forgotten: the deployment counts as unmeasured and is tried again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

ALPHA = 0.3  # weight of the newest sample under steady traffic
DECAY_S = 5.0  # an estimate this old counts for about a third against a new sample
STALE_S = 30.0


@dataclass(slots=True)
class Estimate:
    latency_ms: float | None = None
    ttft_ms: float | None = None
    latency_at: float = 0.0
    ttft_at: float = 0.0


def _ewma(previous: float | None, sample: float, age_s: float) -> float:
    if previous is None or age_s > STALE_S:
        return sample
    weight = max(ALPHA, 1 - math.exp(-age_s / DECAY_S))
    return previous + weight * (sample - previous)


class LatencyBoard:
    """``clock`` (monotonic seconds) ages the estimates; tests inject it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._estimates: dict[str, Estimate] = {}

    def record(self, key: str, elapsed_ms: float, *, streaming: bool) -> None:
        """A finished attempt: its full latency, or for a stream the time to its first chunk."""
        estimate = self._estimates.setdefault(key, Estimate())
        now = self.clock()
        if streaming:
            estimate.ttft_ms = _ewma(estimate.ttft_ms, elapsed_ms, now - estimate.ttft_at)
            estimate.ttft_at = now
        else:
            estimate.latency_ms = _ewma(estimate.latency_ms, elapsed_ms, now - estimate.latency_at)
            estimate.latency_at = now

    def estimate_ms(self, key: str, *, streaming: bool) -> float | None:
        """The fresh estimate for this kind of call (the other kind's when it has none), else None."""
        estimate = self._estimates.get(key)
        if estimate is None:
            return None
        now = self.clock()
        ttft = estimate.ttft_ms if now - estimate.ttft_at <= STALE_S else None
        latency = estimate.latency_ms if now - estimate.latency_at <= STALE_S else None
        return (ttft if ttft is not None else latency) if streaming else (latency if latency is not None else ttft)

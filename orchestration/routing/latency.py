"""Per-deployment latency estimates: exponentially weighted moving averages, kept per process.

Each process learns from its own calls (a process serves enough of them to learn quickly), so the
hot path reads a dict instead of Redis. An estimate older than ``STALE_S`` is forgotten: the
deployment is then tried again and measured, which is how a recovered deployment wins back traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

ALPHA = 0.3  # weight of the newest sample
STALE_S = 30.0


@dataclass(slots=True)
class Estimate:
    latency_ms: float | None = None
    ttft_ms: float | None = None
    latency_at: float = 0.0
    ttft_at: float = 0.0


def _ewma(previous: float | None, sample: float) -> float:
    return sample if previous is None else previous + ALPHA * (sample - previous)


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
            fresh = now - estimate.ttft_at <= STALE_S
            estimate.ttft_ms, estimate.ttft_at = _ewma(estimate.ttft_ms if fresh else None, elapsed_ms), now
        else:
            fresh = now - estimate.latency_at <= STALE_S
            estimate.latency_ms, estimate.latency_at = _ewma(estimate.latency_ms if fresh else None, elapsed_ms), now

    def estimate_ms(self, key: str, *, streaming: bool) -> float | None:
        """The fresh estimate for this kind of call (the other kind's when it has none), else None."""
        estimate = self._estimates.get(key)
        if estimate is None:
            return None
        now = self.clock()
        ttft = estimate.ttft_ms if now - estimate.ttft_at <= STALE_S else None
        latency = estimate.latency_ms if now - estimate.latency_at <= STALE_S else None
        return (ttft if ttft is not None else latency) if streaming else (latency if latency is not None else ttft)

"""When to try a provider again, and how long to wait first.

Attempt 2 comes about ``retry_base_s`` after the first (±20 %), attempt n > 2 between
``base * 2**(n-2)`` and twice that (1 s, then 2-4 s with the default base of 1 s). A provider's
``Retry-After`` replaces the backoff when it fits the deadline; when it does not, or the backoff
does not, the caller goes straight to the next fallback instead of waiting.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from orchestration.deadlines import Deadline
from orchestration.registry import ProviderSettings
from orchestration.types import ProviderError

Rng = Callable[[], float]

MAX_BACKOFF_S = 30.0
FIRST_RETRY_JITTER = 0.2


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 2
    base_s: float = 1.0

    @classmethod
    def of(cls, provider: ProviderSettings) -> RetryPolicy:
        return cls(max_retries=provider.max_retries, base_s=provider.retry_base_s)

    def backoff_s(self, retry: int, rng: Rng = random.random) -> float:
        """The wait before retry number ``retry`` (1 = the second attempt), jittered."""
        if retry <= 1:
            return self.base_s * (1 - FIRST_RETRY_JITTER + 2 * FIRST_RETRY_JITTER * rng())
        low = self.base_s * 2 ** (retry - 1)
        return min(MAX_BACKOFF_S, low * (1 + rng()))


def retry_wait_s(
    policy: RetryPolicy, retries_done: int, error: ProviderError, deadline: Deadline, rng: Rng = random.random
) -> float | None:
    """Seconds to wait before trying the same provider again, or None to move on now."""
    if not error.retryable or retries_done >= policy.max_retries:
        return None
    wait = error.retry_after if error.retry_after is not None else policy.backoff_s(retries_done + 1, rng)
    return wait if deadline.fits(wait) else None

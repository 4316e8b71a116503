"""One deadline per call, and the per-attempt timeouts cut to fit what is left of it.

The chain (docs/operations.md, "The chain of timeouts"): the endpoint's deadline (settings ``DEADLINE_*_S``), or the
model's ``deadline_s``, or the caller's ``CallContext.deadline_s``. A call that generates text gets more: its
base plus the time the model needs to write ``max_tokens`` at its ``tokens_per_second`` (with margin), up to
``DEADLINE_CEILING_S`` (10 min), so a long answer is not cut at 30 s; a stream that stalls is still ended
by its first-token and idle limits. Inside the deadline every attempt gets a
``CallTimeout`` whose total is the expected generation time (``max_tokens / tokens_per_second``
plus the provider's time to start answering) but never more than what remains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from orchestration.conf import switchyard_setting
from orchestration.providers.base import CallTimeout
from orchestration.registry import ModelRoute, ProviderSettings
from orchestration.types import ChatRequest, OrchestrationError

Clock = Callable[[], float]

# Below this an attempt cannot even open a connection: report the deadline instead of trying.
MIN_ATTEMPT_S = 0.05
# Generation rarely runs at exactly the measured speed: allow this much slower.
GENERATION_MARGIN = 1.5
CONNECT_S = 5.0

_ENDPOINT_SETTING = {
    "completion": "DEADLINE_COMPLETION_S",
    "embedding": "DEADLINE_COMPLETION_S",
    "chat": "DEADLINE_CHAT_S",
    "agent": "DEADLINE_AGENT_S",
}


def _seconds(name: str, default: float) -> float:
    # settings.SWITCHYARD mixes types; these entries are floats read by env_float.
    return float(cast(float, switchyard_setting(name, default)))


def endpoint_deadline_s(endpoint: str) -> float:
    """The configured deadline of an endpoint ("completion", "chat", "agent", "embedding")."""
    return _seconds(_ENDPOINT_SETTING.get(endpoint, "DEADLINE_COMPLETION_S"), 30.0)


def deadline_ceiling_s() -> float:
    """The longest a generation may stretch a deadline to (``SWITCHYARD_DEADLINE_CEILING_S``)."""
    return _seconds("DEADLINE_CEILING_S", 600.0)


def stream_first_token_s() -> float:
    return _seconds("STREAM_FIRST_TOKEN_S", 30.0)


def stream_idle_s() -> float:
    return _seconds("STREAM_IDLE_S", 30.0)


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in ``clock`` time by which the caller must have an answer."""

    expires_at: float
    total_s: float
    clock: Clock = time.monotonic

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        return cls(expires_at=clock() + seconds, total_s=seconds, clock=clock)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - self.clock())

    def fits(self, seconds: float) -> bool:
        """True when waiting ``seconds`` still leaves room for an attempt afterwards."""
        return seconds + MIN_ATTEMPT_S < self.remaining()

    def check(self) -> None:
        """Raise ``deadline_exceeded`` when no attempt fits any more."""
        if self.remaining() < MIN_ATTEMPT_S:
            raise deadline_exceeded(self)


def deadline_exceeded(deadline: Deadline, detail: str = "") -> OrchestrationError:
    message = f"The request's deadline of {deadline.total_s:g} s passed before an answer arrived"
    return OrchestrationError("deadline_exceeded", f"{message}{': ' + detail if detail else '.'}", status=504)


def deadline_for(
    endpoint: str,
    *,
    requested_s: float | None,
    route: ModelRoute | None,
    max_tokens: int | None = None,
    clock: Clock = time.monotonic,
    started: float | None = None,
) -> Deadline:
    """The caller's explicit deadline, else the model's, else the endpoint's, counted from
    ``started`` (a ``clock`` reading; default now). ``max_tokens``: the most the call may write;
    given, the deadline grows by the time that takes (``generation_allowance_s``)."""
    if requested_s is not None:
        seconds = requested_s
    else:
        seconds = route.deadline_s if route is not None and route.deadline_s else endpoint_deadline_s(endpoint)
        if route is not None and max_tokens:
            seconds = min(seconds + generation_allowance_s(max_tokens, route), max(seconds, deadline_ceiling_s()))
    seconds = max(0.0, seconds)
    return Deadline(expires_at=(clock() if started is None else started) + seconds, total_s=seconds, clock=clock)


def generation_allowance_s(max_tokens: int, route: ModelRoute) -> float:
    """How long ``route``'s model may take to write ``max_tokens``, with the margin for a slow day."""
    speed = route.tokens_per_second if route.tokens_per_second > 0 else 50.0
    return max_tokens / speed * GENERATION_MARGIN


def generation_tokens(request: ChatRequest, route: ModelRoute) -> int:
    """The most a chat call may write: its ``max_tokens``, else everything the model can."""
    return request.max_tokens or route.max_output_tokens


def expected_generation_s(request: ChatRequest, route: ModelRoute) -> float:
    """How long the model should need to write the longest answer this request allows."""
    return generation_allowance_s(generation_tokens(request, route), route)


def call_timeout(
    deadline: Deadline, request: ChatRequest, route: ModelRoute, provider: ProviderSettings, *, stream: bool
) -> CallTimeout:
    """Limits for one attempt: the expected call length, cut to what the deadline leaves."""
    remaining = deadline.remaining()
    start_s = provider.config.timeout_s
    total = min(remaining, start_s + expected_generation_s(request, route))
    if stream:
        first_token = min(total, stream_first_token_s(), start_s)
        idle = min(total, stream_idle_s())
    else:
        # A non-streamed reply only starts arriving once it is fully generated.
        first_token = idle = total
    return CallTimeout(total=total, connect=min(CONNECT_S, total), first_token=first_token, idle=idle)


def embed_timeout(deadline: Deadline, provider: ProviderSettings) -> CallTimeout:
    total = min(deadline.remaining(), provider.config.timeout_s)
    return CallTimeout(total=total, connect=min(CONNECT_S, total), first_token=total, idle=total)

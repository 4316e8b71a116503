"""Retries: which errors, how long to wait, and when to move on to a fallback instead."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from orchestration.deadlines import Deadline
from orchestration.orchestrator import Orchestrator
from orchestration.requestlog import requestlog_flush
from orchestration.retry import RetryPolicy, retry_wait_s
from orchestration.types import ErrorKind, ProviderError
from tests.conftest import Simulator
from tests.orchestration.harness import RecordingSleep, ask, ctx

POLICY = RetryPolicy(max_retries=2, base_s=1.0)


def error(kind: ErrorKind, retry_after: float | None = None) -> ProviderError:
    return ProviderError(kind, kind.value, retry_after=retry_after)


@pytest.mark.parametrize("roll", [0.0, 0.5, 0.999])
def test_the_second_attempt_comes_about_one_second_after_the_first(roll: float) -> None:
    assert 0.8 <= POLICY.backoff_s(1, lambda: roll) <= 1.2


@pytest.mark.parametrize("roll", [0.0, 0.5, 0.999])
def test_the_third_attempt_comes_two_to_four_seconds_later(roll: float) -> None:
    assert 2.0 <= POLICY.backoff_s(2, lambda: roll) <= 4.0


def test_the_backoff_is_jittered_and_scales_with_the_providers_base() -> None:
    waits = {POLICY.backoff_s(2, lambda r=r: r) for r in (0.1, 0.6)}
    assert len(waits) == 2
    assert RetryPolicy(base_s=0.25).backoff_s(2, lambda: 0.0) == 0.5


@pytest.mark.parametrize("kind", [ErrorKind.TIMEOUT, ErrorKind.CONNECTION, ErrorKind.RATE_LIMITED, ErrorKind.SERVER])
def test_errors_that_can_pass_are_retried(kind: ErrorKind) -> None:
    assert retry_wait_s(POLICY, 0, error(kind), Deadline.after(30.0), lambda: 0.5) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kind",
    [ErrorKind.BAD_REQUEST, ErrorKind.AUTH, ErrorKind.NOT_FOUND, ErrorKind.CONTEXT_WINDOW, ErrorKind.CONTENT_POLICY],
)
def test_errors_that_cannot_pass_are_not_retried(kind: ErrorKind) -> None:
    assert retry_wait_s(POLICY, 0, error(kind), Deadline.after(30.0)) is None


def test_it_stops_after_the_providers_max_retries() -> None:
    assert retry_wait_s(POLICY, 1, error(ErrorKind.SERVER), Deadline.after(30.0)) is not None
    assert retry_wait_s(POLICY, 2, error(ErrorKind.SERVER), Deadline.after(30.0)) is None
    assert retry_wait_s(RetryPolicy(max_retries=0), 0, error(ErrorKind.SERVER), Deadline.after(30.0)) is None


def test_retry_after_replaces_the_backoff_when_it_fits_the_deadline() -> None:
    wait = retry_wait_s(POLICY, 0, error(ErrorKind.RATE_LIMITED, retry_after=7.0), Deadline.after(30.0))
    assert wait == 7.0


def test_retry_after_longer_than_the_deadline_means_move_on_now() -> None:
    assert retry_wait_s(POLICY, 0, error(ErrorKind.RATE_LIMITED, retry_after=120.0), Deadline.after(30.0)) is None


def test_a_backoff_that_does_not_fit_the_deadline_means_move_on_now() -> None:
    assert retry_wait_s(POLICY, 0, error(ErrorKind.SERVER), Deadline.after(0.9), lambda: 0.5) is None


# --- against the simulator -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_429_with_retry_after_1_waits_about_one_second_then_succeeds(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, recorded_sleep: RecordingSleep
) -> None:
    # Every second request fails: the first call goes through, the second gets the 429.
    simulator.configure("big", error_status=429, retry_after=1, error_rate=0.5)
    await orchestrator.complete(ask("big"), ctx())
    _, served = await orchestrator.complete(ask("big"), ctx())
    assert recorded_sleep.waits == [pytest.approx(1.0)]
    assert (served.model, served.attempts, served.fallbacks) == ("big", 2, [])


@pytest.mark.django_db(transaction=True)
async def test_retry_after_ms_is_honoured_too(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, recorded_sleep: RecordingSleep
) -> None:
    simulator.configure("big", error_status=429, retry_after_ms=1500, error_rate=0.5)
    await orchestrator.complete(ask("big"), ctx())
    await orchestrator.complete(ask("big"), ctx())
    assert recorded_sleep.waits == [pytest.approx(1.5)]


@pytest.mark.django_db(transaction=True)
async def test_a_429_with_retry_after_120_on_a_30_second_deadline_falls_back_at_once(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, recorded_sleep: RecordingSleep
) -> None:
    simulator.configure("big", error_status=429, retry_after=120)
    _, served = await orchestrator.complete(ask("big"), ctx(deadline_s=30.0))
    assert recorded_sleep.waits == []
    assert served.model == "small"
    assert [(hop.reason, hop.to_model) for hop in served.fallbacks] == [("rate_limited", "small")]
    assert simulator.stats("big")["requests"] == 1


@pytest.mark.django_db(transaction=True)
async def test_a_real_retry_after_wait_takes_about_that_long(registry: Any, simulator: Simulator) -> None:
    orchestrator = Orchestrator()
    simulator.configure("big", error_status=429, retry_after=1, error_rate=0.5)
    await orchestrator.complete(ask("big"), ctx())
    started = time.monotonic()
    _, served = await orchestrator.complete(ask("big"), ctx())
    assert 0.9 <= time.monotonic() - started < 2.0
    assert served.attempts == 2
    await orchestrator.aclose()
    await asyncio.to_thread(requestlog_flush)

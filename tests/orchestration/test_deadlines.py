"""One deadline per call, and per-attempt timeouts that fit inside it."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from orchestration.deadlines import Deadline, call_timeout, deadline_for
from orchestration.orchestrator import Orchestrator
from orchestration.types import OrchestrationError
from tests.conftest import Simulator
from tests.orchestration.harness import PROVIDER, ask, ctx, route


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("endpoint", "seconds"), [("completion", 30.0), ("chat", 60.0), ("agent", 300.0)])
def test_each_endpoint_has_its_own_default_deadline(endpoint: str, seconds: float) -> None:
    assert deadline_for(endpoint, requested_s=None, route=route()).total_s == seconds


def test_a_model_deadline_overrides_the_endpoint_and_the_caller_overrides_both() -> None:
    assert deadline_for("chat", requested_s=None, route=route(deadline_s=12.0)).total_s == 12.0
    assert deadline_for("chat", requested_s=3.0, route=route(deadline_s=12.0)).total_s == 3.0


def test_the_endpoint_deadlines_come_from_settings(settings: Any) -> None:
    settings.SWITCHYARD = {**settings.SWITCHYARD, "DEADLINE_CHAT_S": 7.5}
    assert deadline_for("chat", requested_s=None, route=None).total_s == 7.5


def test_a_generation_stretches_the_deadline_by_its_writing_time() -> None:
    slow = route(tokens_per_second=40.0)
    assert deadline_for("completion", requested_s=None, route=slow, max_tokens=800).total_s == 30.0 + 800 / 40 * 1.5
    # A 48 s stream at 40 tokens/s is about 1,900 tokens: it now fits, where 30 s cut it.
    assert deadline_for("completion", requested_s=None, route=slow, max_tokens=1900).total_s > 48.0
    assert deadline_for("chat", requested_s=None, route=route(deadline_s=12.0), max_tokens=100).total_s == 12.0 + 3.0


def test_the_stretch_stops_at_the_ceiling_and_an_explicit_deadline_is_kept(settings: Any) -> None:
    slow = route(tokens_per_second=1.0)
    assert deadline_for("completion", requested_s=None, route=slow, max_tokens=10**6).total_s == 600.0
    settings.SWITCHYARD = {**settings.SWITCHYARD, "DEADLINE_CEILING_S": 90.0}
    assert deadline_for("completion", requested_s=None, route=slow, max_tokens=10**6).total_s == 90.0
    assert deadline_for("completion", requested_s=5.0, route=slow, max_tokens=10**6).total_s == 5.0


def test_a_long_generation_gets_a_longer_call_timeout_than_a_short_one() -> None:
    deadline = Deadline.after(300.0)
    slow = route(tokens_per_second=40.0)
    long = call_timeout(deadline, ask("m", max_tokens=4000), slow, PROVIDER, stream=False)
    short = call_timeout(deadline, ask("m", max_tokens=50), slow, PROVIDER, stream=False)
    assert long.total == pytest.approx(PROVIDER.config.timeout_s + 4000 / 40.0 * 1.5)
    assert short.total == pytest.approx(PROVIDER.config.timeout_s + 50 / 40.0 * 1.5)


def test_no_call_timeout_reaches_past_what_is_left_of_the_deadline() -> None:
    clock = FakeClock()
    deadline = Deadline.after(30.0, clock)
    clock.now += 28.0
    limits = call_timeout(deadline, ask("m", max_tokens=4000), route(), PROVIDER, stream=True)
    assert limits.total == pytest.approx(2.0)
    assert max(limits.connect, limits.first_token, limits.idle) <= 2.0


def test_streams_get_the_first_token_and_idle_limits_from_settings(settings: Any) -> None:
    settings.SWITCHYARD = {**settings.SWITCHYARD, "STREAM_FIRST_TOKEN_S": 4.0, "STREAM_IDLE_S": 2.5}
    limits = call_timeout(Deadline.after(60.0), ask("m", max_tokens=500), route(), PROVIDER, stream=True)
    assert (limits.first_token, limits.idle) == (4.0, 2.5)


def test_a_slow_provider_start_limits_the_first_token_wait() -> None:
    quick = replace(PROVIDER, config=replace(PROVIDER.config, timeout_s=1.5))
    limits = call_timeout(Deadline.after(60.0), ask("m"), route(), quick, stream=True)
    assert limits.first_token == 1.5


def test_when_nothing_fits_any_more_the_call_gets_a_504_deadline_error() -> None:
    clock = FakeClock()
    deadline = Deadline.after(30.0, clock)
    deadline.check()
    assert deadline.fits(29.0) and not deadline.fits(30.0)
    clock.now += 29.99
    with pytest.raises(OrchestrationError) as raised:
        deadline.check()
    assert (raised.value.code, raised.value.status) == ("deadline_exceeded", 504)
    assert "30 s" in raised.value.message


@pytest.mark.django_db(transaction=True)
async def test_a_hanging_provider_costs_at_most_the_deadline_and_says_so(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("big", hang=True)
    simulator.configure("small", hang=True)
    started = time.monotonic()
    with pytest.raises(OrchestrationError) as raised:
        await orchestrator.complete(ask("big"), ctx(deadline_s=1.5))
    elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 0.5  # the rest is scheduling noise on a loaded machine
    assert (raised.value.code, raised.value.status) == ("deadline_exceeded", 504)
    assert "1.5 s" in raised.value.message


@pytest.mark.django_db(transaction=True)
async def test_a_stream_that_never_starts_costs_at_most_the_deadline(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator
) -> None:
    simulator.configure("*", hang=True)
    started = time.monotonic()
    with pytest.raises(OrchestrationError) as raised:
        async for _ in orchestrator.stream(ask("big"), ctx(deadline_s=1.0)):
            pass
    assert time.monotonic() - started < 1.0 + 0.5
    assert raised.value.code == "deadline_exceeded"


@pytest.mark.django_db(transaction=True)
async def test_a_stream_that_goes_quiet_ends_with_an_error_after_the_idle_limit(
    orchestrator: Orchestrator, registry: Any, simulator: Simulator, settings: Any
) -> None:
    settings.SWITCHYARD = {**settings.SWITCHYARD, "STREAM_IDLE_S": 0.5}
    simulator.configure("big", tokens_per_s=1)
    started = time.monotonic()
    with pytest.raises(OrchestrationError) as raised:
        async for _ in orchestrator.stream(ask("big", max_tokens=20), ctx(deadline_s=20.0)):
            pass
    assert time.monotonic() - started < 3.0
    assert (raised.value.code, raised.value.status) == ("upstream_error", 502)

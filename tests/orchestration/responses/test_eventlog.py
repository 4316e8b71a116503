"""The event log of background responses, on real Redis: read after a sequence number, follow live
entries to the end, and notice a run that another worker started again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from django.conf import settings
from redis.exceptions import ResponseError

from orchestration.responses import eventlog
from orchestration.responses.services import response_signal_cancel


def events(*numbers: int) -> list[dict[str, Any]]:
    return [{"type": "response.output_text.delta", "sequence_number": number} for number in numbers]


async def collected(client: aioredis.Redis, starting_after: int | None) -> list[int]:
    numbers = []
    async for event in eventlog.follow(client, "resp_1", starting_after=starting_after):
        if event is not None:
            numbers.append(event["sequence_number"])
    return numbers


@pytest.fixture
async def client() -> Any:
    connection = aioredis.Redis.from_url(settings.REDIS_URL)
    yield connection
    await connection.aclose()


async def test_a_follower_gets_what_follows_its_sequence_number_then_the_live_events(client: aioredis.Redis) -> None:
    await eventlog.append(client, "resp_1", 1, events(0, 1, 2))
    follower = asyncio.ensure_future(collected(client, starting_after=1))
    await asyncio.sleep(0.05)
    await eventlog.append(client, "resp_1", 1, events(3, 4))
    await eventlog.end(client, "resp_1")
    assert await asyncio.wait_for(follower, 5) == [2, 3, 4]
    assert await collected(client, starting_after=None) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("starting_after", [2, 10**9, 10**13, 2**64, 10**20])
async def test_a_follower_past_the_last_event_still_sees_the_end(client: aioredis.Redis, starting_after: int) -> None:
    # The end entry's id is a time in milliseconds; a sequence number beyond it (or beyond what a
    # stream id can hold) must neither skip the end nor be refused by Redis.
    await eventlog.append(client, "resp_1", 1, events(0, 1, 2))
    await eventlog.end(client, "resp_1")
    assert await asyncio.wait_for(collected(client, starting_after=starting_after), 5) == []


async def test_a_follower_of_a_run_started_again_is_told_so(client: aioredis.Redis) -> None:
    await eventlog.append(client, "resp_1", 1, events(0, 1, 2))
    follower = asyncio.ensure_future(collected(client, starting_after=None))
    await asyncio.sleep(0.05)
    await eventlog.start(client, "resp_1", 2)  # a second worker takes the response over
    await eventlog.append(client, "resp_1", 2, events(0, 1, 2, 3))
    with pytest.raises(eventlog.RunRestarted):
        await asyncio.wait_for(follower, 5)
    await eventlog.end(client, "resp_1")
    assert await collected(client, starting_after=None) == [0, 1, 2, 3]  # the new run, whole


async def test_a_run_that_begins_after_its_response_was_cancelled_keeps_the_end_its_followers_wait_for(
    client: aioredis.Redis,
) -> None:
    # A worker claimed the response; the cancel lands before the run clears the log.
    response_signal_cancel("resp_1")
    assert await eventlog.start(client, "resp_1", 1) is False
    with pytest.raises(ResponseError):  # the run's events come too late: the cancel ended the log
        await eventlog.append(client, "resp_1", 1, events(0, 1))
    assert await asyncio.wait_for(collected(client, starting_after=None), 5) == []


async def test_a_run_taken_over_by_another_worker_writes_nothing_more(client: aioredis.Redis) -> None:
    assert await eventlog.start(client, "resp_1", 1)
    await eventlog.append(client, "resp_1", 1, events(*range(40)))
    assert await eventlog.start(client, "resp_1", 2)  # the first worker was presumed dead
    assert await eventlog.append(client, "resp_1", 2, events(0, 1, 2))
    # The first worker wakes up, 40 events ahead of the new run: not one of them is taken.
    assert await eventlog.append(client, "resp_1", 1, events(40, 41)) is False
    assert await eventlog.append(client, "resp_1", 2, events(3))
    await eventlog.end(client, "resp_1")
    assert await asyncio.wait_for(collected(client, starting_after=None), 5) == [0, 1, 2, 3]

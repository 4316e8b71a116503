"""ReadWatchdog: each read of a stream within its deadline, on one timer per stream."""

from __future__ import annotations

import asyncio

import pytest

from orchestration.watchdog import ReadWatchdog

SHORT_S = 0.05  # a deadline the loop reaches quickly; nothing here waits longer than a few of them


def never() -> asyncio.Future[str]:
    """A read that would wait forever."""
    return asyncio.get_running_loop().create_future()


async def ready(value: str = "chunk") -> str:
    return value


async def test_reads_within_their_deadlines_return_their_values_and_share_one_timer() -> None:
    watchdog = ReadWatchdog()
    loop = asyncio.get_running_loop()
    assert await watchdog.read(lambda: ready("a"), loop.time() + 30) == "a"
    timer = watchdog._handle
    for later in range(1, 50):  # as a stream does: every read moves the idle deadline on
        assert await watchdog.read(ready, loop.time() + 30 + later) == "chunk"
    assert watchdog._handle is timer and timer is not None and not timer.cancelled()
    watchdog.close()
    assert timer.cancelled()


async def test_a_read_past_its_deadline_raises_timeout_and_leaves_the_task_uncancelled() -> None:
    watchdog = ReadWatchdog()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await watchdog.read(never, started + SHORT_S)
    assert loop.time() - started >= SHORT_S
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert await watchdog.read(ready, loop.time() + 30) == "chunk"  # the stream may still be read


async def test_a_timer_armed_for_an_earlier_deadline_waits_on_for_the_later_one() -> None:
    watchdog = ReadWatchdog()
    loop = asyncio.get_running_loop()
    await watchdog.read(ready, loop.time() + SHORT_S)  # arms the timer for SHORT_S from now
    release = loop.create_future()
    loop.call_later(3 * SHORT_S, release.set_result, "late but in time")
    # The timer fires at SHORT_S, finds the deadline moved to 6 x SHORT_S, and re-arms.
    assert await watchdog.read(lambda: release, loop.time() + 6 * SHORT_S) == "late but in time"


async def test_an_earlier_deadline_rearms_the_timer() -> None:
    watchdog = ReadWatchdog()
    loop = asyncio.get_running_loop()
    await watchdog.read(ready, loop.time() + 30)
    started = loop.time()
    with pytest.raises(TimeoutError):
        await watchdog.read(never, started + SHORT_S)
    assert loop.time() - started < 10  # not held until the first, later deadline


async def test_a_deadline_already_passed_fails_without_starting_the_read() -> None:
    watchdog = ReadWatchdog()
    started = []

    async def read() -> str:
        started.append(True)
        return "chunk"

    with pytest.raises(TimeoutError):
        await watchdog.read(read, asyncio.get_running_loop().time() - 1)
    assert started == []


async def test_a_cancellation_from_outside_is_not_turned_into_a_timeout() -> None:
    watchdog = ReadWatchdog()
    loop = asyncio.get_running_loop()
    reading = asyncio.create_task(watchdog.read(never, loop.time() + 30))
    await asyncio.sleep(0)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    watchdog.close()


async def test_a_cancellation_at_the_moment_of_the_deadline_still_cancels() -> None:
    watchdog = ReadWatchdog()
    loop = asyncio.get_running_loop()

    async def read_and_be_cancelled() -> str:
        task = asyncio.current_task()
        assert task is not None
        deadline = loop.time() + SHORT_S
        # Both timers fall due in the same turn of the loop, before the task runs again: the task
        # sees one CancelledError carrying two cancellations, and only one of them is the watchdog's.
        loop.call_at(deadline, task.cancel)
        return await watchdog.read(never, deadline)

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(read_and_be_cancelled())

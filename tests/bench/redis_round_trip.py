"""What one Redis round trip costs the process that makes it, in CPU: the fixed cost that batching
(admissions, token appends) and the client's own send path exist to cut.

This process is pinned to the server core (``taskset``-like, ``os.sched_setaffinity``) and Redis
runs where ``REDIS_URL`` points (the embedded Valkey, or the machine's); ``time.process_time``
counts this process's CPU only, best of five runs:
- a lone ``PING`` through redis-py's asyncio client as it ships, and through ours
  (``orchestration.redisclients``: hiredis packing, ``EagerSend``);
- a lone ``EVALSHA`` sent as a command and as a pipeline of one;
- ``chat.streams.replies_sweep`` of 1,000 replies, the chat sweeper's pass each second at that load.

    python -m tests.bench redis_round_trip

Figures: docs/benchmarks.md, "Commands written without a task of their own" and "The sweeper's second".
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tests.bench.streaming import SERVER_CORE

CALLS = 3000
REPEATS = 5
SWEPT = 1000


async def _best_us(call: Callable[[], Awaitable[Any]], calls: int = CALLS) -> float:
    """The least CPU per call over ``REPEATS`` runs of ``calls`` calls, in µs."""
    best = float("inf")
    for _ in range(REPEATS):
        started = time.process_time()
        for _ in range(calls):
            await call()
        best = min(best, (time.process_time() - started) / calls * 1e6)
    return best


async def _measure() -> dict[str, str]:
    import redis.asyncio as aioredis
    from django.conf import settings

    from chat import streams
    from orchestration.redisclients import FAST, STREAMS, redis_async, redis_async_close

    shipped = aioredis.Redis.from_url(settings.REDIS_URL, protocol=2, socket_timeout=30.0)
    ours, fast = redis_async(STREAMS), redis_async(FAST)
    try:
        sha = await fast.script_load("return 1")

        async def piped() -> Any:
            pipe = fast.pipeline(transaction=False)
            pipe.evalsha(sha, 0)
            return await pipe.execute()

        await shipped.ping()
        await ours.ping()
        figures = {
            "lone PING, redis-py as it ships": f"{await _best_us(shipped.ping):.1f} µs of CPU",
            "lone PING, our clients": f"{await _best_us(ours.ping):.1f} µs of CPU",
            "lone EVALSHA as a command": f"{await _best_us(lambda: fast.evalsha(sha, 0)):.1f} µs of CPU",
            "lone EVALSHA as a pipeline of one": f"{await _best_us(piped):.1f} µs of CPU",
        }
        ids = list(range(10_000_000, 10_000_000 + SWEPT))
        sweep_us = await _best_us(lambda: streams.replies_sweep(ids), calls=3)
        figures[f"sweep of {SWEPT} replies"] = f"{sweep_us / 1000:.1f} ms of CPU"
        await fast.delete(*(streams.key(message_id, "producer") for message_id in ids))
        return figures
    finally:
        await shipped.aclose()
        await redis_async_close()


def run() -> dict[str, str]:
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {SERVER_CORE})
    try:
        return {"pinned to core": str(SERVER_CORE), **asyncio.run(_measure())}
    finally:
        os.sched_setaffinity(0, previous)


if __name__ == "__main__":
    from tests.bench.environment import bench_environment

    bench_environment()
    for name, value in run().items():
        print(f"{name}: {value}")

"""The events of a background response, kept in a Redis Stream so any server process can stream
them, from the start or after a ``starting_after`` sequence number, while the worker writes them.

An event's stream id is ``<sequence_number + 1>-<attempt>``: reading after ``N`` is reading after
id ``N+1`` (Redis compares ids as numbers). A run that a worker starts again after a crash clears
the stream first; its entries carry the new attempt, so a follower of the old run notices and
ends its stream with an ``error`` event instead of mixing two runs. An entry with ``end`` closes
the stream (written after the last event, or by a cancel).

The log remembers which run it belongs to (``run_key``), and only that run may append: a worker
presumed dead that wakes up (a paused process, a stalled host) writes nothing more. Its events,
numbered past the new run's, would otherwise be taken, make Redis refuse the new run's as too old,
and end every later stream of the response with ``response_restarted``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

# Longer than any run, so a client can stream a response for a while after it ended; after
# that the events are written again from the stored response.
TTL_S = 24 * 3600
BLOCK_MS = 5_000
# More events than any response has. The end entry's id is the time in milliseconds (above 10**12),
# so reading after at most this never skips it, whatever ``starting_after`` a client sends (a
# larger one also made an id Redis refuses past 2**64).
LAST_SEQUENCE = 10**9


def events_key(response_id: str) -> str:
    return f"responses:{response_id}:events"


def cancel_key(response_id: str) -> str:
    return f"responses:{response_id}:cancel"


def run_key(response_id: str) -> str:
    return f"responses:{response_id}:run"


# Clears the log unless the response was cancelled, in one step: a cancel cannot land between the check
# and the delete. The log then belongs to this run.
_START = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[2])
return 1
"""

# Appends the events of one run, unless another run has taken the log over. A log that names no
# run (its key expired, or Redis lost it) takes them: its ids still refuse a run older than its events.
_APPEND = """
local run = redis.call('GET', KEYS[2])
if run and run ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do
  redis.call('XADD', KEYS[1], ARGV[i], 'event', ARGV[i + 1], 'attempt', ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


async def start(client: aioredis.Redis, response_id: str, attempt: int) -> bool:
    """Run ``attempt`` begins: whatever an earlier run of it wrote is gone. False, and the log left
    as it is, when the response was cancelled meanwhile (after the worker's claim): the cancel's end
    entry must stay, or its followers would wait for an end that never comes, and it refuses the
    run's events (their ids are older)."""
    keys = [events_key(response_id), cancel_key(response_id), run_key(response_id)]
    return bool(await client.register_script(_START)(keys=keys, args=[attempt, TTL_S]))


async def append(client: aioredis.Redis, response_id: str, attempt: int, events: list[dict[str, Any]]) -> bool:
    """Add run ``attempt``'s events; False, and nothing written, when another run owns the log."""
    entries: list[Any] = []
    for event in events:
        entries += [f"{event['sequence_number'] + 1}-{attempt}", orjson.dumps(event)]
    keys = [events_key(response_id), run_key(response_id)]
    # By its SHA1 (EVALSHA; the script is sent again only when Redis has lost it): a response
    # appends its events many times, and the script's text need not travel with each.
    return bool(await client.register_script(_APPEND)(keys=keys, args=[attempt, TTL_S, *entries]))


async def end(client: aioredis.Redis, response_id: str) -> None:
    key = events_key(response_id)
    async with client.pipeline(transaction=False) as pipeline:
        pipeline.xadd(key, {"end": 1})
        pipeline.expire(key, TTL_S)
        await pipeline.execute()


def end_sync(client: redis.Redis, response_id: str) -> None:
    key = events_key(response_id)
    with client.pipeline(transaction=False) as pipeline:
        pipeline.xadd(key, {"end": 1})
        pipeline.expire(key, TTL_S)
        pipeline.execute()


async def exists(client: aioredis.Redis, response_id: str) -> bool:
    return bool(await client.exists(events_key(response_id)))


class RunRestarted(Exception):
    """The run being followed was taken over by another worker after a crash."""


async def follow(
    client: aioredis.Redis, response_id: str, *, starting_after: int | None
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """The stored events after ``starting_after``, then the live ones until the end entry.
    Yields None when nothing arrived for a while (the caller pings, and checks the response)."""
    key = events_key(response_id)
    last_id = f"{min(starting_after, LAST_SEQUENCE) + 1}-99999999" if starting_after is not None else "0-0"
    attempt: bytes | None = None
    while True:
        answer: Any = await client.xread({key: last_id}, count=200, block=BLOCK_MS)
        if not answer:
            yield None
            continue
        for stream_id, fields in answer[0][1]:
            last_id = stream_id
            if b"end" in fields:
                return
            if attempt is None:
                attempt = fields[b"attempt"]
            elif fields[b"attempt"] != attempt:
                raise RunRestarted(response_id)
            yield orjson.loads(fields[b"event"])

"""The RQ job of background responses. Thin: hand the id over to ``background``."""

from __future__ import annotations

import asyncio

from orchestration.database import database_release
from orchestration.orchestrator import get_orchestrator
from orchestration.redisclients import redis_async_close
from orchestration.requestlog import requestlog_flush
from orchestration.responses.background import response_execute, worker_label


def response_run(response_id: str) -> str:
    """Claim the background response and generate it. Enqueued on commit of a new background
    response, and again for one whose worker died; a job that finds it taken or finished does
    nothing, so a duplicate job is harmless."""
    try:
        return asyncio.run(_response_run(response_id))
    finally:
        # A work horse leaves through os._exit: nothing queued may be left behind.
        requestlog_flush()
        database_release()


async def _response_run(response_id: str) -> str:
    try:
        return await response_execute(response_id, worker=worker_label())
    finally:
        await get_orchestrator().aclose()
        await redis_async_close()

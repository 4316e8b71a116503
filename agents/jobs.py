"""RQ jobs of the ``agents`` queue. Thin: load by id and hand over to ``agents.execution``."""

from __future__ import annotations

import asyncio

from django.db import connections

from agents.execution import task_execute, worker_label
from orchestration.orchestrator import get_orchestrator
from orchestration.requestlog import requestlog_flush


def task_run(task_id: str) -> str:
    """Claim the task and run its agent until it finishes, parks for input, or is cancelled.

    Enqueued by ``agents.services.task_enqueue`` (on commit) for a new task, for a task whose
    question was answered, and for a task whose worker died. A job that finds the task already
    taken or finished does nothing, so a duplicate job is harmless.
    """
    try:
        return asyncio.run(_task_run(task_id))
    finally:
        # A work horse leaves through os._exit: nothing queued may be left behind.
        requestlog_flush()
        connections.close_all()


async def _task_run(task_id: str) -> str:
    try:
        return await task_execute(task_id, worker=worker_label())
    finally:
        await get_orchestrator().aclose()

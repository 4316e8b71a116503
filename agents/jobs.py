"""RQ jobs of the ``agents`` queue. Thin: load by id and hand over to ``agents.execution``."""

from __future__ import annotations

import asyncio

from rq import get_current_job

from agents.execution import task_execute, worker_label
from agents.services import job_trace_carrier
from orchestration.database import database_release
from orchestration.orchestrator import get_orchestrator
from orchestration.requestlog import requestlog_flush
from orchestration.telemetry.tracing import trace_continued, tracing_flush, tracing_start


def task_run(task_id: str) -> str:
    """Claim the task and run its agent until it finishes, parks for input, or is cancelled.

    Enqueued by ``agents.services.task_enqueue`` (on commit) for a new task, for a task whose
    question was answered, and for a task whose worker died. A job that finds the task already
    taken or finished does nothing, so a duplicate job is harmless.
    """
    # Tracing starts in the work horse itself: an exporter's connections must not cross a fork.
    tracing_start("worker")
    try:
        with trace_continued(job_trace_carrier(get_current_job())):
            return asyncio.run(_task_run(task_id))
    finally:
        # A work horse leaves through os._exit: nothing queued may be left behind.
        requestlog_flush()
        tracing_flush()
        database_release()


async def _task_run(task_id: str) -> str:
    try:
        return await task_execute(task_id, worker=worker_label())
    finally:
        await get_orchestrator().aclose()

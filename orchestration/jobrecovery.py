"""Recovery of the rows that wait in the database for an RQ worker.

Agent tasks (``agents/services.py``) and background responses (``orchestration/responses/services.py``)
are queued the same way: the row waits in the database with ``attempts`` as its claim number, and one
RQ job per claim number is to take it. Their reapers share these two steps: queue again the waiting
rows whose job Redis does not hold (it refused the job, or lost it), and let one process of many
reap per interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.db.models import QuerySet
from redis import Redis
from rq.job import Job

T = TypeVar("T")

# RQ job statuses of a job that will still run (or runs now); a waiting row whose job has
# another status, or none, was never queued (Redis refused) or its job was lost.
LIVE_JOB = {b"queued", b"started", b"deferred", b"scheduled", b"created"}


def requeue_jobless(
    *,
    waiting: QuerySet[Any],
    created_before: datetime,
    batch: int,
    job_id: Callable[[Any, int], str],
    enqueue: Callable[[Any, int], None],
    connection: Redis,
    noun: str,
    logger: logging.Logger,
) -> int:
    """Queue again the oldest ``batch`` rows of ``waiting`` (rows waiting for a worker, made before
    ``created_before``) whose RQ job does not exist or ended without a claim: a row is queued in
    the database, whatever happened to its job in Redis. Returns how many were queued again."""
    rows = list(
        waiting.filter(created_at__lt=created_before).order_by("created_at").values_list("pk", "attempts")[:batch]
    )
    with connection.pipeline(transaction=False) as pipeline:
        for pk, attempt in rows:
            pipeline.hget(Job.key_for(job_id(pk, attempt)), "status")
        statuses = pipeline.execute()
    jobless = [row for row, status in zip(rows, statuses, strict=True) if status not in LIVE_JOB]
    # A job may have run between the two reads: only rows still waiting under the same claim count.
    still_waiting = set(waiting.filter(pk__in=[pk for pk, _ in jobless]).values_list("pk", "attempts"))
    requeued = [row for row in jobless if row in still_waiting]
    for pk, attempt in requeued:
        logger.warning("%s %s: waiting for a worker without a job in RQ; queued again", noun, pk)
        connection.delete(Job.key_for(job_id(pk, attempt)))
        enqueue(pk, attempt)
    return len(requeued)


def reap_if_due(*, connection: Redis, lock_key: str, interval_s: float, reap: Callable[[], T]) -> T | None:
    """Reap at most once per interval across all processes: the one that sets the lock (a key that
    expires after the interval) reaps; the others return None."""
    interval_ms = max(100, int(interval_s * 1000))
    if not connection.set(lock_key, 1, nx=True, px=interval_ms):
        return None
    return reap()

"""The RQ worker class for the ``agents`` queue (settings ``RQ["WORKER_CLASS"]``).

RQ alone would find a SIGKILLed worker's job only after the job's registry entry expires
(``job_monitoring_interval + 60`` s) *and* some worker runs maintenance (every 600 s, behind
a 15-minute lock). Instead, tasks keep their own heartbeat (``AGENT_HEARTBEAT_S``) and this
worker reaps tasks whose heartbeat is older than ``AGENT_STALE_S`` at least every
``AGENT_REAP_INTERVAL_S``, even when idle (its blocking dequeue wakes up that often); running
jobs reap too. Defaults 5 / 30 / 15 s bound recovery after a kill to about a minute.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from typing import Any

from rq import Worker
from rq.defaults import DEFAULT_MAINTENANCE_TASK_INTERVAL
from rq.job import Job
from rq.queue import Queue
from rq.utils import now as rq_now

from agents import services
from agents.execution import worker_label
from agents.jobs import database_release
from orchestration.responses import services as responses
from orchestration.telemetry.tracing import tracing_preload

logger = logging.getLogger(__name__)


def modules_preload() -> None:
    """Import, once in this parent, what every job imports on first use (the provider adapters
    with aiohttp and their TLS context, the cache with numpy, the channel layer). Each job runs in
    a fork of this process: without this, every job pays those again (about a second on a busy host)."""
    import channels_redis.core  # noqa: F401

    import agents.jobs  # noqa: F401
    import orchestration.responses.jobs  # noqa: F401
    from orchestration.providers import adapters_preload

    adapters_preload()
    importlib.import_module("orchestration.caching.exact")
    tracing_preload()


class AgentWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        modules_preload()
        self.maintenance_interval = max(1, math.ceil(services.agent_setting("AGENT_REAP_INTERVAL_S")))
        self._registries_cleaned_at = 0.0

    @property
    def dequeue_timeout(self) -> int:
        reap_every = math.ceil(services.agent_setting("AGENT_REAP_INTERVAL_S"))
        return max(1, min(self.worker_ttl - 15, reap_every))

    def run_maintenance_tasks(self) -> None:
        # RQ's own maintenance keeps its usual pace; only the reaping is more frequent.
        if time.monotonic() - self._registries_cleaned_at >= DEFAULT_MAINTENANCE_TASK_INTERVAL:
            super().run_maintenance_tasks()
            self._registries_cleaned_at = time.monotonic()
        else:
            self.last_cleaned_at = rq_now()  # type: ignore[assignment]  # RQ types it by its None default
        try:
            reaped = services.task_reap_if_due()
            if reaped is not None and reaped.requeued:
                logger.warning("requeued %d task(s) whose worker stopped beating", reaped.requeued)
            # Background responses recover the same way (orchestration/responses/services.py).
            responses.response_reap_if_due()
        except Exception:
            logger.exception("reaping stalled agent tasks or background responses failed")
        finally:
            database_release()

    def handle_work_horse_killed(self, job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        if job.func_name == responses.JOB and job.args:
            self._response_release(job.args[0], retpid)
            return
        if job.func_name != services.JOB or not job.args:
            return
        try:
            if services.task_release(task_id=job.args[0], worker=worker_label(retpid)):
                logger.warning("task %s: its work horse died; queued again", job.args[0])
        finally:
            database_release()

    def _response_release(self, response_id: str, retpid: int) -> None:
        try:
            if responses.response_release(response_id=response_id, worker=worker_label(retpid)):
                logger.warning("response %s: its work horse died; queued again", response_id)
        finally:
            database_release()

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        database_release()
        super().fork_work_horse(job, queue)

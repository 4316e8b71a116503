"""Running one claimed task in an RQ work horse: the runtime plus a watcher beside it.

The watcher beats the task's heartbeat (so a reaper can tell a dead worker from a slow one),
stops the run within ``CANCEL_POLL_S`` when the task is cancelled (a Redis flag), stops it
when the claim is lost, and reaps other workers' stalled tasks while this one runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from django.utils import timezone
from redis.exceptions import RedisError

from agents import services
from agents.models import Task
from agents.recording import TaskParked, TaskRecorder, task_history
from agents.registry import Agent, agent_get
from agents.runtime import AgentFailed, AgentRuntime, RunSpec
from agents.selectors import agent_instructions
from orchestration.access.admission import payer_of
from orchestration.errors import ServiceError
from orchestration.redisclients import DEFAULT, redis_async
from orchestration.types import OrchestrationError

logger = logging.getLogger(__name__)

CANCEL_POLL_S = 0.2


def worker_label(pid: int | None = None) -> str:
    """Who holds a claim: the host and the process that runs the task."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def remaining_deadline_s(started_at: datetime | None, now: datetime) -> float:
    """A task's deadline counts from its first start, across resumes and recoveries."""
    elapsed = (now - started_at).total_seconds() if started_at else 0.0
    return services.agent_setting("DEADLINE_AGENT_S") - elapsed


@dataclass(slots=True)
class _Stop:
    reason: str = ""


async def task_execute(task_id: str, *, worker: str) -> str:
    """Claim the task and run it; returns what happened (for the job's result and the logs)."""
    attempt = await sync_to_async(services.task_claim)(task_id=task_id, worker=worker)
    if attempt is None:
        return "not_claimed"
    task = await sync_to_async(Task.objects.get)(pk=task_id)
    agent = agent_get(task.agent)
    remaining = remaining_deadline_s(task.started_at, timezone.now())
    if agent is None or remaining <= 0:
        error = {"code": "timeout", "message": "The task did not finish before its deadline."}
        if agent is None:
            error = {"code": "unknown_agent", "message": f"There is no agent named {task.agent!r}."}
        await _finish(task, attempt, Task.Status.FAILED, error=error)
        return error["code"]
    recorder = TaskRecorder(task, attempt, next_seq=1)
    return await _run_watched(task, attempt, _run(task, agent, recorder, remaining))


async def _run(task: Task, agent: Agent, recorder: TaskRecorder, remaining_s: float) -> str:
    history, recorder.next_seq = await sync_to_async(task_history)(task.pk)
    instructions = await sync_to_async(agent_instructions)(agent)
    try:
        payer = await sync_to_async(payer_of)(user_id=task.owner_id, api_key_id=task.api_key_id)
    except ServiceError as error:
        raise AgentFailed(error.code, error.message) from error
    spec = RunSpec(
        task_input=task.input,
        model=task.model,
        deadline_s=remaining_s,
        system_prompt=instructions.system_prompt,
        request_id=f"task_{task.pk.hex}",
        task_id=str(task.pk),
        owner_id=task.owner_id,
        api_key_id=task.api_key_id,
        prompt_template=instructions.prompt_template,
        prompt_version=instructions.prompt_version,
        payer=payer,
    )
    return await AgentRuntime(agent, recorder).run(spec, history)


async def _run_watched(task: Task, attempt: int, work: Any) -> str:
    run = asyncio.ensure_future(work)
    stop = _Stop()
    redis = redis_async(DEFAULT)
    watcher = asyncio.create_task(_watch(task, attempt, run, stop, redis))
    try:
        await asyncio.wait({run})
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    if run.cancelled():
        return stop.reason or "stopped"
    return await _settle(task, attempt, run)


async def _settle(task: Task, attempt: int, run: asyncio.Future[str]) -> str:
    error = run.exception()
    if error is None:
        await _finish(task, attempt, Task.Status.COMPLETED, result=run.result())
        return "completed"
    if isinstance(error, TaskParked):
        return "parked"
    if isinstance(error, services.ClaimLost):
        return "claim_lost"
    if isinstance(error, AgentFailed | OrchestrationError):
        await _finish(task, attempt, Task.Status.FAILED, error={"code": error.code, "message": error.message})
        return error.code
    logger.error("task %s failed", task.pk, exc_info=error)
    message = "The agent stopped on an unexpected error."  # its name and traceback are in the log above
    await _finish(task, attempt, Task.Status.FAILED, error={"code": "agent_error", "message": message})
    return "agent_error"


async def _finish(task: Task, attempt: int, status: str, *, result: str = "", error: Any = None) -> None:
    await sync_to_async(services.task_finish)(
        task_id=task.pk, attempt=attempt, status=status, result=result, error=error
    )
    await services.task_log_anudge(task.pk)


async def _watch(task: Task, attempt: int, run: asyncio.Future[str], stop: _Stop, redis: aioredis.Redis) -> None:
    beat_every = services.agent_setting("AGENT_HEARTBEAT_S")
    next_beat = time.monotonic() + beat_every
    while not run.done():
        await asyncio.sleep(min(CANCEL_POLL_S, beat_every))
        if await _cancel_flagged(task, redis):
            stop.reason = "cancelled"
            run.cancel()
            return
        if time.monotonic() < next_beat:
            continue
        next_beat = time.monotonic() + beat_every
        if not await _beat(task, attempt):
            stop.reason = "claim_lost"
            run.cancel()
            return


async def _cancel_flagged(task: Task, redis: aioredis.Redis) -> bool:
    """Whether the task's cancel flag is up. Redis out of reach counts as no: the watcher must keep
    beating meanwhile, or the reaper would hand the running task to a second worker, and a cancel
    still reaches the run through the database (the cancelled row refuses the next beat)."""
    try:
        return bool(await redis.exists(services.cancel_key(task.pk)))
    except (RedisError, OSError):
        return False


async def _beat(task: Task, attempt: int) -> bool:
    """Renew the heartbeat and reap stalled peers; a passing database hiccup only skips a beat."""
    try:
        if not await sync_to_async(services.task_heartbeat)(task_id=task.pk, attempt=attempt):
            return False
        await sync_to_async(services.task_reap_if_due)()
    except Exception:
        logger.warning("task %s: heartbeat failed; trying again at the next beat", task.pk, exc_info=True)
    return True

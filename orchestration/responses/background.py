"""A background response run by an RQ worker, with the agent tasks' crash recovery.

The worker claims the response, writes its events to the event log as they come (so any server
process can stream them), beats while it runs, and stores the end under its claim. A cancel
(a Redis flag) or a lost claim (the response was cancelled, deleted, or presumed dead and taken
over) stops the generation within a fraction of a second; nothing more is written then.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass
from decimal import Decimal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from orchestration.access.admission import admit, payer_of, payer_recheck, prompt_tokens_from_chars
from orchestration.database import database_call
from orchestration.errors import ServiceError
from orchestration.orchestrator import CallContext, get_orchestrator
from orchestration.redisclients import STREAMS, redis_async
from orchestration.responses import eventlog, services
from orchestration.responses.events import Event, ResponseEventWriter
from orchestration.responses.generation import response_events
from orchestration.responses.models import StoredResponse
from orchestration.responses.objects import ResponseDraft
from orchestration.responses.selectors import conversation_items, draft_of
from orchestration.responses.wire import chat_request
from orchestration.types import ChatRequest
from orchestration.validation import prompt_chars

logger = logging.getLogger(__name__)

CANCEL_POLL_S = 0.2


def worker_label(pid: int | None = None) -> str:
    """Who holds a claim: the host and the process that runs it (as ``agents.execution`` writes
    it, so the worker's parent names a dead work horse the same way)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


@dataclass(slots=True)
class _Run:
    draft: ResponseDraft
    attempt: int
    redis: aioredis.Redis
    stopped: str = ""  # "cancelled" | "claim_lost" once the run was stopped from outside


async def response_execute(response_id: str, *, worker: str) -> str:
    """Claim the background response and generate it; what happened, for the job's result."""
    attempt = await database_call(services.response_claim)(response_id=response_id, worker=worker)
    if attempt is None:
        return "not waiting for a worker"
    row = await database_call(StoredResponse.objects.get)(pk=response_id)
    draft = draft_of(row)
    draft.status = StoredResponse.Status.IN_PROGRESS
    run = _Run(draft, attempt, redis_async(STREAMS))
    if not await eventlog.start(run.redis, response_id, attempt):
        return "cancelled"  # between the claim and now: nothing to generate
    generation = asyncio.ensure_future(_generate(run, row))
    watch = asyncio.ensure_future(_watch(run, generation))
    try:
        await asyncio.wait({generation})
    finally:
        watch.cancel()
    if run.stopped:
        return run.stopped
    generation.result()
    stored = await database_call(services.response_finish_claimed)(draft=draft, attempt=attempt)
    await eventlog.end(run.redis, response_id)
    return draft.status if stored else "claim_lost"


async def _generate(run: _Run, row: StoredResponse) -> None:
    writer = ResponseEventWriter(run.draft)
    try:
        chat = await _chat_request_of(row)
        payer = await database_call(payer_of)(user_id=row.owner_id, api_key_id=row.api_key_id)
        await payer_recheck(payer)
        admission = await admit(
            payer,
            model=row.model,
            input_tokens=prompt_tokens_from_chars(prompt_chars(chat)),
            max_tokens=chat.max_tokens,
            hold_s=services.background_deadline_s(),
        )
    except ServiceError as error:
        await _publish(run, [*writer.opening(), *writer.fail(error.code, error.message)])
        return
    ctx = CallContext(
        endpoint="responses",
        request_id=row.id,
        api_key_id=row.api_key_id,
        user_id=row.owner_id,
        deadline_s=_remaining_s(row),
    )
    stream = get_orchestrator().stream(chat, ctx)
    try:
        chunks = aiter(stream)
        try:
            first = await anext(chunks, None)
        except ServiceError as error:
            await _publish(run, [*writer.opening(), *writer.fail(error.code, error.message)])
            return
        async for batch in response_events(writer, stream, chunks, first):
            await _publish(run, batch)
    finally:
        await stream.aclose()
        await admission.settle(stream.served.usage, stream.served.cost_usd or Decimal(0))


async def _chat_request_of(row: StoredResponse) -> ChatRequest:
    history: list[dict[str, object]] = []
    if row.previous_response_id:
        history = await database_call(conversation_items)(
            user_id=row.owner_id, previous_response_id=row.previous_response_id
        )
    return chat_request(row.model, row.settings, [*history, *row.input_items])


def _remaining_s(row: StoredResponse) -> float:
    """The run's deadline counts from the response's creation, across recoveries."""
    elapsed = time.time() - row.created_at.timestamp()
    return max(0.1, services.background_deadline_s() - elapsed)


async def _publish(run: _Run, events: list[Event]) -> None:
    try:
        current = await eventlog.append(run.redis, run.draft.id, run.attempt, events)
    except RedisError:
        # A cancel ended the log (its end entry is newer than any event): the run stops at the next poll.
        logger.warning("response %s: could not write its events", run.draft.id, exc_info=True)
        return
    if not current:
        # Another worker took the response over while this one was presumed dead: this run stops
        # here, as when its watcher finds the claim gone.
        run.stopped = "claim_lost"
        asyncio.current_task().cancel()  # type: ignore[union-attr]  # always inside the generation task


async def _watch(run: _Run, generation: asyncio.Future[None]) -> None:
    beat_every = services.recovery_setting("AGENT_HEARTBEAT_S")
    next_beat = time.monotonic() + beat_every
    while not generation.done():
        await asyncio.sleep(min(CANCEL_POLL_S, beat_every))
        if await _cancel_flagged(run):
            run.stopped = "cancelled"
            generation.cancel()
            return
        if time.monotonic() < next_beat:
            continue
        next_beat = time.monotonic() + beat_every
        if not await _beat(run):
            run.stopped = "claim_lost"
            generation.cancel()
            return


async def _cancel_flagged(run: _Run) -> bool:
    """Whether the response's cancel flag is up. Redis out of reach counts as no: the watcher must
    keep beating meanwhile, or the reaper would hand the running response to a second worker; a
    cancel still reaches the run through the database (the cancelled row refuses the next beat)."""
    try:
        return bool(await run.redis.exists(eventlog.cancel_key(run.draft.id)))
    except (RedisError, OSError):
        return False


async def _beat(run: _Run) -> bool:
    """Renew the heartbeat and reap stalled peers; a passing database hiccup only skips a beat."""
    try:
        if not await database_call(services.response_heartbeat)(response_id=run.draft.id, attempt=run.attempt):
            return False
        await database_call(services.response_reap_if_due)()
    except Exception:
        logger.warning("response %s: heartbeat failed; trying again at the next beat", run.draft.id, exc_info=True)
    return True

"""The replies this process generates, detached from the requests that asked for them.

A reply is an asyncio task on the ASGI server's own event loop (docs/architecture.md, decision 1). The POST
that creates it is a sync DRF view, which Django runs in a worker thread; from there
``reply_start`` hands the plan to the server's loop, which asgiref recorded for that thread
(``SyncToAsync.threadlocal.main_event_loop``, the same loop ``async_to_sync`` would use). Outside
an ASGI server (a management command, a sync test client) a small background loop in a daemon
thread plays that part, so a reply never depends on a request's own lifetime.

One sweeper task per loop, once a second: refreshes the producer heartbeat of every running
reply in Redis (relays in any process use it to notice a dead producer), cancels the replies
that no client has watched for the grace period, and picks up cancel requests that the
pub/sub listener may have missed. Both stay up for ``HELPERS_LINGER_S`` after the last reply
ends: stopping them at once made every reply of a quiet server open a new pub/sub connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from asgiref.sync import SyncToAsync
from redis.exceptions import RedisError

from chat import streams
from chat.services import CLIENT_GONE, ReplyPlan, reply_generate
from orchestration.conf import switchyard_setting

logger = logging.getLogger(__name__)

SWEEP_S = 1.0
HELPERS_LINGER_S = 60.0
Clock = Callable[[], float]


def grace_s() -> float:
    return float(cast(float, switchyard_setting("CHAT_GRACE_S")))


class GraceWatch:
    """Says when a reply has had no client attached for ``grace_s`` (counted from its start)."""

    def __init__(self, grace_s: float, clock: Clock = time.monotonic) -> None:
        self.grace_s = grace_s
        self.clock = clock
        self.last_watched = clock()

    def abandoned(self, watched: bool) -> bool:
        now = self.clock()
        if watched:
            self.last_watched = now
        return now - self.last_watched >= self.grace_s


@dataclass
class Running:
    task: asyncio.Task[None]
    watch: GraceWatch
    reason: list[str] = field(default_factory=list)

    def cancel(self, reason: str) -> None:
        if not self.reason:
            self.reason.append(reason)
            self.task.cancel()


class ReplyRunner:
    """The running replies of one event loop, with their sweeper and cancel listener."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.running: dict[int, Running] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    def start(self, plan: ReplyPlan) -> asyncio.Task[None]:
        """Run the reply in a fresh context: it must not inherit the request's thread-sensitive state."""
        running: Running | None = None
        hub = streams.stream_hub(self.loop)
        hub.production_start(plan.message_id, plan.prefix, owner_id=plan.context.user_id or 0)

        def reason() -> str:
            return running.reason[0] if running and running.reason else ""

        task = self.loop.create_task(
            reply_generate(plan, cancel_reason=reason),
            name=f"chat-reply-{plan.message_id}",
            context=contextvars.Context(),
        )
        running = Running(task, GraceWatch(grace_s()))
        self.running[plan.message_id] = running
        task.add_done_callback(lambda done: self._finished(plan.message_id, done))
        self._ensure_helpers()
        return task

    def cancel(self, message_id: int, reason: str = "") -> bool:
        running = self.running.get(message_id)
        if running is None:
            return False
        running.cancel(reason)
        return True

    def _finished(self, message_id: int, task: asyncio.Task[None]) -> None:
        self.running.pop(message_id, None)
        streams.stream_hub(self.loop).production_end(message_id)
        if not task.cancelled() and task.exception() is not None:
            logger.error("reply %s: its task failed", message_id, exc_info=task.exception())

    def _helpers_stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
        self._sweeper = self._listener = None

    def _ensure_helpers(self) -> None:
        if self._sweeper is None:
            self._sweeper = self.loop.create_task(self._sweep_forever(), context=contextvars.Context())
        if self._listener is None:
            self._listener = self.loop.create_task(self._listen_forever(), context=contextvars.Context())

    async def _sweep_forever(self) -> None:
        idle_since: float | None = None
        while True:
            if self.running:
                idle_since = None
                try:
                    await self.sweep()
                except RedisError as error:
                    logger.warning("chat sweeper: Redis failed: %s", error)
            else:
                idle_since = idle_since if idle_since is not None else self.loop.time()
                if self.loop.time() - idle_since >= HELPERS_LINGER_S:
                    self._helpers_stop()
                    return
            await asyncio.sleep(SWEEP_S)

    async def sweep(self) -> None:
        """One pass: heartbeats, abandoned replies, cancel requests the listener missed."""
        followed_here = streams.stream_hub(self.loop).local
        states = await streams.replies_sweep(list(self.running), followed_here=followed_here.keys())
        for message_id, state in states.items():
            running = self.running.get(message_id)
            if running is None:
                continue
            if state.cancel_requested:
                running.cancel("")
            elif running.watch.abandoned(state.watched or bool(followed_here.get(message_id))):
                logger.info("reply %s: no client for %.0f s, cancelling upstream", message_id, running.watch.grace_s)
                running.cancel(CLIENT_GONE)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await streams.cancel_listen(self.cancel)
            except RedisError as error:
                logger.warning("chat cancel listener: Redis failed, retrying: %s", error)
                await asyncio.sleep(SWEEP_S)


_runners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ReplyRunner] = weakref.WeakKeyDictionary()
_background: asyncio.AbstractEventLoop | None = None
_background_lock = threading.Lock()


def runner_for(loop: asyncio.AbstractEventLoop) -> ReplyRunner:
    runner = _runners.get(loop)
    if runner is None:
        runner = _runners[loop] = ReplyRunner(loop)
    return runner


def _server_loop() -> asyncio.AbstractEventLoop:
    """The loop replies run on: the current one, else the ASGI server's, else a background one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if loop is not None and loop.is_running():
        return loop
    return _background_loop()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _background
    with _background_lock:
        if _background is None:
            _background = asyncio.new_event_loop()
            threading.Thread(target=_background.run_forever, name="chat-replies", daemon=True).start()
        return _background


def reply_start(plan: ReplyPlan) -> None:
    """Start generating a planned reply on the server's event loop; returns at once."""
    loop = _server_loop()
    try:
        on_loop = asyncio.get_running_loop() is loop
    except RuntimeError:
        on_loop = False
    if on_loop:
        plan.cancel_check = False  # started before anyone was told its id
        runner_for(loop).start(plan)
    else:
        loop.call_soon_threadsafe(runner_for(loop).start, plan)

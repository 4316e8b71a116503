"""Interactive runs: the hooks of an agent run driven by a WebSocket session in its own process.

Each log item goes to the client first; the database gets it through the process's
``SessionLogWriter``, which writes what all sessions produced meanwhile in one transaction.
A session's run never waits for its log to be written (it is not replayed: a session that
dies is cancelled), except where order matters: before a tool that must commit its own
writes with its result, and when the task finishes. The Task row and its log hold everything
within milliseconds.

Why batch: a server process runs every session's database work on one thread (Django's
thread-sensitive executor), and Channels hops to that thread before dispatching each message.
With hundreds of sessions, a write per log item queued there delays every session's messages,
handshakes included.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async

from agents import services
from agents.models import Task
from agents.recording import TaskRecorder
from agents.runtime import CallRef
from agents.services import LogItem, LogWrite
from agents.tools import Tool, ToolContext
from orchestration.loops import PerLoop

logger = logging.getLogger(__name__)

SendFrame = Callable[[dict[str, Any]], Awaitable[None]]


def frame_of(item: LogItem, task_id: Any) -> dict[str, Any]:
    """The WebSocket frame of a log item (docs/api.md, "Interactive sessions"), with the item's task, seq and time."""
    data = item.data
    shapes: dict[str, dict[str, Any]] = {
        "thought": {"content": item.content},
        "action": {"tool": data.get("tool"), "input": data.get("input")},
        "tool_result": {"tool": data.get("tool"), "output": item.content},
        "need_input": {"request_id": data.get("request_id"), "prompt": item.content},
    }
    return {"type": item.type, **shapes[item.type], "task_id": str(task_id), "seq": item.seq, "at": item.at.isoformat()}


class InputMismatch(Exception):
    """A ``provide_input`` that answers no open question; ``code`` says which way it is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SessionLogWriter:
    """Writes the sessions' log items and status changes in batches, in the order given."""

    def __init__(self) -> None:
        self.pending: list[tuple[LogWrite, asyncio.Future[None]]] = []
        self.runner: asyncio.Task[None] | None = None

    def write(self, write: LogWrite) -> asyncio.Future[None]:
        """Queue ``write``; the future resolves once it is committed (or holds its ``ClaimLost``)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        done.add_done_callback(_consume_exception)
        self.pending.append((write, done))
        if self.runner is None or self.runner.done():
            self.runner = loop.create_task(self._run())
        return done

    async def _run(self) -> None:
        while self.pending:
            batch, self.pending = self.pending, []
            try:
                outcomes = await sync_to_async(services.task_log_write_batch)([write for write, _ in batch])
            except Exception as error:
                logger.exception("writing %d session log write(s) failed", len(batch))
                outcomes = [error] * len(batch)
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():
                    continue
                if outcome is None:
                    done.set_result(None)
                else:
                    done.set_exception(outcome)
            for task_id in {write.task_id for write, _ in batch}:
                await services.task_log_anudge(task_id)


def _consume_exception(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()  # a write nobody awaits may fail quietly (it was logged)


_writers = PerLoop(SessionLogWriter)


def session_log_writer() -> SessionLogWriter:
    return _writers.get()


class SessionRecorder(TaskRecorder):
    """Hooks of a WebSocket task: frames to the client, log items to the batch writer, and
    questions that wait (in this process) for the client's ``provide_input``."""

    def __init__(self, task: Task, send: SendFrame) -> None:
        super().__init__(task, attempt=1, next_seq=1)
        self.send = send
        self.writer = session_log_writer()
        self._question: tuple[str, asyncio.Future[str]] | None = None

    def queue(self, *, item: LogItem | None = None, change: Callable[[], None] | None = None) -> asyncio.Future[None]:
        progress, self.pending_progress = self.pending_progress, None
        return self.writer.write(LogWrite(self.task.pk, item=item, progress=progress, change=change))

    async def on_progress(self, percent: int, step: str) -> None:
        self.pending_progress = (percent, step)  # written with the next log item or the finish

    async def record(self, item: LogItem) -> None:
        self.queue(item=item)

    async def deliver(self, item: LogItem) -> None:
        await self.send(frame_of(item, self.task_id))
        await self.record(item)

    async def announce(self, item: LogItem) -> None:
        await self.send(frame_of(item, self.task_id))

    async def ask(self, item: LogItem, *, release_worker: bool) -> None:
        change = functools.partial(
            services.task_mark_waiting, task_id=self.task_id, attempt=self.attempt, item=item, release_worker=False
        )
        self.queue(item=item, change=change)
        await self.announce(item)

    async def on_need_input(self, prompt: str, *, call: CallRef) -> str:
        item = self.question_item(prompt, call)
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # Open the question before the client can see it: an answer may come back at once.
        self._question = (item.data["request_id"], answer)
        try:
            await self.ask(item, release_worker=False)
            value = await answer
        finally:
            self._question = None
        self.queue(change=functools.partial(services.task_input_received, task_id=self.task_id, attempt=self.attempt))
        return value

    async def run_tool(self, tool: Tool, arguments: dict[str, Any], *, call: CallRef, context: ToolContext) -> str:
        if not tool.safe_to_rerun:
            await self.queue()  # its transaction checks the claim: what is queued must be in first
        return await super().run_tool(tool, arguments, call=call, context=context)

    async def finish(self, status: str, *, result: str = "", error: dict[str, str] | None = None) -> None:
        """Finish the task once everything queued before is written (raises ``ClaimLost``)."""
        fields = {"task_id": self.task_id, "attempt": self.attempt, "status": status, "result": result}
        await self.queue(change=functools.partial(services.task_finish_claimed, **fields, error=error))

    def provide_input(self, request_id: str, value: str) -> None:
        """Answer the open question; raises ``InputMismatch`` when there is none or it is another."""
        if self._question is None:
            raise InputMismatch("task_not_waiting", "The task is not waiting for input.")
        expected, answer = self._question
        if request_id != expected:
            raise InputMismatch("input_request_mismatch", "This request_id does not match the question the task asked.")
        if not answer.done():
            answer.set_result(value)

"""Interactive runs: the hooks of an agent run driven by a WebSocket session in its own process.

Each log item goes to the client first and to the database right after, so what the client
sees is not delayed by the write; the Task row and its log still hold everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async

from agents import services
from agents.models import Task
from agents.recording import TaskRecorder
from agents.runtime import CallRef
from agents.services import LogItem

SendFrame = Callable[[dict[str, Any]], Awaitable[None]]


def frame_of(item: LogItem, task_id: Any) -> dict[str, Any]:
    """The WebSocket frame of a log item (CONTRACT 3.4), with the item's task, seq and time."""
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


class SessionRecorder(TaskRecorder):
    """Hooks of a WebSocket task: frames to the client, log items to the database, and
    questions that wait (in this process) for the client's ``provide_input``."""

    def __init__(self, task: Task, send: SendFrame) -> None:
        super().__init__(task, attempt=1, next_seq=1)
        self.send = send
        self._question: tuple[str, asyncio.Future[str]] | None = None

    async def deliver(self, item: LogItem) -> None:
        await self.send(frame_of(item, self.task_id))
        await self.record(item)

    async def announce(self, item: LogItem) -> None:
        await self.send(frame_of(item, self.task_id))

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
        await sync_to_async(services.task_input_received)(task_id=self.task_id, attempt=self.attempt)
        return value

    def provide_input(self, request_id: str, value: str) -> None:
        """Answer the open question; raises ``InputMismatch`` when there is none or it is another."""
        if self._question is None:
            raise InputMismatch("no_input_requested", "The task is not waiting for input.")
        expected, answer = self._question
        if request_id != expected:
            raise InputMismatch("unknown_request_id", "This request_id does not match the open question.")
        if not answer.done():
            answer.set_result(value)

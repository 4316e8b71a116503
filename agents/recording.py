"""Hooks that turn a run's reports into the task's log, under the task's claim.

Every report is one short transaction through ``sync_to_async`` (not Channels'
``database_sync_to_async``: with ``CONN_MAX_AGE=0`` that one closes and reopens the connection
around every call, and a run writes a log item every few hundred milliseconds).
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import sync_to_async
from django.utils import timezone

from agents import services
from agents.models import Task, TaskEvent
from agents.runtime import AgentHooks, CallRef, RecordedStep, RunSuspended, steps_from_log
from agents.services import LogItem
from agents.tools import Tool, ToolContext


class TaskParked(RunSuspended):
    """The run asked for input and released its worker; an answer queues it again."""

    def __init__(self, request_id: str) -> None:
        super().__init__(request_id)
        self.request_id = request_id


def call_data(call: CallRef, tool: str) -> dict[str, Any]:
    return {"step": call.step, "index": call.index, "call_id": call.call_id, "tool": tool}


def task_history(task_id: Any) -> tuple[list[RecordedStep], int]:
    """The steps recorded so far and the next free ``seq`` (sync; call in a thread)."""
    events = list(
        TaskEvent.objects.filter(task_id=task_id).order_by("seq").values_list("type", "content", "data", "seq")
    )
    next_seq = (events[-1][3] + 1) if events else 1
    return steps_from_log((kind, content, data) for kind, content, data, _seq in events), next_seq


class TaskRecorder(AgentHooks):
    """Hooks of an RQ task: each report is a log item; asking for input parks the task."""

    def __init__(self, task: Task, attempt: int, next_seq: int) -> None:
        self.task = task
        self.task_id = task.pk
        self.attempt = attempt
        self.next_seq = next_seq
        self.pending_progress: tuple[int, str] | None = None

    def next_item(self, kind: str, content: str, data: dict[str, Any]) -> LogItem:
        item = LogItem(self.next_seq, kind, content, data, timezone.now())
        self.next_seq += 1
        return item

    async def record(self, item: LogItem) -> None:
        progress, self.pending_progress = self.pending_progress, None
        await sync_to_async(services.task_event_append)(
            task_id=self.task_id, attempt=self.attempt, item=item, progress=progress
        )
        await services.task_log_anudge(self.task_id)

    async def deliver(self, item: LogItem) -> None:
        """Make a new log item known: here, record it. A live session also shows it first."""
        await self.record(item)

    async def announce(self, item: LogItem) -> None:
        """An item already recorded by a transaction of its own; nothing more to do here."""

    async def on_progress(self, percent: int, step: str) -> None:
        await sync_to_async(services.task_progress)(
            task_id=self.task_id, attempt=self.attempt, percent=percent, step=step
        )

    async def on_thought(self, content: str, *, step: int) -> None:
        await self.deliver(self.next_item(TaskEvent.Type.THOUGHT, content, {"step": step}))

    async def on_action(self, tool: str, input: dict[str, Any], *, call: CallRef) -> None:
        arguments = json.dumps(input, ensure_ascii=False)
        data = {**call_data(call, tool), "input": input, "arguments": arguments}
        await self.deliver(self.next_item(TaskEvent.Type.ACTION, f"{tool} {arguments}", data))

    async def on_tool_result(self, tool: str, output: str, *, call: CallRef) -> None:
        await self.deliver(self.next_item(TaskEvent.Type.TOOL_RESULT, output, call_data(call, tool)))

    async def on_need_input(self, prompt: str, *, call: CallRef) -> str:
        item = self.question_item(prompt, call)
        await self.ask(item, release_worker=True)
        raise TaskParked(item.data["request_id"])

    def question_item(self, prompt: str, call: CallRef) -> LogItem:
        item = services.need_input_item(self.next_seq, prompt, call)
        self.next_seq += 1
        return item

    async def ask(self, item: LogItem, *, release_worker: bool) -> None:
        """Record the question and move the task to WAITING_INPUT."""
        await sync_to_async(services.task_wait_for_input)(
            task_id=self.task_id, attempt=self.attempt, item=item, release_worker=release_worker
        )
        await services.task_log_anudge(self.task_id)
        await self.announce(item)

    async def run_tool(self, tool: Tool, arguments: dict[str, Any], *, call: CallRef, context: ToolContext) -> str:
        if tool.safe_to_rerun:
            return await super().run_tool(tool, arguments, call=call, context=context)
        item = self.next_item(TaskEvent.Type.TOOL_RESULT, "", call_data(call, tool.name))
        output = await sync_to_async(services.task_tool_run_recorded)(
            task_id=self.task_id, attempt=self.attempt, tool=tool, arguments=arguments, context=context, item=item
        )
        await services.task_log_anudge(self.task_id)
        await self.announce(LogItem(item.seq, item.type, output, item.data, item.at))
        return output

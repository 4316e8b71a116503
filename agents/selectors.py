"""Reads: tasks a user may see, their logs, and the instructions an agent runs with."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from agents.models import Task, TaskEvent
from agents.registry import Agent
from orchestration.errors import NotFound
from orchestration.models import PromptVersion
from orchestration.prompts import prompt_render


def task_get_owned(*, user: Any, task_id: uuid.UUID | str) -> Task:
    """The user's task, or a 404 that does not say whether someone else's task exists."""
    try:
        task_uuid = uuid.UUID(str(task_id))
    except ValueError:
        raise NotFound("task_not_found", f"No task {task_id} exists.") from None
    task = Task.objects.owned_by(user).filter(pk=task_uuid).first()
    if task is None:
        raise NotFound("task_not_found", f"No task {task_id} exists.")
    return task


def task_list_owned(*, user: Any) -> Any:
    return Task.objects.owned_by(user).order_by("-created_at", "-pk")


def task_events_after(*, task_id: uuid.UUID | str, seq: int = 0, limit: int = 500) -> list[TaskEvent]:
    return list(TaskEvent.objects.filter(task_id=task_id, seq__gt=seq).order_by("seq")[:limit])


@dataclass(frozen=True, slots=True)
class Instructions:
    system_prompt: str
    prompt_template: str = ""
    prompt_version: int | None = None


INSTRUCTIONS_TTL_S = 5.0
_instructions: dict[str, tuple[float, Instructions]] = {}


def agent_instructions(agent: Agent) -> Instructions:
    """The agent's system prompt: the latest version of its managed template when an operator
    has written one (it may use ``{agent}`` and ``{tools}``), else the built-in prompt.

    Remembered for ``INSTRUCTIONS_TTL_S`` per process, as the model registry is: hundreds of
    sessions starting at once then cost one query, and a new version is in use within seconds."""
    now = time.monotonic()
    cached = _instructions.get(agent.name)
    if cached is not None and cached[0] > now:
        return cached[1]
    found = _instructions_from_database(agent)
    _instructions[agent.name] = (now + INSTRUCTIONS_TTL_S, found)
    return found


def _instructions_from_database(agent: Agent) -> Instructions:
    if agent.prompt_template and PromptVersion.objects.filter(template__name=agent.prompt_template).exists():
        variables = {"agent": agent.name, "tools": ", ".join(tool.name for tool in agent.tools)}
        rendered = prompt_render(name=agent.prompt_template, variables=variables)
        return Instructions(rendered.system, rendered.name, rendered.version)
    return Instructions(agent.system_prompt)

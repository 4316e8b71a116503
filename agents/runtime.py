"""The agent loop, shared by RQ tasks and WebSocket sessions.

Ask the model (through the Orchestrator, with the agent's tools), carry out the tool calls it
makes, give it the results, and repeat until it answers without calling a tool. Everything
the loop does is reported to an ``AgentHooks`` object; whoever runs the loop decides what a
report means (a TaskEvent row, a WebSocket frame, both).

Checkpoints: a run can start from a recorded history (``steps_from_log``). Recorded steps are
replayed into the conversation instead of asking the model again, and a recorded tool result
is used instead of calling the tool again; only calls without a recorded result are carried out.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async

from agents.registry import Agent
from agents.tools import Tool, ToolContext
from orchestration.access.admission import Admission, Caller, admit, payer_recheck, prompt_tokens_from_chars
from orchestration.database import without_null_characters
from orchestration.errors import ServiceError
from orchestration.orchestrator import CallContext, Orchestrator, get_orchestrator
from orchestration.telemetry.genai import agent_run_span, agent_step_span, tool_span
from orchestration.types import ChatRequest, ChatResponse, Message, OrchestrationError, ToolCall


@dataclass(frozen=True, slots=True)
class CallRef:
    """Which tool call: the step (the n-th model reply, from 1) and its place in that reply."""

    step: int
    index: int
    call_id: str


class AgentFailed(Exception):
    """The run cannot finish; ``code`` and ``message`` are what the task's ``error`` shows."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RunSuspended(Exception):
    """The run stops here on purpose and is resumed later (a task parked to wait for input): for
    the traces, no failure."""


class AgentTimedOut(AgentFailed):
    def __init__(self, message: str = "The task did not finish before its deadline.") -> None:
        super().__init__("timeout", message)


class AgentHooks:
    """What a run reports to, and how it carries out tool calls.

    Subclasses override what they need; the defaults do nothing, except ``on_need_input``,
    which refuses (a run with nobody to ask), and ``run_tool``, which runs the tool in a
    thread and reports its result.
    """

    async def on_progress(self, percent: int, step: str) -> None:
        """The run moved on: ``percent`` done (0-100, an estimate), ``step`` says what it does now."""

    async def on_thought(self, content: str, *, step: int) -> None:
        """The model said something alongside its tool calls."""

    async def on_action(self, tool: str, input: dict[str, Any], *, call: CallRef) -> None:
        """The model called ``tool`` with ``input``; the call is about to be carried out."""

    async def on_tool_result(self, tool: str, output: str, *, call: CallRef) -> None:
        """The call produced ``output`` (what the model will read)."""

    async def on_need_input(self, prompt: str, *, call: CallRef) -> str:
        """The model asks the person ``prompt``; return the answer. May raise to stop the run
        (an RQ task parks itself here and is resumed when the answer arrives)."""
        raise AgentFailed("input_unavailable", "This run cannot ask for input.")

    async def run_tool(self, tool: Tool, arguments: dict[str, Any], *, call: CallRef, context: ToolContext) -> str:
        """Carry out one call and report its result through ``on_tool_result``. A recorder that
        keeps checkpoints overrides this to commit a tool's writes and its result together."""
        output = await sync_to_async(tool.invoke)(arguments, context)
        await self.on_tool_result(tool.name, output, call=call)
        return output


@dataclass(slots=True)
class RecordedCall:
    ref: CallRef
    tool: str
    arguments: str
    output: str | None = None


@dataclass(slots=True)
class RecordedStep:
    number: int
    thought: str | None = None
    calls: list[RecordedCall] = field(default_factory=list)


def steps_from_log(events: Iterable[tuple[str, str, dict[str, Any]]]) -> list[RecordedStep]:
    """Rebuild the steps a run took from its log items ``(type, content, data)``, in log order.

    A step counts once its actions are recorded. A thought without actions is a step that a
    crash cut short: it is dropped and the model is asked again.
    """
    steps: dict[int, RecordedStep] = {}
    calls: dict[tuple[int, int], RecordedCall] = {}
    for kind, content, data in events:
        number = int(data.get("step", 0))
        if kind == "thought":
            steps.setdefault(number, RecordedStep(number)).thought = content
        elif kind == "action":
            ref = CallRef(number, int(data["index"]), str(data["call_id"]))
            recorded = RecordedCall(ref, str(data["tool"]), str(data.get("arguments", "{}")))
            calls[(number, ref.index)] = recorded
            steps.setdefault(number, RecordedStep(number)).calls.append(recorded)
        elif kind == "tool_result" and (number, int(data.get("index", -1))) in calls:
            calls[(number, int(data["index"]))].output = str(data.get("output", content))
    return [steps[number] for number in sorted(steps) if steps[number].calls]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One run: what the agent is asked, on which model, by whom, and until when."""

    task_input: str
    model: str
    deadline_s: float
    system_prompt: str
    request_id: str = ""
    task_id: str | None = None
    owner_id: int | None = None
    api_key_id: int | None = None
    prompt_template: str = ""
    prompt_version: int | None = None
    # Who pays for the run's calls: each is admitted against its budget before it is made
    # (``orchestration.access.admission``), and stops when its key or account is stopped.
    payer: Caller | None = None


class AgentRuntime:
    def __init__(
        self,
        agent: Agent,
        hooks: AgentHooks,
        *,
        orchestrator: Orchestrator | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.agent = agent
        self.hooks = hooks
        self.orchestrator = orchestrator
        self.monotonic = monotonic
        self.now = now

    async def run(self, spec: RunSpec, history: Iterable[RecordedStep] = ()) -> str:
        """Run to the final answer. Raises ``AgentFailed`` (``AgentTimedOut`` at the deadline);
        cancelling the calling task cancels the model call in flight."""
        deadline_at = self.monotonic() + spec.deadline_s
        traced = agent_run_span(
            self.agent.name, spec.model, task_id=spec.task_id, request_id=spec.request_id, quiet=(RunSuspended,)
        )
        try:
            with traced:
                async with asyncio.timeout(spec.deadline_s):
                    return await _Run(self, spec, deadline_at).to_the_end(list(history))
        except TimeoutError:
            raise AgentTimedOut() from None


class _Run:
    def __init__(self, runtime: AgentRuntime, spec: RunSpec, deadline_at: float) -> None:
        self.runtime = runtime
        self.agent = runtime.agent
        self.hooks = runtime.hooks
        self.spec = spec
        self.deadline_at = deadline_at
        self.messages = [
            Message(role="system", content=spec.system_prompt),
            Message(role="user", content=spec.task_input),
        ]
        self.steps_taken = 0

    async def to_the_end(self, history: list[RecordedStep]) -> str:
        await self._replay(history)
        while True:
            if self.steps_taken >= self.agent.max_steps:
                raise AgentFailed("max_steps", f"The agent did not finish within {self.agent.max_steps} steps.")
            label = "Thinking" if self.steps_taken == 0 else f"Thinking (step {self.steps_taken + 1})"
            await self.hooks.on_progress(self._percent(), label)
            with agent_step_span(self.agent.name, self.steps_taken + 1, quiet=(RunSuspended,)):
                response = await self._ask_model()
                self.steps_taken += 1
                if not response.tool_calls:
                    # The result as it is stored (``agents.services.task_finish``): what the
                    # session's ``complete`` frame shows must be what the task keeps.
                    return without_null_characters((response.content or "").strip())
                await self._take_step(response)

    async def _replay(self, history: list[RecordedStep]) -> None:
        for step in history:
            self.steps_taken = step.number
            self.messages.append(_assistant_message(step.thought, step.calls))
            for call in step.calls:
                output = call.output
                if output is None:
                    output = await self._carry_out(call.ref, call.tool, call.arguments)
                self.messages.append(_tool_message(call.ref, call.tool, output))

    async def _take_step(self, response: ChatResponse) -> None:
        number = self.steps_taken
        if response.content and response.content.strip():
            await self.hooks.on_thought(response.content.strip(), step=number)
        calls = [
            RecordedCall(CallRef(number, index, call.id or f"call_{number}_{index}"), call.name, call.arguments or "{}")
            for index, call in enumerate(response.tool_calls)
        ]
        for call in calls:
            await self.hooks.on_action(call.tool, _arguments_for_log(call.arguments), call=call.ref)
        self.messages.append(_assistant_message(response.content, calls))
        for call in calls:
            output = await self._carry_out(call.ref, call.tool, call.arguments)
            self.messages.append(_tool_message(call.ref, call.tool, output))

    async def _carry_out(self, ref: CallRef, name: str, raw_arguments: str) -> str:
        with tool_span(name, ref.call_id, raw_arguments, quiet=(RunSuspended,)) as traced_output:
            output = await self._tool_output(ref, name, raw_arguments)
            traced_output(output)
            return output

    async def _tool_output(self, ref: CallRef, name: str, raw_arguments: str) -> str:
        tool = self.agent.tool(name)
        arguments = _parse_arguments(raw_arguments)
        if tool is None or arguments is None:
            problem = f"unknown tool {name!r}" if tool is None else "the arguments are not a JSON object"
            output = f"error: {problem}"
            await self.hooks.on_tool_result(name, output, call=ref)
            return output
        if tool.asks_user:
            return await self._ask_user(ref, tool, arguments)
        await self.hooks.on_progress(self._percent(), f"Running {name}")
        context = ToolContext(
            task_id=self.spec.task_id, owner_id=self.spec.owner_id, call_id=ref.call_id, now=self.runtime.now
        )
        return await self.hooks.run_tool(tool, arguments, call=ref, context=context)

    async def _ask_user(self, ref: CallRef, tool: Tool, arguments: dict[str, Any]) -> str:
        question = str(arguments.get("question") or arguments.get("prompt") or "").strip()
        if not question:
            output = "error: missing argument(s): question"
            await self.hooks.on_tool_result(tool.name, output, call=ref)
            return output
        await self.hooks.on_progress(self._percent(), "Waiting for input")
        answer = await self.hooks.on_need_input(question, call=ref)
        await self.hooks.on_tool_result(tool.name, answer, call=ref)
        return answer

    async def _ask_model(self) -> ChatResponse:
        orchestrator = self.runtime.orchestrator or get_orchestrator()
        request = ChatRequest(
            model=self.spec.model, messages=list(self.messages), tools=[tool.spec() for tool in self.agent.tools]
        )
        context = CallContext(
            endpoint="agent",
            request_id=self.spec.request_id,
            api_key_id=self.spec.api_key_id,
            user_id=self.spec.owner_id,
            deadline_s=max(0.001, self.deadline_at - self.runtime.monotonic()),
            prompt_template=self.spec.prompt_template,
            prompt_version=self.spec.prompt_version,
        )
        admission = await self._admitted(request, context)
        usage, cost = None, Decimal(0)
        try:
            response, served = await orchestrator.complete(request, context)
            usage, cost = served.usage, served.cost_usd
        except OrchestrationError as error:
            if error.code == "deadline_exceeded":
                raise AgentTimedOut() from error
            raise AgentFailed(error.code, error.message) from error
        finally:
            if admission is not None:
                await admission.settle(usage, cost)
        return response

    async def _admitted(self, request: ChatRequest, context: CallContext) -> Admission | None:
        """This step's call, admitted against the payer's budget (none for a run without a payer)."""
        payer = self.spec.payer
        if payer is None:
            return None
        chars = sum(len(message.content or "") for message in request.messages)
        try:
            await payer_recheck(payer)
            return await admit(
                payer,
                model=request.model,
                input_tokens=prompt_tokens_from_chars(chars),
                max_tokens=request.max_tokens,
                hold_s=context.deadline_s or self.spec.deadline_s,
            )
        except ServiceError as error:
            raise AgentFailed(error.code, error.message) from error

    def _percent(self) -> int:
        return min(95, 5 + (90 * self.steps_taken) // self.agent.max_steps)


def _parse_arguments(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _arguments_for_log(raw: str) -> dict[str, Any]:
    parsed = _parse_arguments(raw)
    return parsed if parsed is not None else {"unparsed": raw}


def _assistant_message(thought: str | None, calls: list[RecordedCall]) -> Message:
    return Message(
        role="assistant",
        content=thought or None,
        tool_calls=[ToolCall(id=call.ref.call_id, name=call.tool, arguments=call.arguments) for call in calls],
    )


def _tool_message(ref: CallRef, tool: str, output: str) -> Message:
    return Message(role="tool", content=output, tool_call_id=ref.call_id, name=tool)

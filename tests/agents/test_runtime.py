"""The agent loop itself, in process, through the real Orchestrator to the real simulator."""

from __future__ import annotations

from typing import Any

import pytest

from agents.models import SupportTicket
from agents.registry import RESEARCH_ASSISTANT, SUPPORT_TRIAGE
from agents.runtime import (
    AgentFailed,
    AgentHooks,
    AgentRuntime,
    AgentTimedOut,
    CallRef,
    RecordedCall,
    RecordedStep,
    RunSpec,
    steps_from_log,
)
from tests.agents.conftest import MODEL, call, script

pytestmark = pytest.mark.django_db(transaction=True)


class Observed(AgentHooks):
    """Hooks that keep what the run reported, answering questions from a list."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.answers = answers or []

    async def on_progress(self, percent: int, step: str) -> None:
        self.seen.append(("progress", percent, step))

    async def on_thought(self, content: str, *, step: int) -> None:
        self.seen.append(("thought", content, step))

    async def on_action(self, tool: str, input: dict[str, Any], *, call: CallRef) -> None:
        self.seen.append(("action", tool, input, call.step, call.index))

    async def on_tool_result(self, tool: str, output: str, *, call: CallRef) -> None:
        self.seen.append(("tool_result", tool, output, call.step))

    async def on_need_input(self, prompt: str, *, call: CallRef) -> str:
        self.seen.append(("need_input", prompt))
        return self.answers.pop(0)

    def kinds(self) -> list[str]:
        return [entry[0] for entry in self.seen if entry[0] != "progress"]


def spec(**changes: Any) -> RunSpec:
    values: dict[str, Any] = {"task_input": "Question", "model": MODEL, "deadline_s": 10, "system_prompt": "Be brief."}
    return RunSpec(**{**values, **changes})


async def test_the_loop_runs_tools_until_the_model_answers(agent_model, simulator) -> None:
    simulator.configure(
        MODEL,
        script=script(
            {"content": "Two things.", "tool_calls": [call("calculator", expression="1+1"), call("current_time")]},
            {"content": "2, and it is today."},
        ),
    )
    hooks = Observed()
    result = await AgentRuntime(RESEARCH_ASSISTANT, hooks).run(spec())

    assert result == "2, and it is today."
    assert hooks.kinds() == ["thought", "action", "action", "tool_result", "tool_result"]
    assert hooks.seen[hooks.kinds().index("action") + 1][1:] == ("calculator", {"expression": "1+1"}, 1, 0)
    progress = [entry for entry in hooks.seen if entry[0] == "progress"]
    assert progress[0] == ("progress", 5, "Thinking") and ("progress", 16, "Thinking (step 2)") in progress
    assert [entry[1] for entry in progress] == sorted(entry[1] for entry in progress)


async def test_a_recorded_history_is_replayed_not_redone(agent_model, simulator) -> None:
    simulator.configure(
        MODEL,
        script=script({"tool_calls": [call("create_ticket", subject="s", description="d")]}, {"content": "Filed #7."}),
    )
    ticket_call = RecordedCall(CallRef(1, 0, "call_a"), "create_ticket", '{"subject":"s","description":"d"}', "#7")
    hooks = Observed()
    result = await AgentRuntime(SUPPORT_TRIAGE, hooks).run(spec(owner_id=None), [RecordedStep(1, None, [ticket_call])])

    assert result == "Filed #7."
    assert hooks.kinds() == []  # nothing redone: no action, no tool run
    assert simulator.stats(MODEL)["requests"] == 1  # only the step after the history was asked
    assert not await SupportTicket.objects.aexists()


async def test_a_recorded_call_without_a_result_is_carried_out_before_the_next_step(agent_model, simulator) -> None:
    simulator.configure(MODEL, script=script({"content": "unused"}, {"content": "It is 42."}))
    pending = RecordedCall(CallRef(1, 0, "call_b"), "calculator", '{"expression": "6*7"}')
    hooks = Observed()

    assert await AgentRuntime(RESEARCH_ASSISTANT, hooks).run(spec(), [RecordedStep(1, "Let me compute.", [pending])])
    results = [entry for entry in hooks.seen if entry[0] == "tool_result"]
    assert hooks.kinds() == ["tool_result"] and results == [("tool_result", "calculator", "42", 1)]


async def test_questions_go_to_on_need_input_and_the_answer_is_the_tool_result(agent_model, simulator) -> None:
    simulator.configure(
        MODEL, script=script({"tool_calls": [call("ask_user", question="Which one?")]}, {"content": "OK."})
    )
    hooks = Observed(answers=["the blue one"])

    assert await AgentRuntime(RESEARCH_ASSISTANT, hooks).run(spec()) == "OK."
    assert ("need_input", "Which one?") in hooks.seen
    assert ("tool_result", "ask_user", "the blue one", 1) in hooks.seen
    assert hooks.kinds() == ["action", "need_input", "tool_result"]
    assert ("progress", 16, "Waiting for input") in hooks.seen


async def test_a_tool_the_agent_lacks_or_bad_arguments_come_back_to_the_model_as_errors(agent_model, simulator):
    simulator.configure(
        MODEL,
        script=script(
            {"tool_calls": [call("create_ticket", subject="x", description="y"), call("calculator", expression="1/0")]},
            {"content": "Sorry."},
        ),
    )
    hooks = Observed()
    assert await AgentRuntime(RESEARCH_ASSISTANT, hooks).run(spec()) == "Sorry."
    results = [entry for entry in hooks.seen if entry[0] == "tool_result"]
    assert results == [
        ("tool_result", "create_ticket", "error: unknown tool 'create_ticket'", 1),
        ("tool_result", "calculator", "error: division by zero", 1),
    ]


async def test_a_model_that_never_stops_calling_tools_fails_after_max_steps(agent_model, simulator) -> None:
    simulator.configure(MODEL, script=script({"tool_calls": [call("calculator", expression="1")]}))
    with pytest.raises(AgentFailed) as failed:
        await AgentRuntime(RESEARCH_ASSISTANT, Observed()).run(spec())
    assert failed.value.code == "max_steps"
    assert simulator.stats(MODEL)["requests"] == RESEARCH_ASSISTANT.max_steps


async def test_the_deadline_ends_the_run_with_timeout_and_the_upstream_call(agent_model, simulator) -> None:
    simulator.configure(MODEL, latency_ms=20_000)
    with pytest.raises(AgentTimedOut) as timed_out:
        await AgentRuntime(RESEARCH_ASSISTANT, Observed()).run(spec(deadline_s=0.5))
    assert timed_out.value.code == "timeout"


async def test_an_upstream_failure_ends_the_run_with_the_orchestrators_code(agent_model, simulator) -> None:
    simulator.configure(MODEL, error_status=400)
    with pytest.raises(AgentFailed) as failed:
        await AgentRuntime(RESEARCH_ASSISTANT, Observed()).run(spec())
    assert failed.value.code == "invalid_request"


def test_steps_are_rebuilt_from_the_log_and_a_cut_short_step_is_dropped() -> None:
    log = [
        ("thought", "First.", {"step": 1}),
        ("action", "calculator {}", {"step": 1, "index": 0, "call_id": "a", "tool": "calculator", "arguments": "{}"}),
        ("action", "current_time {}", {"step": 1, "index": 1, "call_id": "b", "tool": "current_time"}),
        ("tool_result", "2", {"step": 1, "index": 0, "call_id": "a", "tool": "calculator"}),
        ("tool_result", "now", {"step": 1, "index": 1, "call_id": "b", "tool": "current_time"}),
        ("action", "ask_user {}", {"step": 2, "index": 0, "call_id": "c", "tool": "ask_user", "arguments": "{}"}),
        ("need_input", "Which?", {"step": 2, "index": 0, "call_id": "c", "request_id": "inp_1"}),
        ("thought", "Cut short by a crash.", {"step": 3}),
    ]
    steps = steps_from_log(log)

    assert [step.number for step in steps] == [1, 2]
    assert steps[0].thought == "First." and [c.output for c in steps[0].calls] == ["2", "now"]
    assert steps[0].calls[1].arguments == "{}"
    assert steps[1].calls[0].output is None and steps[1].calls[0].ref == CallRef(2, 0, "c")

"""The OpenAI Agents SDK's quick start with its default model settings (the Responses API) and one
tool. Tracing is switched off: its exporter would post every trace to api.openai.com.
``python openai_agents_client.py agent``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from agents import Agent, Runner, function_tool, set_tracing_disabled

calls: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    calls.append(city)
    return f"12 C and rain in {city}"


def agent() -> dict[str, Any]:
    set_tracing_disabled(True)
    assistant = Agent(
        name="Assistant",
        instructions="You are a helpful assistant.",
        model=os.environ["CHAT_MODEL"],
        tools=[get_weather],
    )
    result = Runner.run_sync(assistant, "What is the weather in Oslo?")
    return {"text": result.final_output, "tool_calls": calls}


SCENARIOS = {"agent": agent}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))

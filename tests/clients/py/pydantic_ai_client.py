"""pydantic-ai's quick start: an agent with one tool, on an OpenAI-compatible provider.
``python pydantic_ai_client.py agent``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider


def agent() -> dict[str, Any]:
    provider = OpenAIProvider(base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ["OPENAI_API_KEY"])
    weather_agent = Agent(OpenAIChatModel(os.environ["CHAT_MODEL"], provider=provider), instructions="Be concise.")
    calls: list[str] = []

    @weather_agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"12 C and rain in {city}"

    result = weather_agent.run_sync("What is the weather in Oslo?")
    return {"text": result.output, "tool_calls": calls}


SCENARIOS = {"agent": agent}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]]()))

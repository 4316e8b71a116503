"""openai-python's quick-start paths against Switchyard. Run by tests/clients in its own venv:
``python openai_python.py SCENARIO``; prints one JSON object of what it saw, exits non-zero on failure.
The gateway, key and models come from the environment (OPENAI_BASE_URL, OPENAI_API_KEY, CHAT_MODEL,
EMBEDDING_MODEL), which is how the SDK itself is configured by default."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from openai import BadRequestError, OpenAI
from pydantic import BaseModel

CHAT = os.environ["CHAT_MODEL"]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def chat(client: OpenAI) -> dict[str, Any]:
    completion = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Say hello."}])
    return {"text": completion.choices[0].message.content, "usage": completion.usage.total_tokens}


def stream(client: OpenAI) -> dict[str, Any]:
    chunks = client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Say hello."}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    return {"text": text}


def tools(client: OpenAI) -> dict[str, Any]:
    """The documented function-calling loop: the assistant message goes back as ``model_dump()``."""
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.chat.completions.create(model=CHAT, messages=messages, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    messages.append(message.model_dump())
    for call in message.tool_calls or []:
        city = json.loads(call.function.arguments)["city"]
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"12 C and rain in {city}"})
    final = client.chat.completions.create(model=CHAT, messages=messages, tools=[WEATHER_TOOL])
    return {
        "tool": message.tool_calls[0].function.name if message.tool_calls else None,
        "finish_reason": first.choices[0].finish_reason,
        "text": final.choices[0].message.content,
    }


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: list[str]


def parse(client: OpenAI) -> dict[str, Any]:
    completion = client.chat.completions.parse(
        model=CHAT,
        messages=[{"role": "user", "content": "Alice and Bob are going to a science fair on Friday."}],
        response_format=CalendarEvent,
    )
    event = completion.choices[0].message.parsed
    return {"parsed": event.model_dump() if event else None}


class Venue(BaseModel):
    city: str


class Booking(BaseModel):
    name: str
    venue: Venue
    guests: int | None


def parse_unscripted(client: OpenAI) -> dict[str, Any]:
    """``parse`` with a nested and an optional field, and no scripted reply: the simulated model
    must answer with a document that fits the schema the SDK sends, as a real model does."""
    completion = client.chat.completions.parse(
        model=CHAT, messages=[{"role": "user", "content": "Book the science fair."}], response_format=Booking
    )
    booking = completion.choices[0].message.parsed
    return {"parsed": booking.model_dump() if booking else None}


def embeddings(client: OpenAI) -> dict[str, Any]:
    response = client.embeddings.create(model=os.environ["EMBEDDING_MODEL"], input="The food was delicious.")
    return {"dimensions": len(response.data[0].embedding)}


def responses(client: OpenAI) -> dict[str, Any]:
    response = client.responses.create(model=CHAT, input="Tell me a three sentence bedtime story.")
    return {"text": response.output_text, "status": response.status}


def responses_stream(client: OpenAI) -> dict[str, Any]:
    events = list(client.responses.create(model=CHAT, input="Say hello.", stream=True))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    return {"types": [event.type for event in events], "text": text}


def responses_tools(client: OpenAI) -> dict[str, Any]:
    tool = {"type": "function", **WEATHER_TOOL["function"]}
    first = client.responses.create(model=CHAT, input="What is the weather in Oslo?", tools=[tool])
    calls = [item for item in first.output if item.type == "function_call"]
    outputs = [{"type": "function_call_output", "call_id": call.call_id, "output": "12 C"} for call in calls]
    final = client.responses.create(model=CHAT, previous_response_id=first.id, input=outputs, tools=[tool])
    return {"tool": calls[0].name if calls else None, "text": final.output_text}


def responses_lost_chain(client: OpenAI) -> dict[str, Any]:
    """Continuing from a response that was not stored: OpenAI's ``previous_response_not_found``,
    the error a client reads as "send the whole conversation again"."""
    first = client.responses.create(model=CHAT, input="Say hello.", store=False)
    try:
        client.responses.create(model=CHAT, input="And again.", previous_response_id=first.id)
    except BadRequestError as error:
        return {"error": type(error).__name__, "status": error.status_code, "code": error.code, "param": error.param}
    return {"error": None}


def responses_background(client: OpenAI) -> dict[str, Any]:
    response = client.responses.create(model=CHAT, input="Write a short poem.", background=True)
    first_status = response.status
    deadline = time.monotonic() + 60
    while response.status in ("queued", "in_progress") and time.monotonic() < deadline:
        time.sleep(0.5)
        response = client.responses.retrieve(response.id)
    return {"first_status": first_status, "status": response.status, "text": response.output_text}


SCENARIOS = {
    f.__name__: f
    for f in (
        chat,
        stream,
        tools,
        parse,
        parse_unscripted,
        embeddings,
        responses,
        responses_stream,
        responses_tools,
        responses_lost_chain,
        responses_background,
    )
}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](OpenAI())))

"""What the simulated model says to one request, independent of the wire format."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from orchestration.simulator.behaviour import Behaviour
from orchestration.simulator.text import (
    count_tokens,
    cut_at_stop,
    default_length,
    generated_tokens,
    json_pieces,
    request_seed,
    text_tokens,
)


class WireInvalid(ValueError):
    """The request body does not fit the wire format; answered with a provider-shaped 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(slots=True)
class Prompt:
    """A request reduced to what the simulator needs, whatever wire format it came in."""

    model: str
    texts: list[str]
    assistant_turns: int
    max_tokens: int | None = None
    stops: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    json_mode: bool = False

    @property
    def prompt_tokens(self) -> int:
        return max(1, sum(count_tokens(text) for text in self.texts))


@dataclass(slots=True)
class ToolCallOut:
    id: str
    name: str
    arguments: dict[str, Any]
    arguments_json: str
    pieces: list[str]


@dataclass(slots=True)
class Reply:
    tokens: list[str]
    tool_calls: list[ToolCallOut]
    finish: str  # "stop" | "length" | "tool_calls" | "stop_sequence"
    prompt_tokens: int
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) + sum(1 + len(call.pieces) for call in self.tool_calls)


def _script_turn(behaviour: Behaviour, prompt: Prompt) -> dict[str, Any] | None:
    if not behaviour.script:
        return None
    # Past the end of the script the last turn repeats, so a looping client sees a stable answer.
    return behaviour.script[min(prompt.assistant_turns, len(behaviour.script) - 1)]


def _tool_calls(turn: dict[str, Any], seed: int) -> list[ToolCallOut]:
    calls = []
    for index, call in enumerate(turn.get("tool_calls", [])):
        arguments = call.get("arguments", {})
        arguments_json = json.dumps(arguments, separators=(",", ":"))
        digest = hashlib.blake2b(f"{seed}:{index}:{call['name']}".encode(), digest_size=12).hexdigest()
        calls.append(ToolCallOut(digest, call["name"], arguments, arguments_json, json_pieces(arguments_json)))
    return calls


def reply_for(prompt: Prompt, behaviour: Behaviour) -> Reply:
    """The deterministic reply: scripted turn, fixed text, or PRNG words of a prompt-derived length."""
    seed = request_seed(prompt.model, prompt.texts)
    turn = _script_turn(behaviour, prompt)
    if turn is not None:
        tokens = text_tokens(turn.get("content") or "")
        calls = _tool_calls(turn, seed)
    elif behaviour.reply is not None:
        tokens, calls = text_tokens(behaviour.reply), []
    else:
        # The natural length is generated in full so that a smaller max_tokens reads as a cut ("length").
        tokens, calls = generated_tokens(seed, behaviour.max_tokens_default or default_length(seed)), []
        if prompt.json_mode:
            tokens = text_tokens(json.dumps({"answer": "".join(tokens)}))
    return _limited(tokens, calls, prompt)


def _limited(tokens: list[str], calls: list[ToolCallOut], prompt: Prompt) -> Reply:
    tokens, stop = cut_at_stop(tokens, prompt.stops)
    if stop is not None:
        return Reply(tokens, [], "stop_sequence", prompt.prompt_tokens, stop)
    if prompt.max_tokens is not None and len(tokens) > prompt.max_tokens:
        return Reply(tokens[: prompt.max_tokens], [], "length", prompt.prompt_tokens)
    return Reply(tokens, calls, "tool_calls" if calls else "stop", prompt.prompt_tokens)

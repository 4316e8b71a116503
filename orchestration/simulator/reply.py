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
    # ``response_format.json_schema.schema`` (OpenAI's structured outputs): the reply is a document that fits it.
    json_schema: dict[str, Any] | None = None
    # The request's tools by name (their JSON Schema parameters), and what ``tool_choice`` asks:
    # "auto" (the model decides: only a script calls tools), "none", "required", or a tool's name.
    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    tool_choice: str = "auto"
    logprobs: bool = False
    top_logprobs: int = 0

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
        if prompt.json_schema is not None:
            tokens = text_tokens(json.dumps(schema_example(prompt.json_schema)))
        elif prompt.json_mode:
            tokens = text_tokens(json.dumps({"answer": "".join(tokens)}))
    tokens, calls = _as_tool_choice_asks(tokens, calls, prompt, seed)
    return _limited(tokens, calls, prompt)


def _as_tool_choice_asks(
    tokens: list[str], calls: list[ToolCallOut], prompt: Prompt, seed: int
) -> tuple[list[str], list[ToolCallOut]]:
    """``none`` takes the tool calls away (text in their place); ``required`` or a named tool makes
    a reply without the call it needs call that tool (the first one, for ``required``), with
    arguments made from its schema."""
    choice = prompt.tool_choice
    if choice == "none":
        return tokens or generated_tokens(seed, default_length(seed)), []
    wanted = next(iter(prompt.tools), None) if choice == "required" else choice
    if wanted is None or wanted not in prompt.tools or any(call.name == wanted for call in calls):
        return tokens, calls
    if choice == "required" and calls:
        return tokens, calls
    turn = {"tool_calls": [{"name": wanted, "arguments": schema_example(prompt.tools[wanted])}]}
    return [], _tool_calls(turn, seed)


_MAX_SCHEMA_DEPTH = 8


def schema_example(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value that fits a (simple) JSON Schema: its first enum value or example, else one per type.
    Local ``$ref``s and the first non-null branch of ``anyOf``/``oneOf`` are followed, as the schemas
    Pydantic writes for nested and optional fields (what ``client.chat.completions.parse`` sends) need."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        return schema_example(_schema_at(root, ref), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    for key in ("enum", "examples"):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    for key in ("anyOf", "oneOf", "allOf"):
        branches = [b for b in schema.get(key) or [] if isinstance(b, dict) and b.get("type") != "null"]
        if branches:
            return schema_example(branches[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {name: schema_example(sub, root, depth + 1) for name, sub in properties.items() if isinstance(sub, dict)}
    examples = {"string": "simulated", "integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}
    return examples.get(kind, "simulated") if isinstance(kind, str) else "simulated"


def _schema_at(root: dict[str, Any], ref: str) -> Any:
    """The part of ``root`` a local JSON pointer (``#/$defs/Name``) names, or None."""
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
    return node


def _limited(tokens: list[str], calls: list[ToolCallOut], prompt: Prompt) -> Reply:
    tokens, stop = cut_at_stop(tokens, prompt.stops)
    if stop is not None:
        return Reply(tokens, [], "stop_sequence", prompt.prompt_tokens, stop)
    if prompt.max_tokens is not None and len(tokens) > prompt.max_tokens:
        return Reply(tokens[: prompt.max_tokens], [], "length", prompt.prompt_tokens)
    return Reply(tokens, calls, "tool_calls" if calls else "stop", prompt.prompt_tokens)

"""The Responses API's request, translated to the internal chat request, and its input items.

A request is validated here into a ``ResponseInput``: the ``input`` as normalized items (each with
an id, as ``GET /v1/responses/{id}/input_items`` lists them), and the settings a worker needs to
run it again. ``chat_messages`` turns items (input and earlier output alike) into chat messages.
Every refusal names its ``param`` the way OpenAI does (``input[2].content[0].type``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from orchestration.database import null_character_path
from orchestration.errors import InvalidRequest
from orchestration.types import ChatRequest, Message, Role, ToolCall
from orchestration.validation import (
    _array,
    _boolean,
    _integer,
    _number,
    _object,
    _optional,
    _refuse_unknown,
    _string,
    _type_error,
    _value_error,
)

MAX_ITEMS = 2048
MAX_TOOLS = 128
MAX_METADATA_KEYS = 16

# Accepted and honoured, or accepted because they change nothing a gateway promises (docs/api.md).
FIELDS = frozenset(
    {
        "model", "input", "instructions", "temperature", "top_p", "max_output_tokens", "tools", "tool_choice",
        "text", "metadata", "store", "previous_response_id", "parallel_tool_calls", "user", "stream",
        "background", "stream_options", "include", "truncation", "service_tier", "prompt_cache_key",
        "safety_identifier", "reasoning", "max_tool_calls", "prompt_cache_retention", "top_logprobs",
    }
)  # fmt: skip
# OpenAI's, not offered here: refused by name rather than ignored behind the client's back.
UNSUPPORTED = frozenset({"conversation", "prompt"})
# OpenAI's built-in tools: they run inside OpenAI, so no other provider can serve them.
BUILT_IN_TOOLS = frozenset(
    {
        "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26",
        "file_search", "computer_use_preview", "computer_use", "code_interpreter", "image_generation", "mcp",
        "local_shell", "shell", "apply_patch", "custom",
    }
)  # fmt: skip
INPUT_ROLES = ("user", "system", "developer", "assistant")


def response_id_new() -> str:
    return f"resp_{uuid.uuid4().hex}"


def item_id(response_id: str, prefix: str, tag: str) -> str:
    """The id of an item of a response: its kind, the response's hex, and where it sits (``i3``:
    input item 3, ``o0``: output item 0). An ``item_reference`` is resolved through it."""
    return f"{prefix}_{response_id.removeprefix('resp_')}{tag}"


def response_id_of_item(item: str) -> str | None:
    """The response an item id of ours belongs to (None for an id a client made up)."""
    _, _, rest = item.partition("_")
    return f"resp_{rest[:32]}" if len(rest) > 32 and rest[32] in "io" else None


@dataclass(slots=True)
class ResponseInput:
    """A validated ``POST /v1/responses`` body."""

    response_id: str
    model: str
    items: list[dict[str, Any]]
    settings: dict[str, Any]  # what a Response object echoes, and what a worker runs it with
    store: bool
    stream: bool
    background: bool
    previous_response_id: str


# --- input items ---------------------------------------------------------------------------


def _text_part(value: Any, param: str, role: str) -> dict[str, Any]:
    part = _object(value, param)
    kind = _string(part.get("type"), f"{param}.type")
    if kind in ("input_text", "output_text", "text"):
        text = _string(part.get("text"), f"{param}.text")
        if role == "assistant":
            return {"type": "output_text", "text": text, "annotations": []}
        return {"type": "input_text", "text": text}
    if kind == "refusal":
        return {"type": "refusal", "refusal": _string(part.get("refusal"), f"{param}.refusal")}
    message = f"Content parts of type {kind!r} are not supported; send input_text."
    raise InvalidRequest("unsupported_value", message, param=f"{param}.type")


def _message_item(data: dict[str, Any], param: str, default_id: str) -> dict[str, Any]:
    role = _string(data.get("role"), f"{param}.role")
    if role not in INPUT_ROLES:
        raise _value_error(f"{param}.role", f"expected one of {', '.join(INPUT_ROLES)}, got {role!r}.")
    content = data.get("content")
    if isinstance(content, str):
        parts = [_text_part({"type": "input_text", "text": content}, f"{param}.content", role)]
    else:
        items = _array(content, f"{param}.content")
        parts = [_text_part(part, f"{param}.content[{i}]", role) for i, part in enumerate(items)]
    return {
        "id": data.get("id") or default_id,
        "type": "message",
        "role": role,
        "content": parts,
        "status": "completed",
    }


def _function_call_item(data: dict[str, Any], param: str, default_id: str) -> dict[str, Any]:
    return {
        "id": data.get("id") or default_id,
        "type": "function_call",
        "call_id": _string(data.get("call_id"), f"{param}.call_id", allow_empty=False),
        "name": _string(data.get("name"), f"{param}.name", allow_empty=False),
        "arguments": _string(data.get("arguments", ""), f"{param}.arguments"),
        "status": "completed",
    }


def _function_output_item(data: dict[str, Any], param: str, default_id: str) -> dict[str, Any]:
    output = data.get("output")
    if not isinstance(output, str):
        parts = _array(output, f"{param}.output")
        output = "".join(_text_part(p, f"{param}.output[{i}]", "user").get("text", "") for i, p in enumerate(parts))
    return {
        "id": data.get("id") or default_id,
        "type": "function_call_output",
        "call_id": _string(data.get("call_id"), f"{param}.call_id", allow_empty=False),
        "output": output,
        "status": "completed",
    }


def _item(value: Any, param: str, response_id: str, index: int) -> dict[str, Any] | None:
    data = _object(value, param)
    kind = data.get("type", "message")
    if not isinstance(kind, str):
        raise _type_error(f"{param}.type", "a string", kind)
    if data.get("id") is not None:
        _string(data["id"], f"{param}.id", allow_empty=False)
    if kind == "message":
        return _message_item(data, param, item_id(response_id, "msg", f"i{index}"))
    if kind == "function_call":
        return _function_call_item(data, param, item_id(response_id, "fc", f"i{index}"))
    if kind == "function_call_output":
        return _function_output_item(data, param, item_id(response_id, "fco", f"i{index}"))
    if kind == "item_reference":
        # An item of an earlier stored response, by id (clients that store send these instead of
        # the item): resolved against the database by ``selectors.items_resolved``.
        return {
            "type": "item_reference",
            "id": _string(data.get("id"), f"{param}.id", allow_empty=False),
            "param": param,
        }
    if kind == "reasoning":
        return None  # a reasoning model's summary, sent back by clients; no model here reads it
    message = f"Input items of type {kind!r} are not supported; send messages, function_call and function_call_output."
    raise InvalidRequest("unsupported_value", message, param=f"{param}.type")


def _items(value: Any, response_id: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [_message_item({"role": "user", "content": value}, "input", item_id(response_id, "msg", "i0"))]
    items = _array(value, "input")
    if len(items) > MAX_ITEMS:
        raise InvalidRequest("array_too_long", f"'input' holds more than {MAX_ITEMS} items.", param="input")
    parsed = (_item(item, f"input[{index}]", response_id, index) for index, item in enumerate(items))
    return [item for item in parsed if item is not None]


# --- items -> chat messages --------------------------------------------------------------------


def _text_of(parts: list[dict[str, Any]]) -> str:
    return "".join(part.get("text") or part.get("refusal") or "" for part in parts)


def chat_messages(items: list[dict[str, Any]]) -> list[Message]:
    """The chat messages that say what ``items`` say. Function calls join the assistant message
    before them (a model's text and the calls it then made are one chat turn)."""
    messages: list[Message] = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            role: Role = "system" if item["role"] == "developer" else item["role"]
            messages.append(Message(role=role, content=_text_of(item["content"])))
        elif kind == "function_call":
            call = ToolCall(id=item["call_id"], name=item["name"], arguments=item["arguments"])
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or []), call]
            else:
                messages.append(Message(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            messages.append(Message(role="tool", content=item["output"], tool_call_id=item["call_id"]))
    return messages


# --- tools and formats -------------------------------------------------------------------------


def _tool(value: Any, param: str) -> dict[str, Any]:
    tool = _object(value, param)
    kind = _string(tool.get("type"), f"{param}.type")
    if kind in BUILT_IN_TOOLS or kind.startswith(("web_search", "computer_use")):
        message = f"The built-in tool {kind!r} is not supported here; only 'function' tools are."
        raise InvalidRequest("unsupported_tool", message, param=f"{param}.type")
    if kind != "function":
        raise _value_error(f"{param}.type", f"only 'function' tools are supported, got {kind!r}.")
    _refuse_unknown(tool, frozenset({"type", "name", "description", "parameters", "strict"}), f"{param}.")
    return {
        "type": "function",
        "name": _string(tool.get("name"), f"{param}.name", allow_empty=False),
        "description": _optional(tool, "description", _string, f"{param}."),
        "parameters": _optional(tool, "parameters", _object, f"{param}."),
        "strict": bool(_optional(tool, "strict", _boolean, f"{param}.")),
    }


def _tools(value: Any) -> list[dict[str, Any]]:
    items = _array(value, "tools")
    if len(items) > MAX_TOOLS:
        raise _value_error("tools", f"at most {MAX_TOOLS} tools are allowed.")
    return [_tool(item, f"tools[{index}]") for index, item in enumerate(items)]


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> str | dict[str, Any]:
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise _value_error("tool_choice", f"expected 'none', 'auto', 'required' or an object, got {value!r}.")
        if value == "required" and not tools:  # as /v1/chat/completions answers it
            raise _value_error("tool_choice", "'required' needs at least one tool in 'tools'.")
        return value
    choice = _object(value, "tool_choice")
    if choice.get("type") != "function":
        raise _value_error("tool_choice.type", "only 'function' tool choices are supported.")
    name = _string(choice.get("name"), "tool_choice.name", allow_empty=False)
    if name not in {tool["name"] for tool in tools}:
        message = f"Invalid value for 'tool_choice': no function named {name!r} is among the tools."
        raise InvalidRequest("invalid_value", message, param="tool_choice.name")
    return {"type": "function", "name": name}


def _text_format(value: Any) -> dict[str, Any]:
    text = _object(value, "text")
    _refuse_unknown(text, frozenset({"format", "verbosity"}), "text.")
    fmt = _optional(text, "format", _object, "text.") or {"type": "text"}
    kind = _string(fmt.get("type"), "text.format.type")
    if kind in ("text", "json_object"):
        return {"format": {"type": kind}}
    if kind != "json_schema":
        raise _value_error("text.format.type", f"expected 'text', 'json_object' or 'json_schema', got {kind!r}.")
    _refuse_unknown(fmt, frozenset({"type", "name", "schema", "strict", "description"}), "text.format.")
    return {
        "format": {
            "type": "json_schema",
            "name": _string(fmt.get("name"), "text.format.name", allow_empty=False),
            "schema": _object(fmt.get("schema"), "text.format.schema"),
            "strict": bool(_optional(fmt, "strict", _boolean, "text.format.")),
            "description": _optional(fmt, "description", _string, "text.format."),
        }
    }


def _metadata(value: Any) -> dict[str, str]:
    data = _object(value, "metadata")
    if len(data) > MAX_METADATA_KEYS:
        raise _value_error("metadata", f"at most {MAX_METADATA_KEYS} keys are allowed.")
    for key, item in data.items():
        if len(key) > 64:
            raise _value_error("metadata", f"keys are at most 64 characters; {key[:20]!r}... is longer.")
        if len(_string(item, f"metadata.{key}")) > 512:
            raise _value_error(f"metadata.{key}", "values are at most 512 characters.")
    return data


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Responses' flat function tools as chat's nested ones."""
    nested = []
    for tool in tools:
        function = {"name": tool["name"], "parameters": tool["parameters"] or {"type": "object", "properties": {}}}
        if tool["description"] is not None:
            function["description"] = tool["description"]
        if tool["strict"]:
            function["strict"] = True
        nested.append({"type": "function", "function": function})
    return nested or None


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def chat_response_format(text: dict[str, Any]) -> dict[str, Any] | None:
    fmt = text["format"]
    if fmt["type"] == "text":
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema = {"name": fmt["name"], "schema": fmt["schema"], "strict": fmt["strict"]}
    if fmt["description"] is not None:
        schema["description"] = fmt["description"]
    return {"type": "json_schema", "json_schema": schema}


def chat_request(model: str, settings: dict[str, Any], items: list[dict[str, Any]]) -> ChatRequest:
    """The internal chat request that generates a response: instructions first, then the items
    (the earlier conversation's, then this request's input)."""
    messages = chat_messages(items)
    if settings.get("instructions"):
        messages.insert(0, Message(role="system", content=settings["instructions"]))
    return ChatRequest(
        model=model,
        messages=messages,
        temperature=settings.get("temperature"),
        top_p=settings.get("top_p"),
        max_tokens=settings.get("max_output_tokens"),
        tools=chat_tools(settings.get("tools") or []),
        tool_choice=chat_tool_choice(settings.get("tool_choice")) if settings.get("tools") else None,
        response_format=chat_response_format(settings.get("text") or {"format": {"type": "text"}}),
        user=settings.get("user"),
    )


# --- the request -------------------------------------------------------------------------------


def _refuse_unsupported(data: dict[str, Any]) -> None:
    for name in data:
        if name not in FIELDS and name not in UNSUPPORTED:
            raise InvalidRequest("unknown_parameter", f"Unrecognized request argument supplied: {name}", param=name)
    for name in sorted(UNSUPPORTED):
        if data.get(name) is not None:
            raise InvalidRequest("unsupported_parameter", f"The parameter '{name}' is not supported.", param=name)
    for name in ("include",):
        for index, entry in enumerate(_optional(data, name, _array) or []):
            _string(entry, f"{name}[{index}]")
    for name in ("service_tier", "prompt_cache_key", "safety_identifier", "truncation", "prompt_cache_retention"):
        _optional(data, name, _string)
    if _optional(data, "top_logprobs", lambda v, p: _integer(v, p, minimum=0, maximum=20)):
        raise InvalidRequest(
            "unsupported_value", "Log probabilities are not offered here; send top_logprobs 0.", param="top_logprobs"
        )
    _optional(data, "reasoning", _object)
    _optional(data, "stream_options", _object)
    _optional(data, "max_tool_calls", lambda v, p: _integer(v, p, minimum=1))


def _max_output_tokens(value: Any, param: str) -> int:
    return _integer(value, param, minimum=1, maximum=10_000_000)


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    tools = _optional(data, "tools", lambda v, p: _tools(v)) or []
    choice = _optional(data, "tool_choice", lambda v, p: _tool_choice(v, tools))
    return {
        "instructions": _optional(data, "instructions", _string),
        "temperature": _optional(data, "temperature", lambda v, p: _number(v, p, 0, 2)),
        "top_p": _optional(data, "top_p", lambda v, p: _number(v, p, 0, 1)),
        "max_output_tokens": _optional(
            data, "max_output_tokens", lambda v, p: _integer(v, p, minimum=1, maximum=10**7)
        ),
        "tools": tools,
        "tool_choice": choice if choice is not None else "auto",
        "text": _optional(data, "text", lambda v, p: _text_format(v)) or {"format": {"type": "text"}},
        "metadata": _optional(data, "metadata", lambda v, p: _metadata(v)) or {},
        "parallel_tool_calls": _optional(data, "parallel_tool_calls", _boolean) is not False,
        "user": _optional(data, "user", _string),
    }


def response_input_from(data: dict[str, Any], response_id: str) -> ResponseInput:
    """Validate a ``POST /v1/responses`` body for the response ``response_id``."""
    _refuse_unsupported(data)
    model = _optional(data, "model", _string) or ""
    if not model:
        raise InvalidRequest("missing_required_parameter", "You must provide a model parameter.", param="model")
    if data.get("input") is None:
        raise InvalidRequest("missing_required_parameter", "Missing required parameter: 'input'.", param="input")
    items = _items(data["input"], response_id)
    settings = _settings(data)
    if not items and settings["instructions"] is None:
        raise InvalidRequest("empty_array", "'input' must contain at least one item.", param="input")
    store = _optional(data, "store", _boolean) is not False
    if store and (where := null_character_path(data)) is not None:
        message = "A stored response cannot hold a null character (U+0000): remove it, or send store: false."
        raise InvalidRequest("invalid_value", message, param=where)
    background = bool(_optional(data, "background", _boolean))
    if background and not store:
        message = "Background responses are stored: background=true cannot go with store=false."
        raise InvalidRequest("invalid_value", message, param="store")
    previous = _optional(data, "previous_response_id", lambda v, p: _string(v, p, allow_empty=False)) or ""
    return ResponseInput(
        response_id=response_id,
        model=model,
        items=items,
        settings=settings,
        store=store,
        stream=bool(_optional(data, "stream", _boolean)),
        background=background,
        previous_response_id=previous,
    )


def starting_after_from(value: str | None) -> int | None:
    """The ``starting_after`` query parameter of a streamed GET: a sequence number."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise _type_error("starting_after", "an integer", value) from None
    if number < -1:
        raise _value_error("starting_after", "expected a sequence number of 0 or more.")
    return number

"""Request parsing for the OpenAI-compatible ``/v1`` endpoints.

Hand-written rather than serializers: the hot path pays microseconds here, not the fraction of
a millisecond a DRF serializer costs. Every refusal is an ``InvalidRequest`` naming the offending
``param`` the way OpenAI does (``messages[2].content``), so nothing a client sends reaches the
Orchestrator malformed and nothing a client sends becomes a 500.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from orchestration.errors import InvalidRequest, ServiceError
from orchestration.types import ChatRequest, EmbeddingRequest, Message, ToolCall

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_STOP = 4
# n > 1 fans out to n upstream calls: a bound on the work one request makes.
MAX_CHOICES = 8
MAX_TOOLS = 128
MAX_EMBEDDING_INPUTS = 2048
# More than any conversation a context window holds, and a bound on the work one request makes.
MAX_MESSAGES = 2048

# Accepted and honoured, or accepted because they change nothing a gateway promises
# (docs/api.md, "Parameters accepted and ignored", lists the ones ignored).
CHAT_FIELDS = frozenset(
    {
        "model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "stream",
        "stream_options", "stop", "seed", "user", "presence_penalty", "frequency_penalty", "tools",
        "tool_choice", "parallel_tool_calls", "response_format", "logprobs", "top_logprobs", "logit_bias",
        "metadata", "store", "service_tier", "prompt", "prompt_cache_key", "safety_identifier",
        "reasoning_effort", "verbosity", "modalities",
    }
)  # fmt: skip
# Known to OpenAI, not offered here: refused by name rather than ignored behind the client's back.
CHAT_UNSUPPORTED = frozenset({"audio", "prediction", "functions", "function_call", "web_search_options"})
EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
_MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "refusal"})
# What the official SDKs put in an assistant message they return, so a client that sends back
# ``message.model_dump()`` is not refused: accepted when null or empty, and ignored.
_ASSISTANT_ECHO_FIELDS = frozenset({"annotations", "audio", "function_call", "parsed", "reasoning"})


@dataclass(slots=True)
class PromptRef:
    """The ``prompt`` extension: a managed template to render in front of the messages."""

    name: str
    version: int | None
    variables: dict[str, str]


@dataclass(slots=True)
class CompletionInput:
    request: ChatRequest
    stream: bool
    include_usage: bool
    prompt: PromptRef | None
    choices: int = 1  # ``n``


@dataclass(slots=True)
class EmbeddingInput:
    model: str
    inputs: list[str | list[int]]  # texts, or token arrays read back by the model's tokenizer
    encoding_format: str
    dimensions: int | None

    @property
    def has_tokens(self) -> bool:
        return any(isinstance(item, list) for item in self.inputs)

    def request(self, texts: list[str]) -> EmbeddingRequest:
        return EmbeddingRequest(model=self.model, inputs=texts)


# --- the body ------------------------------------------------------------------------------


# Deeper than this is no request anyone writes (a tool's JSON schema nests a dozen levels at most),
# and recursive code further on (cache keys, tokenizers) must never meet it.
MAX_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_UNPARSED = object()
# orjson reads an integer literal beyond 64 bits as a float, where the standard parser keeps it
# exact. A whole float this large may have been one: that document goes to the standard parser.
_INTEGER_FLOAT_FROM = float(2**63)


def json_document(body: bytes | str, *, subject: str = "The request body") -> Any:
    """The body parsed as strict JSON: no NaN or Infinity, nested at most ``MAX_DEPTH`` deep, and
    every string valid Unicode (no lone surrogates). Anything else is a 400 saying what is wrong;
    ``subject`` names the document in its message (a WebSocket frame is not a request body).

    orjson parses first, and refuses lone surrogates, NaN and Infinity itself, so only the depth
    is walked after it: a third of the standard parser's time with its walk over every string
    (``python -m tests.bench request_parse``), paid on every call since each brings its whole
    conversation. What orjson refuses, or may have read otherwise, goes to the standard parser,
    whose answers and refusals clients get."""
    data = _fast_document(body, subject)
    if data is not _UNPARSED:
        return data
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise _too_deep(subject) from None
    except UnicodeDecodeError:  # its own text is the codec's ("'utf-8' codec can't decode byte 0xff ...")
        raise InvalidRequest("invalid_json", f"{subject} is not valid UTF-8 text.") from None
    except ValueError as error:
        if "int_max_str_digits" in str(error):  # Python's own guard, whose advice is for us, not the client
            limit = sys.get_int_max_str_digits()
            raise InvalidRequest("invalid_json", f"{subject} holds a number of more than {limit} digits.") from None
        raise InvalidRequest("invalid_json", f"{subject} is not valid JSON: {error}.") from None
    _check_document(data, subject)
    return data


def _fast_document(body: bytes | str, subject: str) -> Any:
    """orjson's reading of ``body``, checked as ``_check_document`` checks (the strings need no
    check: orjson refuses lone surrogates), or ``_UNPARSED`` for the standard parser to decide."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _UNPARSED
    # Walked a level at a time, ``level`` holding the containers at ``depth`` (orjson makes plain
    # dicts and lists): a walk with no tuple or call per value costs about orjson's own time.
    level = [data] if type(data) in (dict, list) else []
    if not level and _integer_as_float(data):
        return _UNPARSED
    depth = 0
    while level:
        if depth >= MAX_DEPTH:
            raise _too_deep(subject)
        below = []
        for container in level:
            for item in container.values() if type(container) is dict else container:
                kind = type(item)
                if kind is dict or kind is list:
                    below.append(item)
                elif kind is float and _integer_as_float(item):
                    return _UNPARSED
        level = below
        depth += 1
    return data


def _integer_as_float(value: Any) -> bool:
    return type(value) is float and abs(value) >= _INTEGER_FLOAT_FROM and value.is_integer()


def _too_deep(subject: str) -> InvalidRequest:
    return InvalidRequest("invalid_json", f"{subject} nests deeper than {MAX_DEPTH} levels.")


def _check_document(data: Any, subject: str) -> None:
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value, subject)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise _too_deep(subject)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_text(key, subject)
                pending.append((item, depth + 1))


def _check_text(text: str, subject: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        message = f"{subject} holds a string that is not valid Unicode (a lone surrogate escape)."
        raise InvalidRequest("invalid_unicode", message) from None


def json_object_from(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 saying what is wrong with it."""
    if not body.strip():
        raise InvalidRequest("invalid_json", "The request body is empty; send a JSON object.")
    data = json_document(body)
    if not isinstance(data, dict):
        raise InvalidRequest("invalid_json", "The request body must be a JSON object.")
    return data


# --- typed fields --------------------------------------------------------------------------


def _type_error(param: str, expected: str, value: Any) -> ServiceError:
    got = "null" if value is None else type(value).__name__
    got = {"str": "string", "dict": "object", "list": "array", "bool": "boolean", "float": "number"}.get(got, got)
    return InvalidRequest("invalid_type", f"Invalid type for '{param}': expected {expected}, got {got}.", param=param)


def _value_error(param: str, message: str) -> ServiceError:
    return InvalidRequest("invalid_value", f"Invalid value for '{param}': {message}", param=param)


def _string(value: Any, param: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)
    if not allow_empty and not value:
        raise _value_error(param, "it must not be empty.")
    return value


def _integer(value: Any, param: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(param, "an integer", value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:  # one bound only: "between 1 and None" said nothing to the reader
            raise _value_error(param, f"expected an integer of {minimum} or more, got {value}.")
        if minimum is None:
            raise _value_error(param, f"expected an integer of {maximum} or less, got {value}.")
        raise _value_error(param, f"expected an integer between {minimum} and {maximum}, got {value}.")
    return value


def _number(value: Any, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(param, "a number", value)
    try:
        number = float(value)
    except OverflowError:  # an integer past a float's range: out of range, like 1e400
        raise _value_error(param, f"expected a number between {low:g} and {high:g}, got a larger one.") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise _value_error(param, f"expected a number between {low:g} and {high:g}, got {value}.")
    return number


def _logit_bias(value: Any, param: str) -> dict[str, Any]:
    """OpenAI's ``logit_bias``: token ids (as JSON object keys) to a bias from -100 to 100."""
    bias = _object(value, param)
    for token, amount in bias.items():
        if not token.isascii() or not token.isdigit():
            raise _value_error(param, f"expected token ids as keys, got {token[:40]!r}.")
        _number(amount, f"{param}.{token}", -100, 100)
    return bias


def _boolean(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(param, "a boolean", value)
    return value


def _object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _type_error(param, "an object", value)
    return value


def _array(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _type_error(param, "an array", value)
    return value


def _refuse_unknown(data: dict[str, Any], known: frozenset[str], prefix: str = "") -> None:
    for name in data:
        if name not in known:
            param = f"{prefix}{name}"
            raise InvalidRequest("unknown_parameter", f"Unrecognized request argument supplied: {param}", param=param)


def _optional(data: dict[str, Any], name: str, parse: Callable[[Any, str], Any], prefix: str = "") -> Any:
    value = data.get(name)
    return None if value is None else parse(value, f"{prefix}{name}")


# --- messages ------------------------------------------------------------------------------


def _content(value: Any, param: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    parts = _array(value, param)
    texts = []
    for index, part in enumerate(parts):
        where = f"{param}[{index}]"
        part = _object(part, where)
        kind = _string(part.get("type"), f"{where}.type")
        if kind != "text":
            raise InvalidRequest(
                "unsupported_value", f"Content parts of type {kind!r} are not supported; send text.", param=where
            )
        texts.append(_string(part.get("text"), f"{where}.text"))
    return "".join(texts)


def _tool_call(value: Any, param: str) -> ToolCall:
    call = _object(value, param)
    _refuse_unknown(call, frozenset({"id", "type", "function"}), f"{param}.")
    if call.get("type", "function") != "function":
        raise _value_error(f"{param}.type", "only 'function' tool calls exist.")
    function = _object(call.get("function"), f"{param}.function")
    return ToolCall(
        id=_string(call.get("id"), f"{param}.id", allow_empty=False),
        name=_string(function.get("name"), f"{param}.function.name", allow_empty=False),
        arguments=_string(function.get("arguments", ""), f"{param}.function.arguments"),
    )


def _assistant_echo(data: dict[str, Any], param: str) -> None:
    """An assistant message's SDK-only fields: ``annotations`` (any list) and ``parsed`` are the
    client's own view of the reply; ``audio`` and ``function_call`` carry something only when set."""
    _optional(data, "annotations", _array, f"{param}.")
    for name in ("audio", "function_call"):
        if data.get(name):
            message = f"Assistant messages with '{name}' are not supported; send its text as content."
            raise InvalidRequest("unsupported_value", message, param=f"{param}.{name}")


def _message(value: Any, param: str) -> Message:
    data = _object(value, param)
    role = _string(data.get("role"), f"{param}.role")
    if role not in ROLES:
        raise _value_error(f"{param}.role", f"expected one of {', '.join(ROLES)}, got {role!r}.")
    _refuse_unknown(
        data, _MESSAGE_FIELDS | _ASSISTANT_ECHO_FIELDS if role == "assistant" else _MESSAGE_FIELDS, f"{param}."
    )
    if role == "assistant":
        _assistant_echo(data, param)
    content = _content(data.get("content"), f"{param}.content")
    tool_calls = None
    if role == "assistant" and data.get("tool_calls") is not None:
        calls = _array(data["tool_calls"], f"{param}.tool_calls")
        tool_calls = [_tool_call(call, f"{param}.tool_calls[{i}]") for i, call in enumerate(calls)] or None
    elif data.get("tool_calls") is not None:
        raise _value_error(f"{param}.tool_calls", "only assistant messages carry tool calls.")
    tool_call_id = None
    if role == "tool":
        tool_call_id = _string(data.get("tool_call_id"), f"{param}.tool_call_id", allow_empty=False)
    if content is None and not (role == "assistant" and tool_calls):
        raise _type_error(f"{param}.content", "a string or an array of text parts", None)
    return Message(
        role="system" if role == "developer" else role,  # type: ignore[arg-type]
        content=content,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id,
        name=_optional(data, "name", _string, f"{param}."),
    )


def _messages(value: Any, param: str) -> list[Message]:
    items = _array(value, param)
    if len(items) > MAX_MESSAGES:
        message = f"'{param}' holds {len(items)} messages; a request may send at most {MAX_MESSAGES}."
        raise InvalidRequest("array_too_long", message, param=param)
    return [_plain_message(item) or _message(item, f"{param}[{index}]") for index, item in enumerate(items)]


# The roles whose message may be a role and a text alone, and the role each is read as.
_PLAIN_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _plain_message(value: Any) -> Message | None:
    """The message most of a conversation is, ``{"role": ..., "content": "text"}``, read without
    ``_message``'s checks, which it passes (in a quarter of their time); None for any other."""
    if type(value) is not dict or len(value) != 2:
        return None
    role, content = value.get("role"), value.get("content")
    if type(role) is not str or type(content) is not str or role not in _PLAIN_ROLES:
        return None
    return Message(role=_PLAIN_ROLES[role], content=content)  # type: ignore[arg-type]


# --- generation options ---------------------------------------------------------------------


def _stop(value: Any, param: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = _array(value, param)
    if len(items) > MAX_STOP:
        raise _value_error(param, f"at most {MAX_STOP} stop sequences are allowed.")
    return [_string(item, f"{param}[{index}]", allow_empty=False) for index, item in enumerate(items)]


def _tool(value: Any, param: str) -> dict[str, Any]:
    tool = _object(value, param)
    _refuse_unknown(tool, frozenset({"type", "function"}), f"{param}.")
    if tool.get("type") != "function":
        raise _value_error(f"{param}.type", "only 'function' tools are supported.")
    function = _object(tool.get("function"), f"{param}.function")
    _refuse_unknown(function, frozenset({"name", "description", "parameters", "strict"}), f"{param}.function.")
    _string(function.get("name"), f"{param}.function.name", allow_empty=False)
    _optional(function, "description", _string, f"{param}.function.")
    _optional(function, "parameters", _object, f"{param}.function.")
    _optional(function, "strict", _boolean, f"{param}.function.")
    return {"type": "function", "function": function}


def _tools(value: Any, param: str) -> list[dict[str, Any]]:
    items = _array(value, param)
    if len(items) > MAX_TOOLS:
        raise _value_error(param, f"at most {MAX_TOOLS} tools are allowed.")
    return [_tool(item, f"{param}[{index}]") for index, item in enumerate(items)]


def _tool_choice(value: Any, param: str) -> str | dict[str, Any]:
    if isinstance(value, str):
        if value not in ("none", "auto", "required"):
            raise _value_error(param, f"expected 'none', 'auto', 'required' or an object, got {value!r}.")
        return value
    choice = _object(value, param)
    if choice.get("type") != "function":
        raise _value_error(f"{param}.type", "expected 'function'.")
    function = _object(choice.get("function"), f"{param}.function")
    name = _string(function.get("name"), f"{param}.function.name", allow_empty=False)
    return {"type": "function", "function": {"name": name}}


def _check_tool_choice(choice: str | dict[str, Any] | None, tools: list[dict[str, Any]] | None) -> None:
    """A choice that forces a tool needs tools, and a named one must be among them."""
    if choice in (None, "none", "auto"):
        return
    names = [tool["function"]["name"] for tool in tools or ()]
    if choice == "required":
        if not names:
            raise _value_error("tool_choice", "'required' needs at least one tool in 'tools'.")
        return
    assert isinstance(choice, dict)
    name = choice["function"]["name"]
    if name not in names:
        message = f"tool_choice names the function {name!r}, which is not among the tools sent."
        raise InvalidRequest("invalid_value", message, param="tool_choice.function.name")


def _response_format(value: Any, param: str) -> dict[str, Any]:
    data = _object(value, param)
    kind = _string(data.get("type"), f"{param}.type")
    if kind not in ("text", "json_object", "json_schema"):
        raise _value_error(f"{param}.type", f"expected 'text', 'json_object' or 'json_schema', got {kind!r}.")
    if kind == "json_schema":
        schema = _object(data.get("json_schema"), f"{param}.json_schema")
        _string(schema.get("name"), f"{param}.json_schema.name", allow_empty=False)
        _optional(schema, "schema", _object, f"{param}.json_schema.")
    return data


def _prompt(value: Any, param: str) -> PromptRef:
    data = _object(value, param)
    _refuse_unknown(data, frozenset({"name", "version", "variables"}), f"{param}.")
    variables = _optional(data, "variables", _object, f"{param}.") or {}
    rendered: dict[str, str] = {}
    for name, item in variables.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise _type_error(f"{param}.variables.{name}", "a string or a number", item)
        rendered[name] = str(item)
    return PromptRef(
        name=_string(data.get("name"), f"{param}.name", allow_empty=False),
        version=_optional(data, "version", lambda v, p: _integer(v, p, minimum=1), f"{param}."),
        variables=rendered,
    )


def _stream_options(data: dict[str, Any], stream: bool) -> bool:
    options = data.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise _value_error("stream_options", "stream_options is only allowed when stream is true.")
    options = _object(options, "stream_options")
    _refuse_unknown(options, frozenset({"include_usage", "include_obfuscation"}), "stream_options.")
    _optional(options, "include_obfuscation", _boolean, "stream_options.")
    return bool(_optional(options, "include_usage", _boolean, "stream_options."))


def _refuse_unsupported(data: dict[str, Any]) -> None:
    for name in CHAT_UNSUPPORTED:
        if data.get(name) is not None:
            raise InvalidRequest("unsupported_parameter", f"The parameter '{name}' is not supported.", param=name)
    choices = _optional(data, "n", lambda v, p: _integer(v, p, minimum=1, maximum=MAX_CHOICES))
    if choices not in (None, 1) and data.get("stream"):
        raise InvalidRequest("unsupported_value", "n > 1 is not supported with stream=true.", param="n")
    top = _optional(data, "top_logprobs", lambda v, p: _integer(v, p, minimum=0, maximum=20))
    if top is not None and not _optional(data, "logprobs", _boolean):
        raise _value_error("top_logprobs", "top_logprobs needs logprobs=true.")
    _optional(data, "logit_bias", _logit_bias)
    _optional(data, "metadata", _object)
    _optional(data, "store", _boolean)
    _optional(data, "parallel_tool_calls", _boolean)
    _optional(data, "service_tier", _string)
    _optional(data, "prompt_cache_key", _string)
    _optional(data, "safety_identifier", _string)
    _optional(data, "reasoning_effort", _string)
    _optional(data, "verbosity", _string)
    modalities = _optional(data, "modalities", _array)
    if modalities is not None and any(item != "text" for item in modalities):
        raise InvalidRequest("unsupported_value", "Only the 'text' modality is supported.", param="modalities")


def _max_tokens(data: dict[str, Any]) -> int | None:
    limit = _optional(data, "max_completion_tokens", lambda v, p: _integer(v, p, minimum=1, maximum=10_000_000))
    if limit is None:
        limit = _optional(data, "max_tokens", lambda v, p: _integer(v, p, minimum=1, maximum=10_000_000))
    return limit


def completion_input_from(data: dict[str, Any]) -> CompletionInput:
    """Validate an OpenAI chat-completion body into a ``ChatRequest`` (model may be empty
    when a managed ``prompt`` names the default model)."""
    for name in data:
        if name not in CHAT_FIELDS and name not in CHAT_UNSUPPORTED:
            raise InvalidRequest("unknown_parameter", f"Unrecognized request argument supplied: {name}", param=name)
    _refuse_unsupported(data)
    prompt = _optional(data, "prompt", _prompt)
    model = _optional(data, "model", _string) or ""
    if not model and prompt is None:
        raise InvalidRequest("missing_required_parameter", "You must provide a model parameter.", param="model")
    if data.get("messages") is None and prompt is None:
        raise InvalidRequest("missing_required_parameter", "Missing required parameter: 'messages'.", param="messages")
    messages = _optional(data, "messages", _messages) or []
    if not messages and prompt is None:
        raise InvalidRequest("empty_array", "'messages' must contain at least one message.", param="messages")
    stream = bool(_optional(data, "stream", _boolean))
    tools = _optional(data, "tools", _tools)
    tool_choice = _optional(data, "tool_choice", _tool_choice)
    _check_tool_choice(tool_choice, tools)
    request = ChatRequest(
        model=model,
        messages=messages,
        temperature=_optional(data, "temperature", lambda v, p: _number(v, p, 0, 2)),
        top_p=_optional(data, "top_p", lambda v, p: _number(v, p, 0, 1)),
        max_tokens=_max_tokens(data),
        stop=_optional(data, "stop", _stop),
        tools=tools,
        tool_choice=tool_choice,
        response_format=_optional(data, "response_format", _response_format),
        seed=_optional(data, "seed", lambda v, p: _integer(v, p, minimum=-(2**63), maximum=2**64 - 1)),
        user=_optional(data, "user", _string),
        presence_penalty=_optional(data, "presence_penalty", lambda v, p: _number(v, p, -2, 2)),
        frequency_penalty=_optional(data, "frequency_penalty", lambda v, p: _number(v, p, -2, 2)),
        logprobs=bool(_optional(data, "logprobs", _boolean)),
        top_logprobs=_optional(data, "top_logprobs", _integer),
    )
    return CompletionInput(
        request=request,
        stream=stream,
        include_usage=_stream_options(data, stream),
        prompt=prompt,
        choices=_optional(data, "n", _integer) or 1,
    )


def prompt_parts(request: ChatRequest) -> list[str]:
    """Everything the model reads, message by message, for counting its tokens: a conversation's
    earlier messages come back with each call, and their counts are kept (``tokens_count``)."""
    parts: list[str] = []
    for message in request.messages:
        parts.append(message.content or "")
        parts.extend(f"{call.name}{call.arguments}" for call in message.tool_calls or ())
    if request.tools:
        parts.append(json.dumps(request.tools))
    return parts


def prompt_chars(request: ChatRequest) -> int:
    """The length of everything the model reads, for the token estimate before the call."""
    total = 0
    for message in request.messages:
        total += len(message.content or "")
        for call in message.tool_calls or ():
            total += len(call.name) + len(call.arguments)
    if request.tools:
        total += len(json.dumps(request.tools))
    return total


# --- legacy completions --------------------------------------------------------------------

# ``POST /v1/completions``: honoured, or (``logit_bias``, ``user``) accepted and ignored.
TEXT_COMPLETION_FIELDS = frozenset(
    {
        "model", "prompt", "max_tokens", "stop", "stream", "stream_options", "temperature", "top_p", "n",
        "seed", "user", "presence_penalty", "frequency_penalty", "logit_bias", "echo", "suffix", "best_of",
        "logprobs",
    }
)  # fmt: skip
MAX_PROMPTS = 16


@dataclass(slots=True)
class TextCompletionInput:
    """A legacy completion: one chat request per prompt, answered as ``text_completion`` choices."""

    model: str
    prompts: list[str | list[int]]  # texts, or token arrays read back by the model's tokenizer
    options: dict[str, Any]
    stream: bool
    include_usage: bool

    @property
    def has_tokens(self) -> bool:
        return any(isinstance(prompt, list) for prompt in self.prompts)

    def requests(self, texts: list[str]) -> list[ChatRequest]:
        """One chat request per prompt, given the prompts as texts."""
        return [
            ChatRequest(model=self.model, messages=[Message(role="user", content=text)], **self.options)
            for text in texts
        ]


def _prompts(value: Any) -> list[str | list[int]]:
    """A string, a list of strings, one token array or a list of token arrays, as OpenAI takes them."""
    if isinstance(value, str):
        return [value]
    items = _array(value, "prompt")
    if not items:
        raise InvalidRequest("empty_array", "'prompt' must contain at least one string.", param="prompt")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return [_token_array(items, "prompt")]
    if len(items) > MAX_PROMPTS:
        raise _value_error("prompt", f"at most {MAX_PROMPTS} prompts are allowed in one request.")
    return [
        _token_array(item, f"prompt[{index}]") if isinstance(item, list) else _string(item, f"prompt[{index}]")
        for index, item in enumerate(items)
    ]


def _refuse_text_unsupported(data: dict[str, Any]) -> None:
    if _optional(data, "echo", _boolean):
        raise InvalidRequest("unsupported_value", "echo=true is not supported; send echo=false.", param="echo")
    if _optional(data, "suffix", _string):
        raise InvalidRequest("unsupported_parameter", "The parameter 'suffix' is not supported.", param="suffix")
    if _optional(data, "best_of", lambda v, p: _integer(v, p, minimum=1, maximum=20)) not in (None, 1):
        raise InvalidRequest("unsupported_value", "Only best_of=1 is supported.", param="best_of")
    if _optional(data, "n", lambda v, p: _integer(v, p, minimum=1, maximum=128)) not in (None, 1):
        raise InvalidRequest("unsupported_value", "Only n=1 is supported on /v1/completions.", param="n")
    if _optional(data, "logprobs", lambda v, p: _integer(v, p, minimum=0, maximum=5)):
        raise InvalidRequest("unsupported_value", "logprobs are not supported on /v1/completions.", param="logprobs")
    _optional(data, "logit_bias", _logit_bias)
    _optional(data, "user", _string)


def text_completion_input_from(data: dict[str, Any]) -> TextCompletionInput:
    """Validate a legacy completion body: each prompt becomes one user message to a chat model."""
    _refuse_unknown(data, TEXT_COMPLETION_FIELDS)
    model = _optional(data, "model", _string)
    if not model:
        raise InvalidRequest("missing_required_parameter", "You must provide a model parameter.", param="model")
    if data.get("prompt") is None:
        raise InvalidRequest("missing_required_parameter", "Missing required parameter: 'prompt'.", param="prompt")
    _refuse_text_unsupported(data)
    stream = bool(_optional(data, "stream", _boolean))
    options = {
        "temperature": _optional(data, "temperature", lambda v, p: _number(v, p, 0, 2)),
        "top_p": _optional(data, "top_p", lambda v, p: _number(v, p, 0, 1)),
        "max_tokens": _optional(data, "max_tokens", lambda v, p: _integer(v, p, minimum=1, maximum=10_000_000)),
        "stop": _optional(data, "stop", _stop),
        "seed": _optional(data, "seed", lambda v, p: _integer(v, p, minimum=-(2**63), maximum=2**64 - 1)),
        "presence_penalty": _optional(data, "presence_penalty", lambda v, p: _number(v, p, -2, 2)),
        "frequency_penalty": _optional(data, "frequency_penalty", lambda v, p: _number(v, p, -2, 2)),
    }
    return TextCompletionInput(
        model=model,
        prompts=_prompts(data["prompt"]),
        options=options,
        stream=stream,
        include_usage=_stream_options(data, stream),
    )


# --- embeddings ----------------------------------------------------------------------------


MAX_TOKENS_PER_INPUT = 8192


def _token_array(value: list[Any], param: str) -> list[int]:
    if not value:
        raise _value_error(param, "a token array must not be empty.")
    if len(value) > MAX_TOKENS_PER_INPUT:
        raise _value_error(param, f"a token array holds at most {MAX_TOKENS_PER_INPUT} tokens.")
    return [_integer(token, f"{param}[{index}]", minimum=0, maximum=2**31 - 1) for index, token in enumerate(value)]


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    """A string, a list of strings, one token array (a list of integers) or a list of token arrays."""
    if isinstance(value, str):
        value = [value]
    items = _array(value, "input")
    if not items:
        raise InvalidRequest("empty_array", "'input' must contain at least one string.", param="input")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        return [_token_array(items, "input")]
    if len(items) > MAX_EMBEDDING_INPUTS:
        raise _value_error("input", f"at most {MAX_EMBEDDING_INPUTS} inputs are allowed.")
    inputs: list[str | list[int]] = []
    for index, item in enumerate(items):
        if isinstance(item, list):
            inputs.append(_token_array(item, f"input[{index}]"))
        else:
            inputs.append(_string(item, f"input[{index}]", allow_empty=False))
    return inputs


def embedding_input_from(data: dict[str, Any]) -> EmbeddingInput:
    """Validate an OpenAI embeddings body."""
    _refuse_unknown(data, EMBEDDING_FIELDS)
    model = _string(data.get("model"), "model", allow_empty=False) if "model" in data else ""
    if not model:
        raise InvalidRequest("missing_required_parameter", "You must provide a model parameter.", param="model")
    if data.get("input") is None:
        raise InvalidRequest("missing_required_parameter", "Missing required parameter: 'input'.", param="input")
    encoding = _optional(data, "encoding_format", _string) or "float"
    if encoding not in ("float", "base64"):
        raise _value_error("encoding_format", f"expected 'float' or 'base64', got {encoding!r}.")
    _optional(data, "user", _string)
    return EmbeddingInput(
        model=model,
        inputs=_embedding_inputs(data["input"]),
        encoding_format=encoding,
        dimensions=_optional(data, "dimensions", lambda v, p: _integer(v, p, minimum=1, maximum=65536)),
    )

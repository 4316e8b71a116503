"""OpenAI wire format: Chat Completions (plain and streamed), Embeddings, Models.

Shapes follow https://platform.openai.com/docs/api-reference: a stream is ``data: {chunk}``
frames ending with ``data: [DONE]``; with ``stream_options.include_usage`` every chunk carries
``"usage": null`` and one last chunk with empty ``choices`` carries the usage.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import uuid
from typing import Any

from orchestration.simulator.behaviour import Behaviour
from orchestration.simulator.frames import StreamPlan, dumps, sse_data
from orchestration.simulator.reply import Prompt, Reply, WireInvalid
from orchestration.simulator.text import count_tokens, embedding_vector

FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length", "tool_calls": "tool_calls"}
MALFORMED_FRAME = b'data: {"id":"chatcmpl-broken","object":"chat.completion.chunk","choices":[{"delta":{"content":\n\n'
SYSTEM_FINGERPRINT = "fp_simulator"


def _content_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
    return []


def _message_texts(message: dict[str, Any]) -> list[str]:
    texts = _content_texts(message.get("content"))
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            texts.append(str(call["function"].get("name", "")))
            texts.append(str(call["function"].get("arguments", "")))
    return texts


def _positive_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WireInvalid(f"Invalid '{name}': integer below minimum value. Expected a value >= 1.", name)
    return value


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise WireInvalid("Invalid 'stop': expected a string or an array of strings.", "stop")


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    return value if isinstance(value, dict) else {}


def chat_prompt(body: Any) -> Prompt:
    if not isinstance(body, dict):
        raise WireInvalid("We could not parse the JSON body of your request.")
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        raise WireInvalid("you must provide a model parameter", "model")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise WireInvalid("Invalid 'messages': expected a non-empty array of message objects.", "messages")
    texts = [text for message in messages for text in _message_texts(message)]
    max_tokens = _positive_int(body, "max_completion_tokens") or _positive_int(body, "max_tokens")
    options = _object(body, "stream_options")
    response_format = _object(body, "response_format")
    return Prompt(
        model=model,
        texts=texts,
        assistant_turns=sum(1 for message in messages if message.get("role") == "assistant"),
        max_tokens=max_tokens,
        stops=_stops(body.get("stop")),
        stream=body.get("stream") is True,
        include_usage=bool(options.get("include_usage")),
        json_mode=response_format.get("type") in ("json_object", "json_schema"),
        json_schema=_response_schema(response_format),
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        logprobs=body.get("logprobs") is True,
        top_logprobs=_top_logprobs(body),
    )


def _response_schema(response_format: dict[str, Any]) -> dict[str, Any] | None:
    """The schema of ``response_format: {type: json_schema, json_schema: {name, schema}}``, if any."""
    if response_format.get("type") != "json_schema":
        return None
    schema = _object(response_format, "json_schema").get("schema")
    return schema if isinstance(schema, dict) else None


def _top_logprobs(body: dict[str, Any]) -> int:
    value = body.get("top_logprobs")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
        raise WireInvalid("Invalid 'top_logprobs': expected an integer between 0 and 20.", "top_logprobs")
    if body.get("logprobs") is not True:
        raise WireInvalid("Invalid 'top_logprobs': logprobs must be set to true.", "top_logprobs")
    return value


def token_logprob(token: str, position: int, top: int) -> dict[str, Any]:
    """A deterministic logprob entry for one token, shaped as OpenAI's ``logprobs.content[i]``: the
    chosen token is always the likeliest, its ``top`` alternatives follow in falling order."""
    digest = hashlib.blake2b(f"{position}:{token}".encode(), digest_size=4).digest()
    chosen = -round(int.from_bytes(digest, "big") / 2**32 * 0.5, 6)
    ranked = [(token, chosen)] + [
        (f"{token.strip() or token}~{rank}", round(chosen - rank, 6)) for rank in range(1, top)
    ]
    return {
        "token": token,
        "logprob": chosen,
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": text, "logprob": value, "bytes": list(text.encode())} for text, value in ranked[:top]
        ],
    }


def _logprobs(prompt: Prompt, reply: Reply) -> dict[str, Any] | None:
    if not prompt.logprobs:
        return None
    content = [token_logprob(token, index, prompt.top_logprobs) for index, token in enumerate(reply.tokens)]
    return {"content": content, "refusal": None}


def _tools(value: Any) -> dict[str, dict[str, Any]]:
    tools: dict[str, dict[str, Any]] = {}
    for tool in value if isinstance(value, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            parameters = function.get("parameters")
            tools[function["name"]] = parameters if isinstance(parameters, dict) else {}
    return tools


def _tool_choice(value: Any) -> str:
    """OpenAI's ``tool_choice``: "none" | "auto" | "required" | {"type": "function", "function": {"name"}}."""
    if value in ("none", "auto", "required"):
        return str(value)
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        return str(value["function"].get("name") or "auto")
    return "auto"


def _usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _tool_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"id": f"call_{call.id}", "type": "function", "function": {"name": call.name, "arguments": call.arguments_json}}
        for call in reply.tool_calls
    ]


def chat_body(prompt: Prompt, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = _tool_calls(reply)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": prompt.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": _logprobs(prompt, reply),
                "finish_reason": FINISH[reply.finish],
            }
        ],
        "usage": _usage(reply),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def chat_stream(prompt: Prompt, reply: Reply) -> StreamPlan:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": prompt.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if prompt.include_usage:
            payload["usage"] = None
        return sse_data(payload)

    plan = StreamPlan()
    plan.add(chunk({"role": "assistant", "content": "", "refusal": None}))
    if prompt.logprobs:
        for position, token in enumerate(reply.tokens):
            entry = token_logprob(token, position, prompt.top_logprobs)
            logprobs = {"content": [entry], "refusal": None}
            choice = {"index": 0, "delta": {"content": token}, "logprobs": logprobs, "finish_reason": None}
            payload: dict[str, Any] = {**base, "choices": [choice]}
            plan.add(sse_data({**payload, "usage": None} if prompt.include_usage else payload), 1)
    else:
        # Text chunks differ only in the token: splice it into one encoded template (the benchmark hot path).
        before, after = chunk({"content": "\x00"}).split(dumps("\x00"))
        plan.frames.extend((before + dumps(token) + after, 1) for token in reply.tokens)
    for index, call in enumerate(reply.tool_calls):
        opening = {"index": index, "id": f"call_{call.id}", "type": "function"}
        plan.add(chunk({"tool_calls": [{**opening, "function": {"name": call.name, "arguments": ""}}]}), 1)
        for piece in call.pieces:
            plan.add(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}), 1)
    tail = chunk({}, FINISH[reply.finish])
    if prompt.include_usage:
        tail += sse_data({**base, "choices": [], "usage": _usage(reply)})
    plan.tail = tail + b"data: [DONE]\n\n"
    return plan


_STATUS_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "invalid_request_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(
    status: int, kind: str | None, prompt: Prompt | None, behaviour: Behaviour | None = None
) -> tuple[int, dict[str, Any]]:
    if kind == "context_window":
        used = (prompt.prompt_tokens if prompt else 0) + 128000
        message = (
            f"This model's maximum context length is 128000 tokens. However, your messages resulted in {used} "
            "tokens. Please reduce the length of the messages."
        )
        return status, _error(message, "invalid_request_error", "messages", "context_length_exceeded")
    if kind == "content_policy":
        message = "Your request was rejected as a result of our safety system."
        return status, _error(message, "invalid_request_error", None, "content_policy_violation")
    fallback = _STATUS_ERRORS[500] if status >= 500 else _STATUS_ERRORS[400]
    error_type, code, message = _STATUS_ERRORS.get(status, fallback)
    return status, _error(message, error_type, None, code)


def invalid_body(error: WireInvalid) -> dict[str, Any]:
    return _error(error.message, "invalid_request_error", error.param, None)


def _error(message: str, error_type: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def embedding_request(body: Any) -> tuple[str, list[str], int, str]:
    """The model, input texts, dimensions and encoding format of an embeddings request."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise WireInvalid("you must provide a model parameter", "model")
    raw = body.get("input")
    items = raw if isinstance(raw, list) and raw and not all(isinstance(i, int) for i in raw) else [raw]
    texts = []
    for item in items:
        if isinstance(item, str) and item:
            texts.append(item)
        elif isinstance(item, list) and item and all(isinstance(i, int) for i in item):
            texts.append(" ".join(str(i) for i in item))
        else:
            raise WireInvalid("'input' : input must be a non-empty string or an array of them", "input")
    dimensions = body.get("dimensions", 256)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise WireInvalid("Invalid 'dimensions': expected an integer between 1 and 4096.", "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise WireInvalid("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
    return body["model"], texts, dimensions, encoding


def embedding_body(model: str, texts: list[str], dimensions: int, encoding: str) -> dict[str, Any]:
    data = []
    for index, text in enumerate(texts):
        vector: Any = embedding_vector(text, dimensions)
        if encoding == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(max(1, count_tokens(text)) for text in texts)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "simulator"}


def models_body(names: list[str]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(name) for name in names]}

"""Google Gemini wire format: generateContent, streamGenerateContent, embedContent, batchEmbedContents.

Shapes follow https://ai.google.dev/api: replies are ``GenerateContentResponse`` objects
(``candidates[].content.parts[]`` with ``text`` or ``functionCall``, ``finishReason``,
``usageMetadata``); ``streamGenerateContent?alt=sse`` sends one per ``data:`` frame (CRLF
separated, no end marker), and without ``alt=sse`` a streamed JSON array. A blocked prompt is a
200 whose ``promptFeedback.blockReason`` is set, as the real service does; errors are
``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import uuid
from typing import Any

from orchestration.simulator.behaviour import Behaviour
from orchestration.simulator.frames import StreamPlan, dumps
from orchestration.simulator.reply import Prompt, Reply, WireInvalid
from orchestration.simulator.text import embedding_vector

FINISH = {"stop": "STOP", "stop_sequence": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"}
MALFORMED_SSE_FRAME = b'data: {"candidates": [{"content": {"parts": [{"text": \r\n\r\n'
MALFORMED_ARRAY_FRAME = b',\r\n{"candidates": [{"content": {"parts": [{"text": '


def _part_texts(parts: Any) -> list[str]:
    texts: list[str] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if "text" in part:
            texts.append(str(part["text"]))
        for key in ("functionCall", "functionResponse"):
            if isinstance(part.get(key), dict):
                texts.extend(
                    [str(part[key].get("name", "")), str(part[key].get("args", part[key].get("response", "")))]
                )
    return texts


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config = body.get("generationConfig", {})
    if not isinstance(config, dict):
        raise WireInvalid('Invalid JSON payload received. Unknown name "generationConfig": expected an object.')
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise WireInvalid("* GenerateContentRequest.generation_config.max_output_tokens: must be a positive integer.")
    stops = config.get("stopSequences", [])
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise WireInvalid("* GenerateContentRequest.generation_config.stop_sequences: must be a list of strings.")
    return config


def content_prompt(model: str, body: Any, *, stream: bool) -> Prompt:
    if not isinstance(body, dict):
        raise WireInvalid("Invalid JSON payload received. Expected an object.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents or not all(isinstance(c, dict) for c in contents):
        raise WireInvalid("* GenerateContentRequest.contents: contents is not specified")
    config = _generation_config(body)
    system = body.get("systemInstruction") or body.get("system_instruction") or {}
    texts = _part_texts(system.get("parts") if isinstance(system, dict) else None)
    texts += [text for content in contents for text in _part_texts(content.get("parts"))]
    return Prompt(
        model=model,
        texts=[text for text in texts if text],
        assistant_turns=sum(1 for content in contents if content.get("role") == "model"),
        max_tokens=config.get("maxOutputTokens"),
        stops=config.get("stopSequences", []),
        stream=stream,
        json_mode=config.get("responseMimeType") == "application/json",
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("toolConfig") or body.get("tool_config")),
    )


def _tools(value: Any) -> dict[str, dict[str, Any]]:
    tools: dict[str, dict[str, Any]] = {}
    for tool in value if isinstance(value, list) else []:
        declarations = tool.get("functionDeclarations") if isinstance(tool, dict) else None
        for declaration in declarations if isinstance(declarations, list) else []:
            if isinstance(declaration, dict) and isinstance(declaration.get("name"), str):
                parameters = declaration.get("parameters")
                tools[declaration["name"]] = parameters if isinstance(parameters, dict) else {}
    return tools


def _tool_choice(value: Any) -> str:
    """Gemini's ``toolConfig.functionCallingConfig``: mode AUTO | ANY | NONE, and ``allowedFunctionNames``."""
    config = value.get("functionCallingConfig") if isinstance(value, dict) else None
    if not isinstance(config, dict):
        return "auto"
    mode = str(config.get("mode", "AUTO")).upper()
    names = config.get("allowedFunctionNames")
    if mode == "ANY" and isinstance(names, list) and len(names) == 1 and isinstance(names[0], str):
        return names[0]
    return {"ANY": "required", "NONE": "none"}.get(mode, "auto")


def _usage(prompt_tokens: int, candidate_tokens: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidate_tokens,
        "totalTokenCount": prompt_tokens + candidate_tokens,
    }


def _parts(reply: Reply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": reply.text}] if reply.tokens or not reply.tool_calls else []
    parts.extend({"functionCall": {"name": call.name, "args": call.arguments}} for call in reply.tool_calls)
    return parts


def content_body(prompt: Prompt, reply: Reply) -> dict[str, Any]:
    return {
        "candidates": [
            {"content": {"parts": _parts(reply), "role": "model"}, "finishReason": FINISH[reply.finish], "index": 0}
        ],
        "usageMetadata": _usage(reply.prompt_tokens, reply.completion_tokens),
        "modelVersion": prompt.model,
        "responseId": uuid.uuid4().hex[:22],
    }


def content_chunks(prompt: Prompt, reply: Reply) -> tuple[list[tuple[dict[str, Any], int]], dict[str, Any]]:
    """The streamed responses with the tokens each carries, and the closing one (finish reason, usage)."""
    response_id = uuid.uuid4().hex[:22]

    def chunk(parts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        candidate = {"content": {"parts": parts, "role": "model"}, "index": 0}
        return {"candidates": [{**candidate, **extra}], "modelVersion": prompt.model, "responseId": response_id}

    chunks = [(chunk([{"text": token}]), 1) for token in reply.tokens]
    chunks += [
        (chunk([{"functionCall": {"name": call.name, "args": call.arguments}}]), 1 + len(call.pieces))
        for call in reply.tool_calls
    ]
    closing = chunk([{"text": ""}], finishReason=FINISH[reply.finish])
    closing["usageMetadata"] = _usage(reply.prompt_tokens, reply.completion_tokens)
    return chunks, closing


def sse_single(payload: dict[str, Any]) -> bytes:
    return b"data: " + dumps(payload) + b"\r\n\r\n"


def array_single(payload: dict[str, Any]) -> bytes:
    return b"[" + dumps(payload) + b"]"


def sse_stream(prompt: Prompt, reply: Reply) -> StreamPlan:
    chunks, closing = content_chunks(prompt, reply)
    plan = StreamPlan([(sse_single(payload), tokens) for payload, tokens in chunks])
    plan.tail = sse_single(closing)
    return plan


def array_stream(prompt: Prompt, reply: Reply) -> StreamPlan:
    chunks, closing = content_chunks(prompt, reply)
    plan = StreamPlan([(b"[", 0)])
    for index, (payload, tokens) in enumerate(chunks):
        plan.add((b",\r\n" if index else b"") + dumps(payload), tokens)
    plan.tail = (b",\r\n" if chunks else b"") + dumps(closing) + b"]"
    return plan


def blocked_body(prompt: Prompt | None) -> dict[str, Any]:
    ratings = [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"},
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    ]
    prompt_tokens = prompt.prompt_tokens if prompt else 0
    return {
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": ratings},
        "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
        "modelVersion": prompt.model if prompt else "",
    }


_STATUS_ERRORS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials. Expected a valid API key."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "models/unknown is not found for API version v1beta"),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}


def error_body(
    status: int, kind: str | None, prompt: Prompt | None, behaviour: Behaviour | None = None
) -> tuple[int, dict[str, Any]]:
    if kind == "content_policy":
        return 200, blocked_body(prompt)
    if kind == "context_window":
        used = (prompt.prompt_tokens if prompt else 0) + 1048576
        message = f"The input token count ({used}) exceeds the maximum number of tokens allowed (1048576)."
        return status, _error(status, "INVALID_ARGUMENT", message)
    fallback = _STATUS_ERRORS[500] if status >= 500 else _STATUS_ERRORS[400]
    code, message = _STATUS_ERRORS.get(status, fallback)
    body = _error(status, code, message)
    if status == 429 and behaviour is not None and behaviour.retry_after is not None:
        retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{behaviour.retry_after:g}s"}
        body["error"]["details"] = [retry]
    return status, body


def invalid_body(error: WireInvalid) -> dict[str, Any]:
    return _error(400, "INVALID_ARGUMENT", error.message)


def _error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": status, "message": message, "status": code}}


def _embed_text(request: Any) -> tuple[str, int]:
    if not isinstance(request, dict) or not isinstance(request.get("content"), dict):
        raise WireInvalid("* EmbedContentRequest.content: content is not specified")
    text = " ".join(_part_texts(request["content"].get("parts")))
    if not text:
        raise WireInvalid("* EmbedContentRequest.content: contents is not specified")
    dimensions = request.get("outputDimensionality", 256)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise WireInvalid("* EmbedContentRequest.output_dimensionality: must be between 1 and 4096")
    return text, dimensions


def embed_body(body: Any) -> dict[str, Any]:
    text, dimensions = _embed_text(body)
    return {"embedding": {"values": embedding_vector(text, dimensions)}}


def batch_embed_body(body: Any) -> dict[str, Any]:
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise WireInvalid("* BatchEmbedContentsRequest.requests: at least one request is required")
    embedded = [_embed_text(request) for request in requests]
    return {"embeddings": [{"values": embedding_vector(text, dimensions)} for text, dimensions in embedded]}


def count_tokens_body(prompt: Prompt) -> dict[str, Any]:
    return {"totalTokens": prompt.prompt_tokens}

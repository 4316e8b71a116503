"""The ``/v1`` endpoints in the OpenAPI document at ``/api/schema/``.

The ``/v1`` views are plain async views with a hand-written validator
(``orchestration.validation``), so drf-spectacular cannot introspect them; this module
describes them, and a drf-spectacular post-processing hook adds the description to the
generated document. ``tests/orchestration/test_completions_api.py`` checks that the accepted
fields here and in the validator are the same.
"""

from __future__ import annotations

from typing import Any

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"{_REF}{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_BOOLEAN = {"type": "boolean"}
_OBJECT = {"type": "object", "additionalProperties": True}

_TEXT_PART = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"type": "string", "enum": ["text"]}, "text": _STRING},
    "additionalProperties": False,
}

_TOOL_CALL = {
    "type": "object",
    "required": ["id", "function"],
    "properties": {
        "id": _STRING,
        "type": {"type": "string", "enum": ["function"]},
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _STRING, "arguments": _STRING},
        },
    },
    "additionalProperties": False,
}

_TOKENS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "maxItems": 8192}

SCHEMAS: dict[str, Any] = {
    "ChatMessage": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
            "content": _nullable({"oneOf": [_STRING, {"type": "array", "items": _TEXT_PART}]}),
            "name": _STRING,
            "tool_calls": {"type": "array", "items": _TOOL_CALL, "description": "Assistant messages only."},
            "tool_call_id": {"type": "string", "description": "Required for tool messages."},
            "refusal": _nullable(_STRING),
            "annotations": {"type": "array", "items": _OBJECT, "description": "Assistant messages only; ignored."},
            "audio": _nullable({"type": "object", "description": "Assistant messages only; must be null."}),
            "function_call": _nullable({"type": "object", "description": "Assistant messages only; must be null."}),
            "parsed": {"description": "Assistant messages only (the SDK's parsed copy); ignored."},
            "reasoning": {"description": "Assistant messages only; ignored."},
        },
        "additionalProperties": False,
    },
    "Tool": {
        "type": "object",
        "required": ["type", "function"],
        "properties": {
            "type": {"type": "string", "enum": ["function"]},
            "function": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": _STRING, "description": _STRING, "parameters": _OBJECT, "strict": _BOOLEAN},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    },
    "PromptReference": {
        "type": "object",
        "description": "Switchyard extension: render a managed prompt template in front of the messages.",
        "required": ["name"],
        "properties": {
            "name": _STRING,
            "version": {"type": "integer", "minimum": 1, "description": "Default: the newest version."},
            "variables": {"type": "object", "additionalProperties": {"oneOf": [_STRING, {"type": "number"}]}},
        },
        "additionalProperties": False,
    },
    "ChatCompletionRequest": {
        "type": "object",
        "description": "OpenAI's chat-completion request. `model` and `messages` are required unless `prompt` "
        "names a template (which adds a system message and may name the model). Unknown fields are refused "
        "with 400; n > 1 makes n upstream calls, usage summed.",
        "properties": {
            "model": _STRING,
            "messages": {"type": "array", "items": _ref("ChatMessage"), "minItems": 1},
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
            "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "max_tokens": _nullable({"type": "integer", "minimum": 1}),
            "max_completion_tokens": _nullable({"type": "integer", "minimum": 1}),
            "n": _nullable({"type": "integer", "minimum": 1, "maximum": 8, "description": "n > 1: not with stream."}),
            "stream": _nullable(_BOOLEAN),
            "stream_options": _nullable(
                {
                    "type": "object",
                    "properties": {"include_usage": _BOOLEAN, "include_obfuscation": _BOOLEAN},
                    "additionalProperties": False,
                }
            ),
            "stop": _nullable({"oneOf": [_STRING, {"type": "array", "items": _STRING, "maxItems": 4}]}),
            "seed": _nullable(_INTEGER),
            "user": _nullable(_STRING),
            "presence_penalty": _nullable({"type": "number", "minimum": -2, "maximum": 2}),
            "frequency_penalty": _nullable({"type": "number", "minimum": -2, "maximum": 2}),
            "tools": _nullable({"type": "array", "items": _ref("Tool"), "maxItems": 128}),
            "tool_choice": _nullable({"oneOf": [{"type": "string", "enum": ["none", "auto", "required"]}, _OBJECT]}),
            "parallel_tool_calls": _nullable(_BOOLEAN),
            "response_format": _nullable(
                {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
                        "json_schema": _OBJECT,
                    },
                }
            ),
            "logprobs": _nullable(
                {"type": "boolean", "description": "OpenAI, OpenAI-compatible and simulator models only; else 400."}
            ),
            "top_logprobs": _nullable(
                {"type": "integer", "minimum": 0, "maximum": 20, "description": "Needs logprobs."}
            ),
            "logit_bias": _nullable(_OBJECT),
            "metadata": _nullable(_OBJECT),
            "store": _nullable(_BOOLEAN),
            "service_tier": _nullable(_STRING),
            "prompt_cache_key": _nullable(_STRING),
            "safety_identifier": _nullable(_STRING),
            "reasoning_effort": _nullable({"type": "string", "description": "Accepted and ignored."}),
            "verbosity": _nullable({"type": "string", "description": "Accepted and ignored."}),
            "modalities": _nullable({"type": "array", "items": {"type": "string", "enum": ["text"]}}),
            "prompt": _ref("PromptReference"),
        },
        "additionalProperties": False,
    },
    "Usage": {
        "type": "object",
        "properties": {"prompt_tokens": _INTEGER, "completion_tokens": _INTEGER, "total_tokens": _INTEGER},
    },
    "ChatCompletion": {
        "type": "object",
        "properties": {
            "id": _STRING,
            "object": {"type": "string", "enum": ["chat.completion"]},
            "created": _INTEGER,
            "model": {"type": "string", "description": "The model that served the call (see X-Served-Model)."},
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": _INTEGER,
                        "message": {
                            "type": "object",
                            "properties": {
                                "role": {"type": "string", "enum": ["assistant"]},
                                "content": _nullable(_STRING),
                                "refusal": _nullable(_STRING),
                                "tool_calls": {"type": "array", "items": _TOOL_CALL},
                            },
                        },
                        "logprobs": _nullable(_OBJECT),
                        "finish_reason": {"type": "string", "enum": ["stop", "length", "tool_calls", "content_filter"]},
                    },
                },
            },
            "usage": _ref("Usage"),
            "system_fingerprint": _nullable(_STRING),
        },
    },
    "ChatCompletionChunk": {
        "type": "object",
        "description": "One `data:` line of a stream; the stream ends with `data: [DONE]`. A failure after the "
        'stream began is sent as `data: {"error": {...}}` before `[DONE]`.',
        "properties": {
            "id": _STRING,
            "object": {"type": "string", "enum": ["chat.completion.chunk"]},
            "created": _INTEGER,
            "model": _STRING,
            "choices": {"type": "array", "items": _OBJECT},
            "usage": _nullable(_ref("Usage")),
        },
    },
    "TextCompletionRequest": {
        "type": "object",
        "description": "OpenAI's legacy completion request, served by chat models: each prompt is sent as one "
        "user message. echo must be false, suffix empty, n and best_of 1.",
        "required": ["model", "prompt"],
        "properties": {
            "model": _STRING,
            "prompt": {
                "oneOf": [
                    _STRING,
                    {"type": "array", "items": _STRING, "minItems": 1, "maxItems": 16},
                    _TOKENS,
                    {"type": "array", "items": _TOKENS, "minItems": 1, "maxItems": 16},
                ]
            },
            "max_tokens": _nullable({"type": "integer", "minimum": 1}),
            "stop": _nullable({"oneOf": [_STRING, {"type": "array", "items": _STRING, "maxItems": 4}]}),
            "stream": _nullable(_BOOLEAN),
            "stream_options": _nullable({"type": "object", "properties": {"include_usage": _BOOLEAN}}),
            "temperature": _nullable({"type": "number", "minimum": 0, "maximum": 2}),
            "top_p": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
            "n": _nullable({"type": "integer", "enum": [1]}),
            "best_of": _nullable({"type": "integer", "enum": [1]}),
            "echo": _nullable({"type": "boolean", "enum": [False]}),
            "suffix": _nullable({"type": "string", "maxLength": 0}),
            "logprobs": _nullable({"type": "integer", "enum": [0]}),
            "seed": _nullable(_INTEGER),
            "user": _nullable(_STRING),
            "presence_penalty": _nullable({"type": "number", "minimum": -2, "maximum": 2}),
            "frequency_penalty": _nullable({"type": "number", "minimum": -2, "maximum": 2}),
            "logit_bias": _nullable(_OBJECT),
        },
        "additionalProperties": False,
    },
    "TextCompletion": {
        "type": "object",
        "description": "A `text_completion`; streamed, each `data:` line is one with a text delta per choice.",
        "properties": {
            "id": _STRING,
            "object": {"type": "string", "enum": ["text_completion"]},
            "created": _INTEGER,
            "model": _STRING,
            "choices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "text": _STRING,
                        "index": _INTEGER,
                        "logprobs": _nullable(_OBJECT),
                        "finish_reason": _nullable(_STRING),
                    },
                },
            },
            "usage": _ref("Usage"),
        },
    },
    "EmbeddingRequest": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": _STRING,
            "input": {
                "description": "Text, texts, or cl100k token arrays (read back as text for OpenAI-family models).",
                "oneOf": [
                    _STRING,
                    {"type": "array", "items": _STRING, "minItems": 1, "maxItems": 2048},
                    _TOKENS,
                    {"type": "array", "items": _TOKENS, "minItems": 1, "maxItems": 2048},
                ],
            },
            "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            "dimensions": {"type": "integer", "minimum": 1},
            "user": _STRING,
        },
        "additionalProperties": False,
    },
    "EmbeddingList": {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "object": {"type": "string", "enum": ["embedding"]},
                        "index": _INTEGER,
                        "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}}, _STRING]},
                    },
                },
            },
            "model": _STRING,
            "usage": {"type": "object", "properties": {"prompt_tokens": _INTEGER, "total_tokens": _INTEGER}},
        },
    },
    "Model": {
        "type": "object",
        "properties": {
            "id": _STRING,
            "object": {"type": "string", "enum": ["model"]},
            "created": _INTEGER,
            "owned_by": _STRING,
        },
    },
    "ModelList": {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["list"]},
            "data": {"type": "array", "items": _ref("Model")},
        },
    },
    "OpenAIError": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "type": _STRING,
                    "code": _STRING,
                    "message": _STRING,
                    "param": _nullable(_STRING),
                    "request_id": _STRING,
                },
            }
        },
    },
}

_SECURITY: list[dict[str, list[str]]] = [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]
SECURITY_SCHEMES = {
    "ApiKeyBearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <api key>"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": _STRING}


_LIMIT_HEADERS = {
    name: _header(description)
    for name, description in {
        "x-ratelimit-limit-requests": "Requests per minute allowed to this key.",
        "x-ratelimit-remaining-requests": "Requests left before the limit.",
        "x-ratelimit-reset-requests": "Until the request quota is whole again, e.g. 1s, 6m0s.",
        "x-ratelimit-limit-tokens": "Tokens per minute allowed to this key.",
        "x-ratelimit-remaining-tokens": "Tokens left before the limit.",
        "x-ratelimit-reset-tokens": "Until the token quota is whole again.",
        "RateLimit": "IETF draft-ietf-httpapi-ratelimit-headers: remaining quota per policy.",
        "RateLimit-Policy": "IETF draft-ietf-httpapi-ratelimit-headers: the key's policies.",
    }.items()
}
_SERVED_HEADERS = {
    "X-Cache": _header("HIT | SEMANTIC-HIT | STALE | MISS | BYPASS"),
    "X-Served-Model": _header("The model that answered."),
    "X-Served-Provider": _header("The provider that answered."),
    "X-Served-Deployment": _header("The deployment of the model that answered (docs/api.md, Deployments)."),
    "X-Served-Simulated": _header("true when the built-in simulator wrote the answer, not a real model."),
    "X-Fallback-From": _header("The model asked for, when a fallback answered."),
    "X-Cache-Entry": _header("On a SEMANTIC-HIT: a token to report the answer wrong (POST /v1/cache/wrong-hits)."),
    "X-Cost-USD": _header("The call's cost (not on streamed responses: it is known only at the end)."),
    "X-Request-ID": _header("The request's id, echoed when the client sent one."),
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("OpenAIError")}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "Malformed JSON, a wrong type, an unknown field or an unsupported value (`param` names it).",
        401: "No API key, or a bad one.",
        403: "This key may not use the model.",
        404: "Unknown model.",
        413: "Body larger than the upload limit.",
        429: "Rate limit or monthly budget (`budget_exceeded`); see Retry-After and the rate-limit headers.",
        502: "The provider failed.",
        503: "No provider available; see Retry-After.",
        504: "The 30 s deadline passed.",
    }
    responses = {str(status): _error(texts[status]) for status in statuses}
    if "429" in responses:
        responses["429"]["headers"] = {"Retry-After": _header("Seconds to wait."), **_LIMIT_HEADERS}
    return responses


def _ok(description: str, content: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": description, "content": content, "headers": headers}}


PATHS: dict[str, Any] = {
    "/v1/chat/completions": {
        "post": {
            "operationId": "v1_chat_completions_create",
            "tags": ["v1"],
            "summary": "Create a chat completion (OpenAI-compatible)",
            "description": "Set `stream: true` for Server-Sent Events (`text/event-stream`) of chunks.",
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("ChatCompletionRequest")}},
            },
            "responses": {
                **_ok(
                    "The completion, or its stream.",
                    {
                        "application/json": {"schema": _ref("ChatCompletion")},
                        "text/event-stream": {"schema": _ref("ChatCompletionChunk")},
                    },
                    {**_LIMIT_HEADERS, **_SERVED_HEADERS},
                ),
                **_errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
            },
        }
    },
    "/v1/completions": {
        "post": {
            "operationId": "v1_completions_create",
            "tags": ["v1"],
            "summary": "Create a legacy text completion (OpenAI-compatible, over chat models)",
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("TextCompletionRequest")}},
            },
            "responses": {
                **_ok(
                    "One choice per prompt, or their stream.",
                    {
                        "application/json": {"schema": _ref("TextCompletion")},
                        "text/event-stream": {"schema": _ref("TextCompletion")},
                    },
                    {**_LIMIT_HEADERS, **_SERVED_HEADERS},
                ),
                **_errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
            },
        }
    },
    "/v1/embeddings": {
        "post": {
            "operationId": "v1_embeddings_create",
            "tags": ["v1"],
            "summary": "Create embeddings (OpenAI-compatible)",
            "security": _SECURITY,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("EmbeddingRequest")}}},
            "responses": {
                **_ok(
                    "One vector per input.",
                    {"application/json": {"schema": _ref("EmbeddingList")}},
                    {**_LIMIT_HEADERS, **_SERVED_HEADERS},
                ),
                **_errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
            },
        }
    },
    "/v1/models": {
        "get": {
            "operationId": "v1_models_list",
            "tags": ["v1"],
            "summary": "The models this key may use",
            "security": _SECURITY,
            "responses": {**_ok("The list.", {"application/json": {"schema": _ref("ModelList")}}, {}), **_errors(401)},
        }
    },
    "/v1/cache/wrong-hits": {
        "post": {
            "operationId": "v1_cache_wrong_hits_create",
            "tags": ["v1"],
            "summary": "Report a semantic cache hit as the wrong answer: its entry is evicted",
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["cache_entry"],
                            "properties": {"cache_entry": {"type": "string", "description": "X-Cache-Entry"}},
                        }
                    }
                },
            },
            "responses": {
                **_ok(
                    "Evicted; the model's learned floor after the report.",
                    {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "object": {"type": "string", "enum": ["cache.wrong_hit"]},
                                    "model": _STRING,
                                    "evicted": {"type": "boolean"},
                                    "learned_floor": {"type": "number"},
                                },
                            }
                        }
                    },
                    {},
                ),
                **_errors(400, 401, 404),
            },
        }
    },
    "/v1/models/{model}": {
        "get": {
            "operationId": "v1_models_retrieve",
            "tags": ["v1"],
            "summary": "One model this key may use",
            "security": _SECURITY,
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": _STRING}],
            "responses": {
                **_ok("The model.", {"application/json": {"schema": _ref("Model")}}, {}),
                **_errors(401, 404),
            },
        }
    },
}


def openapi_add_v1(result: dict[str, Any], generator: Any = None, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: add the ``/v1`` paths and their schemas."""
    result.setdefault("paths", {}).update(PATHS)
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    return result

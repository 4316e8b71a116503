"""The ``/api/v1`` routes drf-spectacular cannot see, and how the API is authenticated.

Posting a chat message is an async view, and the two event streams are Channels consumers:
none is a DRF view, so the generated document would leave them out. A post-processing hook
adds them here, referring to the serializers' own components (``MessageOutput``,
``TaskEventOutput``) so that the fields are described in one place. The extension at the end
tells drf-spectacular that ``ApiKeyAuthentication`` is the API-key scheme that ``/v1`` uses.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from orchestration.openapi import SECURITY_SCHEMES

_ERROR = {"$ref": "#/components/schemas/OpenAIError"}
_SECURITY: list[dict[str, list[str]]] = [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}, {"cookieAuth": []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _errors(texts: dict[int, str]) -> dict[str, Any]:
    return {
        str(status): {"description": text, "content": {"application/json": {"schema": _ERROR}}}
        for status, text in texts.items()
    }


_RESUME = [
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "The id of the last event received: the stream resumes after it, nothing lost or repeated.",
    },
    {
        "name": "last_event_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "The same as the Last-Event-ID header, for clients that cannot set headers.",
    },
]
_SSE_HEADERS = {
    "Cache-Control": {"schema": {"type": "string"}, "description": "no-cache"},
    "X-Accel-Buffering": {"schema": {"type": "string"}, "description": "no (proxies must not buffer)"},
}


def _event_stream(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": _SSE_HEADERS,
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }


MESSAGE_POST_RESPONSE = {
    "type": "object",
    "required": ["user_message", "assistant_message", "stream_url"],
    "properties": {
        "user_message": _ref("MessageOutput"),
        "assistant_message": _ref("MessageOutput"),
        "stream_url": {"type": "string", "description": "GET it for the reply's events (text/event-stream)."},
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/conversations/{conversation_id}/messages": {
        "get": {
            "operationId": "v1_conversations_messages_list",
            "summary": "The conversation's messages, oldest first.",
            "tags": ["chat"],
            "security": _SECURITY,
            "parameters": [
                _path_id("conversation_id"),
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
                {"name": "offset", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
            ],
            "responses": {
                "200": {
                    "description": "One page of messages.",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["count", "results"],
                                "properties": {
                                    "count": {"type": "integer"},
                                    "next": {"type": "string", "nullable": True},
                                    "previous": {"type": "string", "nullable": True},
                                    "results": {"type": "array", "items": _ref("MessageOutput")},
                                },
                            }
                        }
                    },
                },
                **_errors({401: "Not authenticated.", 404: "No such conversation of yours."}),
            },
        },
        "post": {
            "operationId": "v1_conversations_messages_create",
            "summary": "Post a message; the reply starts at once and streams from stream_url.",
            "tags": ["chat"],
            "security": _SECURITY,
            "parameters": [_path_id("conversation_id")],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["content"],
                            "properties": {
                                "content": {"type": "string", "minLength": 1},
                                "model": {"type": "string", "description": "Overrides the conversation's model."},
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": {
                    "description": "Posted; the assistant message is streaming.",
                    "content": {"application/json": {"schema": MESSAGE_POST_RESPONSE}},
                },
                **_errors(
                    {
                        400: "Malformed JSON, empty content or a wrong type.",
                        401: "Not authenticated.",
                        403: "A session without its CSRF token.",
                        404: "No such conversation of yours, or an unknown model.",
                        409: "A reply in this conversation is still streaming.",
                        413: "Content longer than the limit.",
                    }
                ),
            },
        },
    },
    "/api/v1/messages/{message_id}/stream": {
        "get": {
            "operationId": "v1_messages_stream",
            "summary": "The reply's events over Server-Sent Events, resumable.",
            "description": (
                "Events: `token` `{delta}`, then one `done` `{message_id, finish_reason, usage, cost_usd}` "
                "or `error` `{code, message}`. Every event has an `id:`; `: ping` comments at least every 15 s."
            ),
            "tags": ["chat"],
            "security": _SECURITY,
            "parameters": [_path_id("message_id"), *_RESUME],
            "responses": {
                "200": _event_stream("The events after Last-Event-ID (all of them without it)."),
                **_errors({401: "Not authenticated.", 404: "No such message of yours."}),
            },
        }
    },
    "/api/v1/tasks/{task_id}/events": {
        "get": {
            "operationId": "v1_tasks_events",
            "summary": "The task's log over Server-Sent Events, resumable.",
            "description": (
                "Each log item (`thought`, `action`, `tool_result`, `need_input`) is an event whose data is a "
                "TaskEventOutput and whose `id:` is its `seq`; the stream ends with the task's final status."
            ),
            "tags": ["agents"],
            "security": _SECURITY,
            "parameters": [
                {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}},
                *_RESUME,
            ],
            "responses": {
                "200": _event_stream("The log items after Last-Event-ID (all of them without it)."),
                **_errors({401: "Not authenticated.", 404: "No such task of yours."}),
            },
        }
    },
}


def openapi_add_api(result: dict[str, Any], generator: Any = None, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: add the ``/api/v1`` routes that are not DRF views."""
    paths = result.setdefault("paths", {})
    for path, operations in PATHS.items():
        paths.setdefault(path, {}).update(operations)
    result.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    return result


# What the edge and the access pipeline may answer any operation with, beyond what each one's own
# description names: the document must name every status a client can get.
_GENERAL_ERRORS = {
    400: "Malformed JSON, a wrong type or value, or a bad paging parameter (`param` names it).",
    401: "No credentials, or credentials that cannot be used (the code says why).",
    403: "Not allowed: a model outside the caller's list, or a browser session without its CSRF token.",
    404: "No such thing, or not the caller's.",
    409: "The thing's state forbids it now (the code says which).",
    413: "A body larger than the upload limit (refused before it is read).",
    415: "A body that is not application/json.",
    429: "A rate limit or the monthly budget: see Retry-After and the rate-limit headers.",
}
# The calls every door admits like a model call (docs/api.md, "One admission for every door").
_ADMITTED = {
    ("post", "/api/v1/tasks"),
    ("post", "/api/v1/conversations/{conversation_id}/messages"),
    ("post", "/v1/chat/completions"),
    ("post", "/v1/embeddings"),
    ("post", "/v1/responses"),
}
_STATE_CHANGES = {"/cancel", "/input", "/messages"}


def _statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    statuses = {400, 401}
    if path.startswith("/api/"):
        statuses.add(403)
    if "{" in path or (method in ("post", "patch") and path.startswith("/api/v1/conversations")):
        statuses.add(404)
    if method in ("post", "put", "patch"):
        statuses |= {413, 415}
    if method == "post" and any(path.endswith(tail) for tail in _STATE_CHANGES):
        statuses.add(409)
    if (method, path) in _ADMITTED:
        statuses |= {403, 404, 429}
    return statuses


def openapi_complete_errors(result: dict[str, Any], generator: Any = None, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook (the last one): every operation names every error
    status it can answer with, each in the one error shape."""
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for status in sorted(_statuses(method, path, operation)):
                responses.setdefault(str(status), _errors({status: _GENERAL_ERRORS[status]})[str(status)])
    return result


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """``project.edge.auth.ApiKeyAuthentication`` in the document, as the bearer scheme of ``/v1``.

    (It takes ``x-api-key`` too; one scheme per class is what drf-spectacular can say, and
    naming both would read as "both at once".)"""

    target_class = "project.edge.auth.ApiKeyAuthentication"
    name = "ApiKeyBearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return dict(SECURITY_SCHEMES["ApiKeyBearer"])

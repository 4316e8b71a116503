"""The Responses API in the OpenAPI document at ``/api/schema/`` (a drf-spectacular post-processing
hook, as ``orchestration.openapi`` adds the rest of ``/v1``). The shapes are OpenAI's; the request
fields listed are those ``orchestration.responses.wire`` accepts."""

from __future__ import annotations

from typing import Any

from orchestration.openapi import _LIMIT_HEADERS, _SECURITY, _SERVED_HEADERS, _errors, _ok, _ref
from orchestration.responses.wire import FIELDS

_STRING = {"type": "string"}
_OBJECT = {"type": "object", "additionalProperties": True}
_ITEM = {
    "type": "object",
    "description": "A message (`role`, `content`), `function_call`, `function_call_output` or `item_reference`.",
    "additionalProperties": True,
}
_NUMBERS = {
    "temperature": {"type": "number", "minimum": 0, "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    "max_output_tokens": {"type": "integer", "minimum": 1},
}

SCHEMAS: dict[str, Any] = {
    "ResponseRequest": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            **{name: {} for name in sorted(FIELDS)},
            "model": _STRING,
            "input": {"oneOf": [_STRING, {"type": "array", "items": _ITEM}]},
            "instructions": _STRING,
            **_NUMBERS,
            "tools": {"type": "array", "items": _OBJECT},
            "stream": {"type": "boolean"},
            "background": {"type": "boolean"},
            "store": {"type": "boolean"},
            "previous_response_id": _STRING,
            "metadata": {"type": "object", "additionalProperties": _STRING},
        },
        "additionalProperties": False,
    },
    "Response": {
        "type": "object",
        "required": ["id", "object", "created_at", "status", "model", "output"],
        "properties": {
            "id": _STRING,
            "object": {"type": "string", "enum": ["response"]},
            "created_at": {"type": "integer"},
            "status": {
                "type": "string",
                "enum": ["queued", "in_progress", "completed", "incomplete", "failed", "cancelled"],
            },
            "model": _STRING,
            "output": {"type": "array", "items": _OBJECT},
            "usage": {**_OBJECT, "nullable": True},
            "error": {**_OBJECT, "nullable": True},
        },
    },
    "ResponseStreamEvent": {
        "type": "object",
        "required": ["type", "sequence_number"],
        "properties": {"type": _STRING, "sequence_number": {"type": "integer"}},
        "additionalProperties": True,
    },
    "ResponseDeleted": {
        "type": "object",
        "properties": {"id": _STRING, "object": _STRING, "deleted": {"type": "boolean"}},
    },
    "ResponseItemList": {
        "type": "object",
        "properties": {
            "object": _STRING,
            "data": {"type": "array", "items": _ITEM},
            "first_id": {**_STRING, "nullable": True},
            "last_id": {**_STRING, "nullable": True},
            "has_more": {"type": "boolean"},
        },
    },
}

_ID = {"name": "response_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^resp_[^/]+$"}}
_RESPONSE = {"application/json": {"schema": _ref("Response")}}
_STREAM = {"text/event-stream": {"schema": _ref("ResponseStreamEvent")}}


def _operation(operation_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "tags": ["v1"],
        "summary": summary,
        "security": _SECURITY,
        "responses": responses,
        **extra,
    }


PATHS: dict[str, Any] = {
    "/v1/responses": {
        "post": _operation(
            "v1_responses_create",
            "Create a response (OpenAI's Responses API)",
            {
                **_ok(
                    "The response, or its stream of events.",
                    {**_RESPONSE, **_STREAM},
                    {**_LIMIT_HEADERS, **_SERVED_HEADERS},
                ),
                **_errors(400, 401, 403, 404, 413, 429, 502, 503, 504),
            },
            description="`stream: true` for Server-Sent Events; `background: true` answers at once, `queued`.",
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("ResponseRequest")}}},
        )
    },
    "/v1/responses/{response_id}": {
        "get": _operation(
            "v1_responses_retrieve",
            "A stored response (`?stream=true&starting_after=N`: its events)",
            {**_ok("The response, or its events.", {**_RESPONSE, **_STREAM}, {}), **_errors(400, 401, 404)},
            parameters=[
                _ID,
                {"name": "stream", "in": "query", "schema": {"type": "boolean"}},
                {"name": "starting_after", "in": "query", "schema": {"type": "integer", "minimum": -1}},
            ],
        ),
        "delete": _operation(
            "v1_responses_delete",
            "Delete a stored response",
            {**_ok("Deleted.", {"application/json": {"schema": _ref("ResponseDeleted")}}, {}), **_errors(401, 404)},
            parameters=[_ID],
        ),
    },
    "/v1/responses/{response_id}/input_items": {
        "get": _operation(
            "v1_responses_input_items_list",
            "The input items of a stored response",
            {
                **_ok("A page of items.", {"application/json": {"schema": _ref("ResponseItemList")}}, {}),
                **_errors(400, 401, 404),
            },
            parameters=[
                _ID,
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                {"name": "after", "in": "query", "schema": _STRING},
            ],
        )
    },
    "/v1/responses/{response_id}/cancel": {
        "post": _operation(
            "v1_responses_cancel",
            "Cancel a background response",
            {**_ok("The response.", _RESPONSE, {}), **_errors(400, 401, 404)},
            parameters=[_ID],
        )
    },
}


def openapi_add_responses(result: dict[str, Any], generator: Any = None, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: add the Responses API's paths and schemas."""
    result.setdefault("paths", {}).update(PATHS)
    result.setdefault("components", {}).setdefault("schemas", {}).update(SCHEMAS)
    return result

"""JSON log lines (``LOG_FORMAT=json``), each with the request, trace, user and key of its call.

The edge sets the request id of each request and admission sets who calls (the user and the API
key's prefix, never the key), in context variables: they follow the request into the tasks it
starts (a chat reply) and the threads it uses. ``CallContextFilter`` copies them, with the
current trace and span ids, onto every record; ``JsonLogFormatter`` writes one JSON object a line.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from orchestration.telemetry.tracing import REQUEST_ID, span_set, trace_ids

_request_id: ContextVar[str] = ContextVar("switchyard_request_id", default="")
_caller: ContextVar[tuple[int | None, str]] = ContextVar("switchyard_caller", default=(None, ""))

_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def request_context_set(request_id: str) -> None:
    """This request's id, for its log lines, and on its edge span: the join of trace and request."""
    _request_id.set(request_id)
    span_set({REQUEST_ID: request_id})


def log_request_id(request_id: str) -> None:
    """The request id of work that runs apart from its request (a chat reply), for its log lines."""
    _request_id.set(request_id)


def log_caller(user_id: int | None, key_prefix: str = "") -> None:
    _caller.set((user_id, key_prefix))


class CallContextFilter(logging.Filter):
    """Adds ``request_id``, ``trace_id``, ``span_id``, ``user_id`` and ``key_prefix`` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.trace_id, record.span_id = trace_ids()
        record.user_id, record.key_prefix = _caller.get()
        return True


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message, the call's context, and any extra."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(
            _FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )

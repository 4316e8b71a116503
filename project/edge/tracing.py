"""The edge span: one per request or WebSocket connection, from OpenTelemetry's ASGI middleware.

It wraps the whole ASGI application, so every door has one, whichever handler serves it (the
lean handler, Django's full stack, a Channels consumer); Django's own instrumentation is a
middleware of the full stack and would miss the lean routes. It continues the trace of a
client's ``traceparent``. Its name is the method and the route pattern, never the path (which
holds ids). The per-message ``send``/``receive`` spans are left out: a streamed reply would make
one per token.
"""

from __future__ import annotations

from typing import Any

from django.urls import Resolver404, resolve

from orchestration.telemetry.tracing import tracing_start


def edge_traced(application: Any) -> Any:
    """``application`` with an edge span per request when tracing is on; itself otherwise."""
    if not tracing_start("web"):
        return application
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware(
        application, default_span_details=edge_span_details, exclude_spans=["receive", "send"]
    )


def edge_span_details(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``GET v1/models``-style names: the method and Django's route pattern, else the method alone
    (the Channels routes); a WebSocket connection is named by its path, which holds no id."""
    path = str(scope.get("path") or "/")
    if scope.get("type") == "websocket":
        return f"WEBSOCKET {path}", {}
    method = str(scope.get("method") or "HTTP")
    try:
        route = resolve(path).route
    except Resolver404:
        return method, {}
    return f"{method} {route}", {"http.route": route}

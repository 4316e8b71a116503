"""The Channels routes of every app, behind one access stack, and the HTTP edge for the rest.

The domain apps declare their consumers (``chat.routing``, ``agents.routing``); here every one of
them gets the same middleware (``project.edge.websocket.access_stack``: session, then the caller
through the access pipeline); the raw routes of an app (``chat.routing.http_raw_routes``) serve
what they can and hand the rest to the edge; every other HTTP request goes to ``project.edge.router``.
"""

from __future__ import annotations

from typing import Any

from channels.routing import URLRouter
from channels.security.websocket import WebsocketDenier
from django.urls import URLPattern, re_path

from agents.routing import http_consumers as agent_http_consumers
from agents.routing import websocket_consumers as agent_websocket_consumers
from chat.routing import http_consumers as chat_http_consumers
from chat.routing import http_raw_routes as chat_http_raw_routes
from project.edge.router import HttpEdge, RequestGuard
from project.edge.websocket import access_stack


def _behind_access(routes: list[Any]) -> list[URLPattern]:
    return [URLPattern(route.pattern, access_stack(route.callback), name=route.name) for route in routes]


edge = HttpEdge()
http_application = RequestGuard(
    URLRouter(
        [
            *_behind_access([*chat_http_consumers, *agent_http_consumers]),
            *chat_http_raw_routes(edge),
            re_path(r"", edge),  # type: ignore[arg-type]  # an ASGI app, for Channels
        ]
    )
)
# A WebSocket to any other path is refused (daphne answers a handshake the application closes
# with 403); without a route for it, the router raised, and the client got an empty 500.
websocket_application = URLRouter(
    [*_behind_access(agent_websocket_consumers), re_path(r"", WebsocketDenier.as_asgi())]  # type: ignore[arg-type]
)

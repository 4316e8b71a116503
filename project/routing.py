"""The Channels routes: SSE consumers served before Django's views, and WebSocket routes."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter

from agents.routing import http_urlpatterns as agent_http_urlpatterns
from agents.routing import websocket_urlpatterns as agent_websocket_urlpatterns
from chat.routing import http_urlpatterns as chat_http_urlpatterns
from project.gateway import http_urlpatterns as gateway_http_urlpatterns

http_urlpatterns = [*gateway_http_urlpatterns, *chat_http_urlpatterns, *agent_http_urlpatterns]
websocket_application = AuthMiddlewareStack(URLRouter([*agent_websocket_urlpatterns]))

"""ASGI entry point: Django is set up first, then HTTP and WebSocket are routed.

HTTP goes to Django, except the streaming routes that Channels consumers serve (SSE);
WebSocket goes through session auth and an origin check to the agent consumer.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from agents.middleware import browser_origin_validator  # noqa: E402
from project.drain import drain_on_sigterm  # noqa: E402
from project.routing import http_urlpatterns, websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter([*http_urlpatterns, re_path(r"", django_asgi_app)]),  # type: ignore[arg-type]
        # ALLOWED_HOSTS decide which browser origins may connect; clients that send no Origin pass.
        "websocket": browser_origin_validator(websocket_application),
    }
)
# Under daphne, SIGTERM stops accepting, lets running replies finish, then stops (project/drain.py).
drain_on_sigterm()

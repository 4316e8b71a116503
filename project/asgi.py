"""ASGI entry point: Django is set up first, then HTTP and WebSocket are routed.

HTTP goes to the Channels consumers that serve streams (SSE), else to the edge
(``project.edge.router``: the lean handler or Django's full stack); WebSocket goes through an
origin check and the access stack to the agent consumer (``project.routing``).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from orchestration.metrics import metrics_hold  # noqa: E402
from project.drain import drain_on_sigterm  # noqa: E402
from project.edge.daphne import daphne_harden  # noqa: E402
from project.edge.tracing import edge_traced  # noqa: E402
from project.edge.websocket import SameOriginValidator  # noqa: E402
from project.housekeeping import freeze_loaded_objects  # noqa: E402
from project.routing import http_application, websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": http_application,
        # Browsers connect only from this server's own origin; clients that send no Origin pass.
        "websocket": SameOriginValidator(websocket_application),
    }
)
# With OTEL_EXPORTER_OTLP_ENDPOINT set, a span per request and connection (project/edge/tracing.py).
application = edge_traced(application)
# Under daphne: bodies refused by size before they are read, and sends that wait for slow readers.
daphne_harden()
# Under daphne, SIGTERM stops accepting, lets running replies finish, then stops (project/drain.py).
drain_on_sigterm()
# A finished call's samples are held and written once a second, not nine writes a call
# (orchestration/metrics.py, "samples held"); /metrics and the process's exit write them too.
metrics_hold()
# The loaded application is out of the garbage collector's full passes (project/housekeeping.py).
freeze_loaded_objects()

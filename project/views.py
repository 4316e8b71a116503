"""Operational endpoints: liveness and readiness (lean routes: no session, no middleware stack), the
Prometheus metrics, and the API docs page."""

from __future__ import annotations

import functools
from pathlib import Path

from django.contrib.staticfiles import finders
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views import View
from drf_spectacular.views import SpectacularSwaggerView
from prometheus_client import CONTENT_TYPE_LATEST

from orchestration.database import in_database_thread
from orchestration.http import lean_route
from orchestration.redisclients import DEFAULT, redis_async
from orchestration.telemetry.exposition import metrics_exposition


@lean_route
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        return False


async def _redis_answers() -> bool:
    try:
        return bool(await redis_async(DEFAULT).ping())
    except Exception:
        return False


@lean_route
async def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": await in_database_thread(_database_answers)(),
        "redis": await _redis_answers(),
    }
    ready = all(checks.values())
    return JsonResponse({"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text: every process's samples and the live breaker and queue states."""
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)


@functools.cache
def _favicon_svg() -> bytes:
    found = finders.find("switchyard/favicon.svg")
    return Path(str(found)).read_bytes()


def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``: pages without an icon link of their own (the admin's) ask for it; a 404
    there filled every admin page's console with an error. The icon is the app's SVG."""
    headers = {"Cache-Control": "public, max-age=86400"}
    return HttpResponse(_favicon_svg(), content_type="image/svg+xml", headers=headers)


class ApiDocsPage(SpectacularSwaggerView):
    """The browsable API page. DRF answers ``OPTIONS`` with a view's metadata, rendered by the view's
    renderer: here an HTML template that has no page for it (a 500). The page answers ``OPTIONS``
    as Django's own views do: the methods it allows, and no body."""

    def options(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
        return View.options(self, request, *args, **kwargs)

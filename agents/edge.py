"""The Task API's busiest calls from API clients, served without Django's full stack.

``POST /api/v1/tasks`` and the poll ``GET /api/v1/tasks/{id}`` with an API key go through the
``/v1`` handler (``project.gateway``: request ids and allowed hosts, no other middleware) to the
async views below: the cached key lookup of ``project.keycache``, then one hop to the process's
sync thread for the work itself, the functions the DRF views call too (``agents.apis.task_submit``
and ``task_detail``), so both paths answer alike. Under the full stack the same call cost about
fourteen thread hops, DRF's authentication and negotiation, an uncached key lookup and a new
database connection: three quarters of its time.

Everything else takes Django's full stack and the DRF views of ``agents.apis``: the other
routes and methods, and calls without an API key (a browser's session cookie needs the session,
authentication and CSRF middleware). The DRF views stay the OpenAPI description. As on ``/v1``,
the lean path adds no browser security headers and no per-view Prometheus metrics, and a key
revoked in another process keeps working here for at most ``project.keycache.TTL_S`` seconds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from agents import apis
from project.errors import ApiError, drf_exception_handler
from project.gateway import LeanEdge, presents_api_key
from project.keycache import AuthenticatedKey, api_key_authenticate

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="switchyard"'}
_RENDERER = JSONRenderer()


async def task_create_view(request: HttpRequest) -> HttpResponse:
    return await _keyed(request, _submit)


async def task_detail_view(request: HttpRequest, task_id: str) -> HttpResponse:
    return await _keyed(request, functools.partial(_detail, task_id=task_id))


async def _keyed(request: HttpRequest, view: Callable[[HttpRequest, AuthenticatedKey], Response]) -> HttpResponse:
    """Authenticate the key (cached), then run ``view`` in the sync thread."""
    key = await api_key_authenticate(request.headers)
    if key is None:
        return _error(request, ApiError(401, "invalid_api_key", "Incorrect API key provided.", headers=_CHALLENGE))
    return await sync_to_async(_answer)(request, view, key)


def _submit(request: HttpRequest, key: AuthenticatedKey) -> Response:
    # A DRF Request only parses the body, exactly as the DRF view would (415, parse errors, {}).
    body = Request(request, parsers=[JSONParser()])
    return apis.task_submit(body, owner_id=key.user_id, api_key=key)


def _detail(request: HttpRequest, key: AuthenticatedKey, *, task_id: str) -> Response:
    return apis.task_detail(owner_id=key.user_id, task_id=task_id)


def _answer(
    request: HttpRequest, view: Callable[[HttpRequest, AuthenticatedKey], Response], key: AuthenticatedKey
) -> HttpResponse:
    """Run the sync part of a view; its answer or error as the DRF view would render it."""
    _drop_broken_connections()
    try:
        return _rendered(view(request, key))
    except (ApiError, APIException) as error:
        return _error(request, error)


def _drop_broken_connections() -> None:
    """The process's one sync thread keeps its database connection from call to call: opening
    one (SQLite's pragmas, PostgreSQL's handshake) cost as much as the rest of a POST. As with
    Django's ``CONN_HEALTH_CHECKS``, a connection that failed and no longer answers is closed
    before the next call, which opens a new one."""
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred and not connection.is_usable():
            connection.close()


def _error(request: HttpRequest, error: ApiError | APIException) -> HttpResponse:
    response = drf_exception_handler(error, {"request": request})
    assert response is not None  # the handler answers every ApiError and APIException
    return _rendered(response)


def _rendered(response: Response) -> HttpResponse:
    """A DRF ``Response`` rendered here (Django would render it in one more thread hop), with the
    Content-Length that the full stack's CommonMiddleware sets."""
    content = _RENDERER.render(response.data)
    rendered = HttpResponse(content, status=response.status_code)
    for name, value in response.items():
        if name.lower() != "content-type":
            rendered[name] = value
    rendered["Content-Type"] = "application/json"
    rendered["Content-Length"] = str(len(content))
    return rendered


class TaskApiEdge(LeanEdge):
    """ASGI app of ``/api/v1/tasks[/{id}]``: API-key creates and polls to the two views above,
    everything else to Django's own handler with the full middleware stack."""

    lean_urlpatterns = [path("api/v1/tasks", task_create_view), path("api/v1/tasks/<str:task_id>", task_detail_view)]

    def takes_lean_path(self, scope: dict[str, Any]) -> bool:
        """A create (``POST`` of the list) or a poll (``GET`` of one task) that presents an API key."""
        one_task = "task_id" in scope["url_route"]["kwargs"]
        return scope["method"] == ("GET" if one_task else "POST") and presents_api_key(scope)

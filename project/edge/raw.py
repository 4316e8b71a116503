"""The raw path: a ``/v1`` call served straight from ASGI, without Django's request objects.

The lean handler (``project/edge/handler.py``) still builds Django's ``ASGIRequest`` (its
``META``, then ``headers`` parsed from it again), runs two middleware through four exception
wrappers, resolves the path and sends ``request_finished`` when the response closes: about a
tenth of a stream's setup, for a view that reads nothing of the request but its method, path,
headers and body. A view marked ``raw_route`` (``orchestration/http.py``) is served here instead,
with a ``RawRequest`` that has just those.

Every promise of the lean path is kept, most of them by the view itself (its door: API key,
admission, CORS, errors in the one shape, deadlines; the Orchestrator: request log, metrics).
What the lean handler did around the view is done here the same way: ``X-Request-ID`` (echoed
when sane) and the request's logging context, a whole response's ``Content-Length``, an error
page turned into the one error shape, and the client's disconnect cancelling the view (and with
it the upstream call). Anything out of the ordinary before the view runs (a ``Host`` outside
``ALLOWED_HOSTS`` or none, ``USE_X_FORWARDED_HOST``, a body over
``DATA_UPLOAD_MAX_MEMORY_SIZE``) goes to the lean handler, with what was read of the body given
back to it, so its answer is Django's, byte for byte. No request signal is sent: the lean
handler's ``request_finished`` found no database connection in the event loop's thread either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpResponse, HttpResponseBase
from django.http.request import split_domain_port, validate_host

from orchestration.conf import setting
from orchestration.requestids import request_id_from
from orchestration.sse import header_set
from orchestration.telemetry.logs import request_context_set
from project.edge.handler import DisconnectWatch, LeanHandler, finished
from project.edge.middleware import json_shaped

View = Callable[..., Awaitable[HttpResponseBase]]

logger = logging.getLogger("django.request")  # where Django logs a view's unexpected failure


class RawHeaders(dict[str, str]):
    """A request's headers by lower-case name (as ASGI gives them), read in any case, as
    Django's ``request.headers`` are; repeated headers joined with commas, as Django joins them."""

    __slots__ = ()

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)


def raw_headers(scope: dict[str, Any]) -> RawHeaders:
    headers = RawHeaders()
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin1").lower(), raw_value.decode("latin1")
        if name in headers:
            value = dict.__getitem__(headers, name) + "," + value
        dict.__setitem__(headers, name, value)
    return headers


class RawRequest:
    """What a raw route's view reads of its request."""

    __slots__ = ("body", "headers", "method", "path", "request_id", "scope")

    def __init__(self, scope: dict[str, Any], headers: RawHeaders, body: bytes) -> None:
        self.scope = scope
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.headers = headers
        self.body = body
        self.request_id = request_id_from(headers)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").partition(";")[0].strip()


def _host_allowed(headers: RawHeaders) -> bool:
    """The Host header passes Django's check (``HttpRequest.get_host``); False also when the
    check would read anything else (no Host, ``X-Forwarded-Host``), which the lean handler does."""
    host = headers.get("Host")
    if not host or setting("USE_X_FORWARDED_HOST"):
        return False
    allowed = setting("ALLOWED_HOSTS")
    if setting("DEBUG") and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, allowed)


def _replaying(messages: list[dict[str, Any]], receive: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    """``receive`` with ``messages`` (already taken from it) given back first."""
    pending = list(reversed(messages))

    async def replay() -> dict[str, Any]:
        if pending:
            return pending.pop()
        message: dict[str, Any] = await receive()
        return message

    return replay


def _status_of(error: Exception) -> int:
    """The status Django's handler gives an exception a view let out (its ``response_for_exception``)."""
    if isinstance(error, Http404):
        return 404
    if isinstance(error, PermissionDenied):
        return 403
    if isinstance(error, (BadRequest, SuspiciousOperation)):
        return 400
    return 500


class RawHandler:
    """Serves raw routes; hands anything unusual to ``lean`` (see the module)."""

    def __init__(self, lean: LeanHandler) -> None:
        self.lean = lean

    async def __call__(self, view: View, scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = raw_headers(scope)
        limit = setting("DATA_UPLOAD_MAX_MEMORY_SIZE")
        messages: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        size = 0
        usual = _host_allowed(headers)
        try:
            declared = int(headers.get("Content-Length") or 0)
        except ValueError:
            declared = 0  # the view's door answers it
        if limit is not None and declared > limit:
            usual = False
        while usual:
            message = await receive()
            messages.append(message)
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
                size += len(chunk)
            if not message.get("more_body", False):
                break
            if limit is not None and size > limit:
                usual = False
        if not usual:
            await self.lean(scope, _replaying(messages, receive), send)
            return
        request = RawRequest(scope, headers, chunks[0] if len(chunks) == 1 else b"".join(chunks))
        del messages, chunks  # the body is the request's now
        request_context_set(request.request_id)
        serving = asyncio.current_task()
        assert serving is not None, "the raw handler runs in a task"
        watch = DisconnectWatch(self.lean, receive, serving)
        try:
            response = await self._response(view, request)
            # Read by the view. A streamed answer lasts long after, and this frame with it: the
            # body (a whole conversation) would last as long.
            request.body = b""
            await self.lean.send_response(response, send)
        except asyncio.CancelledError:
            if not watch.cancelled_serving():
                raise
        finally:
            watch.stop()

    async def _response(self, view: View, request: RawRequest) -> HttpResponseBase:
        """The view's answer as the lean handler would send it."""
        try:
            response = await view(request)
        except Exception as error:
            status = _status_of(error)
            if status == 500:
                logger.error("Internal Server Error: %s", request.path, exc_info=True, extra={"status_code": 500})
            else:
                logger.warning("%s: %s", type(error).__name__, request.path, extra={"status_code": status})
            response = HttpResponse(status=status)
        response = finished(json_shaped(request, response))  # type: ignore[arg-type]
        header_set(response, "X-Request-ID", request.request_id)
        return response

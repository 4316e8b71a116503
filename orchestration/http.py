"""What every HTTP view of Switchyard shares: reading a JSON body, answering an error, and
marking a route's fast path for API clients.

Views raise ``orchestration.errors.ServiceError``; ``error_response`` is the one place such an
error becomes an HTTP response (the edge's middleware uses it for views that do not catch).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.request import RawPostDataException
from django.views.decorators.csrf import csrf_exempt

from orchestration.conf import setting
from orchestration.errors import InvalidRequest, Kind, MethodNotAllowed, ServiceError, TooLarge, error_body_of
from orchestration.sse import json_compact
from orchestration.validation import json_document

View = Callable[..., Awaitable[HttpResponseBase]]

# The attributes the edge reads on a view: ``lean_route`` marks a view that never needs the full
# stack; ``api_key_fast_path`` maps methods to the async views that serve API-key calls.
LEAN_ATTRIBUTE = "lean_route"
FAST_PATH_ATTRIBUTE = "api_key_fast_path"
# ``raw_route`` marks a lean view the edge may call without Django's request objects.
RAW_ATTRIBUTE = "raw_route"


def request_id_of(request: HttpRequest | Any) -> str:
    return getattr(request, "request_id", "") or ""


def error_response(request: HttpRequest | Any, error: ServiceError) -> JsonResponse:
    """The error in the one shape, with its status, its headers and the request's id."""
    response = JsonResponse(error_body_of(error, request_id_of(request)), status=error.status)
    for name, value in error.headers().items():
        response[name] = value
    return response


def json_response(body: Any, headers: dict[str, str] | None = None, *, status: int = 200) -> HttpResponse:
    return HttpResponse(
        json.dumps(body, separators=(",", ":")), content_type="application/json", headers=headers, status=status
    )


async def asgi_json_send(
    send: Callable[[dict[str, Any]], Awaitable[None]],
    status: int,
    body: dict[str, Any],
    request_id: str,
    headers: Mapping[str, Any] | None = None,
) -> None:
    """A whole JSON answer sent from raw ASGI (routes served before the edge), with what the lean
    handler gives every answer: ``Content-Length`` and ``X-Request-ID``."""
    content = json_compact(body)
    sent = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", b"%d" % len(content)),
        (b"X-Request-ID", request_id.encode("latin-1")),
        *((name.encode("latin-1"), str(value).encode("latin-1")) for name, value in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": sent})
    await send({"type": "http.response.body", "body": content})


def body_too_large() -> TooLarge:
    limit = setting("DATA_UPLOAD_MAX_MEMORY_SIZE")
    return TooLarge("request_too_large", f"The request body is larger than {limit} bytes.")


def raw_body(request: HttpRequest) -> bytes:
    """The body, refused with 413 from its declared length before it is read."""
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise InvalidRequest("invalid_request", "The Content-Length header is not a number.") from None
    if declared > setting("DATA_UPLOAD_MAX_MEMORY_SIZE"):
        raise body_too_large()
    try:
        return request.body
    except RawPostDataException:
        raise InvalidRequest("invalid_request", "The request body could not be read.") from None
    except RequestDataTooBig:
        raise body_too_large() from None


def json_body(request: HttpRequest, *, empty: Any = None, strict_type: bool = False) -> Any:
    """The body parsed as JSON (``empty`` when there is none). ``strict_type``: a body declared as
    another media type is refused with 415, as DRF's views refuse it."""
    if strict_type and request.content_type and request.content_type != "application/json":
        message = f'Unsupported media type "{request.META.get("CONTENT_TYPE", "")}" in request.'
        raise ServiceError("unsupported_media_type", message, kind=Kind.UNSUPPORTED_MEDIA)
    body = raw_body(request)
    if not body.strip() and empty is not None:
        return empty
    return json_document(body)


def door(*methods: str) -> Callable[[View], View]:
    """An async API view: methods checked, and every ``ServiceError`` it raises answered in the
    one shape. CSRF is not its business: API keys go to it straight from the edge, and a browser's
    post reaches it through Django's middleware, CSRF check included."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise MethodNotAllowed(request.method or "", methods)
                return await view(request, *args, **kwargs)
            except ServiceError as error:
                return error_response(request, error)

        return wrapped

    return decorate


def keys_only(view: View) -> View:
    """A view only API keys reach (the ``/v1`` API): no cookie is read, so CSRF cannot apply."""
    return csrf_exempt(view)  # type: ignore[return-value]


def api_key_fast_path(view: Any, **lean_views: View) -> Any:
    """Route API-key calls of the named methods (``POST=...``) to async ``lean_views``.

    The route stays declared once, with ``view`` (the full-stack view: sessions, CSRF, DRF). The
    edge sends a call that presents an API key, with one of these methods, to its lean view
    instead, through its lean handler (request ids and allowed hosts; no session, no CSRF, no
    thread per request). The lean view authenticates the key itself, like every ``/v1`` view."""
    setattr(view, FAST_PATH_ATTRIBUTE, {method.upper(): lean for method, lean in lean_views.items()})
    return view


def lean_route(view: Any) -> Any:
    """Serve every call of this async view through the edge's lean handler: it reads no session
    and no cookie (the ``/v1`` API, health checks), so Django's middleware has nothing to do."""
    setattr(view, LEAN_ATTRIBUTE, True)
    return view


def raw_route(view: Any) -> Any:
    """Serve this lean view from the edge's raw handler (``project/edge/raw.py``): it gets a
    request with only ``method``, ``path``, ``headers`` (any case), ``body``, ``content_type``,
    ``request_id`` and ``scope``, and must read nothing else of it. It takes no URL arguments."""
    setattr(view, RAW_ATTRIBUTE, True)
    return view


def validation_message(errors: Any) -> str:
    """A serializer's errors as one sentence: ``field: what is wrong; other: ...``."""
    if isinstance(errors, dict):
        return "; ".join(f"{name}: {validation_message(problems)}" for name, problems in errors.items())
    if isinstance(errors, list):
        return " ".join(validation_message(problem) for problem in errors)
    return str(errors)

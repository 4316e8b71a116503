"""CORS for the ``/v1`` API: off unless ``SWITCHYARD_CORS_ORIGINS`` lists the browser origins allowed.

Browser clients (the OpenAI SDKs with ``dangerouslyAllowBrowser``, the Vercel AI SDK in a page) send
a preflight ``OPTIONS`` before a ``POST`` with ``Authorization``. An allowed origin gets it answered
with 204 and the methods and headers it asked for; every answer to it then names the origin and
exposes the headers clients read (request id, rate limits, retry and served-by headers). Credentials
are not allowed: ``/v1`` authenticates with an API key header, never a cookie. An origin not listed
gets no CORS headers at all, so the browser keeps the answer from the page.
"""

from __future__ import annotations

from typing import cast

from django.http import HttpRequest, HttpResponse, HttpResponseBase

from orchestration.conf import switchyard_setting

PREFLIGHT_MAX_AGE_S = 600
EXPOSED_HEADERS = (
    "X-Request-ID, Retry-After, openai-processing-ms, x-should-retry, X-Cache, X-Served-Model, "
    "X-Served-Provider, X-Served-Simulated, X-Fallback-From, X-Cache-Entry, X-Cost-USD, x-ratelimit-limit-requests, "
    "x-ratelimit-remaining-requests, "
    "x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens"
)


def cors_origin_allowed(request: HttpRequest) -> str | None:
    """The request's ``Origin`` when the allowlist holds it (or ``*``), else None."""
    origin = request.headers.get("Origin")
    if not origin:
        return None
    allowed = cast(list[str], switchyard_setting("CORS_ORIGINS", []))
    return origin if origin in allowed or "*" in allowed else None


def cors_is_preflight(request: HttpRequest) -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def cors_preflight(request: HttpRequest, origin: str, methods: tuple[str, ...]) -> HttpResponse:
    response = HttpResponse(status=204)
    response["Access-Control-Allow-Methods"] = ", ".join(methods)
    asked = request.headers.get("Access-Control-Request-Headers")
    response["Access-Control-Allow-Headers"] = asked or "Authorization, Content-Type"
    response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    cors_mark(response, origin)
    return response


def cors_mark(response: HttpResponseBase, origin: str) -> HttpResponseBase:
    response["Access-Control-Allow-Origin"] = origin
    response["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
    response["Vary"] = "Origin"
    return response

"""Django's CSRF failure view, in the one error shape for the API (HTML for pages)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.csrf import csrf_failure as django_csrf_failure

from orchestration.access.admission import NOT_AUTHENTICATED
from orchestration.errors import Forbidden, Unauthenticated
from orchestration.http import error_response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A browser's API post without a valid CSRF token: 403 ``csrf_failed`` as JSON, or 401 when no
    one is signed in (as DRF answers: there is no session to protect); pages get Django's page."""
    if request.path.startswith("/api/"):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return error_response(
                request, Unauthenticated(NOT_AUTHENTICATED, "Authentication credentials were not provided.")
            )
        message = (
            f"CSRF check failed: {reason.rstrip('.')}. Send the csrftoken cookie's value in the X-CSRFToken header."
        )
        return error_response(request, Forbidden("csrf_failed", message))
    return django_csrf_failure(request, reason)

"""The RQ dashboard (django-rq) behind a permission: a staff account without it sees no queue and
can empty none. Superusers have every permission; others need ``django_rq.admin`` (the admin's
"Django-RQ | Access admin page"), granted in the admin like any other."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

QUEUE_PERMISSION = "django_rq.admin"


def queue_permission_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @staff_member_required
    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.has_perm(QUEUE_PERMISSION):
            raise PermissionDenied("Managing the task queues needs the Django-RQ admin permission.")
        return view(request, *args, **kwargs)

    return guarded


app_name = "django_rq"
urlpatterns = get_api_urlpatterns() + get_admin_urlpatterns(view_wrapper=queue_permission_required)

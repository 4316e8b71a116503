"""A staff account without permissions sees and changes nothing of what it was not granted: the
costs page, the request log, the task queues (their pages and their actions)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

pytestmark = pytest.mark.django_db

REFUSED_PAGES = [
    "/admin/orchestration/requestlog/",
    "/admin/orchestration/requestlog/costs/",
    "/admin/orchestration/apikey/",
    "/admin/orchestration/accesspolicy/",
    "/admin/orchestration/provider/",
    "/admin/django-rq/",
    "/admin/django-rq/queues/0/",
    "/admin/django-rq/queues/0/empty/",
]


@pytest.fixture
def clerk(django_user_model: Any) -> Client:
    """Staff, and nothing else."""
    user = django_user_model.objects.create_user("clerk", "clerk@example.com", "clerk-password-1", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", REFUSED_PAGES)
def test_a_staff_user_without_permissions_is_refused(clerk: Client, path: str) -> None:
    assert clerk.get(path).status_code == 403


def test_emptying_a_queue_is_refused_without_the_queue_permission(clerk: Client) -> None:
    assert clerk.post("/admin/django-rq/queues/0/empty/").status_code == 403
    assert clerk.post("/admin/django-rq/queues/actions/0/", {"action": "delete", "job_ids": ["x"]}).status_code == 403


def test_the_costs_page_opens_with_the_request_logs_view_permission(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("auditor", "auditor@example.com", "auditor-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_requestlog"))
    client = Client()
    client.force_login(user)
    assert client.get("/admin/orchestration/requestlog/costs/").status_code == 200
    assert client.get("/admin/django-rq/").status_code == 403


def test_the_queues_open_with_the_queue_permission(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("operator", "op@example.com", "operator-password-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="admin", content_type__app_label="django_rq"))
    client = Client()
    client.force_login(user)
    assert client.get("/admin/django-rq/").status_code == 200

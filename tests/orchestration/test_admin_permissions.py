"""A staff account without permissions sees and changes nothing of what it was not granted: the
costs page, the request log, the task queues (their pages and their actions)."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory

from orchestration.access.keys import api_key_create, api_key_find
from orchestration.breaker import breaker_read
from orchestration.models import BreakerState, Provider

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


# --- actions that change something need more than the view permission -------------------------------


@pytest.fixture
def viewer(django_user_model: Any) -> Client:
    """Staff who may look at keys, breakers, cached answers, tasks and experiments, and change nothing."""
    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "viewer-password-1", is_staff=True)
    names = ["view_apikey", "view_breakerstate", "view_cacheentry", "view_task", "view_experiment"]
    names += ["view_provider", "view_languagemodel"]
    user.user_permissions.add(*Permission.objects.filter(codename__in=names))
    client = Client()
    client.force_login(user)
    return client


def _offered_actions(user: Any, model: str) -> set[str]:
    """The actions the admin offers ``user`` on the list of ``model`` ("app.Model")."""
    request = RequestFactory().get("/admin/")
    request.user = user
    return set(admin.site._registry[apps.get_model(model)].get_actions(request))


@pytest.mark.parametrize(
    ("model", "actions"),
    [
        ("orchestration.ApiKey", {"revoke"}),
        ("orchestration.BreakerState", {"reset_breakers", "force_open_breakers"}),
        ("orchestration.CacheEntry", {"purge_selected", "purge_models_of_selected", "report_wrong_semantic_hits"}),
        ("agents.Task", {"cancel_tasks"}),
        ("orchestration.Experiment", {"pause", "resume", "end"}),
        ("orchestration.Provider", {"test_connection"}),  # a real call, which a provider may bill
        ("orchestration.LanguageModel", {"test_connection"}),
    ],
)
def test_a_viewer_is_offered_no_action_that_changes_anything(
    django_user_model: Any, viewer: Client, model: str, actions: set[str]
) -> None:
    user = django_user_model.objects.get(username="viewer")
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")
    assert actions <= _offered_actions(superuser, model)
    assert not actions & _offered_actions(user, model)


def test_a_viewer_cannot_revoke_a_key(viewer: Client, alice: Any) -> None:
    key, secret = api_key_create(user=alice, name="kept")

    viewer.post("/admin/orchestration/apikey/", {"action": "revoke", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.revoked_at is None and api_key_find(secret) is not None


def test_a_viewer_cannot_force_a_breaker_open(viewer: Client) -> None:
    provider = Provider.objects.create(name="upstream", kind="simulator")
    row = BreakerState.objects.create(key="upstream", provider=provider)

    viewer.post("/admin/orchestration/breakerstate/", {"action": "force_open_breakers", "_selected_action": [row.pk]})

    view = breaker_read("upstream", provider.breaker_open_s)
    assert view is not None and view.state == "closed"


def test_the_breaker_actions_open_with_the_breakers_change_permission(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("oncall", "oncall@example.com", "oncall-password-1", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_breakerstate", "change_breakerstate"]))
    assert {"reset_breakers", "force_open_breakers"} <= _offered_actions(user, "orchestration.BreakerState")

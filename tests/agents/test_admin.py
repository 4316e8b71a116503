"""The admin pages of the agents app: tasks with their log and a cancel action, articles, tickets."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agents.models import KnowledgeArticle, SupportTicket, Task, TaskEvent

pytestmark = pytest.mark.django_db


def make_task(owner, **fields) -> Task:  # type: ignore[no-untyped-def]
    return Task.objects.create(owner=owner, agent="support-triage", input="It broke", model="m", **fields)


def test_a_task_page_shows_its_log(admin_client, alice) -> None:
    task = make_task(alice, status=Task.Status.COMPLETED, result="Filed #3.")
    TaskEvent.objects.create(task=task, seq=1, type="action", content='create_ticket {"subject": "x"}')

    assert admin_client.get("/admin/agents/task/").status_code == 200
    page = admin_client.get(f"/admin/agents/task/{task.pk}/change/")
    assert page.status_code == 200
    assert b"create_ticket" in page.content and b"Filed #3." in page.content
    assert admin_client.get("/admin/agents/task/add/").status_code == 403


def test_the_cancel_action_cancels_unfinished_tasks_and_skips_finished_ones(admin_client, alice) -> None:
    running = make_task(alice, status=Task.Status.PROCESSING, attempts=1, started_at=timezone.now())
    done = make_task(alice, status=Task.Status.COMPLETED)

    response = admin_client.post(
        "/admin/agents/task/", {"action": "cancel_tasks", "_selected_action": [running.pk, done.pk]}, follow=True
    )
    assert b"Cancelled 1 task(s)." in response.content and b"1 task(s) had already finished." in response.content
    running.refresh_from_db()
    done.refresh_from_db()
    assert running.status == Task.Status.CANCELLED and running.error["message"] == "Cancelled by an administrator."
    assert done.status == Task.Status.COMPLETED


def test_articles_and_tickets_are_editable(admin_client, alice) -> None:
    response = admin_client.post(
        "/admin/agents/knowledgearticle/add/",
        {"title": "Webhooks", "slug": "webhooks", "body": "Not yet.", "tags": "webhook", "published": "on"},
    )
    assert response.status_code == 302 and KnowledgeArticle.objects.filter(slug="webhooks").exists()
    ticket = SupportTicket.objects.create(owner=alice, subject="Broken")
    assert admin_client.get(f"/admin/agents/supportticket/{ticket.pk}/change/").status_code == 200

"""Layout in Chromium: no page scrolls sideways at phone width; dark mode follows the system and a toggle."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from agents.models import Task
from chat.models import Conversation, Message
from orchestration.access.keys import api_key_create
from orchestration.models import RequestLog
from tests.browser.conftest import MODEL, new_page, screenshot, sign_in

PHONE = 390

PAGES = [
    ("chat", "/"),
    ("agents", "/agents/"),
    ("tasks", "/tasks/"),
    ("task", "/tasks/{task}/"),
    ("keys", "/keys/"),
    ("admin", "/admin/"),
    ("admin-requestlog", "/admin/orchestration/requestlog/"),
    ("admin-costs", "/admin/orchestration/requestlog/costs/"),
    ("admin-models", "/admin/orchestration/languagemodel/"),
]


def sideways(page: Any) -> int:
    """How far the page scrolls sideways (0: it fits)."""
    return int(page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))


@pytest.fixture
def filled(operator: Any, ui_model: Any) -> dict[str, str]:
    """A long-named key, a long conversation, a task: the content that pushed pages wide."""
    api_key_create(user=operator, name="a key with a rather long name for a phone screen")
    conversation = Conversation.objects.create(owner=operator, model=MODEL, title="A conversation title " * 4)
    Message.objects.create(conversation=conversation, role="user", content="word " * 300)
    task = Task.objects.create(owner=operator, agent="research-assistant", input="x" * 400, model=MODEL)
    return {"task": str(task.pk)}


def test_no_page_scrolls_sideways_at_phone_width(browser, live_web, operator, filled):
    page = new_page(browser, width=PHONE, height=844)
    try:
        wide = {}
        for name, path in PAGES:
            sign_in(page, live_web.url, operator, path.format(**filled))
            page.wait_for_load_state("networkidle")
            if sideways(page) > 0:
                wide[name] = sideways(page)
            screenshot(page, f"phone-{name}", full_page=False)
        assert wide == {}, f"pages wider than {PHONE} px, by px: {wide}"
        assert page.errors == []
    finally:
        page.context.close()


def test_admin_pages_log_no_console_errors_and_show_latencies_as_durations(browser, live_web, operator):

    from django.utils import timezone

    RequestLog.objects.create(
        request_id="req-slow",
        endpoint="chat",
        model_requested=MODEL,
        latency_ms=60002.7780339999,
        created_at=timezone.now(),
    )
    page = new_page(browser)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    try:
        sign_in(page, live_web.url, operator, "/admin/orchestration/requestlog/")
        page.wait_for_load_state("networkidle")
        row = page.locator("#result_list tbody tr").first
        expect(row.locator("td.field-latency")).to_have_text("60.0 s")
        assert "60002.77" not in page.content()
        assert console == [], console
        assert sideways(page) == 0
    finally:
        page.context.close()

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


CODE_REPLY = 'Here is code:\n\n```python\ndef greet(name: str) -> str:\n    return f"Hello, {name}!"\n```\n\nDone.'


def test_dark_mode_follows_the_system_and_the_toggle_keeps_a_choice(browser, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply=CODE_REPLY, tokens_per_s=0)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        sign_in(page, live_web.url, person)
        box = page.get_by_label("Message", exact=True)
        box.fill("Show me code")
        box.press("Enter")
        expect(page.locator("#message-list article.assistant")).to_have_attribute("data-status", "complete")
        code = page.locator("#message-list article.assistant pre code")
        expect(code.locator(".hljs-keyword").first).to_have_text("def")  # highlighted, from our static files
        expect(code).to_have_text('def greet(name: str) -> str:\n    return f"Hello, {name}!"')
        background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert background == "rgb(15, 17, 21)", background
        screenshot(page, "dark-chat", full_page=False)
        for name, path in (("agents", "/agents/"), ("tasks", "/tasks/"), ("keys", "/keys/")):
            page.goto(f"{live_web.url}{path}")
            screenshot(page, f"dark-{name}", full_page=False)

        toggle = page.get_by_role("button", name="Theme: as the system. Change it")
        toggle.click()  # light, whatever the system says
        assert page.evaluate("getComputedStyle(document.documentElement).backgroundColor") == "rgb(247, 247, 249)"
        page.get_by_role("button", name="Theme: light. Change it").click()
        page.reload()
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        expect(page.get_by_role("button", name="Theme: dark. Change it")).to_be_visible()
        assert errors == []
    finally:
        context.close()

"""A person's own limits in the chat, said in words for a page: no API header talk, no max_tokens."""

from __future__ import annotations

from decimal import Decimal

from playwright.sync_api import expect

from orchestration.access.models import AccessPolicy
from tests.browser.conftest import screenshot, sign_in
from tests.browser.test_chat_page import send, watch


def test_a_person_over_their_rate_limit_is_told_the_limit_and_the_wait_once(page, live_web, person, ui_model):
    AccessPolicy.objects.create(user=person, rpm=1)
    sign_in(page, live_web.url, person)
    watch(send(page, "The first message fits in the minute."))

    box = page.get_by_label("Message", exact=True)
    box.fill("The second one does not.")
    box.press("Enter")
    status = page.locator("#chat-status")
    expect(status).to_contain_text("Rate limit reached for requests: 1 per minute. Try again in")
    screenshot(page, "chat-rate-limited", full_page=False)
    said = status.inner_text()
    assert "Retry-After" not in said, said
    assert said.count("Rate limit reached") == 1, said
    assert box.input_value() == "The second one does not."


def test_a_person_past_their_budget_is_told_who_can_raise_it_not_to_lower_max_tokens(page, live_web, person, ui_model):
    AccessPolicy.objects.create(user=person, monthly_budget_usd=Decimal("0.0001"))
    sign_in(page, live_web.url, person)

    box = page.get_by_label("Message", exact=True)
    box.fill("Anything at all.")
    box.press("Enter")
    status = page.locator("#chat-status")
    expect(status).to_contain_text("monthly budget")
    said = status.inner_text()
    assert "ask an administrator to raise it" in said.lower(), said
    assert "max_tokens" not in said and "Rate limit" not in said, said

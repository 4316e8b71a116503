"""The operator's breaker and cache screens in Chromium: their actions work (the costs page: test_costs_page)."""

from __future__ import annotations

from playwright.sync_api import expect

from orchestration.access.keys import api_key_create
from orchestration.models import CacheEntry
from tests.browser.conftest import screenshot, sign_in


def test_breakers_open_and_close_from_the_admin(page, live_web, operator, ui_model):
    sign_in(page, live_web.url, operator, "/admin/orchestration/breakerstate/")
    row = page.locator("#result_list tbody tr").filter(has_text=ui_model.provider.name)
    row.get_by_role("checkbox").check()
    page.get_by_label("Action:").select_option(label="Force open the selected breakers")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("Opened 1 breaker(s).")
    expect(row).to_contain_text("Open")
    screenshot(page, "admin-breakers")

    row.get_by_role("checkbox").check()
    page.get_by_label("Action:").select_option(label="Reset (close) the selected breakers")
    page.get_by_role("button", name="Go").click()
    expect(page.locator(".messagelist")).to_contain_text("Reset 1 breaker(s).")
    expect(row).to_contain_text("Closed")


def test_cached_answers_are_listed_and_purged_from_the_admin(page, live_web, operator):
    for n, question in enumerate(["What is Switchyard?", "How do I rotate a key?"]):
        CacheEntry.objects.create(
            key=f"exact:{n}", kind="exact", model="sim-small", question_preview=question, answer_preview="An answer."
        )
    sign_in(page, live_web.url, operator, "/admin/orchestration/cacheentry/")
    screenshot(page, "admin-cache")
    row = page.locator("#result_list tbody tr").filter(has_text="What is Switchyard?")
    row.get_by_role("checkbox").check()
    page.get_by_label("Action:").select_option(label="Purge selected cached answers (Redis too)")
    page.get_by_role("button", name="Go").click()
    expect(page.locator("#result_list")).not_to_contain_text("What is Switchyard?")
    expect(page.locator("#result_list")).to_contain_text("How do I rotate a key?")
    assert list(CacheEntry.objects.values_list("question_preview", flat=True)) == ["How do I rotate a key?"]


def test_a_cached_question_without_spaces_leaves_the_hits_and_expiry_on_the_page(page, live_web, operator):
    CacheEntry.objects.create(
        key="semantic:long",
        kind="semantic",
        model="sim-small",
        question_preview="https://example.com/" + "a" * 280,
        answer_preview="A long answer, " * 20,
    )
    sign_in(page, live_web.url, operator, "/admin/orchestration/cacheentry/")
    screenshot(page, "admin-cache-long-question", full_page=False)
    row = page.locator("#result_list tbody tr").first
    # The changelist scrolls sideways inside its box beside the admin's two sidebars; what matters
    # is that its table stays about a screen wide, not the 3,000 px one long preview made it.
    width = page.locator("#result_list").evaluate("table => table.scrollWidth")
    assert width <= page.viewport_size["width"] - 200, f"the cache list is {width} px wide"
    assert row.bounding_box()["height"] < 150, "a row grew taller than a few lines"


def test_a_key_named_without_spaces_keeps_the_admin_key_list_about_a_screen_wide(page, live_web, operator, person):
    api_key_create(user=person, name="k" * 100)
    sign_in(page, live_web.url, operator, "/admin/orchestration/apikey/")
    width = page.locator("#result_list").evaluate("table => table.scrollWidth")
    assert width <= page.viewport_size["width"] - 200, f"the key list is {width} px wide"

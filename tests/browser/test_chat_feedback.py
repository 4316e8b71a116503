"""Feedback on a chat reply in Chromium: thumbs up, a comment, stored with the call's variant."""

from __future__ import annotations

import time
from typing import Any

import httpx
from playwright.sync_api import expect

from orchestration.access.keys import api_key_create
from orchestration.models import Feedback, LanguageModel, RequestLog
from orchestration.routing.services import experiment_create
from tests.browser.conftest import BACKUP, MODEL, new_page, screenshot, sign_in
from tests.browser.test_chat_page import reply_node, saved_reply, send, watch


def _served_by(base_url: str, user: Any, served: str, timeout: float = 10.0) -> None:
    """Wait until the server's registry snapshot (refreshed every few seconds) sends MODEL's traffic
    to ``served``."""
    _, secret = api_key_create(user=user, name=f"probe-{served}")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 3}
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}) as client:
        while client.post("/v1/chat/completions", json=body).headers.get("X-Served-Model") != served:
            assert time.monotonic() < deadline, f"the server never sent {MODEL}'s traffic to {served}"
            time.sleep(0.25)


def test_thumbs_up_with_a_comment_lands_on_the_replys_call_and_variant(
    page: Any, live_web: Any, person: Any, ui_model: LanguageModel, simulator: Any, django_user_model: Any
) -> None:
    experiment = experiment_create(
        name="backup-trial",
        model=ui_model,
        sticky_by="user",
        variants=[
            {"name": "control", "percent": 0},
            {"name": "backup", "percent": 100, "target": LanguageModel.objects.get(name=BACKUP)},
        ],
    )
    probe = django_user_model.objects.create_user("probe-feedback")
    _served_by(live_web.url, probe, BACKUP)
    try:
        _thumbs_up_with_a_comment(page, live_web, person)
    finally:
        # The shared server must not split the next test's traffic from its snapshot of this one.
        experiment.delete()
        _served_by(live_web.url, probe, MODEL)


def _thumbs_up_with_a_comment(page: Any, live_web: Any, person: Any) -> None:
    sign_in(page, live_web.url, person)

    node = send(page, "Is this answer any good?")
    watch(node)
    reply = saved_reply(node)
    good = node.get_by_role("button", name="Good reply")
    good.click()
    expect(good).to_have_attribute("aria-pressed", "true")
    expect(node.get_by_role("button", name="Bad reply")).to_have_attribute("aria-pressed", "false")
    node.get_by_label("Comment").fill("Clear and short.")
    node.get_by_role("button", name="Send").click()
    expect(reply_node(page).locator(".feedback")).to_contain_text("Thanks for the feedback.")
    screenshot(page, "chat-feedback")

    feedback = Feedback.objects.get(message_id=reply.pk)
    call = RequestLog.objects.get(message_id=reply.pk)
    assert (feedback.user_id, feedback.score, feedback.comment) == (person.pk, 1, "Clear and short.")
    assert (feedback.request_id, feedback.experiment, feedback.variant) == (call.request_id, "backup-trial", "backup")
    assert (call.variant, call.model_served, feedback.model) == ("backup", BACKUP, BACKUP)


# The footer's rows: its visible parts grouped by the line they sit on.
FOOTER_ROWS = """node => {
  const meta = node.querySelector(".message-meta");
  const parts = [...meta.querySelectorAll(".badge, .detail, button")].map((part) => part.getBoundingClientRect())
    .filter((box) => box.width > 0 && box.height > 0);
  const middles = parts.map((box) => box.top + box.height / 2).sort((a, b) => a - b);
  const rows = middles.filter((middle, i) => i === 0 || middle - middles[i - 1] > 6).length;
  const right = meta.getBoundingClientRect().right;
  return { rows, overflow: Math.max(0, ...parts.map((box) => box.right - right)) };
}"""


def test_a_replys_footer_stays_on_one_line_on_a_desktop_and_wraps_whole_on_a_phone(
    browser: Any, live_web: Any, person: Any, ui_model: LanguageModel, simulator: Any
) -> None:
    # A full footer: the badge, a detail line with four-digit token counts, a cost and a latency in
    # seconds, the versions of a regenerated reply, Regenerate, copy, and the thumbs.
    simulator.configure(MODEL, reply=" ".join(f"word{n}" for n in range(1200)), tokens_per_s=0)
    page = new_page(browser, width=1280, height=800)
    sign_in(page, live_web.url, person)
    node = send(page, "Rate me " * 300)
    watch(node)
    node.get_by_role("button", name="Regenerate").click()
    expect(page.locator("#message-list article.assistant")).to_have_count(2)
    node = reply_node(page)
    watch(node)
    expect(node.locator(".versions")).to_be_visible()
    expect(node.get_by_role("button", name="Bad reply")).to_be_visible()
    for width in (1280, 1440, 1920):
        page.set_viewport_size({"width": width, "height": 800})
        footer = node.evaluate(FOOTER_ROWS)
        assert footer == {"rows": 1, "overflow": 0}, f"at {width} px: {footer}"
    node.locator(".message-meta").scroll_into_view_if_needed()
    screenshot(page, "chat-footer-desktop", full_page=False)

    page.set_viewport_size({"width": 390, "height": 844})
    footer = node.evaluate(FOOTER_ROWS)
    assert footer["overflow"] == 0 and footer["rows"] <= 2, footer
    good, bad = (node.get_by_role("button", name=name).bounding_box() for name in ("Good reply", "Bad reply"))
    assert good is not None and bad is not None and abs(good["y"] - bad["y"]) < 2  # the thumbs stay together
    node.locator(".message-meta").scroll_into_view_if_needed()
    screenshot(page, "chat-footer-phone", full_page=False)

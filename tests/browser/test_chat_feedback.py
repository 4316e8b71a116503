"""Feedback on a chat reply in Chromium: thumbs up, a comment, stored with the call's variant."""

from __future__ import annotations

import time
from typing import Any

import httpx
from playwright.sync_api import expect

from orchestration.access.keys import api_key_create
from orchestration.models import Feedback, LanguageModel, RequestLog
from orchestration.routing.services import experiment_create
from tests.browser.conftest import BACKUP, MODEL, screenshot, sign_in
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

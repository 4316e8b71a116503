"""The chat never loses what was written: a cut-off reply says why and continues, versions of a
reply stay browsable, over-long messages and signed-out sends keep the draft; search, paging and
keyboard use of the conversation list. Chromium, a live server, the real simulator."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import Any

from playwright.sync_api import expect

from chat.models import Conversation, Message
from tests.browser.conftest import MODEL, new_page, screenshot, sign_in
from tests.browser.test_chat_page import plain, reply_node, saved_reply, send, watch

LONG = " ".join(f"word{n}" for n in range(150))


@contextlib.contextmanager
def another_tab(page: Any) -> Iterator[Any]:
    """The page's conversation opened in a second tab of the same browser, closed afterwards."""
    other = page.context.new_page()
    try:
        other.goto(page.url)
        other.locator("#message-list article.assistant").first.wait_for()
        yield other
    finally:
        other.close()


def settled(message_id: int, timeout: float = 20.0) -> Message:
    """The reply once the server has ended it (the grace period runs in the server, not here)."""
    deadline = time.monotonic() + timeout
    message = Message.objects.get(pk=message_id)
    while message.status == Message.Status.STREAMING and time.monotonic() < deadline:
        time.sleep(0.1)
        message.refresh_from_db()
    return message


def test_a_reply_whose_tab_closed_says_why_and_continue_finishes_it_exactly(
    browser, page, live_web, person, ui_model, simulator
):
    simulator.configure(MODEL, reply=LONG, tokens_per_s=10)
    first = new_page(browser)
    sign_in(first, live_web.url, person)
    node = send(first, "Count for me")
    first.wait_for_function(
        "() => document.querySelector('#message-list article.assistant .message-body').innerText.split(' ').length >= 4"
    )
    reply_id = int(node.get_attribute("data-message-id"))
    first.context.close()  # the tab goes; the server stops the reply after its grace period

    cut = settled(reply_id)
    assert cut.status == Message.Status.CANCELLED and cut.error_code == "client_gone"
    assert cut.content and len(cut.content) < len(LONG)

    simulator.configure(MODEL, reply=" and that is the end.", tokens_per_s=40)
    sign_in(page, live_web.url, person, f"/?c={cut.conversation_id}")
    node = reply_node(page)
    notice = node.get_by_role("status")
    expect(notice).to_have_text("The connection was lost for more than 4 s, so the reply stopped here.")
    expect(node.locator(".message-meta")).to_contain_text("Cut off")
    assert node.get_by_role("button", name="Retry").is_visible()
    screenshot(page, "chat-reply-cut-off")

    node.get_by_role("button", name="Continue").click()
    expect(node).to_have_attribute("data-status", "complete", timeout=20_000)
    finished = saved_reply(node)
    assert finished.pk == cut.pk and finished.status == Message.Status.COMPLETE
    assert finished.content == cut.content + " and that is the end."
    expect(node.locator(".message-body")).to_have_text(plain(finished.content))
    expect(node.get_by_role("status")).to_have_count(0)
    screenshot(page, "chat-reply-continued")


def test_a_failed_reply_offers_retry_and_names_no_model_as_having_answered(
    page, live_web, person, operator, django_user_model, ui_model, simulator
):
    simulator.configure(MODEL, error_status=503)
    simulator.configure(f"{MODEL}-backup", error_status=503)
    sign_in(page, live_web.url, person)
    failed = send(page, "Hello")
    alert = failed.get_by_role("alert")
    expect(alert).to_contain_text("The model provider is unavailable right now.")
    assert "simulator" not in alert.inner_text().lower() and "breaker" not in alert.inner_text().lower()
    expect(failed.locator(".message-meta .detail")).not_to_contain_text(MODEL)
    assert alert.locator("a").count() == 0  # no request id for a person who is not staff

    simulator.configure(MODEL, error_status=None, reply="Back again.", tokens_per_s=0)
    failed.get_by_role("button", name="Retry").click()
    retried = page.locator("#message-list article.assistant:not([hidden])").last
    expect(retried).to_have_attribute("data-status", "complete")
    expect(retried.locator(".message-body")).to_have_text("Back again.")
    expect(retried.locator(".versions-count")).to_have_text("2/2")
    screenshot(page, "chat-retried")

    staff = new_page(page.context.browser)
    try:
        sign_in(staff, live_web.url, operator)
        simulator.configure(MODEL, error_status=503)
        node = send(staff, "Fail for staff")
        link = node.get_by_role("alert").get_by_role("link")
        expect(link).to_have_text(saved_reply(node).request_id)
        assert "/admin/orchestration/requestlog/?q=" in link.get_attribute("href")
        screenshot(staff, "chat-failed-staff")
    finally:
        staff.context.close()

    # Staff who may not read the request log get no link that would end on "403 Forbidden".
    clerk = django_user_model.objects.create(username="clem", is_staff=True)
    other = new_page(page.context.browser)
    try:
        sign_in(other, live_web.url, clerk)
        node = send(other, "Fail for a clerk")
        expect(node.get_by_role("alert")).to_contain_text("The model provider is unavailable right now.")
        assert node.get_by_role("alert").get_by_role("link").count() == 0
    finally:
        other.context.close()


def test_regenerated_versions_stay_browsable_after_a_reload(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="The first version.", tokens_per_s=0)
    sign_in(page, live_web.url, person)
    watch(send(page, "Say something"))
    simulator.configure(MODEL, reply="The second version.", tokens_per_s=0)
    reply_node(page).get_by_role("button", name="Regenerate").click()
    shown = page.locator("#message-list article.assistant:not([hidden])")
    expect(shown).to_have_count(1)
    expect(shown.locator(".message-body")).to_have_text("The second version.")

    page.reload()
    expect(shown.locator(".message-body")).to_have_text("The second version.")
    expect(shown.locator(".versions-count")).to_have_text("2/2")
    shown.get_by_role("button", name="Previous version").click()
    expect(shown.locator(".message-body")).to_have_text("The first version.")
    expect(shown.locator(".versions-count")).to_have_text("1/2")
    screenshot(page, "chat-versions")
    shown.get_by_role("button", name="Next version").click()
    expect(shown.locator(".message-body")).to_have_text("The second version.")
    assert Message.objects.filter(role="assistant").count() == 2


def test_a_200_kb_paste_is_refused_in_place_and_the_draft_survives_a_reload(page, live_web, person, ui_model):
    sign_in(page, live_web.url, person)
    box = page.get_by_label("Message", exact=True)
    pasted = ("All work and no play. " * 10_000)[:200_000]
    box.fill(pasted)
    expect(page.locator("#composer-count")).to_contain_text("200,000 / 32,000 characters: 168,000 too many")
    box.press("Enter")
    expect(page.locator("#chat-status")).to_contain_text("a message holds at most 32,000")
    assert box.input_value() == pasted
    assert not Message.objects.exists()
    screenshot(page, "chat-too-long", full_page=False)
    page.reload()
    assert page.get_by_label("Message", exact=True).input_value() == pasted


def test_a_send_after_logging_out_elsewhere_keeps_the_draft_and_offers_log_in(page, live_web, person, ui_model):
    sign_in(page, live_web.url, person)
    other = page.context.new_page()
    other.goto(f"{live_web.url}/keys/")
    other.get_by_role("button", name="Log out").click()
    other.wait_for_url("**/accounts/login/**")  # closing a page mid-navigation can hang Playwright
    other.close()
    box = page.get_by_label("Message", exact=True)
    box.fill("Words I do not want to lose")
    box.press("Enter")
    status = page.locator("#chat-status")
    expect(status).to_contain_text("You are signed out, so nothing was sent.")
    link = status.get_by_role("link", name="log in (opens a new tab)")
    assert link.get_attribute("href") == "/accounts/login/?next=%2F"
    assert box.input_value() == "Words I do not want to lose"
    screenshot(page, "chat-signed-out", full_page=False)


def test_search_finds_one_conversation_among_150_and_the_list_pages_on_scroll(page, live_web, person, ui_model):
    Conversation.objects.bulk_create(
        Conversation(owner=person, model=MODEL, title=f"Errand {n:03}") for n in range(150)
    )
    hidden = Conversation.objects.get(title="Errand 007")
    Message.objects.create(conversation=hidden, role="user", content="Where did the pelicans nest?")
    sign_in(page, live_web.url, person)
    sidebar = page.get_by_role("complementary", name="Conversations")
    links = sidebar.locator(".conversation-open")
    expect(links).to_have_count(50)
    for _ in range(10):
        page.locator("#conversation-list").evaluate("list => { list.scrollTop = list.scrollHeight; }")
        if links.count() == 150:
            break
        page.wait_for_timeout(200)
    expect(links).to_have_count(150)

    sidebar.get_by_label("Search conversations").fill("PELICAN")
    expect(links).to_have_count(1)
    expect(links).to_have_text("Errand 007")
    screenshot(page, "chat-search", full_page=False)
    links.first.click()
    page.locator("#message-list").get_by_text("Where did the pelicans nest?").wait_for()


def test_keyboard_only_sends_a_message_and_opens_a_conversation(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="Typed and sent.", tokens_per_s=0)
    for n in range(100):
        Conversation.objects.create(owner=person, model=MODEL, title=f"Old chat {n}")
    sign_in(page, live_web.url, person)
    page.locator(".conversation-open").first.wait_for()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    page.keyboard.press("Enter")
    box = page.get_by_label("Message", exact=True)
    expect(box).to_be_focused()
    page.keyboard.type("Sent with the keyboard")
    page.keyboard.press("Enter")
    expect(reply_node(page).locator(".message-body")).to_have_text("Typed and sent.")
    # The list shows the new conversation once its own request is back, which can come after the
    # reply: until then a Tab would land on the list as it was before the send.
    expect(page.locator("#conversation-list .conversation-open[aria-current=page]")).to_have_text(
        "Sent with the keyboard"
    )

    # From the search box, the whole list is one Tab stop; arrows move within it.
    page.get_by_label("Search conversations").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Sent with the keyboard"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.textContent") == "Old chat 99"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Old chat 99")).to_be_visible()
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "conversation-search"
    tabs_to_box = page.evaluate(
        "() => [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]"
        ".filter(e => e.tabIndex >= 0 && !e.disabled && e.offsetParent !== null).length"
    )
    assert tabs_to_box < 30, f"{tabs_to_box} Tab stops on the chat page with 101 conversations"
    screenshot(page, "chat-keyboard", full_page=False)


def test_edit_and_resend_branches_and_the_old_branch_stays_browsable(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="About cats.", tokens_per_s=0)
    sign_in(page, live_web.url, person)
    watch(send(page, "Tell me about cats"))
    simulator.configure(MODEL, reply="More on cats.", tokens_per_s=0)
    watch(send(page, "And more?"))

    first = page.locator("#message-list article.user").first
    first.hover()
    first.get_by_role("button", name="Edit message").click()
    field = first.get_by_label("New version of the message")
    field.fill("Tell me about dogs")
    simulator.configure(MODEL, reply="About dogs.", tokens_per_s=0)
    field.press("Enter")

    shown = page.locator("#message-list article:not([hidden])")
    expect(shown.locator(".message-body")).to_have_text(["Tell me about dogs", "About dogs."])
    page.reload()
    expect(shown.locator(".message-body")).to_have_text(["Tell me about dogs", "About dogs."])
    edited = page.locator("#message-list article.user:not([hidden])")
    expect(edited.locator(".edit-versions .versions-count")).to_have_text("2/2")
    edited.get_by_role("button", name="Previous version of this message").click()
    expect(shown.locator(".message-body")).to_have_text(
        ["Tell me about cats", "About cats.", "And more?", "More on cats."]
    )
    screenshot(page, "chat-edit-branch")
    assert [m.content for m in Message.objects.order_by("pk")] == [
        "Tell me about cats",
        "About cats.",
        "And more?",
        "More on cats.",
        "Tell me about dogs",
        "About dogs.",
    ]


def test_a_conversation_keeps_its_own_system_prompt_and_temperature(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="Arr.", tokens_per_s=0)
    sign_in(page, live_web.url, person)
    watch(send(page, "Hello"))
    page.get_by_role("button", name="Conversation settings").click()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    dialog.get_by_label("System prompt").fill("Answer like a pirate.")
    dialog.get_by_label("Temperature").fill("0.3")
    screenshot(page, "chat-settings", full_page=False)
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    conversation = Conversation.objects.get(owner=person)
    assert conversation.system_prompt == "Answer like a pirate." and conversation.temperature == 0.3
    page.reload()
    page.get_by_role("button", name="Conversation settings").click()
    expect(dialog.get_by_label("System prompt")).to_have_value("Answer like a pirate.")
    dialog.get_by_label("Temperature").fill("5")
    dialog.get_by_role("button", name="Save").click()  # the browser refuses it in place
    assert dialog.get_by_label("Temperature").evaluate("field => field.validity.rangeOverflow")
    expect(dialog).to_be_visible()
    conversation.refresh_from_db()
    assert conversation.temperature == 0.3


def test_a_message_sent_in_one_tab_appears_in_the_other(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="Seen in both tabs.", tokens_per_s=20)
    sign_in(page, live_web.url, person)
    watch(send(page, "First"))
    with another_tab(page) as other:
        watch(send(page, "Second, from the first tab"))
        expect(other.locator("#message-list article.user .message-body").last).to_have_text(
            "Second, from the first tab"
        )
        expect(other.locator("#message-list article.assistant").last.locator(".message-body")).to_have_text(
            "Seen in both tabs."
        )
        screenshot(other, "chat-second-tab", full_page=False)


def test_an_edit_being_typed_survives_a_message_sent_from_another_tab(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="Seen in both tabs.", tokens_per_s=0)
    sign_in(page, live_web.url, person)
    watch(send(page, "First"))
    with another_tab(page) as other:
        mine = other.locator("#message-list article.user").last
        mine.hover()
        mine.get_by_role("button", name="Edit message").click()
        field = mine.get_by_label("New version of the message")
        field.fill("A careful rewrite, half typed")
        reads: list[Any] = []  # the other tab's reads of the messages, had it drawn them again
        other.on("request", lambda request: reads.append(request) if request.url.endswith("/messages") else None)
        with other.expect_response(lambda response: "/api/v1/conversations?" in response.url):  # told of the send
            watch(send(page, "Second, from the first tab"))
        for read in reads:
            read.response()
        other.evaluate("() => new Promise(requestAnimationFrame)")  # what those answers drew, drawn
        expect(field).to_have_value("A careful rewrite, half typed")

        field.press("Escape")  # closed, the conversation is read again with the first tab's message
        expect(other.locator("#message-list article.user .message-body").last).to_have_text(
            "Second, from the first tab"
        )


def open_a_long_conversation_whose_model_fails(page: Any, live_web: Any, person: Any, simulator: Any) -> None:
    """Twelve exchanges, taller than the pane, open on the page; the model and its backup answer 503."""
    conversation = Conversation.objects.create(owner=person, model=MODEL, title="Long one")
    for n in range(12):
        question = Message.objects.create(conversation=conversation, role="user", content=f"Question {n}\n" * 6)
        Message.objects.create(
            conversation=conversation, role="assistant", content=f"Answer {n}. " * 40, reply_to=question, model=MODEL
        )
    simulator.configure(MODEL, error_status=503)
    simulator.configure(f"{MODEL}-backup", error_status=503)
    sign_in(page, live_web.url, person, f"/?c={conversation.pk}")
    page.locator("#message-list article.assistant").first.wait_for()


def test_a_failure_after_a_long_conversation_shows_above_the_message_box_and_scrolling_up_offers_a_way_back(
    page, live_web, person, ui_model, simulator
):
    open_a_long_conversation_whose_model_fails(page, live_web, person, simulator)
    failed = send(page, "A long question that fails\n" * 8)
    alert = failed.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(failed.get_by_role("button", name="Retry")).to_be_visible()
    expect(failed.locator(".message-meta")).to_contain_text("failed after")  # the saved copy was read back
    composer_top = page.locator("#composer").bounding_box()["y"]
    retry = failed.get_by_role("button", name="Retry").bounding_box()
    assert retry["y"] + retry["height"] <= composer_top, "the Retry button is hidden under the message box"
    assert page.locator("#scroll-bottom").is_hidden()

    page.locator("#messages").evaluate("scroller => scroller.scrollTo({ top: 0, behavior: 'instant' })")
    back = page.get_by_role("button", name="Scroll to the latest")
    expect(back).to_be_visible()
    screenshot(page, "chat-scroll-to-latest", full_page=False)
    back.click()
    expect(back).to_be_hidden()
    expect(alert).to_be_in_viewport()


def test_scrolling_up_as_a_reply_ends_is_not_undone_when_its_saved_copy_arrives(
    page, live_web, person, ui_model, simulator
):
    open_a_long_conversation_whose_model_fails(page, live_web, person, simulator)
    held: list[Any] = []  # the page's read of the saved messages, answered only when the test says

    def hold_reads(route: Any) -> None:
        if route.request.method == "GET":
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(r".*/api/v1/conversations/\d+/messages$"), hold_reads)
    failed = send(page, "A question that fails")
    expect(failed.get_by_role("alert")).to_be_visible()
    page.wait_for_function("() => document.querySelector('#messages').scrollTop > 0")
    page.locator("#messages").evaluate("scroller => scroller.scrollTo({ top: 0, behavior: 'instant' })")
    back = page.get_by_role("button", name="Scroll to the latest")
    expect(back).to_be_visible()
    assert held, "the page read the saved reply before the test could hold it"
    held.pop().continue_()
    expect(failed.locator(".message-meta")).to_contain_text("failed after")
    assert page.locator("#messages").evaluate("scroller => scroller.scrollTop") == 0, "the page scrolled back down"
    expect(back).to_be_visible()


def test_a_message_answered_after_another_conversation_was_opened_stays_in_its_own(
    page, live_web, person, ui_model, simulator
):
    simulator.configure(MODEL, reply="An answer for the first chat.", tokens_per_s=0)
    Conversation.objects.create(owner=person, model=MODEL, title="The other chat")
    sign_in(page, live_web.url, person)
    watch(send(page, "The first chat"))
    held: list[Any] = []  # the message's post, answered only after the click (a slow network)
    page.route(
        re.compile(r".*/api/v1/conversations/\d+/messages$"),
        lambda route: held.append(route) if route.request.method == "POST" else route.continue_(),
    )
    box = page.get_by_label("Message", exact=True)
    box.fill("Sent on a slow network")
    with page.expect_request(lambda request: request.method == "POST" and request.url.endswith("/messages")):
        box.press("Enter")
    page.get_by_role("complementary", name="Conversations").get_by_role("link", name="The other chat").click()
    expect(page.get_by_role("heading", name="The other chat")).to_be_visible()
    box.fill("A draft for the other chat")
    assert len(held) == 1
    with page.expect_request(lambda request: "/api/v1/conversations?" in request.url):  # the post's answer handled
        held[0].continue_()
    expect(page.locator("#message-list article")).to_have_count(0)
    expect(box).to_have_value("A draft for the other chat")

    page.go_back()
    expect(page.locator("#message-list article.user .message-body").last).to_have_text("Sent on a slow network")
    expect(reply_node(page).locator(".message-body")).to_have_text("An answer for the first chat.")


def test_escape_closes_the_export_menu_and_gives_focus_back_to_its_button(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="Something to export.", tokens_per_s=0)
    sign_in(page, live_web.url, person)
    watch(send(page, "Export me"))
    menu = page.locator("#chat-export")
    button = menu.locator("summary")
    # The menu shows once the page knows the new conversation (its list refreshed after the post),
    # which can come after the reply has ended: focus on a hidden menu went nowhere.
    expect(button).to_be_visible()
    button.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="Export as Markdown")).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")
    expect(page.get_by_role("link", name="Export as Markdown")).to_be_hidden()
    expect(button).to_be_focused()


def reply_under_way(page: Any, live_web: Any, person: Any, simulator: Any) -> tuple[Any, Any]:
    """The message box, and a long reply signed in and streaming, its first words on the page."""
    simulator.configure(MODEL, reply=LONG, tokens_per_s=40)
    sign_in(page, live_web.url, person)
    box = page.get_by_label("Message", exact=True)
    node = send(page, "Write on")
    node.locator(".message-body p").wait_for()
    return box, node


def test_continue_and_regenerate_from_the_keyboard_leave_focus_in_the_message_box(
    page, live_web, person, ui_model, simulator
):
    box, node = reply_under_way(page, live_web, person, simulator)
    box.press("Escape")
    node.get_by_role("button", name="Continue").focus()
    page.keyboard.press("Enter")
    expect(node).to_have_attribute("data-status", "streaming")
    expect(box).to_be_focused()  # not the page's top: the pressed button is gone while the reply streams
    watch(node)

    node.get_by_role("button", name="Regenerate").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#message-list article.assistant")).to_have_count(2)
    expect(box).to_be_focused()


def test_a_stop_answered_after_the_person_moved_to_continue_leaves_their_focus_there(
    page, live_web, person, ui_model, simulator
):
    # The stopped reply's end comes over its stream; the stop's own answer can come after it,
    # when the person is already on the reply's Continue button: focus must stay there.
    box, node = reply_under_way(page, live_web, person, simulator)
    held: list[Any] = []
    page.route("**/cancel", lambda route: held.append(route))
    box.press("Escape")
    while not held:
        page.wait_for_timeout(20)  # lets the page's events (the held request) through
    answer = held[0].fetch()  # the server stops the reply now; its answer is held back
    button = node.get_by_role("button", name="Continue")
    button.focus()
    expect(node).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#stop-button")).to_be_disabled()  # the stop still waits for its answer
    held[0].fulfill(response=answer)
    page.wait_for_function("() => !document.getElementById('stop-button').disabled")  # answered
    expect(button).to_be_focused()


def test_escape_that_closes_the_settings_or_clears_the_search_leaves_the_reply_streaming(
    page, live_web, person, ui_model, simulator
):
    simulator.configure(MODEL, reply=LONG, tokens_per_s=10)
    sign_in(page, live_web.url, person)
    node = send(page, "Tell me a long story")
    node.locator(".message-body p").wait_for()

    page.get_by_role("button", name="Conversation settings").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    search = page.get_by_label("Search conversations")
    search.fill("story")
    search.press("Escape")
    expect(search).to_have_value("")
    # Its own key still stops it: Escape from the message box.
    assert node.get_attribute("data-status") == "streaming"
    page.get_by_label("Message", exact=True).press("Escape")
    node.locator(".message-meta").get_by_text("Stopped").wait_for()
    assert saved_reply(node).status == Message.Status.CANCELLED


def test_a_link_to_a_deleted_conversation_says_so_and_starts_a_new_chat(page, live_web, person, ui_model):
    gone = Conversation.objects.create(owner=person, model=MODEL, title="Soon gone")
    gone_id = gone.pk
    gone.delete()
    sign_in(page, live_web.url, person, f"/?c={gone_id}")
    expect(page.locator("#chat-status")).to_have_text(
        "That conversation is not here any more: it was deleted, or it belongs to someone else."
    )
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()
    assert page.url == f"{live_web.url}/", "a reload would say it again"


def test_a_conversation_deleted_in_one_tab_leaves_the_other_and_a_send_there_keeps_the_text(
    page, live_web, person, ui_model, simulator
):
    simulator.configure(MODEL, reply="Soon deleted.", tokens_per_s=0)
    sign_in(page, live_web.url, person)
    watch(send(page, "Delete this one"))
    with another_tab(page) as other:
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Delete “Delete this one”").click()
        expect(other.locator("#chat-status")).to_have_text("This conversation was deleted in another tab.")
        expect(other.get_by_role("heading", name="New chat")).to_be_visible()
        expect(other.get_by_role("link", name="Delete this one")).to_have_count(0)

    # Deleted where no tab could say so (here: by the server): the send keeps its text.
    reply = send(page, "Another one")
    watch(reply)
    reply.get_by_role("button", name="Regenerate").wait_for()  # settled: its saved copy was read back
    Conversation.objects.filter(owner=person).delete()
    box = page.get_by_label("Message", exact=True)
    box.fill("Typed into a conversation that is gone")
    box.press("Enter")
    expect(page.locator("#chat-status")).to_contain_text("This conversation was deleted")
    expect(box).to_have_value("Typed into a conversation that is gone")
    box.press("Enter")
    expect(page.locator("#message-list article.user .message-body").last).to_have_text(
        "Typed into a conversation that is gone"
    )


def test_settings_opened_while_the_conversation_still_loads_show_its_own(page, live_web, person, ui_model):
    conversation = Conversation.objects.create(owner=person, model=MODEL, title="Slow", system_prompt="Be brief.")
    held: list[Any] = []  # the conversation list's request, answered only after the click (a slow network)
    page.route(re.compile(r"/api/v1/conversations\?"), lambda route: held.append(route))
    sign_in(page, live_web.url, person, f"/?c={conversation.pk}")
    page.wait_for_function("document.readyState === 'complete'")
    page.get_by_role("button", name="Conversation settings").click()
    assert len(held) == 1
    held[0].continue_()
    dialog = page.get_by_role("dialog", name="Conversation settings")
    expect(dialog.get_by_label("System prompt")).to_have_value("Be brief.")


def test_back_and_forward_go_through_the_conversations_opened_and_a_modified_click_opens_a_tab(
    page, live_web, person, ui_model
):
    first = Conversation.objects.create(owner=person, model=MODEL, title="Bread recipe")
    Message.objects.create(conversation=first, role="user", content="How long does the dough rise?")
    second = Conversation.objects.create(owner=person, model=MODEL, title="Trip to Oslo")
    Message.objects.create(conversation=second, role="user", content="Which museums open on Monday?")
    sign_in(page, live_web.url, person)
    sidebar = page.get_by_role("complementary", name="Conversations")
    sidebar.get_by_role("link", name="Bread recipe").click()
    expect(page.get_by_role("heading", name="Bread recipe")).to_be_visible()
    sidebar.get_by_role("link", name="Trip to Oslo").click()
    page.locator("#message-list").get_by_text("Which museums open on Monday?").wait_for()

    page.go_back()
    expect(page.get_by_role("heading", name="Bread recipe")).to_be_visible()
    page.locator("#message-list").get_by_text("How long does the dough rise?").wait_for()
    assert page.url == f"{live_web.url}/?c={first.pk}"
    page.go_back()
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()
    assert page.url == f"{live_web.url}/"
    page.go_forward()
    expect(page.get_by_role("heading", name="Bread recipe")).to_be_visible()
    page.get_by_role("button", name="New chat").click()
    expect(page.get_by_role("heading", name="New chat")).to_be_visible()
    page.go_back()
    expect(page.get_by_role("heading", name="Bread recipe")).to_be_visible()

    # Ctrl and a click on a conversation opens it in a new tab, as with any link; this one stays.
    with page.context.expect_page() as opened:
        sidebar.get_by_role("link", name="Trip to Oslo").click(modifiers=["Control"])
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.url == f"{live_web.url}/?c={second.pk}"
    tab.close()
    expect(page.get_by_role("heading", name="Bread recipe")).to_be_visible()
    assert page.url == f"{live_web.url}/?c={first.pk}"


def test_a_page_signed_out_elsewhere_does_not_claim_a_message_was_kept_when_none_was_sent(
    page, live_web, person, ui_model
):
    Conversation.objects.create(owner=person, model=MODEL, title="Garden plans")
    sign_in(page, live_web.url, person)
    page.context.clear_cookies()  # signed out elsewhere
    page.get_by_role("complementary", name="Conversations").get_by_role("link", name="Garden plans").click()
    status = page.locator("#chat-status")
    expect(status).to_contain_text("You are signed out")
    expect(status.get_by_role("link", name="log in (opens a new tab)")).to_be_visible()
    assert "nothing was sent" not in status.inner_text()
    assert "Your message is kept" not in status.inner_text()

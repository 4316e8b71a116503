"""The chat page in Chromium: streaming, resume on reload, stop, safe Markdown, errors, phone width."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
from playwright.sync_api import expect

from chat.models import Conversation, Message
from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel
from tests.browser.conftest import BACKUP, MODEL, log_in, new_page, screenshot, sign_in
from tests.proxy import CuttingProxy

WORDS = (
    "Switchyard routes every call through one gateway, streams each reply as it is written, "
    "keeps what was said when a window closes, and says which model answered and what it cost."
)


def plain(text: str) -> str:
    return " ".join(text.split())


def reply_node(page: Any) -> Any:
    return page.locator("#message-list article.assistant").last


def send(page: Any, text: str) -> Any:
    """Type ``text``, press Enter, and return the reply's element once it is on the page."""
    replies = page.locator("#message-list article.assistant")
    count = replies.count()
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    node = replies.nth(count)
    node.wait_for()
    return node


def watch(node: Any, timeout: float = 20.0) -> list[str]:
    """The reply's visible text each time it changed, until it stopped streaming."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        streaming = node.get_attribute("data-status") == "streaming"
        text = plain(node.locator(".message-body").inner_text())
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        if not streaming:
            return seen
        time.sleep(0.03)
    raise AssertionError(f"the reply still streams after {timeout}s: {seen[-1:]}")


def saved_reply(node: Any) -> Message:
    return Message.objects.get(pk=int(node.get_attribute("data-message-id")))


def assert_grows_without_repeating(seen: list[str], final: str) -> None:
    for earlier, later in itertools.pairwise(seen):
        assert later.startswith(earlier), f"{later!r} does not continue {earlier!r}"
    assert seen[-1] == final


def test_a_reply_streams_in_token_by_token_and_says_what_served_it(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply=WORDS, tokens_per_s=25)
    log_in(page, live_web.url)
    screenshot(page, "chat-empty")
    box = page.get_by_label("Message", exact=True)
    box.press_sequentially("What does a gateway do?")
    box.press("Shift+Enter")
    box.press_sequentially("Keep it short.")
    box.press("Enter")
    node = reply_node(page)
    node.wait_for()

    seen = watch(node)

    reply = saved_reply(node)
    assert reply.status == Message.Status.COMPLETE
    assert len(seen) >= 3, f"the text arrived in {len(seen)} steps: {seen}"
    assert_grows_without_repeating(seen, plain(reply.content))
    assert plain(reply.content) == WORDS
    question = Message.objects.get(role=Message.Role.USER)
    assert question.content == "What does a gateway do?\nKeep it short."
    meta = node.locator(".message-meta")
    expect(meta.locator(".badge.sim")).to_have_text("Simulated")
    expect(meta).to_contain_text(f"{MODEL} · via {MODEL}-provider")
    expect(meta).to_contain_text("$")
    page.get_by_role("heading", name="What does a gateway do?").wait_for()  # the conversation's title
    screenshot(page, "chat")


def test_a_reload_mid_stream_resumes_the_reply_without_repeating_text(page, live_web, person, ui_model, simulator):
    long_reply = f"{WORDS} {WORDS}"  # five seconds: time for a reload on a busy machine
    simulator.configure(MODEL, reply=long_reply, tokens_per_s=12)
    sign_in(page, live_web.url, person)
    node = send(page, "Tell me about Switchyard")
    page.wait_for_function(
        "() => document.querySelector('#message-list article.assistant .message-body').innerText.split(' ').length >= 4"
    )
    assert node.get_attribute("data-status") == "streaming"

    page.reload()
    node = reply_node(page)
    node.wait_for()
    seen = watch(node)

    reply = saved_reply(node)
    assert reply.status == Message.Status.COMPLETE
    assert_grows_without_repeating(seen, plain(reply.content))
    assert plain(reply.content) == long_reply
    assert len(seen) >= 2, "the reload should have caught the reply still streaming"


def test_a_dropped_connection_resumes_the_reply_without_repeating_text(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply=WORDS, tokens_per_s=8)
    proxy = CuttingProxy(int(live_web.url.rsplit(":", 1)[1]))
    try:
        sign_in(page, proxy.url, person)
        node = send(page, "Tell me about Switchyard")
        page.wait_for_function(
            "() => document.querySelector('#message-list article.assistant .message-body')"
            ".innerText.split(' ').length >= 3"
        )
        before = proxy.connections
        proxy.cut()
        seen = watch(node)
        assert proxy.connections > before, "the page should have reconnected"
    finally:
        proxy.close()

    reply = saved_reply(node)
    assert reply.status == Message.Status.COMPLETE
    assert_grows_without_repeating(seen, plain(reply.content))
    assert plain(reply.content) == WORDS


def test_stop_ends_the_reply_and_keeps_what_was_written(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply=WORDS, tokens_per_s=6)
    sign_in(page, live_web.url, person)
    node = send(page, "Tell me a long story")
    page.wait_for_function(
        "() => document.querySelector('#message-list article.assistant .message-body').innerText.split(' ').length >= 3"
    )
    page.get_by_role("button", name="Stop").click()

    node.locator(".message-meta").get_by_text("Stopped").wait_for()
    reply = saved_reply(node)
    assert reply.status == Message.Status.CANCELLED
    assert reply.content and len(reply.content) < len(WORDS)
    assert plain(node.locator(".message-body").inner_text()) == plain(reply.content)
    page.get_by_role("button", name="Send").wait_for()
    screenshot(page, "chat-stopped")


XSS = (
    "<script>window.__pwned = 'script'</script> "
    "<img src=x onerror=\"window.__pwned = 'img'\"> "
    "[click me](javascript:window.__pwned='link') and **bold** with `code`\n\n"
    "```html\n<img src=x onerror=alert(1)>\n```"
)


def test_a_reply_with_script_and_img_tags_shows_as_text_and_runs_nothing(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply=XSS, tokens_per_s=0)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, live_web.url, person)
    node = send(page, "Say something dangerous")
    expect(node).not_to_have_attribute("data-status", "streaming")

    body = node.locator(".message-body")
    assert body.locator("script, img, iframe, [onerror]").count() == 0
    assert body.locator("a").count() == 0  # a javascript: link is not made a link
    text = body.inner_text()
    assert "<script>window.__pwned = 'script'</script>" in text
    assert "<img src=x onerror=\"window.__pwned = 'img'\">" in text
    assert body.locator("strong").inner_text() == "bold"
    assert body.locator("pre code").inner_text() == "<img src=x onerror=alert(1)>"
    page.wait_for_timeout(300)  # an onerror would have fired by now
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    screenshot(page, "chat-untrusted-markdown")


def test_a_link_whose_address_holds_parentheses_is_kept_whole(page, live_web, person, ui_model):
    sign_in(page, live_web.url, person)
    html = page.evaluate(
        "Switchyard.markdown('See [Mercury](https://en.wikipedia.org/wiki/Mercury_(planet)) "
        "and ([the docs](https://example.com/a)).')"
    )
    links = page.evaluate(
        "html => [...new DOMParser().parseFromString(html, 'text/html').querySelectorAll('a')]"
        ".map(a => [a.textContent, a.getAttribute('href')])",
        html,
    )
    assert links == [
        ["Mercury", "https://en.wikipedia.org/wiki/Mercury_(planet)"],
        ["the docs", "https://example.com/a"],
    ]
    assert "</a>)." in html  # the parenthesis around the second link stays text


def test_conversations_are_listed_renamed_and_deleted(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="Noted.", tokens_per_s=0)
    sign_in(page, live_web.url, person)
    node = send(page, "First chat")
    watch(node)
    page.get_by_role("button", name="New chat").click()
    watch(send(page, "Second chat"))
    sidebar = page.get_by_role("complementary", name="Conversations")
    sidebar.get_by_role("link", name="First chat").wait_for()

    sidebar.get_by_role("button", name="Rename “First chat”").click()
    title = sidebar.get_by_label("Conversation title")
    title.fill("Renamed chat")
    title.press("Enter")
    sidebar.get_by_role("link", name="Renamed chat").wait_for()
    assert Conversation.objects.filter(owner=person, title="Renamed chat").exists()

    sidebar.get_by_role("link", name="Renamed chat").click()
    page.locator("#message-list").get_by_text("First chat").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    sidebar.get_by_role("button", name="Delete “Renamed chat”").click()
    sidebar.get_by_role("link", name="Renamed chat").wait_for(state="detached")
    page.get_by_role("heading", name="How can I help?").wait_for()
    assert list(Conversation.objects.filter(owner=person).values_list("title", flat=True)) == ["Second chat"]


def test_a_fallback_and_a_failed_provider_are_said_plainly(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, error_status=503)
    simulator.configure(BACKUP, reply="The backup answered.", tokens_per_s=0)
    sign_in(page, live_web.url, person)

    node = send(page, "Hello")
    node.get_by_text(f"{MODEL} was unavailable, so {BACKUP} answered instead.").wait_for()
    expect(node.locator(".message-meta")).to_contain_text(f"{BACKUP} · via {BACKUP}-provider")

    simulator.configure(BACKUP, error_status=503)
    failed = send(page, "Hello again")
    failed.get_by_role("alert").get_by_text("The reply failed.").wait_for()
    assert "provider is unavailable" in failed.get_by_role("alert").inner_text()
    assert saved_reply(failed).status == Message.Status.FAILED
    screenshot(page, "chat-errors")


def test_the_chat_works_at_phone_width(browser, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="Short and *readable* on a phone:\n\n- one\n- two", tokens_per_s=0)
    page = new_page(browser, width=375, height=740)
    try:
        sign_in(page, live_web.url, person)
        watch(send(page, "Does this fit on a phone?"))
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        screenshot(page, "chat-phone", full_page=False)
        page.get_by_role("button", name="Show conversations").click()
        sidebar = page.get_by_role("complementary", name="Conversations")
        sidebar.get_by_role("link", name="Does this fit on a phone?").wait_for()
        page.wait_for_function("document.getElementById('sidebar').getBoundingClientRect().left >= 0")
        screenshot(page, "chat-phone-conversations", full_page=False)
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Show conversations").wait_for()
        assert page.get_by_role("button", name="Show conversations").get_attribute("aria-expanded") == "false"
        assert page.errors == []
    finally:
        page.context.close()


def test_a_wide_table_on_a_phone_keeps_its_words_whole_and_scrolls_sideways(
    browser, live_web, person, ui_model, simulator
):
    columns = range(10)
    table = "\n".join(
        [
            "| " + " | ".join(f"column{n}" for n in columns) + " |",
            "|" + "---|" * len(columns),
            "| " + " | ".join(f"value{n}" for n in columns) + " |",
        ]
    )
    simulator.configure(MODEL, reply=table, tokens_per_s=0)
    page = new_page(browser, width=375, height=740)
    try:
        sign_in(page, live_web.url, person)
        node = send(page, "A table, please")
        watch(node)
        line = node.locator("td").first.evaluate("cell => parseFloat(getComputedStyle(cell).lineHeight)")
        tallest = node.locator("td").evaluate_all("cells => Math.max(...cells.map(c => c.clientHeight))")
        assert tallest < 2 * line + 16, f"a cell of one word is {tallest} px tall: its word was broken up"
        wrap = node.locator(".table-wrap")
        assert wrap.evaluate("w => w.scrollWidth > w.clientWidth"), "the table does not scroll sideways"
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        screenshot(page, "chat-phone-table", full_page=False)
    finally:
        page.context.close()


def test_a_reply_that_arrives_faster_than_the_screen_paints_is_followed_to_its_end(
    browser, live_web, person, ui_model, simulator
):
    # A fast model (1,000 tokens a second): one frame draws far more than the "near the bottom" margin.
    # Measured after drawing it, the pane read as scrolled up by the person and stopped following.
    simulator.configure(MODEL, reply=" ".join(f"word{n}" for n in range(400)), tokens_per_s=1000)
    page = new_page(browser, width=390, height=844)
    try:
        sign_in(page, live_web.url, person)
        node = send(page, "A long answer, please")
        watch(node)
        expect(node.locator(".message-meta")).to_contain_text("tokens")  # the saved copy was read back
        left = page.locator("#messages").evaluate("s => s.scrollHeight - s.scrollTop - s.clientHeight")
        assert left <= 2, f"the reply's last {left} px are out of sight"
        assert page.locator("#scroll-bottom").is_hidden()
        expect(node.locator(".message-body")).to_contain_text("word399")
        assert page.errors == []
    finally:
        page.context.close()


def test_on_a_touch_phone_a_sent_message_shows_edit_and_copy(browser, live_web, person, ui_model, simulator):
    # A phone has no hover: buttons revealed only on hover would be there, but invisible.
    simulator.configure(MODEL, reply="Tap to edit.", tokens_per_s=0)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        context.set_default_timeout(15_000)
        page = context.new_page()
        assert page.evaluate("matchMedia('(hover: none)').matches")
        sign_in(page, live_web.url, person)
        watch(send(page, "Edit me on a phone"))
        page.locator("#message-input").focus()  # nothing hovered or focused inside the message
        actions = page.locator("article.user .user-actions").last
        assert actions.evaluate("node => getComputedStyle(node).opacity") == "1"
        screenshot(page, "chat-phone-touch", full_page=False)
        actions.get_by_role("button", name="Edit message").tap()
        expect(page.get_by_label("New version of the message")).to_have_value("Edit me on a phone")
    finally:
        context.close()


def test_right_to_left_text_reads_right_to_left_and_its_code_left_to_right(page, live_web, person, ui_model, simulator):
    simulator.configure(MODEL, reply="שלום! הנה קוד:\n\n```python\nprint('hi')\n```", tokens_per_s=0)
    sign_in(page, live_web.url, person)
    watch(send(page, "مرحبا! كيف حالك اليوم؟"))

    def direction(locator: Any) -> str:
        return locator.evaluate("node => getComputedStyle(node).direction")

    assert direction(page.locator("article.user .message-body").last) == "rtl"
    assert direction(reply_node(page).locator(".message-body")) == "rtl"
    assert direction(reply_node(page).locator("pre")) == "ltr"
    # The title comes with the list's refresh after the post, which may land after a quick reply.
    expect(page.locator("#chat-title")).not_to_have_text("New chat")
    assert direction(page.locator("#chat-title")) == "rtl"
    screenshot(page, "chat-right-to-left", full_page=False)

    watch(send(page, "And now in English"))
    assert direction(page.locator("article.user .message-body").last) == "ltr"


def test_the_edit_button_is_hidden_while_a_reply_streams_and_comes_back_after_it(
    page, live_web, person, ui_model, simulator
):
    # Clicking it while a reply streamed did nothing at all (an edit then is refused with 409).
    simulator.configure(MODEL, reply=WORDS, tokens_per_s=6)
    sign_in(page, live_web.url, person)
    node = send(page, "Tell me a long story")
    edit = page.locator("#message-list article.user").last.get_by_role("button", name="Edit message")
    node.locator(".message-body").get_by_text("Switchyard").wait_for()
    expect(edit).to_be_hidden()
    page.get_by_role("button", name="Stop").click()
    node.locator(".message-meta").get_by_text("Stopped").wait_for()
    expect(edit).to_be_visible()


def test_a_model_disabled_after_the_page_loaded_leaves_no_empty_chat_and_says_to_pick_another(
    page, live_web, person, ui_model, simulator
):
    simulator.configure(MODEL, reply="Noted.")
    sign_in(page, live_web.url, person)
    picker = page.get_by_label("Model")
    expect(picker).to_have_value(MODEL)
    LanguageModel.objects.filter(name=MODEL).update(enabled=False)
    routed_no_more(live_web.url, person, MODEL)

    box = page.get_by_label("Message", exact=True)
    box.fill("Hello there")
    box.press("Enter")
    status = page.locator("#chat-status")
    expect(status).to_contain_text(f"The model “{MODEL}” is no longer available")
    expect(status).to_contain_text("Pick another model")
    expect(picker.locator(f'option[value="{MODEL}"]')).to_have_count(0)
    expect(box).to_have_value("Hello there")  # nothing was sent, nothing is lost
    sidebar = page.get_by_role("complementary", name="Conversations")
    expect(sidebar.get_by_role("link", name="New chat")).to_have_count(0)
    assert not Conversation.objects.filter(owner=person).exists()
    assert page.url == f"{live_web.url}/"


def routed_no_more(base_url: str, user: Any, model: str, timeout: float = 10.0) -> None:
    """Wait until the live server no longer routes ``model`` (its registry snapshot lives seconds)."""
    _, secret = api_key_create(user=user, name="probe")
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}) as client:
        while model in {entry["id"] for entry in client.get("/v1/models").json()["data"]}:
            assert time.monotonic() < deadline, f"the server still routes {model} after {timeout}s"
            time.sleep(0.25)

from __future__ import annotations

from orchestration.models import ApiKey
from tests.browser.conftest import log_in, screenshot, sign_in


def test_a_person_logs_in_creates_a_key_copies_it_and_revokes_it(page, live_web, person):
    log_in(page, live_web.url)
    screenshot(page, "chat-empty")
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("ci laptop")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("New API key").input_value()
    assert secret.startswith("sy-")
    page.get_by_role("button", name="Copy").click()
    page.get_by_text("Copied").wait_for()
    screenshot(page, "keys")
    key = ApiKey.objects.get(user=person)
    assert key.name == "ci laptop"

    page.reload()
    assert secret not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    page.get_by_text("No keys yet.").wait_for()
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_the_login_page_refuses_a_wrong_password(page, live_web, person):
    page.goto(f"{live_web.url}/accounts/login/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").wait_for()
    screenshot(page, "login")
    assert "/accounts/login/" in page.url


def test_a_key_named_without_spaces_keeps_its_revoke_button_in_view(page, live_web, person):
    sign_in(page, live_web.url, person, "/keys/")
    page.get_by_label("Name").fill("x" * 100)
    page.get_by_role("button", name="Create key").click()
    page.get_by_label("New API key").wait_for()
    screenshot(page, "keys-long-name", full_page=False)

    card = page.locator(".table-card")
    assert card.evaluate("card => card.scrollWidth <= card.clientWidth"), "the keys table scrolls sideways"
    revoke, box = page.get_by_role("button", name="Revoke").bounding_box(), card.bounding_box()
    assert revoke is not None and box is not None
    assert revoke["x"] + revoke["width"] <= box["x"] + box["width"]

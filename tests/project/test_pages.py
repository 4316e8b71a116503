"""Every page but login requires a signed-in person; each renders for one."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from orchestration.access.keys import api_key_create
from orchestration.models import AccessPolicy, ApiKey, LanguageModel, Provider

# A fixed id: test ids must be the same in every process that collects them (pytest-xdist).
PAGES = ["/", "/agents/", "/tasks/", "/tasks/5ea41684-5d68-4b22-aaa6-d7147c0ef4c1/", "/keys/"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_pages_send_strangers_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("path", PAGES)
def test_pages_render_for_a_signed_in_person(client, alice, path):
    client.force_login(alice)
    response = client.get(path)
    assert response.status_code == 200
    assert b'href="/keys/"' in response.content


@pytest.mark.django_db
def test_login_page_has_labelled_fields(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'<label for="id_username">' in response.content
    assert b'<label for="id_password">' in response.content


@pytest.mark.django_db
def test_a_created_key_is_shown_once_and_only_its_hash_is_stored(client, alice):
    client.force_login(alice)
    response = client.post("/keys/", {"name": "laptop"}, follow=True)
    secret = response.context["new_secret"]
    assert secret.startswith("sy-") and secret.encode() in response.content
    key = ApiKey.objects.get(user=alice)
    assert key.name == "laptop" and secret not in key.key_hash
    again = client.get("/keys/")
    assert secret.encode() not in again.content
    assert key.prefix.encode() in again.content


@pytest.mark.django_db
def test_revoking_another_persons_key_is_a_404(client, alice, bob):
    key, _ = api_key_create(user=bob, name="bob's")
    client.force_login(alice)
    assert client.post(f"/keys/{key.pk}/revoke").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


@pytest.mark.django_db
def test_revoking_an_own_key_removes_it_from_the_page(client, alice):
    key, _ = api_key_create(user=alice, name="old")
    client.force_login(alice)
    response = client.post(f"/keys/{key.pk}/revoke")
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None and not key.enabled
    assert key.prefix.encode() not in client.get("/keys/").content


def _model(name: str, capabilities: list[str]) -> LanguageModel:
    provider, _ = Provider.objects.get_or_create(name="sim", defaults={"kind": Provider.Kind.SIMULATOR})
    return LanguageModel.objects.create(name=name, provider=provider, upstream=name, capabilities=capabilities)


@pytest.mark.django_db
def test_the_chat_page_offers_only_the_models_the_persons_policy_allows(client, alice):
    _model("chat-a", ["chat"])
    _model("chat-b", ["chat"])
    _model("embed-only", ["embeddings"])
    AccessPolicy.objects.create(user=alice, allowed_models=["chat-a"])
    client.force_login(alice)
    options = client.get("/").context["model_names"]
    assert options == ["chat-a"]


@pytest.mark.django_db
def test_the_agent_console_offers_only_models_that_call_tools(client, alice):
    _model("talker", ["chat"])
    _model("tool-user", ["chat", "tools"])
    client.force_login(alice)
    response = client.get("/agents/")
    assert [m.name for m in response.context["models"]] == ["tool-user"]
    assert b'<label for="agent-input">Task</label>' in response.content


@pytest.mark.django_db
def test_the_pages_load_their_scripts_and_label_their_fields(client, alice):
    client.force_login(alice)
    chat = client.get("/").content
    assert b'<label for="message-input" class="sr-only">Message</label>' in chat
    assert b'<label for="model-select">Model</label>' in chat
    assert b"switchyard/chat.js" in chat and b"switchyard/common.js" in chat
    console = client.get("/agents/").content
    assert b"switchyard/timeline.js" in console and b"switchyard/agents.js" in console
    assert b"switchyard/tasks.js" in client.get(f"/tasks/{uuid.uuid4()}/").content


@pytest.mark.django_db
def test_a_key_made_on_the_keys_page_carries_the_persons_limits(client, alice):
    AccessPolicy.objects.create(user=alice, rpm=7, tpm=7000, monthly_budget_usd=Decimal("3"))
    client.force_login(alice)
    client.post("/keys/", {"name": "mine"})
    key = ApiKey.objects.get(user=alice)
    assert (key.rpm, key.tpm, key.monthly_budget_usd) == (7, 7000, Decimal("3"))

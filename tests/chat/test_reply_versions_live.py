"""Continue, regenerate (retry), search and export, against a real server, Redis and simulator."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chat.models import Conversation, Message
from chat.selectors import history_of
from tests.chat.conftest import MODEL, WebFactory, api
from tests.chat.sse import read_stream, read_to_end
from tests.chat.test_streaming_live import post_message, saved
from tests.support import ManagedProcess

pytestmark = pytest.mark.live

LONG = " ".join(f"w{n}" for n in range(200))


def stopped_by_grace(client: httpx.Client, simulator: Any) -> tuple[dict[str, Any], Message]:
    """A reply whose only client left after two tokens: the server stops it after the grace period."""
    simulator.configure(MODEL, tokens_per_s=10, reply=LONG)
    posted = post_message(client)
    read_stream(client, posted["stream_url"], stop_after_tokens=2)
    message = saved(posted["assistant_message"]["id"], until_final=15)
    assert message.status == "cancelled" and message.content
    return posted, message


def test_a_reply_stopped_because_its_client_left_says_why_and_continues_into_the_same_message(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    with api(shared_web.url, alice_key) as client:
        _, stopped = stopped_by_grace(client, simulator)
        assert stopped.error_code == "client_gone"
        assert stopped.error_message == "The connection was lost for more than 3 s, so the reply stopped here."
        partial = stopped.content
        simulator.configure(MODEL, tokens_per_s=400, reply="and the rest.")
        continued = client.post(f"/api/v1/messages/{stopped.pk}/continue")
        assert continued.status_code == 201, continued.text
        body = continued.json()
        assert body["assistant_message"]["id"] == stopped.pk and body["assistant_message"]["status"] == "streaming"
        # A page that has the partial text resumes after it; a fresh one replays it all.
        resumed = read_stream(client, body["stream_url"], last_event_id=str(len(partial)))
        after = read_to_end(client, body["stream_url"], first=resumed)
        whole = read_stream(client, body["stream_url"])
    message = saved(stopped.pk)
    assert message.status == "complete" and message.error_code == ""
    assert message.content == partial + "and the rest."
    assert "".join(e.data["delta"] for e in after if e.type == "token") == "and the rest."
    assert whole.text == message.content
    assert message.output_tokens > stopped.output_tokens and message.cost_usd > stopped.cost_usd
    sent = simulator.stats(MODEL)
    assert sent["requests"] >= 2


def test_only_a_stopped_or_failed_latest_reply_with_text_can_be_continued(
    shared_web: ManagedProcess, alice_key: str, bob_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=0, reply="Done.")
    with api(shared_web.url, alice_key) as client, api(shared_web.url, bob_key) as mallory_like:
        posted = post_message(client)
        reply_id = posted["assistant_message"]["id"]
        saved(reply_id)
        complete = client.post(f"/api/v1/messages/{reply_id}/continue")
        assert complete.status_code == 409 and complete.json()["error"]["code"] == "reply_complete"
        Message.objects.filter(pk=reply_id).update(status="failed", error_code="upstream_unavailable", content="")
        empty = client.post(f"/api/v1/messages/{reply_id}/continue")
        assert empty.status_code == 409 and empty.json()["error"]["code"] == "nothing_to_continue"
        question = client.post(f"/api/v1/messages/{posted['user_message']['id']}/continue")
        assert question.status_code == 409 and question.json()["error"]["code"] == "not_a_reply"
        theirs = mallory_like.post(f"/api/v1/messages/{reply_id}/continue")
        assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "message_not_found"
        assert mallory_like.post(f"/api/v1/messages/{reply_id}/regenerate").status_code == 404


def test_regenerate_adds_a_version_and_later_turns_build_on_the_newest(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=0, reply="First answer.")
    with api(shared_web.url, alice_key) as client:
        posted = post_message(client, "What is a switchyard?")
        first_id = posted["assistant_message"]["id"]
        saved(first_id)
        simulator.configure(MODEL, tokens_per_s=0, reply="Second answer.")
        again = client.post(f"/api/v1/messages/{first_id}/regenerate")
        assert again.status_code == 201, again.text
        second = again.json()["assistant_message"]
        assert second["reply_to"] == posted["user_message"]["id"] and second["id"] != first_id
        assert read_to_end(client, again.json()["stream_url"])[-1].type == "done"
        conversation = posted["user_message"]["conversation"]
        listed = client.get(f"/api/v1/conversations/{conversation}/messages").json()["results"]
        # The earlier version is still there, answering the same message.
        assert [(m["role"], m["content"], m["reply_to"]) for m in listed] == [
            ("user", "What is a switchyard?", None),
            ("assistant", "First answer.", posted["user_message"]["id"]),
            ("assistant", "Second answer.", posted["user_message"]["id"]),
        ]
        simulator.configure(MODEL, tokens_per_s=0, reply="Third.")
        follow_up = client.post(f"/api/v1/conversations/{conversation}/messages", json={"content": "And then?"})
        assert follow_up.status_code == 201
        saved(follow_up.json()["assistant_message"]["id"])
        old = client.post(f"/api/v1/messages/{first_id}/regenerate")
        assert old.status_code == 409 and old.json()["error"]["code"] == "not_latest_reply"
    history = history_of(conversation=Conversation.objects.get(pk=conversation))
    assert [m.content for m in history] == ["What is a switchyard?", "Second answer.", "And then?", "Third."]


def test_regenerate_asks_the_model_again_even_when_the_cache_holds_the_answer(
    web: WebFactory, alice_key: str, simulator: Any, chat_model: Any
) -> None:
    # A cached model and a conversation at temperature 0: the first answer goes into the exact cache.
    chat_model.cache_exact_enabled = True
    chat_model.save()
    server = web()
    simulator.configure(MODEL, tokens_per_s=0, reply="First answer.")
    with api(server.url, alice_key) as client:
        conversation = client.post("/api/v1/conversations", json={"model": MODEL, "temperature": 0}).json()
        posted = client.post(f"/api/v1/conversations/{conversation['id']}/messages", json={"content": "Name a colour."})
        assert posted.status_code == 201, posted.text
        first_id = posted.json()["assistant_message"]["id"]
        assert read_to_end(client, posted.json()["stream_url"])[-1].type == "done"
        assert saved(first_id).content == "First answer."
        simulator.configure(MODEL, tokens_per_s=0, reply="Second answer.")
        again = client.post(f"/api/v1/messages/{first_id}/regenerate")
        assert again.status_code == 201, again.text
        assert read_to_end(client, again.json()["stream_url"])[-1].type == "done"
    # Another version, from the model: not the cached first one, word for word.
    second = saved(again.json()["assistant_message"]["id"])
    assert second.status == "complete" and second.content == "Second answer."
    assert simulator.stats(MODEL)["requests"] == 2


def test_search_finds_conversations_by_title_or_by_what_was_said_and_only_your_own(
    shared_web: ManagedProcess, alice_key: str, bob_key: str, alice: Any, bob: Any
) -> None:
    Conversation.objects.create(owner=alice, model=MODEL, title="Kayak trip")
    said = Conversation.objects.create(owner=alice, model=MODEL, title="Untitled")
    Message.objects.create(conversation=said, role="user", content="Where do KAYAKS launch?")
    Conversation.objects.create(owner=alice, model=MODEL, title="Taxes")
    Conversation.objects.create(owner=bob, model=MODEL, title="Kayak too")
    with api(shared_web.url, alice_key) as client:
        found = client.get("/api/v1/conversations", params={"search": "kayak"}).json()
        too_long = client.get("/api/v1/conversations", params={"search": "x" * 201})
    assert found["count"] == 2
    assert {c["title"] for c in found["results"]} == {"Kayak trip", "Untitled"}
    assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "search_too_long"


def test_a_conversation_exports_as_markdown_and_json(
    shared_web: ManagedProcess, alice_key: str, bob_key: str, alice: Any
) -> None:
    conversation = Conversation.objects.create(owner=alice, model=MODEL, title="Export me", system_prompt="Be brief.")
    question = Message.objects.create(conversation=conversation, role="user", content="Hi **there**")
    Message.objects.create(conversation=conversation, role="assistant", content="Old.", reply_to=question, model=MODEL)
    Message.objects.create(
        conversation=conversation, role="assistant", content="Hello.", reply_to=question, model=MODEL
    )
    url = f"/api/v1/conversations/{conversation.pk}/export"
    with api(shared_web.url, alice_key) as client, api(shared_web.url, bob_key) as other:
        markdown = client.get(url)
        as_json = client.get(url, params={"as": "json"})
        bad = client.get(url, params={"as": "pdf"})
        theirs = other.get(url)
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.headers["content-disposition"] == f'attachment; filename="conversation-{conversation.pk}.md"'
    assert markdown.text.splitlines() == [
        "# Export me",
        "",
        "## System prompt",
        "",
        "Be brief.",
        "",
        "## You",
        "",
        "Hi **there**",
        "",
        f"## Assistant ({MODEL}, earlier version)",
        "",
        "Old.",
        "",
        f"## Assistant ({MODEL})",
        "",
        "Hello.",
    ]
    data = as_json.json()
    assert data["conversation"]["title"] == "Export me"
    assert [m["content"] for m in data["messages"]] == ["Hi **there**", "Old.", "Hello."]
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "as"
    assert theirs.status_code == 404


def test_editing_a_message_branches_there_and_keeps_the_old_branch(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=0, reply="A1.")
    with api(shared_web.url, alice_key) as client:
        first = post_message(client, "Q1")
        conversation = first["user_message"]["conversation"]
        saved(first["assistant_message"]["id"])
        simulator.configure(MODEL, tokens_per_s=0, reply="A2.")
        second = client.post(f"/api/v1/conversations/{conversation}/messages", json={"content": "Q2"}).json()
        saved(second["assistant_message"]["id"])

        simulator.configure(MODEL, tokens_per_s=0, reply="A1 edited.")
        edited = client.post(f"/api/v1/messages/{first['user_message']['id']}/edit", json={"content": "Q1 edited"})
        assert edited.status_code == 201, edited.text
        body = edited.json()
        assert body["user_message"]["edit_of"] == first["user_message"]["id"]
        assert read_to_end(client, body["stream_url"])[-1].type == "done"

        old_branch = client.post(f"/api/v1/messages/{second['user_message']['id']}/edit", json={"content": "no"})
        assert old_branch.status_code == 409 and old_branch.json()["error"]["code"] == "not_current_branch"
        reply = client.post(f"/api/v1/messages/{first['assistant_message']['id']}/edit", json={"content": "no"})
        assert reply.status_code == 409 and reply.json()["error"]["code"] == "not_your_message"
        empty = client.post(f"/api/v1/messages/{body['user_message']['id']}/edit", json={"content": " "})
        assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_content"
        listed = client.get(f"/api/v1/conversations/{conversation}/messages").json()["results"]

    # Everything stays; the newest branch is what the next reply sees.
    assert [m["content"] for m in listed] == ["Q1", "A1.", "Q2", "A2.", "Q1 edited", "A1 edited."]
    history = history_of(conversation=Conversation.objects.get(pk=conversation))
    assert [m.content for m in history] == ["Q1 edited", "A1 edited."]

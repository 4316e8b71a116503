"""The chat API's CRUD side, in-process: shapes, ownership, validation, conflicts."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from django.utils import timezone

from chat import streams
from chat.models import Conversation, Message
from orchestration.access.admission import caller_for_user_sync
from tests.chat.conftest import MODEL


@pytest.fixture
def as_alice(alice_key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {alice_key}")


@pytest.fixture
def as_bob(bob_key: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {bob_key}")


def conversation_of(user: Any, **fields: Any) -> Conversation:
    return Conversation.objects.create(owner=user, model=MODEL, **fields)


def test_a_conversation_is_created_listed_read_renamed_and_deleted(as_alice: Client) -> None:
    created = as_alice.post(
        "/api/v1/conversations", {"title": "Trip", "system_prompt": "Be brief."}, "application/json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["model"] == MODEL and body["title"] == "Trip" and body["system_prompt"] == "Be brief."
    listed = as_alice.get("/api/v1/conversations").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]
    url = f"/api/v1/conversations/{body['id']}"
    assert as_alice.get(url).json()["title"] == "Trip"
    renamed = as_alice.patch(url, {"title": "Holiday"}, "application/json")
    assert renamed.status_code == 200 and renamed.json()["title"] == "Holiday"
    assert as_alice.delete(url).status_code == 204
    assert as_alice.get(url).status_code == 404


def test_another_persons_conversation_does_not_exist_for_you(as_alice: Client, as_bob: Client, bob: Any) -> None:
    theirs = conversation_of(bob)
    for method in ("get", "patch", "delete"):
        response = getattr(as_alice, method)(f"/api/v1/conversations/{theirs.pk}", {}, "application/json")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "conversation_not_found"
    assert as_alice.get(f"/api/v1/conversations/{theirs.pk}/messages").status_code == 404
    posted = as_alice.post(f"/api/v1/conversations/{theirs.pk}/messages", {"content": "hi"}, "application/json")
    assert posted.status_code == 404
    assert as_alice.get("/api/v1/conversations").json()["count"] == 0
    assert as_bob.get("/api/v1/conversations").json()["count"] == 1


def test_an_unknown_model_is_404_and_a_model_outside_the_keys_list_403(alice: Any, chat_model: Any) -> None:
    from orchestration.access.keys import api_key_create

    _, limited = api_key_create(user=alice, allowed_models=["something-else"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {limited}")
    assert client.post("/api/v1/conversations", {"model": "nope"}, "application/json").status_code == 404
    forbidden = client.post("/api/v1/conversations", {"model": MODEL}, "application/json")
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "model_not_allowed"


def test_an_embeddings_only_model_cannot_reply_as_v1_chat_refuses_it(
    as_alice: Client, alice: Any, chat_model: Any
) -> None:
    from orchestration.models import LanguageModel
    from orchestration.registry import snapshot_invalidate

    LanguageModel.objects.create(
        name="vectors", provider=chat_model.provider, upstream="v", capabilities=["embeddings"]
    )
    snapshot_invalidate()
    conversation = conversation_of(alice)

    refusals = [
        as_alice.post("/api/v1/conversations", {"model": "vectors"}, "application/json"),
        as_alice.patch(f"/api/v1/conversations/{conversation.pk}", {"model": "vectors"}, "application/json"),
        as_alice.post(
            f"/api/v1/conversations/{conversation.pk}/messages",
            {"content": "hi", "model": "vectors"},
            "application/json",
        ),
    ]

    assert [(r.status_code, r.json()["error"]["code"]) for r in refusals] == [(400, "model_not_supported")] * 3
    assert conversation.messages.count() == 0


def test_a_system_prompt_and_a_template_together_are_refused(as_alice: Client) -> None:
    response = as_alice.post(
        "/api/v1/conversations", {"system_prompt": "x", "prompt_template": "y"}, "application/json"
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_an_unknown_prompt_template_is_not_found(as_alice: Client) -> None:
    response = as_alice.post("/api/v1/conversations", {"prompt_template": "nope"}, "application/json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "prompt_template_not_found"


def test_without_credentials_it_is_401(chat_model: Any) -> None:
    assert Client().get("/api/v1/conversations").status_code == 401


def test_the_browser_session_works_and_unsafe_methods_need_csrf(alice: Any, chat_model: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get("/api/v1/conversations").status_code == 200
    assert browser.post("/api/v1/conversations", {}, "application/json").status_code == 403
    browser.get("/")  # sets the CSRF cookie, as the chat page does
    token = browser.cookies["csrftoken"].value
    response = browser.post("/api/v1/conversations", {}, "application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201


@pytest.mark.parametrize("body", [{"content": 12}, {"content": 1.5}, {"content": "hi", "model": 3}])
def test_a_number_is_not_taken_for_text(as_alice: Client, alice: Any, body: dict[str, Any]) -> None:
    conversation = as_alice.post("/api/v1/conversations", {}, content_type="application/json").json()
    response = as_alice.post(
        f"/api/v1/conversations/{conversation['id']}/messages", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "Not a valid string." in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [("", 400, "empty_content"), ("   \n ", 400, "empty_content"), ("x" * 32_001, 413, "content_too_large")],
)
def test_empty_or_oversized_content_is_refused(
    as_alice: Client, alice: Any, content: str, status: int, code: str
) -> None:
    conversation = conversation_of(alice)
    response = as_alice.post(
        f"/api/v1/conversations/{conversation.pk}/messages", {"content": content}, "application/json"
    )
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not conversation.messages.exists()


def test_a_second_message_while_a_reply_streams_is_409(as_alice: Client, alice: Any) -> None:
    conversation = conversation_of(alice)
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    streams.producer_claim(reply.pk)
    response = as_alice.post(f"/api/v1/conversations/{conversation.pk}/messages", {"content": "hi"}, "application/json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "reply_in_progress"
    assert conversation.messages.count() == 1


async def test_a_reply_left_streaming_by_a_dead_process_is_failed_and_does_not_block_the_conversation(
    alice_key: str, alice: Any, simulator: Any
) -> None:
    # An async client: the reply then runs on this test's event loop, as on a server's.
    simulator.configure(MODEL, tokens_per_s=0)
    conversation = await sync_to_async(conversation_of)(alice)
    stale = await Message.objects.acreate(conversation=conversation, role="assistant", status="streaming")
    # Saved longer ago than a producer has to say it is alive: no producer is coming.
    left_at = timezone.now() - timedelta(seconds=streams.producer_ttl_s() + 1)
    await Message.objects.filter(pk=stale.pk).aupdate(created_at=left_at)
    url = f"/api/v1/conversations/{conversation.pk}/messages"
    auth = {"Authorization": f"Bearer {alice_key}"}
    response = await AsyncClient().post(url, {"content": "hi"}, "application/json", headers=auth)
    assert response.status_code == 201, response.content
    await stale.arefresh_from_db()
    assert stale.status == "failed" and stale.error_code == "producer_lost"
    reply = await Message.objects.aget(pk=response.json()["assistant_message"]["id"])
    deadline = time.monotonic() + 10
    while reply.status == "streaming" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        await reply.arefresh_from_db()
    assert reply.status == "complete" and reply.content


def test_a_body_that_is_not_json_is_400(as_alice: Client, alice: Any) -> None:
    conversation = conversation_of(alice)
    response = as_alice.post(f"/api/v1/conversations/{conversation.pk}/messages", "{nope", "application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("path", ["/api/v1/conversations", "/api/v1/conversations/{id}/export"])
def test_a_format_query_parameter_is_ignored_not_a_500(as_alice: Client, alice: Any, path: str) -> None:
    # DRF reads ?format= to pick a renderer and raises a bare Http404 for one it lacks; the
    # APIs render JSON only, so the parameter is switched off (project/settings.py).
    conversation = conversation_of(alice)
    response = as_alice.get(path.format(id=conversation.pk), {"format": "pdf"})
    assert response.status_code == 200


def test_the_messages_of_a_conversation_are_listed_oldest_first(as_alice: Client, alice: Any) -> None:
    conversation = conversation_of(alice)
    first = Message.objects.create(conversation=conversation, role="user", content="one")
    second = Message.objects.create(conversation=conversation, role="assistant", content="two", cost_usd="0.00012")
    body = as_alice.get(f"/api/v1/conversations/{conversation.pk}/messages").json()
    assert [m["id"] for m in body["results"]] == [first.pk, second.pk]
    assert body["results"][1]["cost_usd"] == "0.00012000"
    assert {"status", "model", "provider", "input_tokens", "output_tokens", "ttft_ms", "error_code"} <= set(
        body["results"][1]
    )


def test_cancelling_a_finished_reply_is_409_and_anothers_reply_404(as_alice: Client, alice: Any, bob: Any) -> None:
    done = Message.objects.create(conversation=conversation_of(alice), role="assistant", content="ok")
    theirs = Message.objects.create(conversation=conversation_of(bob), role="assistant", status="streaming")
    assert as_alice.post(f"/api/v1/messages/{done.pk}/cancel").status_code == 409
    assert as_alice.post(f"/api/v1/messages/{theirs.pk}/cancel").status_code == 404


def test_cancelling_a_reply_whose_producer_is_gone_settles_it_at_once(as_alice: Client, alice: Any) -> None:
    reply = Message.objects.create(conversation=conversation_of(alice), role="assistant", status="streaming")
    response = as_alice.post(f"/api/v1/messages/{reply.pk}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["finish_reason"] == "cancelled"


def test_deleting_a_conversation_whose_reply_lost_its_producer_ends_that_reply_stream_at_once(
    as_alice: Client, alice: Any
) -> None:
    conversation = conversation_of(alice)
    reply = Message.objects.create(conversation=conversation, role="assistant", status="streaming")
    started = time.monotonic()
    assert as_alice.delete(f"/api/v1/conversations/{conversation.pk}").status_code == 204
    assert time.monotonic() - started < 2.0  # not the wait for a producer that will never come
    events = asyncio.run(streams.events_all(reply.pk))
    assert [(event.type, event.data["code"]) for event in events] == [("error", "message_deleted")]
    assert not Message.objects.filter(pk=reply.pk).exists()


def test_a_post_landing_before_the_last_ones_reply_is_planned_is_409_and_kills_nothing(
    alice: Any, chat_model: Any
) -> None:
    """Two posts at once in one conversation: the second may read the conversation right after the
    first saved its streaming reply, before the first planned the reply's generation. That reply
    must already read as having a producer coming, or the second post settles it as lost."""
    from chat import services
    from chat.context import Turn
    from orchestration.errors import Conflict

    conversation = conversation_of(alice)
    caller = caller_for_user_sync(alice)
    prepared = services._reply_prepare(conversation, caller, "", [Turn("user", "first")], [])
    try:
        _, reply = services._messages_create(conversation, "first", prepared, "req-first")
    finally:
        prepared.admission.release_sync()
    with pytest.raises(Conflict) as refused:
        services.message_post(conversation=conversation, content="second", caller=caller)
    assert refused.value.code == "reply_in_progress"
    reply.refresh_from_db()
    assert reply.status == "streaming" and reply.error_code == ""


def test_a_conversation_on_a_prompt_template_sends_its_latest_version_first(alice: Any, chat_model: Any) -> None:
    from chat.services import message_post
    from orchestration.models import PromptTemplate, PromptVersion

    template = PromptTemplate.objects.create(name="pirate")
    PromptVersion.objects.create(template=template, version=1, system_prompt="Talk like a pirate.")
    PromptVersion.objects.create(template=template, version=2, system_prompt="Talk like a polite pirate.")
    conversation = conversation_of(alice, prompt_template="pirate")
    posted = message_post(conversation=conversation, content="Hello", caller=caller_for_user_sync(alice))
    assert posted.plan.request.messages[0].content == "Talk like a polite pirate."
    assert posted.plan.context.prompt_template == "pirate" and posted.plan.context.prompt_version == 2


def test_a_new_conversation_starts_with_the_cheapest_model_unless_the_operator_chose_one(
    as_alice: Client, chat_model: Any
) -> None:
    from orchestration.models import LanguageModel
    from orchestration.registry import snapshot_invalidate

    pricey = LanguageModel.objects.create(
        name="aaa-pricey", provider=chat_model.provider, upstream="x", input_per_mtok=50, output_per_mtok=100
    )
    chat_model.input_per_mtok, chat_model.output_per_mtok = 1, 2
    chat_model.save()
    snapshot_invalidate()
    assert as_alice.post("/api/v1/conversations", {}, "application/json").json()["model"] == MODEL

    pricey.chat_default = True
    pricey.save()
    assert as_alice.post("/api/v1/conversations", {}, "application/json").json()["model"] == "aaa-pricey"


def test_a_conversation_takes_a_temperature_from_0_to_2(as_alice: Client) -> None:
    created = as_alice.post("/api/v1/conversations", {"temperature": 0.7}, "application/json")
    assert created.status_code == 201 and created.json()["temperature"] == 0.7
    url = f"/api/v1/conversations/{created.json()['id']}"
    too_hot = as_alice.patch(url, {"temperature": 2.5}, "application/json")
    assert too_hot.status_code == 400 and "temperature" in too_hot.json()["error"]["message"]
    assert as_alice.patch(url, {"temperature": None}, "application/json").json()["temperature"] is None


def test_a_long_first_line_makes_a_title_cut_at_a_word_with_an_ellipsis() -> None:
    from chat.services import TITLE_CHARS, title_from

    title = title_from("Explain how the gateway routes each request through caches, breakers and fallbacks\nmore")
    assert title == "Explain how the gateway routes each request through caches…"
    assert len(title) <= TITLE_CHARS
    # Cut inside a word: the word goes, the ellipsis says so.
    assert title_from("Why do circuit breakers open after half of ten calls fail, and when?") == (
        "Why do circuit breakers open after half of ten calls fail…"
    )
    assert title_from("  Short question  \nsecond line") == "Short question"


def test_the_newest_branch_drops_the_turns_of_earlier_versions_of_nested_edits(alice: Any, chat_model: Any) -> None:
    from chat.selectors import history_of

    conversation = conversation_of(alice)

    def say(role: str, content: str, **links: Any) -> Message:
        return Message.objects.create(conversation=conversation, role=role, content=content, **links)

    q1 = say("user", "Q1")
    say("assistant", "A1", reply_to=q1)
    q2 = say("user", "Q2")
    say("assistant", "A2", reply_to=q2)
    q2b = say("user", "Q2b", edit_of=q2)
    say("assistant", "A2b", reply_to=q2b)
    assert [m.content for m in history_of(conversation=conversation)] == ["Q1", "A1", "Q2b", "A2b"]
    q1b = say("user", "Q1b", edit_of=q1)
    say("assistant", "A1b", reply_to=q1b)
    assert [m.content for m in history_of(conversation=conversation)] == ["Q1b", "A1b"]


BAD_AND_ODD_BODIES: list[Any] = [
    None,
    [],
    ["hi"],
    "hi",
    7,
    {},
    {"model": "m"},
    {"content": None},
    {"content": True},
    {"content": ["hi"]},
    {"content": {"a": 1}},
    {"content": 12},
    {"content": 1.5},
    {"content": ""},
    {"content": "  spaced  "},
    {"content": "nul\x00here"},
    {"content": "half \ud800 pair"},
    {"content": "hi", "model": None},
    {"content": "hi", "model": False},
    {"content": "hi", "model": 3},
    {"content": "hi", "model": "   "},
    {"content": "hi", "model": "  padded  "},
    {"content": "hi", "model": "m" * 129},
    {"content": "hi", "model": " " + "m" * 128 + " "},
    {"content": "hi", "model": "\x00" + "m" * 128 + "\udfff"},
    {"content": None, "model": []},
    {"content": "hi", "unknown": "ignored"},
]


@pytest.mark.parametrize("body", BAD_AND_ODD_BODIES)
def test_a_posts_body_is_read_as_the_serializer_reads_it(body: Any) -> None:
    """The POST reads its body with plain code; the serializer it replaced is the reference."""
    from chat.apis import MessageInput, message_input
    from orchestration.errors import InvalidRequest
    from orchestration.http import validation_message

    reference = MessageInput(data=body)
    if reference.is_valid():
        expected = (reference.validated_data["content"], reference.validated_data.get("model", ""))
        assert message_input(body) == expected
    else:
        with pytest.raises(InvalidRequest) as refused:
            message_input(body)
        assert refused.value.code == "invalid_request"
        assert str(refused.value) == validation_message(reference.errors)


def test_a_messages_output_is_the_serializers(alice: Any) -> None:
    """``message_output`` is written out; the serializer it replaced is the reference."""
    import datetime as dt
    from decimal import Decimal

    from chat.apis import MessageOutput, message_output

    conversation = conversation_of(alice)
    question = Message.objects.create(conversation=conversation, role="user", content="Q")
    answer = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.FAILED,
        content="A",
        reply_to=question,
        cost_usd=Decimal("0.000123456789"),
        latency_ms=12.5,
        ttft_ms=3,
        input_tokens=4,
        output_tokens=5,
        simulated=True,
        error_code="producer_lost",
        error_message="gone",
        finished_at=dt.datetime(2026, 12, 5, 0, 1, 2, 345678, tzinfo=dt.UTC),
    )
    edit = Message.objects.create(conversation=conversation, role="user", content="Q2", edit_of=question)
    fresh = Message(pk=99, conversation=conversation, role="assistant", status="streaming", cost_usd="1.5")
    fresh.created_at = dt.datetime(2026, 12, 5, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    for message in (question, answer, edit, fresh, Message.objects.get(pk=answer.pk)):
        ours, reference = message_output(message), MessageOutput(message).data
        assert ours == reference
        assert [type(value) for value in ours.values()] == [type(value) for value in reference.values()]


async def claim_ended(message_id: int, deadline: float) -> bool:
    """Whether the reply's producer claim ends by ``deadline``. A reply's row settles first; the
    append of its terminal event comes just after, and ends the claim."""
    while time.monotonic() < deadline:
        if not await streams.producer_alive(message_id):
            return True
        await asyncio.sleep(0.01)
    return not await streams.producer_alive(message_id)


async def test_a_posts_reply_is_claimed_before_the_post_answers(alice_key: str, alice: Any, simulator: Any) -> None:
    """The producer's claim is written with the post's rows, before the answer: it has landed when
    the client learns the id, so a second post does not take the running reply for one a dead
    process left streaming."""
    simulator.configure(MODEL, tokens_per_s=40, reply=" ".join(["word"] * 12))
    conversation = await sync_to_async(conversation_of)(alice)
    url = f"/api/v1/conversations/{conversation.pk}/messages"
    auth = {"Authorization": f"Bearer {alice_key}"}
    response = await AsyncClient().post(url, {"content": "hi"}, "application/json", headers=auth)
    assert response.status_code == 201, response.content
    reply_id = response.json()["assistant_message"]["id"]
    ttl_ms = await sync_to_async(streams.sync_client().pttl)(streams.key(reply_id, "producer"))
    assert 0 < ttl_ms <= streams.producer_ttl_s() * 1000
    second = await AsyncClient().post(url, {"content": "again"}, "application/json", headers=auth)
    assert second.status_code == 409 and second.json()["error"]["code"] == "reply_in_progress"
    reply = await Message.objects.aget(pk=reply_id)
    deadline = time.monotonic() + 10
    while reply.status == "streaming" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        await reply.arefresh_from_db()
    assert reply.status == "complete" and reply.content
    assert await claim_ended(reply_id, deadline)


def test_posts_made_together_are_each_decided_as_if_alone(alice: Any, bob: Any, chat_model: Any) -> None:
    """A batch of posts (``services.messages_post``) shares its round trips, not its fate: an empty
    message, a busy conversation and a caller over its rate limit are refused, each with its own
    error and nothing saved, and the posts around them are made, their producers claimed."""
    from chat import services
    from orchestration.access.admission import caller_for_secret_sync
    from orchestration.access.keys import api_key_create
    from orchestration.errors import Conflict, InvalidRequest, LimitReached

    alice_caller = caller_for_user_sync(alice)
    bob_caller = caller_for_secret_sync(api_key_create(user=bob, name="one a minute", rpm=1)[1])
    busy = conversation_of(alice)
    streaming = Message.objects.create(conversation=busy, role="assistant", status="streaming")
    streams.producer_claim(streaming.pk)
    fine, empty, bobs_first, bobs_second = (
        conversation_of(alice),
        conversation_of(alice),
        conversation_of(bob),
        conversation_of(bob),
    )
    outcomes = services.messages_post(
        [
            services.MessagePost(fine, "Hello", alice_caller),
            services.MessagePost(empty, "   ", alice_caller),
            services.MessagePost(busy, "Hello?", alice_caller),
            services.MessagePost(bobs_first, "Hi", bob_caller),
            services.MessagePost(bobs_second, "Hi again", bob_caller),
        ]
    )
    made, blank, refused_busy, bobs, over_limit = outcomes
    assert isinstance(blank, InvalidRequest) and blank.code == "empty_content"
    assert isinstance(refused_busy, Conflict) and refused_busy.code == "reply_in_progress"
    assert isinstance(over_limit, LimitReached) and over_limit.code == "rate_limit_exceeded"
    for posted, conversation in ((made, fine), (bobs, bobs_first)):
        assert isinstance(posted, services.PostedMessage)
        assert posted.assistant_message.conversation_id == conversation.pk
        assert streams.sync_client().exists(streams.key(posted.plan.message_id, "producer"))
        posted.plan.admission.release_sync()
    assert [c.messages.count() for c in (empty, busy, bobs_second)] == [0, 1, 0]


async def test_posts_that_arrive_together_share_a_hop_and_fail_alone(alice: Any, bob: Any, chat_model: Any) -> None:
    """Posts reaching the loop in one turn go to the database thread together, their conversations
    read by one query; one that fails (bad input, a conversation that is someone else's, or none
    at all) answers its own error, the others their messages, each after its own conversation's."""
    from chat.apis import post_batcher
    from orchestration.errors import InvalidRequest, NotFound

    conversation = await sync_to_async(conversation_of)(alice)
    earlier = await sync_to_async(conversation_of)(alice)
    await Message.objects.acreate(conversation=earlier, role="user", content="Before")
    await Message.objects.acreate(conversation=earlier, role="assistant", content="Answered", status="complete")
    bobs = await sync_to_async(conversation_of)(bob)
    caller = await sync_to_async(caller_for_user_sync)(alice)
    batcher = post_batcher()
    answers = [
        batcher.post(caller, {"content": "Hello"}, conversation.pk, "req-1"),
        batcher.post(caller, {"content": "Hello"}, conversation.pk + 1000, "req-2"),
        batcher.post(caller, {"content": "Hello"}, bobs.pk, "req-3"),
        batcher.post(caller, {"content": "Hello"}, 2**63, "req-4"),  # no row can have it
        batcher.post(caller, {"content": 5}, conversation.pk, "req-5"),
        batcher.post(caller, {"content": "Again"}, earlier.pk, "req-6"),
    ]
    outcomes = await asyncio.gather(*answers, return_exceptions=True)
    (body, plan), missing, bobs_one, too_big, invalid, (later, later_plan) = outcomes  # type: ignore[misc]
    for refused in (missing, bobs_one, too_big):
        assert isinstance(refused, NotFound) and refused.code == "conversation_not_found"
    assert isinstance(invalid, InvalidRequest)
    assert body["assistant_message"]["id"] == plan.message_id and body["user_message"]["content"] == "Hello"
    assert plan.context.request_id == "req-1"
    assert [m.content for m in later_plan.request.messages] == ["Before", "Answered", "Again"]
    assert later["user_message"]["conversation"] == earlier.pk
    assert await Message.objects.filter(conversation=bobs).acount() == 0
    await plan.admission.release()
    await later_plan.admission.release()


def test_a_batch_whose_rows_are_refused_is_written_again_post_by_post(
    alice: Any, chat_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply started in one of a batch's conversations after its busy check (another server's
    post): the batch's transaction breaks on that conversation's second streaming reply, and is
    undone; written again one by one, the other post is made and that one is 409, its admission
    given back, and nothing of the undone attempt is left."""
    from chat import services
    from orchestration.errors import Conflict

    caller = caller_for_user_sync(alice)
    conversation, other = conversation_of(alice), conversation_of(alice)
    admit_all_sync = services.admit_all_sync

    def admitted_as_another_server_posts(calls: Any) -> Any:
        Message.objects.create(conversation=conversation, role="assistant", status="streaming", content="theirs")
        return admit_all_sync(calls)

    monkeypatch.setattr(services, "admit_all_sync", admitted_as_another_server_posts)
    elsewhere, refused = services.messages_post(
        [services.MessagePost(other, "Meanwhile", caller), services.MessagePost(conversation, "First", caller)]
    )
    assert isinstance(refused, Conflict) and refused.code == "reply_in_progress"
    assert isinstance(elsewhere, services.PostedMessage)
    assert [m.content for m in conversation.messages.order_by("id")] == ["theirs"]
    assert [m.content for m in other.messages.order_by("id")] == ["Meanwhile", ""]
    assert [elsewhere.user_message.pk, elsewhere.assistant_message.pk] == list(
        other.messages.order_by("id").values_list("pk", flat=True)
    )
    other.refresh_from_db()
    conversation.refresh_from_db()
    assert (other.title, conversation.title) == ("Meanwhile", "")
    elsewhere.plan.admission.release_sync()


def test_a_second_post_in_one_conversation_of_a_batch_is_409_and_spends_no_one_elses_limit(
    alice: Any, chat_model: Any
) -> None:
    """Alone, a post to a conversation whose reply was just started is 409 before it is admitted:
    it spends none of the caller's requests or budget. Two posts in one conversation in one batch
    must be decided so too: the doomed second post must not take the rate limit of a post in
    another conversation made with it."""
    from chat import services
    from orchestration.access.admission import caller_for_secret_sync
    from orchestration.access.keys import api_key_create
    from orchestration.errors import Conflict

    caller = caller_for_secret_sync(api_key_create(user=alice, name="two a minute", rpm=2)[1])
    conversation, other = conversation_of(alice), conversation_of(alice)
    read = Conversation.objects.get  # each post reads its conversation, as the batcher's posts do
    made, refused, elsewhere = services.messages_post(
        [
            services.MessagePost(read(pk=conversation.pk), "First", caller),
            services.MessagePost(read(pk=conversation.pk), "Second", caller),
            services.MessagePost(read(pk=other.pk), "Meanwhile", caller),
        ]
    )
    assert isinstance(refused, Conflict) and refused.code == "reply_in_progress"
    assert isinstance(made, services.PostedMessage)
    assert isinstance(elsewhere, services.PostedMessage), elsewhere
    assert [m.content for m in other.messages.order_by("id")] == ["Meanwhile", ""]
    for posted in (made, elsewhere):
        posted.plan.admission.release_sync()


async def test_a_post_whose_client_left_while_its_batch_was_in_the_database_still_has_its_reply_made(
    alice: Any, chat_model: Any, simulator: Any
) -> None:
    """Django cancels a browser's view when its client disconnects. A post whose batch was already
    in the database thread is made all the same (its rows, its admission, its producer's claim),
    as ``sync_to_async`` finished a cancelled post alone and the view then started its reply: its
    reply must be started, not left streaming with its conversation busy and its budget held."""
    from chat.apis import post_batcher

    simulator.configure(MODEL, tokens_per_s=0)
    conversation = await sync_to_async(conversation_of)(alice)
    caller = await sync_to_async(caller_for_user_sync)(alice)
    batcher = post_batcher()
    answer = batcher.post(caller, {"content": "Hello"}, conversation.pk, "req-left")

    async def view() -> Any:
        return await answer

    waiter = asyncio.create_task(view())
    await asyncio.sleep(0)  # the batch is sent, the view awaits its answer
    (batch,) = batcher._running
    waiter.cancel()  # the client disconnected: Django cancels its view
    await batch
    assert waiter.cancelled()
    reply = await Message.objects.aget(conversation=conversation, role="assistant")
    deadline = time.monotonic() + 10
    while reply.status == "streaming" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        await reply.arefresh_from_db()
    assert reply.status == "complete" and reply.content
    assert await claim_ended(reply.pk, deadline)

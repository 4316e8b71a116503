"""Settling a reply: the terminal event follows the row as saved, read back only when needed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import IntegrityError
from django.utils import timezone

from chat.models import Conversation, Message
from chat.services import SettleBatcher, _settle, terminal_event


def _streaming_reply(owner: Any) -> Message:
    conversation = Conversation.objects.create(owner=owner, model="chat-sim")
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING
    )


def _fields(**more: Any) -> dict[str, Any]:
    return {
        "content": "Hello there.",
        "status": Message.Status.COMPLETE,
        "finish_reason": "stop",
        "error_code": "",
        "error_message": "",
        "input_tokens": 12,
        "output_tokens": 3,
        "cost_usd": Decimal("0.0000123456789"),  # more places than the column keeps
        "finished_at": timezone.now(),
        **more,
    }


@pytest.mark.django_db
def test_the_settling_call_announces_the_row_it_wrote_without_reading_it_back(
    alice: Any, django_assert_num_queries: Any
) -> None:
    reply = _streaming_reply(alice)
    with django_assert_num_queries(1):
        settled = _settle(reply.pk, _fields())
    assert settled is not None
    assert terminal_event(settled) == terminal_event(Message.objects.get(pk=reply.pk))
    assert terminal_event(settled).data["cost_usd"] == "0.00001235"


@pytest.mark.django_db
def test_a_reply_settled_by_someone_else_is_announced_as_they_saved_it(alice: Any) -> None:
    reply = _streaming_reply(alice)
    _settle(reply.pk, _fields(status=Message.Status.CANCELLED, finish_reason="cancelled"))
    late = _settle(reply.pk, _fields(content="Hello there, and more."))
    assert late is not None
    assert late.status == Message.Status.CANCELLED
    assert late.content == "Hello there."


@pytest.mark.django_db
def test_fields_short_of_the_terminal_event_are_read_back(alice: Any) -> None:
    reply = _streaming_reply(alice)
    settled = _settle(reply.pk, {"status": Message.Status.FAILED, "error_code": "producer_lost"})
    assert settled is not None
    assert terminal_event(settled) == terminal_event(Message.objects.get(pk=reply.pk))


@pytest.mark.django_db
def test_a_deleted_reply_settles_as_none(alice: Any) -> None:
    reply = _streaming_reply(alice)
    reply.conversation.delete()
    assert _settle(reply.pk, _fields()) is None


@pytest.mark.django_db(transaction=True)
async def test_replies_that_end_together_settle_together_each_with_its_own_outcome(alice: Any) -> None:
    """Settles of one loop turn share a hop to the database thread (``SettleBatcher``); a row the
    database refuses fails that reply alone, and a deleted one settles as None beside them."""
    first, refused, gone = [await sync_to_async(_streaming_reply)(alice) for _ in range(3)]
    await sync_to_async(gone.conversation.delete)()
    batcher = SettleBatcher()
    outcomes = await asyncio.gather(
        batcher.settle(first.pk, _fields()),
        batcher.settle(refused.pk, _fields(input_tokens=-1)),  # a positive integer column
        batcher.settle(gone.pk, _fields()),
        return_exceptions=True,
    )
    settled, failed, deleted = outcomes
    assert isinstance(settled, Message) and settled.status == Message.Status.COMPLETE
    assert isinstance(failed, IntegrityError)
    assert deleted is None
    statuses = Message.objects.filter(pk__in=[first.pk, refused.pk]).values_list("pk", "status")
    rows = dict(await sync_to_async(list)(statuses))
    assert rows == {first.pk: Message.Status.COMPLETE, refused.pk: Message.Status.STREAMING}


@pytest.mark.django_db(transaction=True)
def test_replies_settled_together_are_committed_once(alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch's rows are one transaction (one commit), and each still gets its own outcome."""
    from django.db import connection

    from chat.services import _settle_all

    replies = [_streaming_reply(alice) for _ in range(3)]
    replies[1].conversation.delete()
    commits: list[bool] = []
    commit = connection.commit
    monkeypatch.setattr(connection, "commit", lambda: (commits.append(True), commit())[1])
    outcomes = _settle_all([(reply.pk, _fields()) for reply in replies])
    assert commits == [True]
    assert [None if outcome is None else outcome.status for outcome in outcomes] == [
        Message.Status.COMPLETE,
        None,
        Message.Status.COMPLETE,
    ]
    assert set(Message.objects.filter(pk__in=[replies[0].pk, replies[2].pk]).values_list("status", flat=True)) == {
        Message.Status.COMPLETE
    }

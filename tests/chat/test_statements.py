"""The chat's prepared statements write what the ORM would."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from chat import statements
from chat.models import Conversation, Message


@pytest.mark.django_db
def test_an_inserted_message_is_the_row_the_orm_would_have_written(alice: Any) -> None:
    conversation = Conversation.objects.create(owner=alice, title="t", model="m")
    fields: dict[str, Any] = {
        "conversation": conversation,
        "role": Message.Role.ASSISTANT,  # a choice: converted by its field
        "content": "Bonjour, ça va ? ✓",
        "status": Message.Status.COMPLETE,  # one streaming reply per conversation: both are complete
        "model": "m",
        "simulated": True,
        "input_tokens": 12,
        "cost_usd": Decimal("0.00012300"),
        "latency_ms": 250,  # an int where the column keeps a float
        "request_id": "req-1",
    }
    question = Message(conversation=conversation, role=Message.Role.USER, content="Salut")
    statements.insert(question)
    prepared = Message(reply_to=question, **fields)
    statements.insert(prepared)
    saved = Message(reply_to=question, **fields)
    saved.save()

    def row(message: Message) -> dict[str, Any]:
        values = Message.objects.filter(pk=message.pk).values().get()
        return {k: v for k, v in values.items() if k not in ("id", "created_at")}

    assert prepared.pk is not None and question.pk is not None
    assert row(prepared) == row(saved)
    assert Message.objects.get(pk=prepared.pk).created_at is not None

    _, plan = statements._insert_plan(Message)
    for field, plain in plan:
        value = field.pre_save(prepared, True)
        expected = field.get_db_prep_save(value, connection)
        sent = value if type(value) in plain else expected
        assert sent == expected and type(sent) is type(expected), field.name

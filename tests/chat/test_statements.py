"""The chat's prepared statements write what the ORM would."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

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

    # What the plan sends for each field (stamps made by the fields' own ``pre_save``, which sets
    # them on the instance) is what the field's own conversion makes of the instance's value.
    database = connections[DEFAULT_DB_ALIAS]
    plan = statements._insert_plan(Message)
    sent_values = plan.values([prepared], database)
    model_fields = [field for field in Message._meta.concrete_fields if not field.primary_key]
    for field, way, sent in zip(model_fields, plan.fields, sent_values, strict=True):
        assert way.attname == field.attname
        expected = field.get_db_prep_save(getattr(prepared, field.attname), connection)
        assert sent == expected and type(sent) is type(expected), field.name


@pytest.mark.django_db
def test_rows_inserted_together_each_get_their_own_id_in_order_across_statements(alice: Any) -> None:
    # More rows than one statement may carry on SQLite (999 parameters): several statements.
    conversations = [Conversation.objects.create(owner=alice, model="m") for _ in range(3)]
    questions = [
        Message(conversation=conversations[n % 3], role=Message.Role.USER, content=f"q{n}") for n in range(120)
    ]
    statements.insert_all(questions)  # type: ignore[arg-type]
    ids = [question.pk for question in questions]
    assert ids == sorted(ids) and len(set(ids)) == 120
    assert {m.pk: m.content for m in Message.objects.all()} == {q.pk: q.content for q in questions}
    assert all(m.conversation_id == conversations[n % 3].pk for n, m in enumerate(Message.objects.order_by("id")))
    replies = [
        Message(conversation=q.conversation, role=Message.Role.ASSISTANT, reply_to=q, content=f"a{q.content}")
        for q in questions[:3]
    ]
    statements.insert_all(replies)  # type: ignore[arg-type]
    for reply in Message.objects.filter(role=Message.Role.ASSISTANT):
        assert reply.content == f"a{reply.reply_to.content}"
    # Rows written together are stamped together, as the ORM's ``pre_save`` stamps each: on the
    # instances and in the rows alike.
    assert len({reply.created_at for reply in replies}) == 1
    assert {m.created_at for m in Message.objects.filter(role=Message.Role.ASSISTANT)} == {replies[0].created_at}

    for n, conversation in enumerate(conversations):
        conversation.title = f"t{n}"
    statements.conversations_touch(conversations)
    saved = Conversation.objects.in_bulk([c.pk for c in conversations])
    for conversation in conversations:
        assert saved[conversation.pk].title == conversation.title
        assert saved[conversation.pk].updated_at == conversation.updated_at


@pytest.mark.django_db
def test_an_instance_built_by_position_is_the_one_the_keywords_build(
    alice: Any, django_assert_num_queries: Any
) -> None:
    conversation = Conversation.objects.create(owner=alice, title="t", model="m")
    question = statements.instance(Message, conversation=conversation, role=Message.Role.USER, content="Salut")
    statements.insert(question)
    given: dict[str, Any] = {"conversation": conversation, "reply_to": question, "model": "m", "input_tokens": 3}
    by_position = statements.instance(Message, **given, edit_of=None, request_id="req-1")
    by_keyword = Message(**given, edit_of=None, request_id="req-1")

    assert by_position.__dict__.keys() - {"_state"} == by_keyword.__dict__.keys() - {"_state"}
    for field in Message._meta.concrete_fields:
        assert getattr(by_position, field.attname) == getattr(by_keyword, field.attname), field.name
    assert by_position._state.adding and by_position.pk is None
    with django_assert_num_queries(0):  # the related objects given are linked, not read again
        assert by_position.conversation is conversation and by_position.reply_to is question
        assert by_position.edit_of is None

    # Given by its attname, a link is only its id; a default nobody gave is the field's.
    settled = statements.instance(Message, id=7, conversation_id=conversation.pk, output_tokens=5)
    assert (settled.pk, settled.conversation_id, settled.output_tokens) == (7, conversation.pk, 5)
    assert (settled.status, settled.cost_usd, settled.simulated) == (Message.Status.COMPLETE, Decimal("0"), False)
    # A choice, given or by default, is held as a row read back holds it: its text.
    assert type(settled.status) is str and type(question.role) is str and question.role == "user"
    with pytest.raises(KeyError):
        statements.instance(Message, nonsense=1)


@pytest.mark.django_db
def test_instances_read_are_the_ones_from_db_builds(alice: Any, django_assert_num_queries: Any) -> None:
    conversation = Conversation.objects.create(owner=alice, title="t", model="m")
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER, content="Salut")
    reply = Message.objects.create(conversation=conversation, role=Message.Role.ASSISTANT, reply_to=question)
    names = statements._in_model_order(Message, "id", "role", "content", "reply_to_id")  # as from_db takes them
    rows = [tuple(getattr(message, name) for name in names) for message in (question, reply)]

    read = statements.read_instances(Message, names, rows)
    built = [Message.from_db(connection.alias, names, row) for row in rows]
    for ours, theirs in zip(read, built, strict=True):
        assert type(ours) is Message
        assert {k: v for k, v in ours.__dict__.items() if k != "_state"} == {
            k: v for k, v in theirs.__dict__.items() if k != "_state"
        }
        assert (ours._state.adding, ours._state.db) == (theirs._state.adding, theirs._state.db) == (False, "default")
        assert ours.get_deferred_fields() == theirs.get_deferred_fields()
        assert ours == theirs
    with django_assert_num_queries(1):  # a deferred field is read when asked for, as from_db's are
        assert read[1].status == Message.Status.COMPLETE
    with django_assert_num_queries(1):
        assert read[1].reply_to == question


@pytest.mark.django_db
def test_instances_read_go_through_init_when_something_listens_for_it(alice: Any) -> None:
    from django.db.models.signals import post_init

    conversation = Conversation.objects.create(owner=alice, title="t", model="m")
    message = Message.objects.create(conversation=conversation, role=Message.Role.USER, content="hi")
    seen: list[Any] = []

    def listener(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance)

    post_init.connect(listener, sender=Message)
    try:
        read = statements.read_instances(Message, ("id", "content"), [(message.pk, "hi")])
    finally:
        post_init.disconnect(listener, sender=Message)
    assert seen == read


@pytest.mark.django_db
def test_a_new_instance_goes_through_init_when_something_listens_for_it(alice: Any) -> None:
    from django.db.models.signals import post_init

    conversation = Conversation.objects.create(owner=alice, title="t", model="m")
    seen: list[Any] = []

    def listener(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance)

    quiet = statements.instance(Message, conversation=conversation, content="hi")
    post_init.connect(listener, sender=Message)
    try:
        heard = statements.instance(Message, conversation=conversation, content="hi")
    finally:
        post_init.disconnect(listener, sender=Message)
    assert seen == [heard] and quiet not in seen
    assert {k: v for k, v in quiet.__dict__.items() if k != "_state"} == {
        k: v for k, v in heard.__dict__.items() if k != "_state"
    }
    assert quiet._state.adding and quiet._state.db is None


def test_only_plain_field_attributes_are_set_straight_into_a_new_instance() -> None:
    assert statements._plainly_set(Message, ("content", "conversation_id"))

    class Described:
        content = property(lambda self: "")

    assert not statements._plainly_set(Described, ("content",))  # type: ignore[arg-type]


@pytest.mark.django_db
def test_a_batch_of_one_is_stamped_at_the_time_it_is_given(alice: Any) -> None:
    # One post alone goes the one-row way (``insert``, ``conversation_touch``): the same one time.
    conversation = Conversation.objects.create(owner=alice, model="m")
    now = timezone.now() - timedelta(minutes=5)
    question = statements.instance(Message, conversation=conversation, role=Message.Role.USER, content="q")
    statements.insert_all([question], now=now)
    statements.conversations_touch([conversation], now=now)

    assert question.created_at == now and Message.objects.get(pk=question.pk).created_at == now
    assert conversation.updated_at == now and Conversation.objects.get(pk=conversation.pk).updated_at == now

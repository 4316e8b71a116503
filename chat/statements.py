"""The statements every reply runs, as SQL written once instead of compiled by the ORM per call.

Posting a message reads the conversation and its messages, inserts two messages and touches the
conversation; its reply settles with one update. Through the ORM, building and compiling those
queries (the query objects, the compiler, the model instances) cost several times the database's
own work: a quarter of the chat's CPU in the pinned streaming benchmark (docs/benchmarks.md,
"Streaming at the floor"). Here the same statements are plain SQL, each value converted for the
database by its model field as the ORM would, and the callers get the model instances they read.
Everything else of the chat stays on the ORM.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.utils import timezone

from chat.models import Conversation, Message
from orchestration.database import plain_types
from orchestration.errors import NotFound


def _in_model_order(model: type[Model], *names: str) -> tuple[str, ...]:
    """``names`` in the order of the model's fields: ``Model.from_db`` takes a subset's values so."""
    return tuple(field.attname for field in model._meta.concrete_fields if field.attname in names)


# What posting a message reads: the conversation's fields a reply is planned from, and of each
# message what ``chat.selectors.history_of`` and ``reply_streaming_in`` read.
_CONVERSATION_FIELDS = _in_model_order(
    Conversation, "id", "owner_id", "title", "model", "system_prompt", "temperature", "prompt_template"
)
_MESSAGE_FIELDS = _in_model_order(Message, "id", "role", "content", "status", "reply_to_id", "edit_of_id")


def _quote(name: str) -> str:
    return str(connection.ops.quote_name(name))


def _column(model: type[Model], attname: str) -> str:
    for field in model._meta.concrete_fields:
        if field.attname == attname:
            return _quote(str(field.column))
    raise LookupError(attname)


@functools.cache
def _conversation_read_sql() -> str:
    conversations, messages = Conversation._meta.db_table, Message._meta.db_table
    wanted = [f"c.{_column(Conversation, name)}" for name in _CONVERSATION_FIELDS]
    wanted += [f"m.{_column(Message, name)}" for name in _MESSAGE_FIELDS]
    return (
        f"SELECT {', '.join(wanted)} FROM {_quote(conversations)} c "
        f"LEFT JOIN {_quote(messages)} m ON m.{_column(Message, 'conversation_id')} = c.{_column(Conversation, 'id')} "
        f"WHERE c.{_column(Conversation, 'id')} = %s AND c.{_column(Conversation, 'owner_id')} = %s "
        f"ORDER BY m.{_column(Message, 'created_at')}, m.{_column(Message, 'id')}"
    )


def conversation_for_post(*, owner_id: int, conversation_id: int) -> tuple[Conversation, list[Message]]:
    """The owner's conversation (or 404) and its messages oldest first, in one query: the
    conversation as ``chat.selectors.conversation_get`` gives it, the messages as
    ``conversation_rows`` does (only the fields a new reply's planning reads)."""
    lowest, highest = connection.ops.integer_field_range(Conversation._meta.pk.get_internal_type())  # type: ignore[union-attr]
    if not lowest <= conversation_id <= highest:
        # No row can have it (the ORM answers such a lookup with no rows too); the database
        # driver would refuse the number instead.
        raise NotFound("conversation_not_found", f"No conversation {conversation_id}.")
    with connection.cursor() as cursor:
        cursor.execute(_conversation_read_sql(), [conversation_id, owner_id])
        rows = cursor.fetchall()
    if not rows:
        raise NotFound("conversation_not_found", f"No conversation {conversation_id}.")
    split = len(_CONVERSATION_FIELDS)
    conversation = Conversation.from_db(connection.alias, _CONVERSATION_FIELDS, rows[0][:split])
    messages = [
        Message.from_db(connection.alias, _MESSAGE_FIELDS, row[split:]) for row in rows if row[split] is not None
    ]
    return conversation, messages


@functools.cache
def _insert_plan(model: type[Model]) -> tuple[str, list[tuple[Field[Any, Any], tuple[type, ...]]]]:
    """The ``INSERT`` of one row, and each field with the types it sends unconverted."""
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(_quote(str(field.column)) for field in fields)
    sql = f"INSERT INTO {_quote(model._meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    if connection.features.can_return_columns_from_insert:
        sql += f" RETURNING {_column(model, 'id')}"
    return sql, [(field, plain_types(field)) for field in fields]


def insert(instance: Model) -> None:
    """``instance.save()`` of a new row as one prepared ``INSERT`` (the fields' own ``pre_save``:
    ``created_at`` is stamped as the ORM does; each value converted by its field unless the field
    sends its type as it is); sets its id."""
    model = type(instance)
    sql, plan = _insert_plan(model)
    values = [
        value if type(value := field.pre_save(instance, True)) in plain else field.get_db_prep_save(value, connection)
        for field, plain in plan
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if connection.features.can_return_columns_from_insert:
            instance.pk = cursor.fetchone()[0]
        else:
            instance.pk = connection.ops.last_insert_id(cursor, model._meta.db_table, str(model._meta.pk.column))
    instance._state.adding = False
    instance._state.db = connection.alias


def conversation_touch(conversation: Conversation) -> None:
    """``conversation.save(update_fields=["title", "updated_at"])`` as one prepared ``UPDATE``."""
    updated_at = Conversation._meta.get_field("updated_at")
    conversation.updated_at = timezone.now()
    sql = _update_sql(Conversation, ("title", "updated_at"), where=("id",))
    values = [conversation.title, updated_at.get_db_prep_save(conversation.updated_at, connection), conversation.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


@functools.cache
def _update_sql(model: type[Model], names: tuple[str, ...], *, where: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{_column(model, name)} = %s" for name in names)
    condition = " AND ".join(f"{_column(model, name)} = %s" for name in where)
    return f"UPDATE {_quote(model._meta.db_table)} SET {assignments} WHERE {condition}"


@functools.cache
def _message_field(name: str) -> Field[Any, Any]:
    field = Message._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def reply_settle(message_id: int, fields: dict[str, Any]) -> int:
    """``Message.objects.filter(pk=message_id, status=STREAMING).update(**fields)`` as one
    prepared ``UPDATE``; the number of rows it changed (0: already settled, or gone)."""
    names = tuple(fields)
    sql = _update_sql(Message, names, where=("id", "status"))
    values = [_message_field(name).get_db_prep_save(fields[name], connection) for name in names]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, message_id, Message.Status.STREAMING.value])
        return int(cursor.rowcount)

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
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import DateTimeField, Field, Model
from django.db.models.base import ModelState
from django.db.models.enums import Choices
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from chat.models import Conversation, Message
from orchestration.database import db_preparer, plain_types
from orchestration.errors import NotFound

M = TypeVar("M", bound=Model)


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
def _conversations_read_sql(count: int) -> str:
    conversations, messages = Conversation._meta.db_table, Message._meta.db_table
    wanted = [f"c.{_column(Conversation, name)}" for name in _CONVERSATION_FIELDS]
    wanted += [f"m.{_column(Message, name)}" for name in _MESSAGE_FIELDS]
    return (
        f"SELECT {', '.join(wanted)} FROM {_quote(conversations)} c "
        f"LEFT JOIN {_quote(messages)} m ON m.{_column(Message, 'conversation_id')} = c.{_column(Conversation, 'id')} "
        f"WHERE c.{_column(Conversation, 'id')} IN ({', '.join(['%s'] * count)}) "
        f"ORDER BY c.{_column(Conversation, 'id')}, m.{_column(Message, 'created_at')}, m.{_column(Message, 'id')}"
    )


# Conversations read by one statement at most (SQLite takes 999 parameters by default).
_READ_CHUNK = 500
_OWNER = _CONVERSATION_FIELDS.index("owner_id")

ConversationRows = dict[int, list[tuple[Any, ...]]]


def conversations_read(conversation_ids: list[int]) -> ConversationRows:
    """What posting reads of each of these conversations (its row joined with its messages', oldest
    first), in one query for a whole batch of posts: a query per post before. Ids no row can have
    are left out (the ORM answers such a lookup with no rows too; the driver would refuse the number)."""
    lowest, highest = connection.ops.integer_field_range(Conversation._meta.pk.get_internal_type())  # type: ignore[union-attr]
    ids = sorted({conversation_id for conversation_id in conversation_ids if lowest <= conversation_id <= highest})
    read: ConversationRows = {}
    for start in range(0, len(ids), _READ_CHUNK):
        chunk = ids[start : start + _READ_CHUNK]
        with connection.cursor() as cursor:
            cursor.execute(_conversations_read_sql(len(chunk)), chunk)
            for row in cursor.fetchall():
                read.setdefault(row[0], []).append(row)
    return read


def conversation_for_post(
    read: ConversationRows, *, owner_id: int, conversation_id: int
) -> tuple[Conversation, list[Message]]:
    """The owner's conversation (or 404) and its messages oldest first, from ``conversations_read``:
    the conversation as ``chat.selectors.conversation_get`` gives it, the messages as
    ``conversation_rows`` does (only the fields a new reply's planning reads). Each call makes
    instances of its own: two posts to one conversation must not share them."""
    rows = read.get(conversation_id)
    if not rows or rows[0][_OWNER] != owner_id:
        raise NotFound("conversation_not_found", f"No conversation {conversation_id}.")
    split = len(_CONVERSATION_FIELDS)
    conversation = Conversation.from_db(connection.alias, _CONVERSATION_FIELDS, rows[0][:split])
    messages = read_instances(Message, _MESSAGE_FIELDS, [row[split:] for row in rows if row[split] is not None])
    return conversation, messages


def read_instances(model: type[M], attnames: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[M]:
    """``model.from_db`` of each row of ``attnames`` (a subset of its fields, in the model's order
    as ``from_db`` takes them; the rest deferred), built as ``from_db`` leaves them: the values in
    the instance's ``__dict__``, its state saved in this database. ``from_db`` walks every field of
    the model for every row (22 for a message), and a post reads its whole conversation: 8 µs a
    row, most of what a long conversation adds to a post. When anything listens for the model's
    ``pre_init`` or ``post_init``, ``from_db`` builds them."""
    alias = connection.alias
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return [model.from_db(alias, attnames, row) for row in rows]
    made = []
    for row in rows:
        instance = model.__new__(model)
        state = ModelState()
        state.adding, state.db = False, alias
        instance.__dict__.update(zip(attnames, row, strict=True), _state=state)
        made.append(instance)
    return made


class _Written(NamedTuple):
    """A field as an ``INSERT`` writes it: its attribute, its own ``pre_save`` if it has one (None:
    the value as the instance holds it, which is all that ``Field.pre_save`` does), the types it
    sends unconverted, its conversion (``db_preparer``), and whether it is a date and time stamped
    when the row is written (``auto_now``, ``auto_now_add``), which its ``pre_save`` would do."""

    attname: str
    pre_save: Callable[[Model, bool], Any] | None
    plain: tuple[type, ...]
    prepare: Callable[[Any, Any], Any]
    stamped: bool


@dataclass(frozen=True)
class _InsertPlan:
    """The ``INSERT`` of a model's rows: ``{head} VALUES {row}, {row}...{returning}``, and how each
    field is written."""

    head: str
    row: str
    returning: str
    fields: list[_Written]

    def sql(self, rows: int = 1) -> str:
        return f"{self.head} VALUES {', '.join([self.row] * rows)}{self.returning}"

    def values(self, instances: list[Model], database: Any, now: datetime | None = None) -> list[Any]:
        """The rows of ``instances``, one after the other: the fields' own ``pre_save``, each value
        converted by its field for ``database`` unless the field sends its type as it is. The
        stamps (``created_at``) are ``now`` (default: the time of this call), set on every instance
        as ``pre_save`` sets them and converted once for them all: a date's conversion cost as much
        as the rest of a message's row."""
        stamp = timezone.now() if now is None else now
        stamps = [field.prepare(stamp, database) if field.stamped else None for field in self.fields]
        values = []
        for instance in instances:
            held = instance.__dict__
            for field, stamped in zip(self.fields, stamps, strict=True):
                if field.stamped:
                    held[field.attname] = stamp
                    values.append(stamped)
                    continue
                if field.pre_save is not None:
                    value = field.pre_save(instance, True)
                elif field.attname in held:
                    value = held[field.attname]
                else:  # a deferred field: read as the ORM's ``pre_save`` reads it
                    value = getattr(instance, field.attname)
                values.append(value if type(value) in field.plain else field.prepare(value, database))
        return values


@functools.cache
def _insert_plan(model: type[Model]) -> _InsertPlan:
    fields = _concrete_fields(model)
    columns = ", ".join(_quote(str(field.column)) for field in fields)
    returning = f" RETURNING {_column(model, 'id')}" if connection.features.can_return_columns_from_insert else ""
    return _InsertPlan(
        f"INSERT INTO {_quote(model._meta.db_table)} ({columns})",
        f"({', '.join(['%s'] * len(fields))})",
        returning,
        [_written(field) for field in fields],
    )


def _written(field: Field[Any, Any]) -> _Written:
    stamped = type(field) is DateTimeField and bool(field.auto_now or field.auto_now_add)  # type: ignore[attr-defined]
    pre_save = field.pre_save if type(field).pre_save is not Field.pre_save and not stamped else None
    return _Written(str(field.attname), pre_save, plain_types(field), db_preparer(field), stamped)


def insert(instance: Model, *, now: datetime | None = None) -> None:
    """``instance.save()`` of a new row as one prepared ``INSERT``, stamped at ``now`` (default: the
    time of this call); sets its id."""
    model = type(instance)
    plan = _insert_plan(model)
    values = plan.values([instance], connections[DEFAULT_DB_ALIAS], now)
    with connection.cursor() as cursor:
        cursor.execute(plan.sql(), values)
        if plan.returning:
            instance.pk = cursor.fetchone()[0]
        else:
            instance.pk = connection.ops.last_insert_id(cursor, model._meta.db_table, str(model._meta.pk.column))
    _saved(instance)


def insert_all(instances: list[Model], *, now: datetime | None = None) -> None:
    """``insert`` of several new rows of one model, in as few multi-row ``INSERT ... RETURNING``
    statements as the database's limit on parameters allows: a batch of posts wrote each of its
    rows with a statement of its own. Ids are handed out in ascending order, as the rows were given
    (ids grow in insertion order: SQLite's rowids, PostgreSQL's sequence, drawn row by row). The
    rows' stamps are all ``now`` (default: the time of this call), as for rows made together."""
    if not instances:
        return
    plan = _insert_plan(type(instances[0]))
    stamp = timezone.now() if now is None else now
    if len(instances) == 1 or not plan.returning or not connection.features.can_return_rows_from_bulk_insert:
        for instance in instances:
            insert(instance, now=stamp)
        return
    database = connections[DEFAULT_DB_ALIAS]
    size = max(1, database.ops.bulk_batch_size(_concrete_fields(type(instances[0])), instances))
    for start in range(0, len(instances), size):
        chunk = instances[start : start + size]
        values = plan.values(chunk, database, stamp)
        with connection.cursor() as cursor:
            cursor.execute(plan.sql(len(chunk)), values)
            ids = sorted(row_id for (row_id,) in cursor.fetchall())
        for instance, row_id in zip(chunk, ids, strict=True):
            instance.pk = row_id
            _saved(instance)


@functools.cache
def _concrete_fields(model: type[Model]) -> list[Field[Any, Any]]:
    """The fields an ``INSERT`` of ``model`` writes (all but the primary key)."""
    return [field for field in model._meta.concrete_fields if not field.primary_key]


@dataclass(frozen=True)
class _Positions:
    """A model's concrete fields in order, where each name (and attname) sits among them, the
    default of each, which defaults are made anew for each instance, and whether its fields' values
    may be set straight into a new instance's ``__dict__`` (``_plainly_set``)."""

    fields: tuple[Field[Any, Any], ...]
    index: dict[str, int]
    defaults: tuple[Any, ...]
    made: tuple[int, ...]
    attnames: tuple[str, ...]
    plainly_set: bool


@functools.cache
def _positions(model: type[Model]) -> _Positions:
    fields = tuple(model._meta.concrete_fields)
    index = {name: position for position, field in enumerate(fields) for name in {field.name, field.attname}}
    # A default that is not callable is handed to every instance as it is (``Field.get_default`` does so
    # too), as is a field's empty value when it has no default (None, or "" for text).
    made = tuple(position for position, field in enumerate(fields) if field.has_default() and callable(field.default))
    defaults = tuple(
        None if position in made else _as_read(field.get_default()) for position, field in enumerate(fields)
    )
    attnames = tuple(str(field.attname) for field in fields)
    return _Positions(fields, index, defaults, made, attnames, _plainly_set(model, attnames))


def _plainly_set(model: type[Model], attnames: tuple[str, ...]) -> bool:
    """Whether ``Model.__init__`` setting these attributes of a new instance does no more than put
    them in its ``__dict__``: each class attribute is Django's deferred-loading descriptor, which
    has no ``__set__``, or a foreign key's, whose ``__set__`` only forgets a related object that a
    new instance has not cached."""
    for attname in attnames:
        kind = type(inspect.getattr_static(model, attname, None))
        if kind is not DeferredAttribute and kind is not ForeignKeyDeferredAttribute:
            return False
    return True


def _as_read(value: Any) -> Any:
    """A choice (``Message.Role.USER``) as a row read back holds it: its value."""
    return value.value if isinstance(value, Choices) else value


def instance(model: type[M], /, **values: Any) -> M:
    """``model(**values)``, built as ``Model.from_db`` builds a row read back: every field by
    position, a choice as its value. The keyword path looks each field up in ``values`` and asks it
    for its default: three times the cost, and a post builds two messages and its settled reply a
    third. A related object given by its field's name is linked as assigning it would (its id, and
    the object cached). Each value is then as it is written: a choice's conversion (it is text) is
    as costly as a date's."""
    positions = _positions(model)
    row = list(positions.defaults)
    for position in positions.made:
        row[position] = positions.fields[position].get_default()
    related = []
    for name, value in values.items():
        position = positions.index[name]
        field = positions.fields[position]
        if field.is_relation and name == field.name:
            row[position] = None if value is None else value.pk
            related.append((field, value))
        else:
            row[position] = _as_read(value)
    if positions.plainly_set and not (pre_init.has_listeners(model) or post_init.has_listeners(model)):
        # What ``Model.__init__`` does with a value for every field, without its walk over the
        # fields and its two signals (nobody listens): about a twelfth of a post's database work.
        made = model.__new__(model)
        made.__dict__.update(zip(positions.attnames, row, strict=True), _state=ModelState())
    else:
        made = model(*row)
    for field, value in related:
        field.set_cached_value(made, value)  # type: ignore[attr-defined]
    return made


def _saved(instance: Model) -> None:
    instance._state.adding = False
    instance._state.db = connection.alias


def conversation_touch(conversation: Conversation, *, now: datetime | None = None) -> None:
    """``conversation.save(update_fields=["title", "updated_at"])`` as one prepared ``UPDATE``,
    touched at ``now`` (default: the time of this call)."""
    updated_at = _field_written(Conversation, "updated_at")
    conversation.updated_at = timezone.now() if now is None else now
    sql = _update_sql(Conversation, ("title", "updated_at"), where=("id",))
    stamp = updated_at.prepare(conversation.updated_at, connections[DEFAULT_DB_ALIAS])
    values = [conversation.title, stamp, conversation.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


def conversations_touch(conversations: list[Conversation], *, now: datetime | None = None) -> None:
    """``conversation_touch`` of several conversations, as one statement run for each, all of them
    touched at ``now`` (default: the time of this call)."""
    if len(conversations) == 1:
        conversation_touch(conversations[0], now=now)
        return
    updated_at, database = _field_written(Conversation, "updated_at"), connections[DEFAULT_DB_ALIAS]
    stamp = timezone.now() if now is None else now
    written = updated_at.prepare(stamp, database)
    rows = []
    for conversation in conversations:
        conversation.updated_at = stamp
        rows.append([conversation.title, written, conversation.pk])
    with connection.cursor() as cursor:
        cursor.executemany(_update_sql(Conversation, ("title", "updated_at"), where=("id",)), rows)


@functools.cache
def _update_sql(model: type[Model], names: tuple[str, ...], *, where: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{_column(model, name)} = %s" for name in names)
    condition = " AND ".join(f"{_column(model, name)} = %s" for name in where)
    return f"UPDATE {_quote(model._meta.db_table)} SET {assignments} WHERE {condition}"


@functools.cache
def _field_written(model: type[Model], name: str) -> _Written:
    """How a field of ``model`` is written."""
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return _written(field)


def reply_settle(message_id: int, fields: dict[str, Any]) -> int:
    """``Message.objects.filter(pk=message_id, status=STREAMING).update(**fields)`` as one
    prepared ``UPDATE``; the number of rows it changed (0: already settled, or gone)."""
    names = tuple(fields)
    sql = _update_sql(Message, names, where=("id", "status"))
    database = connections[DEFAULT_DB_ALIAS]
    values = []
    for name in names:
        written = _field_written(Message, name)
        value = fields[name]
        values.append(value if type(value) in written.plain else written.prepare(value, database))
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, message_id, Message.Status.STREAMING.value])
        return int(cursor.rowcount)

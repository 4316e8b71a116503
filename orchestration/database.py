"""Database work from async code that must not pay for a new connection on every call.

Channels' ``database_sync_to_async`` closes the thread's connection around each call when it is
obsolete, and with ``CONN_MAX_AGE = 0`` every connection is: opening one (SQLite's pragmas,
PostgreSQL's handshake or a pool checkout) cost as much as the rest of a task POST. The threads
that ``in_database_thread`` uses keep their connection from call to call; as with Django's
``CONN_HEALTH_CHECKS``, a connection that failed and no longer answers is closed before the next
call, which opens a new one.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field

P = ParamSpec("P")
T = TypeVar("T")


def drop_broken_connections() -> None:
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred and not connection.is_usable():
            connection.close()


def in_database_thread(function: Callable[P, T], *, thread_sensitive: bool = True) -> Callable[P, Awaitable[T]]:
    """``function`` run by ``sync_to_async``, its thread's connection kept unless it broke.
    ``thread_sensitive=False`` spreads calls over the default pool (work that must not queue
    behind other requests' in the one shared thread)."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        drop_broken_connections()
        return function(*args, **kwargs)

    return sync_to_async(run, thread_sensitive=thread_sensitive)


def database_call(function: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``function`` run in the event loop's default thread pool (calls must not queue behind one
    another in the one shared thread), its connection released when it returns.

    The release happens inside the call, in the context the connection was opened in: Channels'
    ``database_sync_to_async(thread_sensitive=False)`` releases it outside that context, and a
    pooled PostgreSQL connection opened by a call that was cancelled midway was then never given
    back (the pool ran dry after a few dozen WebSocket sessions)."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections_release()

    return sync_to_async(run, thread_sensitive=False)


def connections_release() -> None:
    """Give this thread's pooled connections back; keep a SQLite connection that still works.

    A SQLite connection is a file handle with no server behind it, but opening one runs the
    settings' pragmas and registers Django's functions: about 1.1 ms of CPU, more than the query
    it serves, and a chat reply made three such calls. Only a connection left inside a transaction
    or broken by an error is closed.
    """
    for connection in connections.all(initialized_only=True):
        if connection.vendor != "sqlite":
            connection.close_if_unusable_or_obsolete()
        elif connection.connection is None:
            continue  # closed already: asking it anything would open it again
        elif connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"] or (
            connection.errors_occurred and not connection.is_usable()
        ):
            connection.close()


def database_release() -> None:
    """Close this process's database connections and, on PostgreSQL, its connection pool.

    A work horse is forked from its worker: a connection it inherited would share its socket with
    the parent's, and an inherited pool would hand out such connections without the threads that
    keep it. So the worker releases both before each fork (the next query opens a new pool), and a
    work horse releases its own before it leaves through ``os._exit``, which closes nothing.
    """
    connections.close_all()
    for connection in connections.all():
        close_pool = getattr(connection, "close_pool", None)  # PostgreSQL's backend only
        if close_pool is not None:
            close_pool()


def without_null_characters(value: Any) -> Any:
    """``value`` (a string, or a JSON document) as PostgreSQL can store it in ``text`` or ``jsonb``,
    which refuse the null character (U+0000): each one becomes U+FFFD; anything without one is
    returned as it is."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, list):
        return [without_null_characters(item) for item in value]
    if isinstance(value, dict):
        return {without_null_characters(key): without_null_characters(item) for key, item in value.items()}
    return value


def null_character_path(value: Any) -> str | None:
    """Where in a JSON document a string (or key) holds a null character, as ``input[0].content``;
    None when none does."""
    pending: list[tuple[Any, str]] = [(value, "")]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
        elif isinstance(item, dict):
            for key, child in item.items():
                where = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return where
                pending.append((child, where))
        elif isinstance(item, list):
            pending.extend((child, f"{path}[{index}]") for index, child in enumerate(item))
    return None


_SAMPLES: dict[type, object] = {str: "x", int: 7, float: 1.5, bool: True, type(None): None}


# Whether a type is an SQL expression (has ``as_sql``), by type: see ``db_preparer``.
_EXPRESSIONS: dict[type, bool] = {}


def db_preparer(model_field: Field[Any, Any]) -> Callable[[Any, Any], Any]:
    """``model_field.get_db_prep_save`` for writers that convert values themselves, taking the
    database's wrapper itself (``connections[alias]``), not the ``connection`` proxy, which finds it
    again at each attribute the conversion reads.

    Django's ``Field.get_db_prep_save`` first asks each value ``hasattr(value, "as_sql")`` (an SQL
    expression is sent as it is): for every date, decimal or flag that builds and formats an
    ``AttributeError``, as costly as the conversion itself. The answer depends on the value's type,
    so it is asked once per type; a field that changes ``get_db_prep_save`` keeps its own."""
    if type(model_field).get_db_prep_save is not Field.get_db_prep_save:
        return model_field.get_db_prep_save
    convert = model_field.get_db_prep_value

    def prepared(value: Any, connection: Any) -> Any:
        kind = type(value)
        expression = _EXPRESSIONS.get(kind)
        if expression is None:
            expression = _EXPRESSIONS[kind] = hasattr(kind, "as_sql")
        return value if expression else convert(value, connection, prepared=False)

    return prepared


def plain_types(model_field: Field[object, object]) -> tuple[type, ...]:
    """The Python types whose values this field hands the default database unchanged, as its own
    conversion says: a text for a text column, an id for a link; not a date, a decimal or JSON,
    nor what a backend wraps (psycopg's small integers). Writers that skip the conversion for
    those types send what the ORM would, for less (it was most of the request log writer's CPU)."""
    plain = []
    for kind, sample in _SAMPLES.items():
        try:
            prepared = model_field.get_db_prep_save(sample, connections[DEFAULT_DB_ALIAS])
        except (TypeError, ValueError, ValidationError):
            continue
        if type(prepared) is kind and prepared == sample:
            plain.append(kind)
    return tuple(plain)

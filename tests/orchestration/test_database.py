"""What ``database_call`` leaves behind: a pooled connection goes back, a working SQLite one stays."""

from __future__ import annotations

import pytest
from django.db import connection

from orchestration.database import connections_release


@pytest.mark.django_db(transaction=True)
def test_a_working_sqlite_connection_stays_open_and_any_other_goes_back() -> None:
    connection.ensure_connection()
    opened = connection.connection
    connections_release()
    if connection.vendor == "sqlite":
        assert connection.connection is opened  # no new connection (pragmas, functions) for the next call
    else:
        assert connection.connection is None  # back in the pool, for another thread or event loop


@pytest.mark.django_db(transaction=True)
def test_a_connection_left_inside_a_transaction_is_closed() -> None:
    connection.ensure_connection()
    connection.set_autocommit(False)
    connections_release()
    assert connection.connection is None
    connection.ensure_connection()
    assert connection.get_autocommit()


@pytest.mark.django_db(transaction=True)
def test_a_closed_connection_is_not_opened_again_to_be_released() -> None:
    connection.ensure_connection()
    connection.close()
    connections_release()
    assert connection.connection is None  # not reopened (and no query where the database is off limits)


@pytest.mark.django_db
def test_a_preparer_converts_as_its_field_does_and_sends_an_expression_as_it_is() -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.models import Value

    from chat.models import Message
    from orchestration.database import db_preparer
    from orchestration.models import RequestLog

    database = connections[DEFAULT_DB_ALIAS]
    samples = {
        "created_at": [datetime(2026, 12, 7, 5, 30, 1, 250, tzinfo=UTC), None],
        "cost_usd": [Decimal("0.0012345"), Decimal("3"), None],
        "simulated": [True, False, None],
        "status": [Message.Status.STREAMING, "complete"],
        "input_tokens": [12, None],
        "latency_ms": [1.5, 3, None],
    }
    for name, values in samples.items():
        field = Message._meta.get_field(name)
        prepare = db_preparer(field)
        for value in values:
            assert prepare(value, database) == field.get_db_prep_save(value, database), (name, value)
        expression = Value(values[0])
        assert prepare(expression, database) is expression
    # A field with a ``get_db_prep_save`` of its own (JSON: None is SQL NULL) keeps it.
    json_field = RequestLog._meta.get_field("fallbacks")
    assert db_preparer(json_field) == json_field.get_db_prep_save

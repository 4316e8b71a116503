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

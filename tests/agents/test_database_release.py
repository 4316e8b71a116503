"""PostgreSQL's connection pool: reused across requests, and never inherited by a work horse."""

from __future__ import annotations

import pytest
from django.db import connection, connections

from agents.jobs import database_release

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL's backend pools connections"),
]


def backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def pooled() -> bool:
    wrapper = connections["default"]
    return wrapper.alias in type(wrapper)._connection_pools


def test_closed_connections_go_back_to_the_pool_and_are_handed_out_again() -> None:
    backends = set()
    for _ in range(10):
        backends.add(backend_pid())
        connection.close()  # what the end of each request does
    # Without a pool each request would open a connection (and PostgreSQL a backend) of its own;
    # with it, the ten requests took turns on the few connections the pool holds.
    held = connections["default"].pool.get_stats()["pool_size"]
    assert len(backends) <= held < 10


def test_release_closes_the_connection_and_the_pool_and_the_next_query_opens_new_ones() -> None:
    first = backend_pid()
    assert pooled()
    database_release()
    assert connection.connection is None
    assert not pooled()
    assert backend_pid() != first
    assert pooled()

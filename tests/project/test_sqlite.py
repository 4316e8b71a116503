"""The SQLite backend that converts each statement's placeholders once (project/sqlite/base.py)."""

from __future__ import annotations

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from project.sqlite.base import _qmark

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's backend only"),
]


def test_the_settings_select_it_for_sqlite() -> None:
    assert type(connections[DEFAULT_DB_ALIAS]).__module__ == "project.sqlite.base"
    assert connection.vendor == "sqlite"


def test_placeholders_become_question_marks_and_a_doubled_percent_stays_a_literal() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s, %s || '%%s', '100%%'", [1, "a"])
        assert cursor.fetchone() == (1, "a%s", "100%")


def test_a_statement_is_converted_once_then_found() -> None:
    statement = "SELECT %s + %s -- converted once"
    before = _qmark.cache_info()
    with connection.cursor() as cursor:
        for value in range(3):
            cursor.execute(statement, [value, 1])
            assert cursor.fetchone() == (value + 1,)
    after = _qmark.cache_info()
    assert after.misses == before.misses + 1
    assert after.hits == before.hits + 2


def test_named_parameters_and_executemany_work_as_in_django() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT %(a)s * %(b)s", {"a": 6, "b": 7})
        assert cursor.fetchone() == (42,)
        cursor.execute("CREATE TEMP TABLE placeholders_seen (n integer)")
        cursor.executemany("INSERT INTO placeholders_seen (n) VALUES (%s)", [[1], [2], [3]])
        cursor.execute("SELECT SUM(n) FROM placeholders_seen")
        assert cursor.fetchone() == (6,)

"""A transactional test's flush is run again when it loses a deadlock (tests/conftest.py).

In CI, PostgreSQL aborted the TRUNCATE of a flush that deadlocked with a worker's last commit, and
the next test started on the last one's rows. A real deadlock cannot be made to pick the TRUNCATE
as its loser on demand, so here the database answers the flush's first TRUNCATE as it did then."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management.base import CommandError
from django.db import OperationalError, connection
from django.test import TransactionTestCase

from tests import conftest

pytestmark = pytest.mark.django_db(transaction=True)


class _Flush(TransactionTestCase):
    databases = {"default"}

    def runTest(self) -> None:
        pass


def _failing_once(monkeypatch: pytest.MonkeyPatch, error: Exception) -> list[int]:
    """The next flush's statements fail once with ``error``, then run; returns the attempts seen."""
    flush = connection.ops.execute_sql_flush
    attempts: list[int] = []

    def execute_sql_flush(sql_list: list[str]) -> None:
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise error
        flush(sql_list)

    monkeypatch.setattr(connection.ops, "execute_sql_flush", execute_sql_flush)
    return attempts


def test_a_flush_that_loses_a_deadlock_is_run_again_and_empties_the_database(
    alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = _failing_once(monkeypatch, OperationalError("deadlock detected"))
    before = conftest.flushes_run_again

    _Flush()._fixture_teardown()  # type: ignore[attr-defined]

    assert attempts == [1, 2] and conftest.flushes_run_again == before + 1
    assert not type(alice).objects.exists()


def test_a_flush_that_fails_otherwise_fails_the_test(alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = _failing_once(monkeypatch, OperationalError("relation does not exist"))

    with pytest.raises(CommandError):
        _Flush()._fixture_teardown()  # type: ignore[attr-defined]
    assert attempts == [1]

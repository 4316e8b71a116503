"""Fixtures shared by every test: real Redis, a real simulator, personas, live servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from tests.support import ManagedProcess, start_simulator, start_web

FLUSH_ATTEMPTS = 3
flushes_run_again = 0  # how many times a flush lost a deadlock and was run again (its test reads it)


def pytest_configure(config: pytest.Config) -> None:
    _flush_retried_after_a_deadlock()


def _flush_retried_after_a_deadlock() -> None:
    """A transactional test's database is emptied with one TRUNCATE while a worker or web process
    it started may still be committing (in CI: an agent job's last commit, its foreign keys checked
    at commit, as the flush began). On PostgreSQL the two can deadlock and one is aborted; when that
    is the TRUNCATE, the next test starts on the last one's rows. The other has committed by then,
    so the flush is run again, as a deadlock's loser should be (tests/test_database_flush.py)."""
    from django.core.management.base import CommandError
    from django.db import OperationalError
    from django.test import TransactionTestCase

    flush = TransactionTestCase._fixture_teardown  # type: ignore[attr-defined]  # private in the stubs

    def teardown(self: TransactionTestCase) -> None:
        for attempt in range(1, FLUSH_ATTEMPTS + 1):
            try:
                flush(self)
                return
            except CommandError as error:
                deadlock = isinstance(error.__cause__, OperationalError) and "deadlock" in str(error.__cause__)
                if not deadlock or attempt == FLUSH_ATTEMPTS:
                    raise
                global flushes_run_again
                flushes_run_again += 1

    TransactionTestCase._fixture_teardown = teardown  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """pytest-django's, then no PostgreSQL connection pool left from before the test database.

    Django keeps one pool per database alias, made with the settings of the moment it is first
    asked for, and creating the test database renames the database without closing it (only cloning
    and destroying the test database do). With two test processes (CI's PostgreSQL pass), one
    process's first database test came after tests that had made its pool: that process then ran
    its tests, migrations included, on the database the settings named, while the web processes
    its tests started used its test database, which nothing had migrated."""
    from django.db import connections

    from orchestration.database import database_release

    if any(connection.vendor == "postgresql" for connection in connections.all()):
        database_release()


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    """Each test starts with an empty Redis database: no state leaks between tests."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    client.close()
    yield


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


class Simulator:
    """Handle on the simulator process: its URL and its control endpoint."""

    def __init__(self, process: ManagedProcess) -> None:
        self.process = process
        self.url = process.url
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def configure(self, upstream: str, **behaviour: Any) -> None:
        response = self.client.put(f"/_sim/models/{upstream}", json=behaviour)
        response.raise_for_status()

    def reset(self) -> None:
        self.client.delete("/_sim/models").raise_for_status()
        self.client.post("/_sim/stats/reset").raise_for_status()

    def stats(self, upstream: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = self.client.get("/_sim/stats").json()
        if upstream is None:
            return data
        return data["models"].get(upstream, {"requests": 0, "completed": 0, "disconnects": 0, "in_flight": 0})


@pytest.fixture(scope="session")
def _simulator_process() -> Iterator[ManagedProcess]:
    process = start_simulator()
    yield process
    process.stop()


@pytest.fixture
def simulator(_simulator_process: ManagedProcess) -> Iterator[Simulator]:
    """The running simulator, reset to its defaults for this test."""
    handle = Simulator(_simulator_process)
    handle.reset()
    yield handle
    handle.client.close()


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def mallory(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("mallory", "mallory@example.com", "mallory-password-1")


@pytest.fixture
def live_web(transactional_db: None, simulator: Simulator) -> Iterator[ManagedProcess]:
    """A daphne process on the test database, Redis and simulator; stopped after the test."""
    process = start_web(SWITCHYARD_SIMULATOR_URL=simulator.url)
    yield process
    process.stop()

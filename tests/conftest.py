"""Fixtures shared by every test: real Redis, a real simulator, personas, live servers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings

from tests.support import ManagedProcess, start_simulator, start_web


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

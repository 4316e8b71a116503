"""Fixtures for chat tests: a simulator-backed model, API keys, clients, live servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from orchestration.access.keys import api_key_create
from orchestration.models import Fallback, LanguageModel, Provider
from orchestration.registry import snapshot_invalidate
from tests.support import ManagedProcess, start_web

MODEL = "chat-sim"


def model_row(name: str, provider: Provider, **fields: Any) -> LanguageModel:
    """A public model served by the simulator under the same upstream name; no cache, so each reply streams."""
    fields = {"input_per_mtok": 1, "output_per_mtok": 2, "cache_exact_enabled": False, **fields}
    model = LanguageModel.objects.create(name=name, provider=provider, upstream=name, **fields)
    snapshot_invalidate()
    return model


def fallback_add(model: LanguageModel, target: LanguageModel) -> None:
    Fallback.objects.create(model=model, target=target, position=model.fallbacks.count())
    snapshot_invalidate()


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """The registry snapshot lives in process memory; a flushed database does not reach it."""
    snapshot_invalidate()
    yield
    snapshot_invalidate()


@pytest.fixture
def chat_model(transactional_db: None, simulator: Any) -> LanguageModel:
    """A model served by the simulator, its upstream name ``chat-sim``; no cache, so each reply streams."""
    provider = Provider.objects.create(
        name="sim", kind=Provider.Kind.SIMULATOR, base_url=simulator.url + "/v1", max_retries=0
    )
    return model_row(MODEL, provider, capabilities=["chat"])


@pytest.fixture
def alice_key(alice: Any, chat_model: LanguageModel) -> str:
    _, secret = api_key_create(user=alice, name="tests")
    return secret


@pytest.fixture
def bob_key(bob: Any, chat_model: LanguageModel) -> str:
    _, secret = api_key_create(user=bob, name="tests")
    return secret


@pytest.fixture
def web_env(simulator: Any) -> dict[str, str]:
    """Environment of the server processes a test starts; tests add to it before starting them."""
    return {"SWITCHYARD_SIMULATOR_URL": simulator.url}


WebFactory = Callable[..., ManagedProcess]


@pytest.fixture
def web(transactional_db: None, web_env: dict[str, str]) -> Iterator[WebFactory]:
    """``web(**env)`` starts a daphne process on the test database and Redis; all stop after the test."""
    started: list[ManagedProcess] = []

    def start(**env: str) -> ManagedProcess:
        process = start_web(**{**web_env, **env})
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def shared_web(
    django_db_setup: None, django_db_blocker: Any, _simulator_process: ManagedProcess
) -> Iterator[ManagedProcess]:
    """One server for the tests of a module that need nothing special of it (starting one costs seconds).

    Each test's rows are flushed after it; the server reads the database afresh on every request.
    """
    with django_db_blocker.unblock():
        process = start_web(SWITCHYARD_SIMULATOR_URL=_simulator_process.url, SWITCHYARD_CHAT_GRACE_S="3")
    yield process
    process.stop()


def api(base_url: str, secret: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)

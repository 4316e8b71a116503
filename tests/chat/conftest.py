"""Fixtures for chat tests: a simulator-backed model, API keys, clients, live servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from orchestration.keys import api_key_create
from orchestration.models import LanguageModel
from orchestration.registry import snapshot_invalidate
from tests.orchestration.routes import model_row, provider_row
from tests.support import ManagedProcess, start_web

MODEL = "chat-sim"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """The registry snapshot lives in process memory; a flushed database does not reach it."""
    snapshot_invalidate()
    yield
    snapshot_invalidate()


@pytest.fixture
def chat_model(transactional_db: None, simulator: Any) -> LanguageModel:
    """A model served by the simulator, its upstream name ``chat-sim``; no cache, so each reply streams."""
    provider = provider_row("sim", simulator.url, max_retries=0)
    return model_row(MODEL, provider, cache_exact_enabled=False, capabilities=["chat"])


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


def api(base_url: str, secret: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)

"""Fixtures for the ``/v1`` API tests: simulator-backed models, keys, an authenticated client.

Test modules import the fixtures they use (``from tests.orchestration.gateway import ...``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient

from orchestration.access.keycache import key_cache_forget
from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from tests.orchestration.harness import model_row, provider_row

T = TypeVar("T")


@dataclass
class SimModels:
    chat: LanguageModel
    mini: LanguageModel
    embed: LanguageModel


def close_thread_connections() -> None:
    """Close the database connection of the thread ``sync_to_async`` runs code in (outside a
    request, one shared thread), so that no session outlives the test database."""
    asyncio.run(sync_to_async(connections.close_all)())


async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``asyncio.to_thread`` for database code: the worker thread closes its connection after."""

    def run() -> T:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return await asyncio.to_thread(run)


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    """The registry snapshot and key cache live in process memory; a flushed database does not reach them."""
    snapshot_invalidate()
    key_cache_forget()
    yield
    snapshot_invalidate()
    key_cache_forget()
    close_thread_connections()


@pytest.fixture
def sim_models(transactional_db: None, simulator: Any) -> Iterator[SimModels]:
    provider = provider_row("sim", simulator.url)
    yield SimModels(
        chat=model_row("gpt-sim", provider, capabilities=["chat", "tools"], cache_exact_enabled=False),
        mini=model_row("gpt-sim-mini", provider, cache_exact_enabled=False),
        embed=model_row("embed-sim", provider, capabilities=["embeddings"]),
    )
    # The request log is written by a background thread: let it finish while the database is open.
    requestlog_flush()


KeyFactory = Callable[..., str]


@pytest.fixture
def make_key(transactional_db: None, alice: Any) -> KeyFactory:
    """``make_key(**limits)`` -> a new secret of alice's (or ``user=``'s)."""

    def make(user: Any = None, **fields: Any) -> str:
        try:
            return api_key_create(user=user or alice, **fields)[1]
        finally:
            connections.close_all()  # tests call this from worker threads: leave no session behind

    return make


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def post_json(client: AsyncClient, path: str, body: Any, secret: str | None, **headers: str) -> Any:
    """The coroutine of a JSON POST (``body`` bytes are sent as they are)."""
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(
        path, data=data, content_type="application/json", headers={**(bearer(secret) if secret else {}), **headers}
    )


def chat_body(model: str = "gpt-sim", text: str = "Say hello.", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


def assert_error(response: Any, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert set(error) >= {"type", "code", "message", "request_id"}
    assert error["request_id"] == response["X-Request-ID"]
    if param is not None:
        assert error["param"] == param, error
    return error  # type: ignore[no-any-return]


def sse_events(content: bytes) -> list[Any]:
    """The ``data:`` payloads of an SSE body, JSON-decoded except ``[DONE]``."""
    events = []
    for block in content.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
        else:
            assert not block.strip(), block
    return events

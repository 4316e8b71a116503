"""Fixtures of the scale-out tests: one fleet (nginx, two web processes, two workers) for the
whole run, healed before each test, and the same registry rows in every test.

The web processes keep the registry in memory for a few seconds, so every test creates the
same providers and models under the same names: a snapshot taken in one test stays right in
the next.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestration.access.keycache import key_cache_forget
from orchestration.access.keys import api_key_create
from orchestration.models import Fallback, LanguageModel, Provider, RequestLog
from orchestration.registry import snapshot_invalidate
from tests.scale.fleet import Fleet
from tests.support import ManagedProcess, database_url_for_current_connection

CHAT_MODEL = "scale-chat"
AGENT_MODEL = "scale-agent"
CACHED_MODEL = "scale-cached"
PRIMARY_MODEL = "scale-primary"
BACKUP_MODEL = "scale-backup"
PRIMARY_PROVIDER = "sim-primary"

# A killed producer is noticed by relays within seconds, SIGTERM drains for seconds (not the
# production minute); dead workers' tasks come back within seconds.
WEB_ENV = {"SWITCHYARD_CHAT_PRODUCER_LOST_S": "2", "SWITCHYARD_CHAT_GRACE_S": "10", "SWITCHYARD_DRAIN_S": "5"}
WORKER_ENV = {
    "SWITCHYARD_AGENT_HEARTBEAT_S": "0.25",
    "SWITCHYARD_AGENT_STALE_S": "2.0",
    "SWITCHYARD_AGENT_REAP_INTERVAL_S": "0.5",
}


@pytest.fixture(scope="session")
def _fleet(
    django_db_setup: None, django_db_blocker: Any, _simulator_process: ManagedProcess, tmp_path_factory: Any
) -> Iterator[Fleet]:
    with django_db_blocker.unblock():
        database = database_url_for_current_connection()
    common = {"DATABASE_URL": database, "SWITCHYARD_SIMULATOR_URL": _simulator_process.url}
    fleet = Fleet(
        env={**common, **WEB_ENV},
        worker_env={**common, **WORKER_ENV},
        scratch=Path(tmp_path_factory.mktemp("scale")),
    )
    try:
        yield fleet.start()
    finally:
        fleet.stop()


@pytest.fixture
def fleet(_fleet: Fleet, registry: None) -> Iterator[Fleet]:
    """The running fleet, every member alive, on this test's database rows."""
    _fleet.heal()
    yield _fleet
    request_log_settled()
    _fleet.respawn()  # replacements boot while the next test is set up


def request_log_settled(*, steady_s: float = 0.6, timeout: float = 10.0) -> None:
    """Wait until the web processes' batched request-log writes are in: the database flush after
    a test takes every table's lock, and an insert racing it can deadlock with it."""
    deadline, last, steady_since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = RequestLog.objects.count()
        if count != last:
            last, steady_since = count, time.monotonic()
        elif time.monotonic() - steady_since >= steady_s:
            return
        time.sleep(0.1)


@pytest.fixture
def registry(transactional_db: None, simulator: Any) -> None:
    """Simulator-backed models: chat, agent (tools), cached, and a primary whose fallback is on another provider."""
    snapshot_invalidate()
    key_cache_forget()
    base_url = f"{simulator.url}/v1"
    sim = Provider.objects.create(name="sim", kind=Provider.Kind.SIMULATOR, base_url=base_url, max_retries=0)
    primary = Provider.objects.create(
        name=PRIMARY_PROVIDER, kind=Provider.Kind.SIMULATOR, base_url=base_url, max_retries=0, breaker_open_s=60
    )
    backup = Provider.objects.create(name="sim-backup", kind=Provider.Kind.SIMULATOR, base_url=base_url, max_retries=0)
    rows = {"input_per_mtok": 1, "output_per_mtok": 2, "cache_exact_enabled": False}
    LanguageModel.objects.create(name=CHAT_MODEL, provider=sim, upstream=CHAT_MODEL, capabilities=["chat"], **rows)
    LanguageModel.objects.create(
        name=AGENT_MODEL, provider=sim, upstream=AGENT_MODEL, capabilities=["chat", "tools"], **rows
    )
    LanguageModel.objects.create(
        name=CACHED_MODEL, provider=sim, upstream=CACHED_MODEL, **{**rows, "cache_exact_enabled": True}
    )
    first = LanguageModel.objects.create(name=PRIMARY_MODEL, provider=primary, upstream=PRIMARY_MODEL, **rows)
    second = LanguageModel.objects.create(name=BACKUP_MODEL, provider=backup, upstream=BACKUP_MODEL, **rows)
    Fallback.objects.create(model=first, target=second, position=0)
    snapshot_invalidate()


@pytest.fixture
def alice_key(registry: None, alice: Any) -> str:
    return api_key_create(user=alice, name="scale")[1]


def api(base_url: str, secret: str, timeout: float = 30.0) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=timeout)

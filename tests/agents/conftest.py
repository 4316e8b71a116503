"""Fixtures for the agents tests: a simulator-backed model that takes tools, keys, workers."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

import pytest
from django.apps import apps
from rest_framework.test import APIClient
from rq import Worker

from agents.models import Task
from agents.services import agents_queue
from orchestration.access.keycache import key_cache_forget
from orchestration.access.keys import api_key_create
from orchestration.models import LanguageModel, Provider
from orchestration.registry import snapshot_invalidate
from orchestration.requestlog import requestlog_flush
from tests.support import ManagedProcess, start_worker

MODEL = "agent-sim"
# Recovery in seconds instead of a minute: beat often, count as dead soon, look often.
# (Stale after 2 s, not less: on a loaded machine a live worker's beat can lag a second.)
FAST_RECOVERY = {
    "SWITCHYARD_AGENT_HEARTBEAT_S": "0.25",
    "SWITCHYARD_AGENT_STALE_S": "2.0",
    "SWITCHYARD_AGENT_REAP_INTERVAL_S": "0.5",
}


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    """The registry snapshot and key cache live in process memory; a flushed database does not reach them."""
    snapshot_invalidate()
    key_cache_forget()
    yield
    snapshot_invalidate()
    key_cache_forget()


@pytest.fixture
def agent_model(transactional_db: None, simulator: Any) -> Iterator[LanguageModel]:
    """``agent-sim``: served by the simulator under the upstream name ``agent-sim`` (configure that).

    Afterwards, this process's queued request-log rows are written while the database is still there."""
    provider = Provider.objects.create(
        name="sim", kind=Provider.Kind.SIMULATOR, base_url=f"{simulator.url}/v1", max_retries=0
    )
    model = LanguageModel.objects.create(
        name=MODEL, provider=provider, upstream=MODEL, capabilities=["chat", "tools"], cache_exact_enabled=False
    )
    snapshot_invalidate()
    yield model
    requestlog_flush()


@pytest.fixture
def knowledge_base(transactional_db: None) -> None:
    """The seeded articles (a flushed test database has lost what the migration wrote)."""
    import_module("agents.migrations.0002_seed_knowledge_articles").seed(apps, None)


@pytest.fixture
def alice_key(transactional_db: None, alice: Any) -> str:
    return api_key_create(user=alice, name="tests")[1]


@pytest.fixture
def bob_key(transactional_db: None, bob: Any) -> str:
    return api_key_create(user=bob, name="tests")[1]


def client_for(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def alice_api(alice_key: str) -> APIClient:
    return client_for(alice_key)


@pytest.fixture
def bob_api(bob_key: str) -> APIClient:
    return client_for(bob_key)


@pytest.fixture(scope="module")
def _module_worker(django_db_setup: None, _simulator_process: ManagedProcess) -> Iterator[ManagedProcess]:
    process = start_worker("agents", **FAST_RECOVERY)
    yield process
    process.stop()


@pytest.fixture
def worker(_module_worker: ManagedProcess, transactional_db: None, simulator: Any) -> Iterator[ManagedProcess]:
    """The test module's one RQ worker (starting a worker per test costs seconds). Do not mix
    with ``workers``: a second worker could take the task meant for this one."""
    if _module_worker.process is not None and _module_worker.process.poll() is not None:
        raise RuntimeError(f"the module's worker exited:\n{_module_worker.log_text()[-2000:]}")
    yield _module_worker
    wait_for_idle_workers()


def wait_for_idle_workers(queue: Any = None, timeout: float = 15.0) -> None:
    """Let running jobs end (a job still writes its request log after the task finished) before
    the database is emptied under them; a job that outlives ``timeout`` is left to its fate.

    Only living workers count: a worker a test killed stays registered as busy (and its job as
    started) until its registration expires, and nothing will end that job here."""
    queue = queue if queue is not None else agents_queue()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        living = [worker for worker in Worker.all(queue=queue) if worker.pid and _process_alive(worker.pid)]
        if not any(worker.get_state() == "busy" for worker in living) and not (queue.count and living):
            return
        time.sleep(0.05)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed child that its parent has not reaped yet is a zombie: dead for our purpose.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


WorkerFactory = Callable[..., ManagedProcess]


@pytest.fixture
def workers(transactional_db: None, simulator: Any) -> Iterator[WorkerFactory]:
    """``workers(**env)`` starts an RQ worker process on the ``agents`` queue; all stop after the test."""
    started: list[ManagedProcess] = []

    def start(**env: str) -> ManagedProcess:
        process = start_worker("agents", **{**FAST_RECOVERY, **env})
        started.append(process)
        return process

    yield start
    wait_for_idle_workers()
    for process in started:
        process.stop()


def wait_until(condition: Callable[[], Any], *, timeout: float = 20.0, what: str = "the condition") -> Any:
    """Poll ``condition`` until it returns something truthy (real processes run meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_status(task_id: Any, *statuses: str, timeout: float = 20.0) -> Task:
    def reached() -> Task | None:
        task = Task.objects.get(pk=task_id)
        return task if task.status in statuses else None

    return wait_until(reached, timeout=timeout, what=f"task {task_id} to be {' or '.join(statuses)}")


def script(*turns: dict[str, Any]) -> list[dict[str, Any]]:
    return list(turns)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}

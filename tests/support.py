"""Real processes for tests: the simulator, web servers and RQ workers, on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url_for_current_connection() -> str:
    """A DATABASE_URL naming the database this test process uses (the test database)."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env


def wait_http(url: str, *, timeout: float = 30.0, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


@dataclass
class ManagedProcess:
    """A child process started for a test; ``stop`` sends SIGTERM, then SIGKILL."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[Any] | None = None
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    cwd: Path = ROOT  # another checkout serves its own code (``python -m`` imports from here)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.process = subprocess.Popen(
            self.args, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def log_path(name: str) -> Path:
    return ROOT / "var" / "test-logs" / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"


def start_simulator() -> ManagedProcess:
    port = free_port()
    proc = ManagedProcess(
        [sys.executable, "manage.py", "simulator", "--port", str(port)], child_env(), log_path("simulator")
    ).start()
    proc.url = f"http://127.0.0.1:{port}"
    wait_http(f"{proc.url}/_sim/health", process=proc.process)
    return proc


def start_web(**env: str) -> ManagedProcess:
    """A daphne process serving the project against the test database."""
    port = free_port()
    if os.environ.get("SWITCHYARD_TEST_SERVER") == "uvicorn":
        argv = [sys.executable, "-m", "uvicorn", "--port", str(port), "--no-access-log", "project.asgi:application"]
    else:
        argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"]
    proc = ManagedProcess(
        argv,
        child_env(DATABASE_URL=database_url_for_current_connection(), **env),
        log_path("web"),
    ).start()
    proc.url = f"http://127.0.0.1:{port}"
    wait_http(f"{proc.url}/healthz", process=proc.process)
    return proc


def start_worker(*queues: str, **env: str) -> ManagedProcess:
    return ManagedProcess(
        [sys.executable, "manage.py", "rqworker", *(queues or ("agents", "default"))],
        child_env(DATABASE_URL=database_url_for_current_connection(), **env),
        log_path("worker"),
    ).start()

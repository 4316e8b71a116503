"""``manage.py serve`` as a real process: every child starts, a crashed one comes back, SIGTERM
leaves nothing behind. It runs on its own SQLite database, var directory and embedded Valkey."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support import ROOT, child_env, free_port, log_path

pytestmark = pytest.mark.live


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    url: str
    var_dir: Path
    log: Path
    seen: list[psutil.Process] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        found = psutil.Process(self.process.pid).children(recursive=True)
        self.seen += found
        return found

    def named(self, fragment: str) -> list[psutil.Process]:
        return [child for child in self.children() if fragment in " ".join(_cmdline(child))]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def _env(var_dir: Path, **extra: str) -> dict[str, str]:
    env = child_env(
        DATABASE_URL=f"sqlite:///{var_dir / 'serve.sqlite3'}",
        SWITCHYARD_VAR_DIR=str(var_dir),
        SWITCHYARD_SIMULATOR_URL=f"http://127.0.0.1:{free_port()}",
        **extra,
    )
    # The embedded Valkey must start, and the test run's own metrics directory stays untouched.
    for name in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR", "SWITCHYARD_CONFIG"):
        if name not in extra:
            env.pop(name, None)
    return env


def _wait_until(condition, *, timeout: float, what: str, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise AssertionError(f"serve exited with {stack.process.returncode}:\n{stack.output()[-3000:]}")
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s:\n{stack.output()[-3000:]}")


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def migrated() -> Iterator[Path]:
    """A var directory, short so the unix socket path stays far below its length limit, whose
    SQLite database is migrated."""
    var_dir = Path(tempfile.mkdtemp(prefix="sy-serve-"))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=_env(var_dir), check=True
    )
    yield var_dir
    shutil.rmtree(var_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(migrated: Path) -> Iterator[Stack]:
    var_dir = migrated
    env = _env(var_dir, SWITCHYARD_CONFIG=str(ROOT / "orchestration" / "config" / "demo.toml"))
    port = free_port()
    log = log_path("serve")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port), "--workers", "2"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Stack(process, f"http://127.0.0.1:{port}", var_dir, log)
    try:
        _wait_until(lambda: "Press Ctrl-C to stop." in running.output(), timeout=90, what="no banner", stack=running)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for leftover in running.seen:
            try:
                leftover.kill()
            except psutil.Error:
                pass


def test_serve_runs_valkey_simulator_workers_and_web_and_is_ready(stack):
    assert _ready(stack.url)
    assert len(stack.named("valkey-server")) == 1
    assert len(stack.named("simulator")) == 1
    assert len(stack.named("rqworker")) == 2
    daphne = stack.named("daphne")
    assert len(daphne) == 1
    command = _cmdline(daphne[0])
    assert command[command.index("--ping-interval") + 1] == "20"
    assert command[command.index("--ping-timeout") + 1] == "30"
    assert int(command[command.index("--http-timeout") + 1]) > 300
    assert (stack.var_dir / "valkey.sock").exists()


def test_serve_loads_the_config_file_named_by_switchyard_config(stack):
    assert "config: loaded " in stack.output()
    with sqlite3.connect(stack.var_dir / "serve.sqlite3") as db:
        names = {name for (name,) in db.execute("SELECT name FROM orchestration_languagemodel")}
    assert "sim-small" in names


def test_the_banner_names_the_urls_and_the_first_admin_password_is_stored_hashed(stack):
    output = stack.output()
    for path in ("/admin/", "/api/docs/", "/metrics"):
        assert f"{stack.url}{path}" in output
    password = output.split("Password    ", 1)[1].split()[0]
    with sqlite3.connect(stack.var_dir / "serve.sqlite3") as db:
        (stored,) = db.execute("SELECT password FROM auth_user WHERE username = 'admin' AND is_superuser").fetchone()
    assert password not in stored
    assert stored.startswith("pbkdf2_") or stored.startswith("argon2")
    response = httpx.get(f"{stack.url}/admin/login/", timeout=5)
    assert response.status_code == 200
    assert "Switchyard" in response.text


def test_a_worker_that_dies_is_restarted(stack):
    before = {worker.pid for worker in stack.named("rqworker")}
    victim = psutil.Process(min(before))
    victim.kill()

    def replaced() -> bool:
        now = {worker.pid for worker in stack.named("rqworker")}
        return len(now) == 2 and victim.pid not in now

    _wait_until(replaced, timeout=30, what="the killed worker was not restarted", stack=stack)
    assert "restarting in" in stack.output()
    assert _ready(stack.url)


def _manage(stack: Stack, *args: str) -> str:
    env = _env(stack.var_dir, REDIS_URL=f"unix://{stack.var_dir / 'valkey.sock'}")
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def _logged_spend(stack: Stack, key_prefix: str, usd: str) -> None:
    code = (
        "from django.utils import timezone; from orchestration.models import ApiKey, RequestLog;"
        f"key = ApiKey.objects.get(prefix={key_prefix!r});"
        "RequestLog.objects.filter(api_key=key).delete();"
        f"{usd!r} and RequestLog.objects.create(request_id='earlier', api_key=key, user=key.user,"
        f" endpoint='completion', model_requested='sim-small', cost_usd={usd!r}, created_at=timezone.now())"
    )
    _manage(stack, "shell", "-c", code)


def test_a_key_over_budget_stays_refused_after_valkey_is_killed_and_restarted(stack):
    secret = _manage(stack, "createapikey", "--user", "admin", "--budget", "0.001")
    prefix = secret[:11]
    _logged_spend(stack, prefix, "0.001")
    body = {"model": "sim-small", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    call = lambda: httpx.post(  # noqa: E731
        f"{stack.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    refused = call()
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
    # From now on only Valkey knows the spend: the request log no longer has it.
    _logged_spend(stack, prefix, "")
    time.sleep(1.5)  # the append-only file is synced every second
    (valkey,) = stack.named("valkey-server")
    valkey.kill()
    _wait_until(
        lambda: [p.pid for p in stack.named("valkey-server")] not in ([], [valkey.pid]) and _ready(stack.url),
        timeout=30,
        what="Valkey was not restarted",
        stack=stack,
    )
    again = call()
    assert again.status_code == 429 and again.json()["error"]["code"] == "budget_exceeded", again.text


def test_sigterm_stops_serve_and_every_process_it_started(stack):
    children = stack.children()
    groups = {os.getpgid(child.pid) for child in children}
    assert len(children) >= 5

    stack.process.send_signal(signal.SIGTERM)
    code = stack.process.wait(timeout=60)

    assert code == 0, stack.output()[-3000:]
    survivors = [child for child in stack.seen if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert survivors == []
    for group in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)
    assert not (stack.var_dir / "valkey.sock").exists()


def _serve_refused(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "serve", "--port", str(free_port()), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def var_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sy-serve-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_serve_refuses_an_unmigrated_database_and_starts_nothing(var_dir):
    result = _serve_refused(_env(var_dir))

    assert result.returncode == 1
    assert "unapplied migrations: run `python manage.py migrate` first" in result.stderr
    assert not (var_dir / "valkey.sock").exists()


def test_serve_refuses_a_bad_config_file_naming_file_line_and_key(migrated, var_dir):
    bad = var_dir / "bad.toml"
    bad.write_text('[providers.p]\nkind = "openai"\ntimeout_s = -1\n')
    env = _env(migrated, SWITCHYARD_CONFIG=str(bad))

    result = _serve_refused(env)

    assert result.returncode == 1
    assert f"SWITCHYARD_CONFIG: nothing was loaded:\n{bad}:3: providers.p.timeout_s: must be greater than 0" in (
        result.stderr
    )
    assert "Switchyard is running" not in result.stdout


def test_serve_refuses_a_port_in_use(migrated):
    env = _env(migrated)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = subprocess.run(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr

"""What ``manage.py serve`` runs: the Switchyard stack as child processes, and its first-run admin.

Start order (each tier waits for the one before to answer): the embedded Valkey, the provider
simulator, the RQ workers, the ASGI server. Every child gets ``REDIS_URL`` and
``SWITCHYARD_SIMULATOR_URL`` explicitly, so all of them talk to the same services.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model

from project.supervisor import ChildSpec
from project.valkey import valkey_answers, valkey_command

ADMIN_USERNAME = "admin"
WORKER_QUEUES = ("agents", "default")
WEBSOCKET_PING_INTERVAL_S = 20
WEBSOCKET_PING_TIMEOUT_S = 30
LISTEN_BACKLOG = 2048


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    simulator: bool = True


def simulator_address() -> tuple[str, int]:
    """Host and port of ``SWITCHYARD_SIMULATOR_URL``: where serve starts the simulator."""
    url = urlparse(str(settings.SWITCHYARD["SIMULATOR_URL"]))
    return url.hostname or "127.0.0.1", url.port or 80


def local_host(host: str) -> str:
    """The address to reach a server bound to ``host`` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def url_host(host: str) -> str:
    host = local_host(host)
    return f"[{host}]" if ":" in host else host


def web_url(options: StackOptions) -> str:
    return f"http://{url_host(options.host)}:{options.port}"


def http_timeout_s() -> int:
    """Daphne's limit on one HTTP response: longer than the longest deadline the app enforces."""
    switchyard: dict[str, Any] = settings.SWITCHYARD
    limits = {
        name: float(switchyard[name])
        for name in (
            "DEADLINE_COMPLETION_S",
            "DEADLINE_CHAT_S",
            "CHAT_GRACE_S",
            "DEADLINE_AGENT_S",
            "DEADLINE_CEILING_S",
        )
    }
    longest = max(
        limits["DEADLINE_COMPLETION_S"],
        limits["DEADLINE_CEILING_S"],
        limits["DEADLINE_CHAT_S"] + limits["CHAT_GRACE_S"],
        limits["DEADLINE_AGENT_S"],
    )
    return int(longest) + 60


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the servers themselves do, so that connections in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def http_answers(url: str, *, status: int = 200, headers: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, timeout=1.0, headers=headers).status_code == status
    except httpx.HTTPError:
        return False


def probe_headers() -> dict[str, str]:
    """Headers that let the readiness probe through Django's host and HTTPS checks.

    The probe reaches daphne on a local address, which production's ALLOWED_HOSTS may not list,
    and over plain HTTP, which SECURE_SSL_REDIRECT would answer with a redirect behind a proxy.
    """
    headers = {"X-Forwarded-Proto": "https"}
    hosts = [host for host in settings.ALLOWED_HOSTS if host != "*"]
    local = {"127.0.0.1", "localhost", "[::1]"}
    if hosts and len(hosts) == len(settings.ALLOWED_HOSTS) and not local & set(hosts):
        headers["Host"] = hosts[0].lstrip(".")
    return headers


def stack_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REDIS_URL=settings.REDIS_URL,
        SWITCHYARD_SIMULATOR_URL=str(settings.SWITCHYARD["SIMULATOR_URL"]),
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "project.settings"),
    )
    return env


def stack_specs(options: StackOptions) -> list[ChildSpec]:
    env, cwd = stack_env(), str(settings.BASE_DIR)
    manage = (sys.executable, str(settings.BASE_DIR / "manage.py"))
    specs: list[ChildSpec] = []
    if settings.REDIS_EMBEDDED:
        socket_path = settings.REDIS_SOCKET
        command = valkey_command(socket_path=socket_path, data_dir=settings.VAR_DIR / "valkey")
        specs.append(ChildSpec("valkey", command, env, cwd, ready=lambda: valkey_answers(socket_path), tier=0))
    if options.simulator:
        host, port = simulator_address()
        health = f"http://{url_host(host)}:{port}/_sim/health"
        specs.append(
            ChildSpec(
                "simulator",
                (*manage, "simulator", "--port", str(port)),
                env,
                cwd,
                ready=lambda: http_answers(health),
                stop_timeout_s=5,
                tier=1,
            )
        )
    for number in range(1, options.workers + 1):
        specs.append(ChildSpec(f"worker-{number}", (*manage, "rqworker", *WORKER_QUEUES), env, cwd, tier=2))
    specs.append(_web_spec(options, env, cwd))
    return specs


def daphne_command(host: str, port: int) -> tuple[str, ...]:
    """The web process exactly as ``serve`` runs it (benchmarks start the same command).

    The listen backlog is raised from Twisted's 50: a burst of simultaneous connections beyond
    the backlog has its SYNs dropped, and each dropped client waits a whole second to retry.
    """
    interface = host.strip("[]").replace(":", r"\:")
    return (
        sys.executable,
        "-m",
        "daphne",
        "-e",
        f"tcp:port={port}:interface={interface}:backlog={LISTEN_BACKLOG}",
        "--ping-interval",
        str(WEBSOCKET_PING_INTERVAL_S),
        "--ping-timeout",
        str(WEBSOCKET_PING_TIMEOUT_S),
        "--http-timeout",
        str(http_timeout_s()),
        "project.asgi:application",
    )


def _web_spec(options: StackOptions, env: dict[str, str], cwd: str) -> ChildSpec:
    command = daphne_command(options.host, options.port)
    readyz, headers = f"{web_url(options)}/readyz", probe_headers()
    return ChildSpec("web", command, env, cwd, ready=lambda: http_answers(readyz, headers=headers), tier=3)


def admin_user_ensure() -> str | None:
    """Create the local admin on first run; return its password then, and None ever after.

    Only the password's hash is stored, so this is the one moment it can be shown.
    """
    users = get_user_model()
    if users.objects.filter(is_superuser=True).exists() or users.objects.filter(username=ADMIN_USERNAME).exists():
        return None
    password = secrets.token_urlsafe(12)
    users.objects.create_superuser(username=ADMIN_USERNAME, email="", password=password)
    return password

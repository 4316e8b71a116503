"""The scale-out topology on one machine: Debian's nginx in front of two daphne processes and
two RQ workers, all on one PostgreSQL and one Redis.

nginx runs the project's own ``deploy/nginx/switchyard.conf`` with only the upstream servers and
the listen address swapped for local ones; its pid, logs and temp files live in a scratch
directory, so it runs as any user. The web processes run the image's command (the Dockerfile's
``CMD``), bound to local ports.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import ROOT, ManagedProcess, child_env, free_port, log_path, wait_http

NGINX_SITE = ROOT / "deploy" / "nginx" / "switchyard.conf"
UPSTREAM_BLOCK = re.compile(r"^upstream switchyard \{\n(?P<body>.*?)^\}", re.MULTILINE | re.DOTALL)
LISTEN = re.compile(r"^(\s*)listen 80;$", re.MULTILINE)


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        raise RuntimeError("nginx is not installed (apt-get install nginx-light)")
    return found


def nginx_site(upstreams: list[str], port: int) -> str:
    """The project's site config, with ``upstreams`` (host:port) behind ``127.0.0.1:port``."""
    text = NGINX_SITE.read_text()
    block = UPSTREAM_BLOCK.search(text)
    if block is None or len(LISTEN.findall(text)) != 1:
        raise RuntimeError(f"{NGINX_SITE} no longer has one 'upstream switchyard' block and one 'listen 80;'")
    kept = [line for line in block["body"].splitlines() if not line.strip().startswith("server ")]
    servers = [f"    server {address} max_fails=3 fail_timeout=10s;" for address in upstreams]
    body = "\n".join([*kept, *servers]) + "\n"
    text = text[: block.start("body")] + body + text[block.end("body") :]
    return LISTEN.sub(rf"\g<1>listen 127.0.0.1:{port};", text)


def nginx_conf(site: str, scratch: Path) -> str:
    """A whole nginx.conf around ``site`` whose every path is under ``scratch``."""
    # Run as root, nginx would hand its workers to "nobody", who cannot enter a private scratch dir.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {scratch / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {scratch / 'nginx.pid'};\n"
        f"error_log {scratch / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        "http {\n    access_log off;\n"
        f"{temp}\n{site}\n}}\n"
    )


@dataclass
class Nginx:
    process: ManagedProcess
    port: int
    scratch: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.scratch / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        self.process.stop()


def start_nginx(upstreams: list[str], scratch: Path) -> Nginx:
    scratch.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = scratch / "nginx.conf"
    conf.write_text(nginx_conf(nginx_site(upstreams, port), scratch))
    args = [nginx_binary(), "-p", str(scratch), "-c", str(conf), "-e", str(scratch / "error.log")]
    checked = subprocess.run([*args, "-t", "-q"], capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"nginx refused the rendered config:\n{checked.stderr}")
    process = ManagedProcess(args, child_env(), log_path("nginx")).start()
    nginx = Nginx(process, port, scratch)
    wait_until_listening(port, process)
    return nginx


def wait_until_listening(port: int, process: ManagedProcess, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process is not None and process.process.poll() is not None:
            raise RuntimeError(f"nginx exited: {process.log_text()}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"nginx did not listen on {port}")


def image_web_command() -> list[str]:
    """The Dockerfile's ``CMD`` (daphne and its timeouts), as a list."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    found = re.search(r"^CMD (\[.*?\])\s*$", dockerfile, re.MULTILINE | re.DOTALL)
    if found is None:
        raise RuntimeError("the Dockerfile has no JSON-form CMD")
    command: list[str] = json.loads(found[1].replace("\\\n", ""))
    return command


def web_command(port: int) -> list[str]:
    """The image's web command, run by this interpreter and bound to a local port."""
    command = image_web_command()
    if command[0] != "daphne":
        raise RuntimeError(f"the image's command is not daphne: {command}")
    args = [sys.executable, "-m", "daphne", *command[1:]]
    args[args.index("-b") + 1] = "127.0.0.1"
    args[args.index("-p") + 1] = str(port)
    return args


@dataclass
class Fleet:
    """Two web processes, two workers and nginx; ``env`` is what every one of them gets."""

    env: dict[str, str]
    worker_env: dict[str, str]
    scratch: Path
    web_ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    webs: list[ManagedProcess] = field(default_factory=list)
    workers: list[ManagedProcess] = field(default_factory=list)
    nginx: Nginx | None = None

    @property
    def upstreams(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.web_ports]

    @property
    def proxy(self) -> str:
        assert self.nginx is not None
        return self.nginx.url

    def web_process(self, index: int, **env: str) -> ManagedProcess:
        args = web_command(self.web_ports[index])
        process = ManagedProcess(args, child_env(**{**self.env, **env}), log_path(f"scale-web{index + 1}"))
        process.url = f"http://127.0.0.1:{self.web_ports[index]}"
        return process.start()

    def worker_process(self, index: int) -> ManagedProcess:
        args = [sys.executable, "manage.py", "rqworker", "agents", "default"]
        return ManagedProcess(args, child_env(**self.worker_env), log_path(f"scale-worker{index + 1}")).start()

    def start(self) -> Fleet:
        self.webs = [self.web_process(0), self.web_process(1)]
        self.workers = [self.worker_process(0), self.worker_process(1)]
        self.nginx = start_nginx(self.upstreams, self.scratch / "nginx")
        for web in self.webs:
            wait_http(f"{web.url}/healthz", process=web.process, timeout=60)
        return self

    def restart_web(self, index: int, **env: str) -> ManagedProcess:
        """A fresh web process on the same port (nginx's upstream), with ``env`` added."""
        self.webs[index].stop()
        web = self.webs[index] = self.web_process(index, **env)
        wait_http(f"{web.url}/healthz", process=web.process, timeout=60)
        return web

    def respawn(self) -> None:
        """Start a replacement for whatever a test killed or stopped, without waiting for it."""
        for index, web in enumerate(self.webs):
            if not alive(web):
                self.webs[index] = self.web_process(index)
        for index, worker in enumerate(self.workers):
            if not alive(worker):
                self.workers[index] = self.worker_process(index)
        if self.nginx is not None and not alive(self.nginx.process):
            self.nginx = start_nginx(self.upstreams, self.scratch / "nginx")

    def heal(self) -> None:
        """Every member alive and answering (a replacement that failed to start is started again)."""
        self.respawn()
        for index, web in enumerate(self.webs):
            try:
                wait_http(f"{web.url}/healthz", process=web.process, timeout=60)
            except RuntimeError:
                self.restart_web(index)

    def stop(self) -> None:
        members = [*self.workers, *self.webs, *([self.nginx.process] if self.nginx else [])]
        for process in members:  # all at once: each may take seconds to wind down
            if alive(process):
                assert process.process is not None
                process.process.send_signal(signal.SIGTERM)
        for process in members:
            process.stop()


def alive(process: ManagedProcess) -> bool:
    return process.process is not None and process.process.poll() is None

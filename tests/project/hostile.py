"""Clients that misbehave on purpose, over raw sockets: what the hostile-client tests and the
``hostile`` benchmark send to a live server."""

from __future__ import annotations

import json
import socket
import statistics
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


def address_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the response on ``sock`` (``Content-Length`` bodies)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def oversized_upload(url: str, *, secret: str | None, declared: int) -> tuple[float, int, dict[str, Any]]:
    """Declare a body of ``declared`` bytes, send none of it, and time the answer."""
    headers = {"Content-Type": "application/json", "Content-Length": str(declared)}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    with socket.create_connection(address_of(url)) as sock:
        started = time.monotonic()
        sock.sendall(request_head("POST", "/v1/chat/completions", headers))
        status, _, body = read_response(sock)
        return time.monotonic() - started, status, json.loads(body)


def oversized_chunked_upload(url: str, *, secret: str | None, total: int) -> tuple[int, dict[str, Any]]:
    """Send a chunked body of ``total`` bytes (as far as the server lets it) and read the answer."""
    headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    chunk = b"x" * 65536
    with socket.create_connection(address_of(url)) as sock:
        sock.sendall(request_head("POST", "/v1/chat/completions", headers))
        sent = 0
        try:
            while sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:
            pass  # the server answered and closed before the body ended
        status, _, body = read_response(sock)
        return status, json.loads(body)


@dataclass
class StalledReaders:
    """``count`` clients that each start a stream and then never read a byte of it."""

    url: str
    secret: str
    model: str
    count: int = 10
    max_tokens: int = 100_000
    sockets: list[socket.socket] = field(default_factory=list)

    def start(self) -> None:
        body = json.dumps(
            {
                "model": self.model,
                "stream": True,
                "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": "Write for as long as you may."}],
            }
        ).encode()
        headers = {
            "Authorization": f"Bearer {self.secret}",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        for _ in range(self.count):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that barely reads at all
            sock.connect(address_of(self.url))
            sock.sendall(request_head("POST", "/v1/chat/completions", headers) + body)
            self.sockets.append(sock)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@dataclass
class LatencyProbe:
    """Calls ``path`` every ``every_s`` in a thread until stopped; keeps each call's latency."""

    url: str
    secret: str
    path: str = "/v1/models"
    every_s: float = 0.05
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.secret}"}, timeout=10) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    ok = http.get(self.path).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies_ms.append((time.monotonic() - started) * 1000)
                self.errors += not ok
                self._stop.wait(self.every_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0


@dataclass
class LeavingClients:
    """``count`` clients that each post a stream, then reset the connection (no FIN: an RST, as
    a killed process or a proxy that gives up sends): the even ones at once, the odd ones after
    reading the first ``read_bytes`` of the answer. All connect together, as in a burst."""

    url: str
    secret: str
    model: str
    count: int = 300
    read_bytes: int = 100

    def run(self) -> None:
        body = json.dumps(
            {"model": self.model, "stream": True, "messages": [{"role": "user", "content": "Write a long story."}]}
        ).encode()
        headers = {
            "Authorization": f"Bearer {self.secret}",
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
        }
        request = request_head("POST", "/v1/chat/completions", headers) + body
        clients = [threading.Thread(target=self._leave, args=(request, index % 2 == 1)) for index in range(self.count)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=30)

    def _leave(self, request: bytes, reads: bool) -> None:
        with socket.create_connection(address_of(self.url), timeout=30) as sock:
            sock.sendall(request)
            received = 0
            while reads and received < self.read_bytes:
                chunk = sock.recv(self.read_bytes - received)
                if not chunk:
                    break
                received += len(chunk)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with an RST

"""Slow headers (slowloris) against the shipped nginx configuration: connections whose headers
never finish are closed by nginx's ``client_header_timeout`` (10 s), before they reach the app.

Daphne itself has no timeout for incomplete headers (Twisted drops a connection only after 60 s
in which it sent nothing, and daphne offers no option for it): the same connections made straight
to a web process are still open when nginx has long closed its own. That is measured here too, so
the documentation's claim that the proxy is what protects the app stays true."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.scale.fleet import Fleet

pytestmark = pytest.mark.scale

CONNECTIONS = 100
HEADER_TIMEOUT_S = 10  # deploy/nginx/switchyard.conf


def slowloris(url: str, count: int) -> list[socket.socket]:
    """``count`` connections that each send a request line and one header, and then nothing."""
    parts = urlsplit(url)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((parts.hostname, parts.port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        sockets.append(sock)
    return sockets


def still_open(sock: socket.socket) -> bool:
    """True while the server has neither closed the connection nor answered it (a 408)."""
    sock.setblocking(False)
    try:
        sock.recv(64, socket.MSG_PEEK)  # an answer (a 408) or the end: either way the server is done
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def test_nginx_closes_connections_whose_headers_never_finish_and_daphne_alone_would_not(fleet: Fleet) -> None:
    through_nginx = slowloris(fleet.proxy, CONNECTIONS)
    straight_to_daphne = slowloris(fleet.webs[0].url, 10)
    try:
        time.sleep(HEADER_TIMEOUT_S + 3)
        closed_by_nginx = sum(not still_open(sock) for sock in through_nginx)
        open_at_daphne = sum(still_open(sock) for sock in straight_to_daphne)
    finally:
        for sock in [*through_nginx, *straight_to_daphne]:
            sock.close()
    assert closed_by_nginx == CONNECTIONS
    assert open_at_daphne == 10  # daphne would keep them: the proxy is what protects the app

"""What the edge changes in daphne's process beyond hardening: no access line of Twisted's own, eager writes."""

from __future__ import annotations

import io
import socket

from project.edge.daphne import daphne_harden, send_now


def test_twisted_formats_no_access_line_of_its_own() -> None:
    from daphne.http_protocol import HTTPFactory

    daphne_harden()
    factory = HTTPFactory.__new__(HTTPFactory)

    def refuse(*_: object) -> str:
        raise AssertionError("Twisted formatted an access line")

    factory._logFormatter = refuse
    factory._logFile = written = io.StringIO()
    factory.log(object())  # daphne's own access log (Server.log_action) is the one kept
    assert written.getvalue() == ""


class _Connection:
    """The state of a Twisted TCP connection that ``send_now`` reads, around a real socket."""

    TLS = False
    connected = True
    disconnecting = False
    _writeDisconnected = False
    _tempDataLen = 0
    dataBuffer = b""
    offset = 0

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock


def _pair() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(1)
    return ours, theirs


def test_a_write_with_nothing_waiting_goes_out_at_once() -> None:
    ours, theirs = _pair()
    with ours, theirs:
        assert send_now(_Connection(ours), b"data: token\n\n") == b""
        assert theirs.recv(100) == b"data: token\n\n"


def test_a_write_behind_buffered_bytes_waits_its_turn() -> None:
    ours, theirs = _pair()
    with ours, theirs:
        connection = _Connection(ours)
        connection._tempDataLen = 5
        assert send_now(connection, b"later") is None
        connection._tempDataLen, connection.dataBuffer, connection.offset = 0, b"earlier", 3
        assert send_now(connection, b"later") is None


def test_what_the_kernel_does_not_take_is_handed_back_to_be_buffered() -> None:
    ours, theirs = _pair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        data = b"x" * 4_000_000
        rest = send_now(_Connection(ours), data)
        assert rest is not None and 0 < len(rest) < len(data)
        assert data.endswith(rest)
        assert send_now(_Connection(ours), b"more") == b"more"  # the kernel's buffer is full: all of it


def test_tls_and_closing_connections_keep_twisteds_own_write() -> None:
    ours, theirs = _pair()
    with ours, theirs:
        tls, closing = _Connection(ours), _Connection(ours)
        tls.TLS = True
        closing.disconnecting = True
        assert send_now(tls, b"x") is None and send_now(closing, b"x") is None

"""What the edge changes in daphne's process beyond hardening: no access line of Twisted's own, daphne's
access lines written once per loop turn, eager writes, and one send for what a reply message writes."""

from __future__ import annotations

import asyncio
import datetime
import io
import socket
from typing import Any

import pytest

from project.edge.daphne import daphne_harden, held_writes, send_now


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


class _Writes(io.StringIO):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def _complete(log: Any, path: str, status: int) -> None:
    log("http", "complete", {"client": "127.0.0.1:5000", "method": "POST", "path": path, "status": status, "size": 12})


def test_access_lines_of_one_loop_turn_are_written_together_in_daphnes_format() -> None:
    from daphne.access import AccessLogGenerator

    daphne_harden()
    stream = _Writes()
    log = AccessLogGenerator(stream)

    async def a_turn() -> None:
        _complete(log, "/a", 201)
        _complete(log, "/b", 200)
        assert stream.writes == []  # not before the turn ends
        await asyncio.sleep(0)

    asyncio.run(a_turn())
    assert len(stream.writes) == 1
    lines = stream.getvalue().splitlines()
    assert [line.split("[")[0] + line.split("]")[1] for line in lines] == [
        '127.0.0.1:5000 - -  "POST /a" 201 12',
        '127.0.0.1:5000 - -  "POST /b" 200 12',
    ]
    stamp = lines[0].split("[")[1].split("]")[0]
    when = datetime.datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S")
    assert abs((datetime.datetime.now() - when).total_seconds()) < 5


def test_an_access_line_with_no_loop_running_is_written_at_once() -> None:
    from daphne.access import AccessLogGenerator

    daphne_harden()
    stream = _Writes()
    log = AccessLogGenerator(stream)
    log.write_entry("127.0.0.1:5000", datetime.datetime(2026, 12, 7, 9, 5, 3), "GET /x", 404, None)
    log.write_entry("127.0.0.1:5000", datetime.datetime(2026, 12, 7, 9, 5, 4), "GET /y")
    assert stream.writes == [
        '127.0.0.1:5000 - - [07/Dec/2026:09:05:03] "GET /x" 404 -\n',
        '127.0.0.1:5000 - - [07/Dec/2026:09:05:04] "GET /y" - -\n',
    ]


def test_a_request_is_found_in_daphnes_tables_by_its_identity() -> None:
    from daphne import http_protocol

    daphne_harden()
    first, second = (http_protocol.WebRequest.__new__(http_protocol.WebRequest) for _ in range(2))
    table = {first: "first", second: "second"}
    assert (table[first], table[second]) == ("first", "second")
    assert hash(first) == object.__hash__(first) and first != second and first == first


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


def _twisted_connection(sock: socket.socket) -> Any:
    """A real Twisted TCP connection over ``sock``, with the edge's writes installed."""
    from twisted.internet import protocol, tcp

    daphne_harden()
    connection = tcp.Connection(sock, protocol.Protocol())
    connection.connected = 1
    return connection


def _readable(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1000)
    except BlockingIOError:
        return b""


def test_what_a_reply_message_writes_goes_out_as_one_send() -> None:
    ours, theirs = _pair()
    theirs.setblocking(False)
    with ours, theirs:
        connection = _twisted_connection(ours)
        seen_while_held: list[bytes] = []

        def reply() -> None:  # as Twisted answers: the head, then the body as a chunk, then the end
            connection.writeSequence([b"HTTP/1.1 200 OK\r\n", b"\r\n"])
            seen_while_held.append(_readable(theirs))
            connection.writeSequence([b"5\r\n", b"hello", b"\r\n"])
            connection.write(b"0\r\n\r\n")

        held_writes(connection, reply)
        assert seen_while_held == [b""]
        assert _readable(theirs) == b"HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        connection.write(b"later")  # once the message is handled, writes go out at once again
        assert _readable(theirs) == b"later"


def test_what_was_held_goes_out_even_when_the_message_fails() -> None:
    ours, theirs = _pair()
    theirs.setblocking(False)
    with ours, theirs:
        connection = _twisted_connection(ours)

        def failing() -> None:
            connection.write(b"head")
            raise ValueError("the application sent a bad message")

        with pytest.raises(ValueError):
            held_writes(connection, failing)
        assert _readable(theirs) == b"head"
        assert connection.switchyard_held is None


def test_a_transport_that_cannot_hold_writes_as_it_goes() -> None:
    written: list[bytes] = []

    class Transport:  # a TLS or test transport: no holding of its own
        def write(self, data: bytes) -> None:
            written.append(data)

    transport = Transport()
    held_writes(transport, lambda: (transport.write(b"a"), transport.write(b"b")))
    assert written == [b"a", b"b"]


# --- idle timeouts in one table ----------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _swept_table() -> tuple[Any, _Clock, list[tuple[float, Any]]]:
    from project.edge.daphne import IdleTimeouts

    clock = _Clock()
    scheduled: list[tuple[float, Any]] = []
    return IdleTimeouts(clock, lambda seconds, function: scheduled.append((seconds, function))), clock, scheduled


def _channel(table: Any, time_out: float) -> tuple[Any, Any]:
    from twisted.internet.testing import StringTransport
    from twisted.web import http

    channel = http.HTTPChannel()
    channel.callLater = table.call_later
    channel.timeOut = time_out
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def test_an_idle_connection_is_closed_at_the_first_sweep_after_its_deadline_then_aborted() -> None:
    table, clock, scheduled = _swept_table()
    channel, transport = _channel(table, 10)
    assert len(table.pending) == 1 and [seconds for seconds, _ in scheduled] == [table.SWEEP_S]
    clock.now += 9.5
    table.sweep()
    assert not transport.disconnecting
    clock.now += 1
    table.sweep()
    assert transport.disconnecting and not transport.disconnected
    assert len(table.pending) == 1  # the abort, if the client does not let go (Twisted's abortTimeout)
    clock.now += channel.abortTimeout
    table.sweep()
    assert transport.disconnected
    assert not table.pending and len(scheduled) == 3  # nothing pending: no further sweep


def test_a_request_stops_the_idle_timeout_and_its_answer_starts_it_again() -> None:
    table, clock, _ = _swept_table()
    channel, transport = _channel(table, 10)
    (opened,) = table.pending
    channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert opened.cancelled and not table.pending  # no timeout while a request is handled
    clock.now += 60  # a long request is not an idle connection
    table.sweep()
    assert not transport.disconnecting
    request = channel.requests[-1]
    request.write(b"done")
    request.finish()
    (answered,) = table.pending
    assert answered.deadline == clock.now + 10
    clock.now += 5
    channel.dataReceived(b"GET /y HTTP/1.1\r\n")  # bytes of the next request move the deadline
    assert answered.deadline == clock.now + 10
    channel.connectionLost(None)
    assert answered.cancelled and not table.pending


def test_a_swept_call_is_cancelled_and_reset_as_twisteds_delayed_call_is() -> None:
    from twisted.internet import error

    table, clock, _ = _swept_table()
    made: list[str] = []
    call = table.call_later(5, lambda: made.append("made"))
    call.reset(20)
    clock.now += 10
    table.sweep()
    assert made == [] and call.active()
    call.cancel()
    assert not call.active()
    with pytest.raises(error.AlreadyCancelled):
        call.cancel()
    with pytest.raises(error.AlreadyCancelled):
        call.reset(1)
    second = table.call_later(1, lambda: made.append("second"))
    clock.now += 1
    table.sweep()
    assert made == ["second"] and not second.active()
    with pytest.raises(error.AlreadyCalled):
        second.cancel()


def test_a_failing_timeout_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    table, clock, _ = _swept_table()
    made: list[int] = []

    def fail() -> None:
        raise RuntimeError("broken")

    table.call_later(1, fail)
    table.call_later(1, lambda: made.append(1))
    clock.now += 2
    table.sweep()
    assert made == [1] and "timeout failed" in caplog.text


def test_daphnes_connections_keep_their_timeouts_in_the_processs_table(monkeypatch: pytest.MonkeyPatch) -> None:
    from daphne.http_protocol import HTTPFactory
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from project.edge import daphne

    daphne_harden()
    table, clock, _ = _swept_table()
    monkeypatch.setattr(daphne, "idle_timeouts", table)
    factory = HTTPFactory.__new__(HTTPFactory)  # as daphne's server makes it, on a reactor of the test's
    factory.reactor, factory.timeOut, factory.server = Clock(), 60, None
    channel = factory.buildProtocol(None)
    channel.makeConnection(StringTransport())
    (call,) = table.pending
    assert isinstance(call, daphne.SweptCall) and call.deadline == clock.now + 60
    assert not factory.reactor.getDelayedCalls()  # no timer of the reactor's own
    channel.connectionLost(None)
    assert not table.pending


def test_a_responses_headers_are_not_kept_once_its_head_is_written() -> None:
    from daphne import http_protocol
    from daphne.server import Server
    from twisted.internet.testing import StringTransport

    daphne_harden()
    server = Server(application=None, endpoints=["tcp:port=0"])  # daphne's own server object, not started
    server.connections = {}  # what its run() starts with
    factory = http_protocol.HTTPFactory(server)
    channel = factory.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    request = http_protocol.WebRequest(channel._channel, queued=False)
    channel._channel.requests.append(request)  # as the channel does when a request line arrives
    request.method, request.clientproto, request.uri = b"GET", b"HTTP/1.1", b"/x"
    headers = [(b"Content-Type", b"text/event-stream"), (b"X-Ratelimit-Remaining-Requests", b"59")]
    request.handle_reply({"type": "http.response.start", "status": 200, "headers": headers})
    request.handle_reply({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/event-stream" in head and b"X-Ratelimit-Remaining-Requests: 59" in head
    assert body == b"9\r\ndata: 1\n\n\r\n"
    assert list(request.responseHeaders.getAllRawHeaders()) == []  # the stream goes on without them
    transport.clear()
    request.handle_reply({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True})
    request.handle_reply({"type": "http.response.body", "body": b""})
    assert transport.value() == b"9\r\ndata: 2\n\n\r\n0\r\n\r\n"


def _served(application: Any, request: bytes) -> tuple[Any, Any]:
    """Daphne's server object (not started) with ``request`` read on one connection; the server and
    the connection's transport, once the loop has run the application a few turns."""
    from daphne import http_protocol
    from daphne.server import Server
    from twisted.internet.testing import StringTransport

    daphne_harden()
    server = Server(application=application, endpoints=["tcp:port=0"])
    server.connections = {}  # what its run() starts with
    channel = http_protocol.HTTPFactory(server).buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(request)
    return server, transport


async def _turns(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_a_request_leaves_daphnes_table_once_it_is_answered_and_its_application_returned() -> None:
    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def one_request() -> None:
        server, transport = _served(application, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert len(server.connections) == 1  # the request, its application running
        await _turns()
        assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n") and transport.value().endswith(b"\r\n\r\nok")
        # Not kept until daphne's sweep, once a second: the request, its headers, the finished
        # application's task and its queue were each open stream's to carry for the collector.
        assert server.connections == {}

    asyncio.run(one_request())


def test_an_application_still_running_after_its_answer_keeps_its_request_until_it_returns() -> None:
    release = asyncio.Event()

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        await release.wait()  # as a stream's consumer waits for its http.disconnect

    async def one_request() -> None:
        server, _ = _served(application, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        await _turns()
        [(request, details)] = server.connections.items()
        assert "disconnected" in details and not details["application_instance"].done()
        server.protocol_disconnected(request)  # said again: nothing changes
        release.set()
        await _turns()
        assert server.connections == {}
        server.protocol_disconnected(request)  # said once it was let go: nothing to mark

    asyncio.run(one_request())


def test_an_application_that_failed_is_left_for_daphne_to_report() -> None:
    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        raise RuntimeError("after the answer")

    async def one_request() -> None:
        server, _ = _served(application, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        await _turns()
        [details] = server.connections.values()
        # Daphne's sweep logs the failure and then lets the request go.
        assert isinstance(details["application_instance"].exception(), RuntimeError)

    asyncio.run(one_request())


def test_a_request_handed_to_its_application_keeps_neither_its_body_nor_its_headers() -> None:
    received: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        received.append(scope)
        body = b""
        while True:  # daphne hands a body over in pieces of its buffer's size
            message = await receive()
            body += message["body"]
            if not message.get("more_body"):
                break
        received.append({"body": body})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await release.wait()  # a stream still going
        await send({"type": "http.response.body", "body": b""})

    async def one_stream() -> None:
        body = b'{"prompt": "' + b"x" * 50_000 + b'"}'
        head = b"POST /v1/x HTTP/1.1\r\nHost: a\r\nX-Request-Id: r1\r\nContent-Length: %d\r\n\r\n" % len(body)
        server, transport = _served(application, head + body)
        await _turns()
        [request] = server.connections
        # The application has them: the body in its first message, the headers in its scope.
        assert received[1]["body"] == body and (b"x-request-id", b"r1") in received[0]["headers"]
        assert request.content.read() == b"" and list(request.requestHeaders.getAllRawHeaders()) == []
        release.set()
        await _turns()
        assert transport.value().endswith(b"0\r\n\r\n") and server.connections == {}

    asyncio.run(one_stream())

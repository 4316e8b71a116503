"""What daphne does not do for hostile or careless clients, added where it can be: in its process.

Daphne (on Twisted) buffers without limit in both directions. It reads a whole request body before
the application sees the request, so a 200 MB upload with no key held 208 MB and got its 401 after
7 s. And the application's ``send`` never waits: a client that stops reading while a stream flows
keeps every byte in the server's write buffer (ten such clients grew a web process by 46 MB each).
``daphne_harden()`` (called by ``project.asgi``, so in every daphne process that serves Switchyard)
adds two things:

- **Bodies are refused by size before they are read.** The request class daphne builds for each
  HTTP request answers ``413 request_too_large`` (the one JSON error shape) as soon as the headers
  declare a ``Content-Length`` over ``SWITCHYARD_MAX_BODY_BYTES``, or as soon as a chunked body
  passes it, then drops what follows for a moment and closes the connection: nothing is buffered,
  and no authentication is tried.
- **Sends wait for slow readers.** After each message, when more than ``HIGH_WATER_BYTES`` wait in
  the connection's write buffer, the sender waits until it drains below ``LOW_WATER_BYTES``; a client
  that drains nothing for ``SWITCHYARD_SEND_STALL_S`` (30 s) is disconnected. So a stream that
  nobody reads stops pulling from its source (a ``/v1`` stream stops reading the provider, and is
  cancelled with it at the disconnect; a chat reply goes on into its Redis Stream, which buffers no
  copy per client), and memory stays flat whatever the client does. WebSockets are held the same way.

A request Twisted cannot read as HTTP (a malformed ``Content-Length``, a broken chunk) was answered
with a bare ``400 Bad Request``, and one with a header line over 16 KiB got no answer at all; they
now get the one error shape (``431`` for headers over Twisted's limits) before the connection closes.

Twisted's table of reason phrases stops at RFC 2616: ``429`` went out as ``429 Unknown Status``.
The missing phrases are filled in from the standard library's ``HTTPStatus`` (429 Too Many Requests,
422, 425, 451, ...), so every status line reads as its RFC names it.

Twisted decodes every POST body that says it is a form (``application/x-www-form-urlencoded`` or
``multipart/form-data``) into ``request.args``, which daphne never reads: it hands the application
the raw body, and Django parses forms itself. A multipart body Twisted could not parse was answered
with a bare ``400 Bad Request`` (no body, no request id) before Switchyard saw it, and every POST paid
for parsing its ``Content-Type`` with the standard library's e-mail header parser (about 50 µs, a
tenth of a stream's setup). Daphne's requests no longer decode forms. Twisted also formats a
combined-log line for every request into its own log, which daphne sends nowhere (daphne writes
the access log itself); that line is no longer made.

Daphne writes its access log (one line per request, to standard output) a line at a time, and
``serve`` runs its web processes unbuffered: each line was a system call of its own, about 3% of a
chat stream's CPU (a post and its stream are two lines). The lines logged in one turn of the event
loop are now written together at the turn's end, in daphne's format; a line written with no loop
running goes out at once. The timestamp is formatted once a second, not once a line.

Twisted also delays every write by a turn of the loop: ``write`` only appends to a buffer and
registers the socket for writing (an ``epoll_ctl`` call), the next turn sends it, and the turn after
unregisters (another). A stream pays that for every token: about a fifth of a ``/v1`` stream's CPU
went to it, where asyncio's transports (uvicorn, aiohttp) send at once. So a TCP connection whose
buffer is empty sends what it is given at once, and buffers only what the kernel did not take, as
asyncio does; with anything already waiting it buffers behind it, in order, as before.

Sent at once, each of Twisted's writes was a system call of its own: a response's head, then its
first body, then the chunked body's end, each a send and a TCP segment for the client to wake for.
What daphne writes while it handles the first or the last body message of a response (the head
before the body, the chunked end after it) is now held and goes out as one send: a whole ``/v1``
answer reaches its client in 1 send where it took 3, a one-token stream in 3 where it took 5
(docs/benchmarks.md, "One send per reply message, and a count to the first token"). A stream's
other messages write once each and go out as they come.

The lean handler cancels a request's view when its client leaves (Django's handler does too). It
waited for the ``http.disconnect`` message in a task of its own per request; a request now calls the
application back when its connection is lost (``DISCONNECT_CALLBACK``), and puts the message in the
queue as before.

Twisted keeps each HTTP connection's idle timeout as a timer of its own, moved about three times a
request; they are now deadlines in one table, swept once a second (``IdleTimeouts``).

Daphne keeps each request in its table of connections until a sweep, once a second, finds it
answered and its application returned: the request, its headers, its application's finished task
and input queue stayed alive for up to a second after the answer. A chat post is answered while its
conversation's stream has only begun, so a burst of conversations carried every post's (about 26
objects each) into the garbage collector's walks. A request now leaves the table as soon as it is
answered (or its client left) and its application returned or was cancelled (``_let_go_if_done``);
daphne's sweep still reaps the rest, and reports an application that failed.

Twisted also keeps a request's body (a buffer of it all) and its headers (a list per header) until
the request ends, though once daphne has handed the body to the application and the headers to its
scope nobody reads them again: a stream kept its request's whole body for as long as it lasted. Both
are let go at the hand-over.

Daphne reads a WebSocket's frames as fast as the client sends them and queues each for the
application without limit, while the application may be waiting (for a slow reader, for the
database) and not taking them: one client that sent 60 KB frames without reading grew a web
process by 240 MB in three seconds. A connection with more than ``INBOUND_FRAMES`` frames waiting
now stops being read until the application has taken half of them, so the client's frames wait in
its own buffers.

A WebSocket message over daphne's size limit (1 MiB; the agent consumer answers frames over 64 KiB
with a ``frame_too_large`` error and keeps the connection) made Autobahn drop the TCP connection
without a close frame, so the client saw an abnormal closure and no reason. The connection is now
closed with the standard code 1009 (message too big).

Daphne has no timeout for incomplete request headers: Twisted drops a connection that sends nothing
for 60 s, but every byte starts that minute again, so headers sent a byte at a time never end. The
shipped nginx configuration sets ``client_header_timeout`` in front of it (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
import json
import logging
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from twisted.internet import error as twisted_error
from twisted.web.http_headers import Headers

from orchestration.conf import setting, switchyard_setting
from orchestration.errors import error_body
from orchestration.requestids import request_id_from

logger = logging.getLogger("switchyard.edge")

HIGH_WATER_BYTES = 64 * 1024
LOW_WATER_BYTES = 16 * 1024
_DRAIN_POLL_S = 0.05
# After a 413, the rest of the body is read and dropped for a moment (so a client that sends it all
# before reading still gets the answer), then the connection closes: a lingering close.
LINGER_S = 1.0
# The kernel's share of a connection's send buffer, fixed instead of autotuned (Linux grows it to
# 4 MB): with the write buffer's high-water mark, what one slow reader can hold is bounded.
SOCKET_SEND_BUFFER_BYTES = 128 * 1024
LINGER_BYTES = 8 * 2**20
# Frames a WebSocket may have waiting for the application before the connection is read no more
# (each at most daphne's 1 MiB message limit).
INBOUND_FRAMES = 16
# Set on an HTTP request's input queue (the application's ``receive`` is its ``get``): the request
# calls what the application puts there when its client leaves before the response is done
# (project/edge/handler.py, ``DisconnectWatch``).
DISCONNECT_CALLBACK = "switchyard_on_disconnect"


def buffered_bytes(transport: Any) -> int:
    """Bytes waiting in a Twisted transport's write buffer (0 for one that keeps no such count)."""
    try:
        return int(len(transport.dataBuffer) - transport.offset + transport._tempDataLen)
    except AttributeError:
        return 0


def _stall_s() -> float:
    return float(switchyard_setting("SEND_STALL_S"))


async def drained(protocol: Any, *, stall_s: float | None = None) -> bool:
    """Wait while ``protocol``'s connection holds more than the high-water mark. False (and the
    connection aborted) when the client drained nothing for ``stall_s``."""
    transport = getattr(protocol, "transport", None)
    if transport is None or buffered_bytes(transport) <= HIGH_WATER_BYTES:
        return True
    limit = _stall_s() if stall_s is None else stall_s
    last, since = buffered_bytes(transport), time.monotonic()
    while True:
        await asyncio.sleep(_DRAIN_POLL_S)
        now_buffered = buffered_bytes(transport)
        if now_buffered <= LOW_WATER_BYTES or getattr(transport, "disconnected", False):
            return True
        if now_buffered < last:
            last, since = now_buffered, time.monotonic()
        elif time.monotonic() - since >= limit:
            logger.warning("A client read nothing for %g s with %d bytes waiting: disconnected", limit, now_buffered)
            transport.abortConnection()
            return False


def _too_large_response(request: Any) -> None:
    """Answer 413 in the one error shape and close, without reading the body."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    headers = {
        name.decode("latin1"): values[-1].decode("latin1") for name, values in request.requestHeaders.getAllRawHeaders()
    }
    transport = request.channel.transport if request.channel is not None else None
    if transport is None:
        return
    message = f"The request body is larger than {limit} bytes."
    # Every /v1 answer carries openai-processing-ms (orchestration/calls.py), this one included. The
    # request has no ``uri`` before its body arrives; its channel holds the path of the request line.
    path = getattr(request.channel, "_path", b"") or b""
    timing = b"openai-processing-ms: 0\r\n" if path.startswith(b"/v1/") else b""
    transport.write(_closing_error(413, "request_too_large", message, request_id_from(headers), timing))
    from twisted.internet import reactor

    reactor_time: Any = reactor  # the running reactor (its stub types it as the module)
    reactor_time.callLater(LINGER_S, transport.loseConnection)


def daphne_harden() -> None:
    """Install both protections in this process's daphne (once; a no-op outside daphne)."""
    try:
        from daphne import http_protocol, server
    except ImportError:  # another ASGI server: nothing of daphne's to harden
        return
    if getattr(server.Server.handle_reply, "switchyard_flow_control", False):
        return
    http_protocol.WebRequest = _request_class(http_protocol.WebRequest)
    server.Server.handle_reply = _flow_controlled(server.Server.handle_reply)
    _complete_reason_phrases()
    _bad_requests_in_the_one_shape()
    _no_twisted_access_line(http_protocol.HTTPFactory)
    _access_lines_per_turn()
    _close_oversized_websockets_cleanly()
    _websocket_frames_bounded()
    _write_eagerly()
    _unproxied_twisted_web_http(http_protocol)
    _idle_timeouts_swept(http_protocol.HTTPFactory)
    _finished_requests_let_go(server.Server)


def _unproxied_twisted_web_http(http_protocol: Any) -> None:
    """Daphne's ``http`` is the module proxy Twisted puts in ``sys.modules`` to warn about its
    deprecated names; every ``http.Request.write(...)`` daphne makes (one per token of a stream)
    went through the proxy's Python-level ``__getattribute__``: about 5 % of a ``/v1`` stream's
    CPU. Daphne uses none of the deprecated names, so it gets the module itself."""
    from twisted.python.deprecate import _ModuleProxy

    if isinstance(http_protocol.http, _ModuleProxy):
        http_protocol.http = object.__getattribute__(http_protocol.http, "_module")


class SweptCall:
    """One HTTP connection's pending timeout (Twisted's idle timeout, or the abort after it): a
    deadline in ``IdleTimeouts``' table, in place of a timer of its own. Cancelled and reset as
    Twisted's ``DelayedCall`` is, which is all Twisted's ``TimeoutMixin`` asks of it."""

    __slots__ = ("called", "cancelled", "deadline", "function", "table")

    def __init__(self, table: IdleTimeouts, deadline: float, function: Callable[[], None]) -> None:
        self.table, self.deadline, self.function = table, deadline, function
        self.called = self.cancelled = False

    def _check(self) -> None:
        if self.cancelled:
            raise twisted_error.AlreadyCancelled
        if self.called:
            raise twisted_error.AlreadyCalled

    def reset(self, seconds: float) -> None:
        self._check()
        self.deadline = self.table.clock() + seconds

    def cancel(self) -> None:
        self._check()
        self.cancelled = True
        self.table.pending.discard(self)

    def active(self) -> bool:
        return not (self.cancelled or self.called)


class IdleTimeouts:
    """The HTTP connections' timeouts of a process, checked once every ``SWEEP_S``.

    Twisted gives each HTTP connection an idle timeout (a minute, as daphne runs it) and moves it
    about three times per request: set when the connection opens, stopped while a request is
    handled, set again when it is answered, stopped when the connection closes. Each was a timer
    in the reactor's heap, with the event loop's own timer moved to match: 10 µs per request, where
    a ``/v1`` stream's whole setup takes about 700 (a build without any timeouts counted 3.4% fewer
    instructions per ``/v1`` stream). Here each is a deadline in one table, 1.6 µs per request,
    swept by one timer while the table holds any; a connection times out within ``SWEEP_S`` of its
    deadline instead of at it.
    """

    SWEEP_S = 1.0

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        schedule: Callable[[float, Callable[[], None]], Any] | None = None,
    ) -> None:
        self.clock = clock
        self._schedule = schedule
        self.pending: set[SweptCall] = set()
        self._sweeping = False

    def call_later(self, seconds: float, function: Callable[[], None]) -> SweptCall:
        call = SweptCall(self, self.clock() + seconds, function)
        self.pending.add(call)
        if not self._sweeping:
            self._sweeping = True
            self._later(self.sweep)
        return call

    def sweep(self) -> None:
        """Make the calls whose deadline has passed; come again while any are pending."""
        now = self.clock()
        due = [call for call in self.pending if call.deadline <= now]
        for call in due:
            self.pending.discard(call)
            call.called = True
        for call in due:
            try:
                call.function()
            except Exception:
                logger.exception("A connection's timeout failed")
        self._sweeping = bool(self.pending)
        if self._sweeping:
            self._later(self.sweep)

    def _later(self, function: Callable[[], None]) -> None:
        if self._schedule is not None:
            self._schedule(self.SWEEP_S, function)
            return
        from twisted.internet import reactor

        reactor_time: Any = reactor  # the running reactor (its stub types it as the module)
        reactor_time.callLater(self.SWEEP_S, function)


idle_timeouts = IdleTimeouts()


def idle_call_later(seconds: float, function: Callable[[], None]) -> SweptCall:
    return idle_timeouts.call_later(seconds, function)


def _idle_timeouts_swept(factory: Any) -> None:
    build = factory.buildProtocol

    def buildProtocol(self: Any, addr: Any) -> Any:
        protocol = build(self, addr)
        # Twisted's factory gives each connection its reactor's ``callLater``, through which the
        # channel's ``TimeoutMixin`` and its abort after a timeout schedule: the table's instead.
        if protocol is not None:
            protocol.callLater = idle_call_later
        return protocol

    factory.buildProtocol = buildProtocol


def _closing_error(status: int, code: str, message: str, request_id: str, extra_headers: bytes = b"") -> bytes:
    """A whole HTTP/1.1 answer in the one error shape, written by the server itself (no application
    saw the request), that says the connection closes after it. ``extra_headers``: whole header
    lines, each ending in CRLF."""
    from twisted.web import http

    body = json.dumps(error_body(status, code, message, request_id)).encode()
    phrase = http.RESPONSES[status]  # as Twisted writes the status lines of the answers it sends
    return (
        b"HTTP/1.1 %d %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"X-Request-ID: %b\r\n%bConnection: close\r\n\r\n%b"
        % (status, phrase, len(body), request_id.encode("latin-1"), extra_headers, body)
    )


def _bad_requests_in_the_one_shape() -> None:
    """Twisted answers a request it cannot read as HTTP (a malformed request line, header or
    ``Content-Length``, a broken chunk, headers over its size limit) with a bare
    ``400 Bad Request`` and no body, and closes a connection whose header line passes 16 KiB
    without any answer. Each now gets the one error shape: ``431`` for headers over Twisted's
    limits (16 KiB in all or in one line, 500 of them), ``400`` for the rest. The connection then
    closes after a lingering moment (``_answer_and_linger``)."""
    from twisted.web import http

    def respond_and_disconnect(self: Any) -> None:
        if getattr(self, "_switchyard_answered", False):
            return
        if self._receivedHeaderSize > self.totalHeadersSize or self._receivedHeaderCount > self.maxHeaders:
            _headers_too_large(self)
            return
        message = "The request could not be read as HTTP: its request line, headers or body framing are malformed."
        _answer_and_linger(self, _closing_error(400, "invalid_request", message, request_id_from({})))

    choose_transfer_decoder = http.HTTPChannel._maybeChooseTransferDecoder

    def choose_transfer_decoder_or_refuse(self: Any, header: bytes, data: bytes) -> bool:
        try:
            return bool(choose_transfer_decoder(self, header, data))
        except ValueError:  # a Content-Length of more digits than int() reads (4300): it was dropped unanswered
            return bool(self._failChooseTransferDecoder())

    http.HTTPChannel._respondToBadRequestAndDisconnect = respond_and_disconnect  # type: ignore[method-assign]
    http.HTTPChannel.lineLengthExceeded = _headers_too_large  # type: ignore[method-assign]
    http.HTTPChannel._maybeChooseTransferDecoder = choose_transfer_decoder_or_refuse  # type: ignore[method-assign]


def _headers_too_large(channel: Any, line: bytes = b"") -> None:
    if getattr(channel, "_switchyard_answered", False):
        return
    message = (
        f"The request's headers are larger than the server accepts: {channel.totalHeadersSize // 1024} KiB in all"
        f" or in any one line, at most {channel.maxHeaders} of them."
    )
    _answer_and_linger(channel, _closing_error(431, "request_headers_too_large", message, request_id_from({})))


def _answer_and_linger(channel: Any, answer: bytes) -> None:
    """Write ``answer`` on ``channel``'s connection, then drop what the client still sends for
    ``LINGER_S`` before closing. Closing at once, with the rest of the request unread, makes the
    kernel reset the connection, and a reset can destroy the answer before the client reads it."""
    from twisted.internet import reactor

    channel._switchyard_answered = True
    channel.clearLineBuffer()
    channel.dataReceived = _dropped  # the transport hands its bytes to the channel's attribute
    channel.transport.write(answer)
    reactor_time: Any = reactor  # the running reactor (its stub types it as the module)
    reactor_time.callLater(LINGER_S, channel.transport.loseConnection)


def _dropped(data: bytes) -> None:
    pass


def _complete_reason_phrases() -> None:
    from twisted.web import http

    # ``setResponseCode`` looks each status up in this module-level table at the time of the call.
    for status in HTTPStatus:
        http.RESPONSES.setdefault(status.value, status.phrase.encode("ascii"))


def _close_oversized_websockets_cleanly() -> None:
    from daphne import ws_protocol

    factory = ws_protocol.WebSocketFactory
    built = factory.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        built(self, *args, **kwargs)
        # Autobahn's default fails a protocol violation (here: a message over the size limit)
        # by dropping the connection; with this it sends the close frame (1009) first.
        self.setProtocolOptions(failByDrop=False)

    factory.__init__ = __init__  # type: ignore[method-assign]


def _websocket_frames_bounded() -> None:
    from daphne import ws_protocol

    protocol = ws_protocol.WebSocketProtocol
    queued = protocol.onMessage

    def onMessage(self: Any, payload: bytes, isBinary: bool) -> None:
        queued(self, payload, isBinary)
        waiting = getattr(self, "application_queue", None)
        if waiting is None or waiting.qsize() <= INBOUND_FRAMES or getattr(self, "_switchyard_unpausing", None):
            return
        self.transport.pauseProducing()
        self._switchyard_unpausing = asyncio.ensure_future(_read_when_taken(self, waiting))

    protocol.onMessage = onMessage  # type: ignore[method-assign]


async def _read_when_taken(protocol: Any, waiting: asyncio.Queue[Any]) -> None:
    """Read ``protocol``'s connection again once its application has taken half the frames waiting.
    A connection closed meanwhile stays as it is (an application that never takes its frames is
    one that waits for a client that reads nothing, which ``drained`` disconnects)."""
    while waiting.qsize() > INBOUND_FRAMES // 2:
        await asyncio.sleep(_DRAIN_POLL_S)
        if getattr(protocol.transport, "disconnected", False):
            return
    protocol._switchyard_unpausing = None
    protocol.transport.resumeProducing()


def _no_twisted_access_line(factory: type) -> None:
    # Twisted's ``HTTPFactory.log`` formats each finished request for Twisted's log, which daphne
    # points at nothing at its default verbosity; daphne's own access log (``Server.log_action``)
    # is the one operators read, and it is unchanged.
    def log(self: Any, request: Any) -> None:
        return None

    factory.log = log  # type: ignore[attr-defined]


# The lines of each access log waiting for the end of their loop's turn (``_access_lines_per_turn``).
_access_waiting: dict[Any, list[str]] = {}


def _access_lines_per_turn() -> None:
    from daphne.access import AccessLogGenerator

    def write_entry(
        self: Any,
        host: str,
        date: Any,
        request: str,
        status: int | None = None,
        length: int | None = None,
        ident: str | None = None,
        user: str | None = None,
    ) -> None:
        # daphne's own format (``daphne/access.py``)
        when = _access_date(date)
        line = f'{host} {ident or "-"} {user or "-"} [{when}] "{request}" {status or "-"} {length or "-"}\n'
        waiting = _access_waiting.get(self)
        if waiting is not None:
            waiting.append(line)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.stream.write(line)
            return
        _access_waiting[self] = [line]
        loop.call_soon(_access_write, self)

    AccessLogGenerator.write_entry = write_entry
    atexit.register(_access_write_all)


def _access_write(log: Any) -> None:
    waiting = _access_waiting.pop(log, None)
    if waiting:
        log.stream.write("".join(waiting))


def _access_write_all() -> None:
    for log in list(_access_waiting):
        _access_write(log)


_access_second: tuple[tuple[int, ...], str] = ((), "")


def _access_date(date: Any) -> str:
    """``date`` as daphne writes it (``%d/%b/%Y:%H:%M:%S``), formatted once per second."""
    global _access_second
    second = (date.second, date.minute, date.hour, date.day, date.month, date.year)
    if _access_second[0] != second:
        _access_second = (second, date.strftime("%d/%b/%Y:%H:%M:%S"))
    return _access_second[1]


def _write_eagerly() -> None:
    from twisted.internet import tcp

    buffered_write = tcp.Connection.write
    buffered_sequence = tcp.Connection.writeSequence

    def write(self: Any, data: bytes) -> None:
        held = self.switchyard_held
        if held is not None:
            held.append(data)
            return
        rest = send_now(self, data)
        if rest is None:
            buffered_write(self, data)
        elif rest:
            buffered_write(self, rest)

    def writeSequence(self: Any, iovec: list[bytes]) -> None:
        held = self.switchyard_held
        if held is not None:
            held.extend(iovec)
            return
        data = b"".join(iovec)
        rest = send_now(self, data)
        if rest is None:
            buffered_sequence(self, iovec)
        elif rest:
            buffered_write(self, rest)

    tcp.Connection.write = write  # type: ignore[method-assign]
    tcp.Connection.writeSequence = writeSequence  # type: ignore[method-assign]
    # Writes made while a reply message is handled (``held_writes``); None: not holding.
    tcp.Connection.switchyard_held = None  # type: ignore[attr-defined]


def held_writes(transport: Any, write: Callable[[], None]) -> None:
    """Run ``write``, sending what it writes to ``transport`` as one send at its end. A transport
    that cannot hold (not a plain TCP connection of this process's Twisted) writes as it goes."""
    if getattr(transport, "switchyard_held", False) is not None:
        write()
        return
    held: list[bytes] = []
    transport.switchyard_held = held
    try:
        write()
    finally:
        transport.switchyard_held = None
        if held:
            transport.write(held[0] if len(held) == 1 else b"".join(held))


def send_now(connection: Any, data: bytes) -> bytes | None:
    """Send ``data`` on a plain TCP connection with nothing waiting to go before it: the part the
    kernel did not take (to buffer), or None when it must wait in the buffer like any write."""
    if (
        not data
        or connection.TLS
        or not connection.connected
        or connection.disconnecting
        or connection._writeDisconnected
        or connection._tempDataLen
        or len(connection.dataBuffer) > connection.offset
    ):
        return None
    try:
        sent = connection.socket.send(data)
    except (BlockingIOError, InterruptedError):
        return data
    except OSError:
        return None  # the buffered write's next attempt reports the lost connection, as Twisted does
    return data[sent:]


def _request_class(base: type) -> type:
    class SizedWebRequest(base):  # type: ignore[misc,valid-type]
        """Daphne's request, refusing a body over the limit before it is read."""

        _body_seen = 0
        _refused = False
        # Daphne hashes a request by its identity in Python (``hash(id(self))``), and looks each up
        # in its table of connections about fifteen times a request; the object's own hash is the
        # same identity, in C.
        __hash__ = object.__hash__

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._parsePOSTFormSubmission = False  # the application parses bodies (see above)
            _bound_send_buffer(self.channel.transport if self.channel is not None else None)

        def gotLength(self, length: int | None) -> None:
            if length is not None and length > setting("DATA_UPLOAD_MAX_MEMORY_SIZE"):
                self._refuse()
                return
            super().gotLength(length)

        def handleContentChunk(self, data: bytes) -> None:
            if self._refused:
                return
            self._body_seen += len(data)
            if self._body_seen > setting("DATA_UPLOAD_MAX_MEMORY_SIZE"):
                self._refuse()
                return
            super().handleContentChunk(data)

        def handle_reply(self, message: dict[str, Any]) -> None:
            # The first body message writes the head before the body, the last one the chunked
            # end after it: one send each. A stream's other messages write once, as they come.
            if (
                message.get("type") == "http.response.body"
                and self.channel is not None
                and (not self.startedWriting or not message.get("more_body", False))
            ):
                head_unsent = not self.startedWriting
                held_writes(self.channel.transport, functools.partial(super().handle_reply, message))
                if head_unsent and self.startedWriting:
                    # Written, the head's headers are read no more (Twisted reads them for the
                    # head alone), and a stream would keep them to its end: a list per header,
                    # 16 of the objects the collector walks of each open /v1 stream.
                    self.responseHeaders = Headers()
            else:
                super().handle_reply(message)

        def process(self) -> Any:
            if self._refused:  # the whole (dropped) body arrived: the 413 is out, close
                if self.channel is not None:
                    self.channel.transport.loseConnection()
                return None
            processed = super().process()  # the application's task is made, not yet run
            if self.application_queue is not None:
                setattr(self.application_queue, DISCONNECT_CALLBACK, None)  # it may put one there
                # Handed over: the body is in the application's queue, the headers in its scope,
                # and Twisted reads neither again (it settled the connection's persistence when
                # the headers arrived). Kept, they lasted as long as the response: a stream held
                # its request's whole body, and a list per header for the collector to walk.
                self.content = CLOSED_CONTENT
                self.requestHeaders = Headers()
                instance = self.server.connections.get(self, {}).get("application_instance")
                if instance is not None:
                    instance.add_done_callback(self._application_done, context=_NO_CONTEXT)
            return processed

        def finish(self) -> None:
            super().finish()
            _let_go_if_done(self)

        def connectionLost(self, reason: Any) -> None:
            queue = self.application_queue
            super().connectionLost(reason)  # the queue gets ``http.disconnect``, as before
            _let_go_if_done(self)
            gone = getattr(queue, DISCONNECT_CALLBACK, None)
            if gone is not None:
                gone()

        def _application_done(self, instance: asyncio.Future[Any]) -> None:
            _let_go_if_done(self)

        def _refuse(self) -> None:
            self._refused = True
            _too_large_response(self)
            self.content = CLOSED_CONTENT

    SizedWebRequest.__name__ = base.__name__
    return SizedWebRequest


# What a callback that reads no context variable runs in, instead of a copy of the caller's.
_NO_CONTEXT = contextvars.Context()


def _let_go_if_done(request: Any) -> None:
    """Drop ``request`` from daphne's table of connections once it is answered (or its client
    left) and its application returned or was cancelled: until then the table holds the request,
    its headers, its application's finished task and its input queue. Daphne's own sweep, once a
    second, reaps what is left, and reports an application that failed."""
    server = getattr(request, "server", None)
    if server is None:
        return
    details = server.connections.get(request)
    if details is None or "disconnected" not in details:
        return
    instance = details.get("application_instance")
    if instance is not None and not (instance.done() and (instance.cancelled() or instance.exception() is None)):
        return
    del server.connections[request]


def _finished_requests_let_go(server_class: Any) -> None:
    """A request let go (``_let_go_if_done``) may still say that it disconnected: nothing is left to mark."""
    protocol_disconnected = server_class.protocol_disconnected

    def protocol_disconnected_if_kept(self: Any, protocol: Any) -> None:
        if protocol in self.connections:
            protocol_disconnected(self, protocol)

    server_class.protocol_disconnected = protocol_disconnected_if_kept


def _bound_send_buffer(transport: Any) -> None:
    if not SOCKET_SEND_BUFFER_BYTES:
        return
    try:
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER_BYTES)
    except (AttributeError, OSError):
        pass  # not a TCP socket (a test transport, a unix socket): nothing to bound


class _Closed:
    """What a refused request's content is: nothing to read, nothing to write."""

    closed = True

    def write(self, data: bytes) -> None:
        pass

    def seek(self, *args: Any) -> None:
        pass

    def read(self, *args: Any) -> bytes:
        return b""

    def close(self) -> None:
        pass


CLOSED_CONTENT = _Closed()  # it holds nothing, so every request can share it


def _flow_controlled(handle_reply: Any) -> Any:
    async def handle_reply_waiting(self: Any, protocol: Any, message: dict[str, Any]) -> None:
        await handle_reply(self, protocol, message)
        # Checked here first: a stream's sends nearly always find the buffer empty (writes go out at
        # once), and a coroutine per token to learn that cost about 4% of a stream's CPU.
        if (message.get("more_body") or message.get("type", "").startswith("websocket.")) and buffered_bytes(
            getattr(protocol, "transport", None)
        ) > HIGH_WATER_BYTES:
            await drained(protocol)

    handle_reply_waiting.switchyard_flow_control = True  # type: ignore[attr-defined]
    return handle_reply_waiting

"""HTTP for the adapters: pooled clients per event loop, the call's time limits, transport errors.

Transport: aiohttp's client, called directly. Measured on the development machine (one aiohttp
server, 64 concurrent POSTs of a small JSON reply, client and server sharing two busy cores):
httpx's own pool ~90 requests/s, httpx over the aiohttp transport (``httpx_aiohttp``) ~1,300, bare
aiohttp ~2,700; per call, in client CPU time (sequential calls), ``AsyncClient.post`` over the
aiohttp transport ~650 µs, a prepared ``httpx.Request`` sent straight to that transport ~500 µs,
bare aiohttp ~300 µs. The adapters first kept httpx's interface over the aiohttp transport; in the
pinned streaming benchmark's profile (docs/benchmarks.md, "Streaming at the floor") building
httpx's request and response around aiohttp's was then the largest piece of a stream's setup
that was ours, so the adapters now speak aiohttp: one request object, one response object.

Pooling: one ``aiohttp.ClientSession`` per adapter per running event loop. A session
belongs to the loop it was opened on, and RQ workers run each job in a fresh loop
(``asyncio.run``), so sessions are keyed by loop (weakly) and each is closed when its loop
shuts down: a tiny async generator per session is registered with the loop, and
``loop.shutdown_asyncgens()`` (which ``asyncio.run`` and asgiref call) finalises it.

Time limits (``CallTimeout``): ``connect`` is the socket connect (and pool wait) limit;
``first_token`` bounds the wait for the response headers and, for streams, the first token;
``idle`` bounds each gap between stream reads; ``total`` the whole call. Whole replies run under
one ``asyncio.timeout``; streams cannot (a timeout scope must not stay open across a
generator's ``yield``), so every read of a stream gets a deadline of its own: the earlier of the
total deadline and the first-token (before any token) or idle (after) deadline, kept by one
timer per stream rather than a timer per read (``SseStream``). Streams set no transport read
timeout: aiohttp would re-arm a timer of its own on every packet, and that timer already
bounds every read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
import ssl
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import certifi
import orjson
from yarl import URL

from orchestration.providers.base import CallTimeout, Provider, ProviderConfig
from orchestration.providers.eager import start_request_writes_eagerly
from orchestration.providers.errors import status_error
from orchestration.providers.sse import SseEvent, SseParser
from orchestration.types import ErrorKind, ProviderError

# A gateway holds a connection for the whole of each generation, so concurrent calls to one
# provider reach the thousands: the pool must not be what makes them wait.
POOL_CONNECTIONS = 2000
KEEPALIVE_S = 30.0
USER_AGENT = "Switchyard"
# After a stream's last event the end of the body is normally already in the socket buffer.
DRAIN_S = 1.0

TRANSPORT_ERRORS = (aiohttp.ClientError, OSError)

# ASCII output: text from clients may hold lone surrogates, which cannot be encoded as UTF-8.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def json_bytes(payload: Any) -> bytes:
    """``payload`` as a request body. orjson writes it in a ninth of the standard encoder's time
    (every call writes one, the whole conversation); what orjson refuses (a lone surrogate in a
    client's text, an integer past 64 bits) is written by the standard encoder, as ASCII."""
    try:
        return orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return _encode(payload).encode("ascii")


def json_parsed(body: bytes, provider: str) -> Any:
    """``body`` decoded as JSON; anything else is a ``MALFORMED`` answer. (orjson: a streamed
    reply decodes one of these per token, at a quarter of the standard decoder's cost.)"""
    try:
        return orjson.loads(body)
    except ValueError as error:
        raise ProviderError(
            ErrorKind.MALFORMED, f"{provider} answered with invalid JSON: {error}", provider=provider
        ) from error


def transport_error(error: BaseException, provider: str) -> ProviderError:
    """A failure below HTTP: a timeout, or a connection that could not open or broke."""
    detail = f"{type(error).__name__}: {error}".rstrip(": ")
    if isinstance(error, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
        return ProviderError(ErrorKind.TIMEOUT, f"{provider} timed out ({detail})", provider=provider)
    return ProviderError(ErrorKind.CONNECTION, f"connection to {provider} failed ({detail})", provider=provider)


def timeout_error(provider: str, limit: str, seconds: float) -> ProviderError:
    return ProviderError(
        ErrorKind.TIMEOUT, f"{provider} exceeded the {limit} limit of {seconds:.3g} s", provider=provider
    )


@functools.lru_cache(maxsize=1024)
def url_of(url: str) -> URL:
    """Parsed once: an adapter calls the same few URLs over and over."""
    return URL(url)


@functools.lru_cache(maxsize=256)
def _client_timeout(connect: float, read: float | None) -> aiohttp.ClientTimeout:
    """aiohttp's limits for a call: ``connect`` bounds the pool wait and the socket connect,
    ``read`` each wait for data (None for streams, whose reads the watchdog bounds)."""
    return aiohttp.ClientTimeout(total=None, connect=connect, sock_connect=connect, sock_read=read)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The roots the adapters trust, as httpx's clients do: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR``
    when set, else certifi's bundle (a slim image may have no system roots). Built once per process,
    at its start (``adapters_preload``)."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    return ssl.create_default_context(cafile=certifi.where())


@dataclass(slots=True)
class _LoopClient:
    client: aiohttp.ClientSession
    closer: Any  # the async generator whose finalisation closes ``client``


async def _close_with_loop(client: aiohttp.ClientSession) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await client.close()


# Close tasks started outside any caller's await: referenced until done so they are not collected.
_closing: set[asyncio.Future[Any] | concurrent.futures.Future[Any]] = set()


class LoopClients:
    """One ``aiohttp.ClientSession`` per running event loop, each closed when its loop shuts down.

    ``build`` makes the session (and its connection pool).
    """

    def __init__(self, build: Callable[[], aiohttp.ClientSession]) -> None:
        self._build = build
        self._entries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = weakref.WeakKeyDictionary()

    async def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        entry = self._entries.get(loop)
        if entry is None:
            client = self._build()
            entry = self._entries[loop] = _LoopClient(client, _close_with_loop(client))
            await anext(entry.closer)  # registers the generator with this loop's shutdown
        return entry.client

    def __len__(self) -> int:
        return len(self._entries)

    async def aclose(self) -> None:
        """Close every client: this loop's now, other live loops' on their own loop."""
        current = asyncio.get_running_loop()
        entry = self._entries.pop(current, None)
        self.close_soon()
        if entry is not None:
            await entry.closer.aclose()

    def close_soon(self) -> None:
        """Schedule every client's closing on its own loop (callable without a running loop)."""
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        entries = list(self._entries.items())
        self._entries.clear()
        for loop, entry in entries:
            if loop.is_closed():
                continue
            closing: asyncio.Future[Any] | concurrent.futures.Future[Any]
            if loop is current:
                closing = loop.create_task(entry.closer.aclose())
            elif loop.is_running():
                closing = asyncio.run_coroutine_threadsafe(entry.closer.aclose(), loop)
            else:
                continue  # a loop that is not running closes its clients when it shuts down
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)


class HttpProvider(Provider):
    """An adapter that speaks JSON over HTTP: pooled clients, time limits and error mapping.

    Subclasses give their authentication headers (``auth_headers``) and read their service's
    error bodies (``error_from_response``); they call ``post_json`` for whole replies and
    ``open_stream`` for Server-Sent Events.

    Calls go to the loop's pooled session with the adapter's headers, no redirects and no
    cookies kept (a provider call uses neither).

    Every read of a stream's body is bounded by the call's limits (``SseStream``), so
    ``bounds_stream_reads`` holds for every adapter built on this class.
    """

    bounds_stream_reads = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json", **self.auth_headers()}
        self.headers = {**headers, **config.extra_headers}
        self.clients = LoopClients(self._client)
        self._in_flight = 0
        self._retired = False

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate every request (e.g. ``Authorization``)."""
        return {}

    def error_from_response(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        """The ``ProviderError`` for an HTTP error answer of this service (overridden to read
        each service's error body; this reads it as plain text)."""
        text = body[:1000].decode("utf-8", "replace").strip()
        return status_error(status, text, headers=headers, provider=self.config.name)

    def _client(self) -> aiohttp.ClientSession:
        # Called on the loop the session is for: its requests leave as they are made.
        start_request_writes_eagerly(asyncio.get_running_loop())
        connector = aiohttp.TCPConnector(limit=POOL_CONNECTIONS, keepalive_timeout=KEEPALIVE_S, ssl=tls_context())
        # No cookie jar: a provider's cookies must not ride along on the next call, whoever made it.
        return aiohttp.ClientSession(connector=connector, headers=self.headers, cookie_jar=aiohttp.DummyCookieJar())

    async def _post(
        self, url: str, payload: Any, timeout: CallTimeout, *, read: float | None
    ) -> aiohttp.ClientResponse:
        session = await self.clients.get()
        return await session.request(
            "POST",
            url_of(url),
            data=json_bytes(payload),
            allow_redirects=False,
            timeout=_client_timeout(timeout.connect, read),
        )

    async def post_json(self, url: str, payload: Any, timeout: CallTimeout) -> Any:
        """POST ``payload`` and return the decoded JSON reply, within ``timeout``."""
        name = self.config.name
        self._in_flight += 1
        try:
            try:
                async with asyncio.timeout(timeout.total):
                    response = await self._post(url, payload, timeout, read=timeout.first_token)
                    try:
                        body = await response.read()
                    finally:
                        response.release()
            except TimeoutError as error:
                if isinstance(error, aiohttp.ClientError):  # aiohttp's own connect or read limit
                    raise transport_error(error, name) from error
                raise timeout_error(name, "total", timeout.total) from error
            except TRANSPORT_ERRORS as error:
                raise transport_error(error, name) from error
            if response.status >= 400:
                raise self.error_from_response(response.status, response.headers, body)
            return json_parsed(body, name)
        finally:
            self._call_finished()

    @asynccontextmanager
    async def open_stream(self, url: str, payload: Any, timeout: CallTimeout) -> AsyncIterator[SseStream]:
        """POST ``payload`` and give the reply's Server-Sent Events; leaving closes the connection."""
        name = self.config.name
        started = asyncio.get_running_loop().time()
        response: aiohttp.ClientResponse | None = None
        self._in_flight += 1
        try:
            start_limit = min(timeout.total, timeout.first_token)
            try:
                async with asyncio.timeout(start_limit):
                    response = await self._post(url, payload, timeout, read=None)
                    # Sent. Held here, the request's messages (a dictionary each) would last as
                    # long as the stream, in memory and in every collection's walk.
                    del payload
                    if response.status >= 400:
                        body = await response.read()
                        raise self.error_from_response(response.status, response.headers, body)
            except TimeoutError as error:
                if isinstance(error, aiohttp.ClientError):  # aiohttp's own connect limit
                    raise transport_error(error, name) from error
                limit = "total" if timeout.total <= timeout.first_token else "first-token"
                raise timeout_error(name, limit, start_limit) from error
            except TRANSPORT_ERRORS as error:
                raise transport_error(error, name) from error
            stream = SseStream(response, timeout, started, name)
            try:
                yield stream
            finally:
                stream.close()
        finally:
            if response is not None:
                # Back to the pool when the body was read to its end; closed otherwise.
                response.release()
            self._call_finished()

    def _call_finished(self) -> None:
        self._in_flight -= 1
        if self._retired and not self._in_flight:
            self.clients.close_soon()

    def retire(self) -> None:
        """This adapter was replaced (its provider's settings changed): close its pools once
        the calls still in flight have finished."""
        self._retired = True
        if not self._in_flight:
            self.clients.close_soon()

    async def aclose(self) -> None:
        await self.clients.aclose()


class SseStream:
    """The events of one streamed reply, each read under the call's deadlines.

    Call ``token_arrived`` once the first token (or any sign of generation, such as reasoning)
    has been read: from then on the idle limit applies between reads instead of first-token.
    """

    __slots__ = (
        "_at_end",
        "_bytes",
        "_content",
        "_deadline",
        "_eof",
        "_expired",
        "_first_at",
        "_limits",
        "_loop",
        "_parser",
        "_pending",
        "_provider",
        "_reading",
        "_timer",
        "_token",
        "_total_at",
    )

    def __init__(self, response: aiohttp.ClientResponse, timeout: CallTimeout, started: float, provider: str) -> None:
        # What reads the body's next bytes (b"" at its end), already decoded when the service
        # compressed it: one read per token, straight from aiohttp's stream.
        self._bytes: Callable[[], Awaitable[bytes]] = response.content.readany
        # Whether the whole body has been read: nearly always so by a stream's last event, whose
        # bytes arrive with the body's end.
        self._at_end: Callable[[], bool] = response.content.at_eof
        # A read's time limit: one timer for the stream, re-armed only when it fires before the
        # deadline of the read then waiting. Past it, the read is failed through the body's own
        # stream (``set_exception``), not by cancelling the reading task: a read costs no task
        # lookup and no cancellation bookkeeping, and a cancellation from elsewhere stays its own.
        self._content = response.content
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._reading = False
        self._expired = False
        self._parser = SseParser()
        self._pending: deque[SseEvent] = deque()
        self._eof = False
        self._token = False
        self._total_at = started + timeout.total
        self._first_at = started + timeout.first_token
        self._limits = timeout
        self._provider = provider

    def token_arrived(self) -> None:
        self._token = True

    async def batch(self) -> list[SseEvent]:
        """The events the next read of the body completes, at least one (none at the body's end):
        the same events as iterating the stream, without a step through it per event."""
        if self._pending:
            events = list(self._pending)
            self._pending.clear()
            return events
        while not self._eof:
            if events := await self._read():
                return events
        return []

    def __aiter__(self) -> SseStream:
        return self

    async def __anext__(self) -> SseEvent:
        while not self._pending:
            if self._eof:
                raise StopAsyncIteration
            self._pending.extend(await self._read())
        return self._pending.popleft()

    async def _read(self) -> list[SseEvent]:
        """The events the next read completes (at the body's end: those still pending)."""
        now = self._loop.time()
        limit_at = now + self._limits.idle if self._token else self._first_at
        deadline = min(self._total_at, limit_at)
        if now >= deadline:
            raise self._timeout(deadline)
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._expire)
        self._reading = True
        try:
            chunk = await self._bytes()
        except TimeoutError as error:  # ours (``_expire``), or aiohttp's own
            raise self._timeout(deadline) from error
        except TRANSPORT_ERRORS as error:
            raise transport_error(error, self._provider) from error
        finally:
            self._reading = False
        if self._expired:
            # Its bytes came as the timer failed it (a late loop ran both at once): the read is
            # past its deadline all the same, and the body's stream is failed for the next one.
            raise self._timeout(deadline)
        if not chunk:
            self._eof = True
            return self._parser.close()
        return self._parser.feed(chunk)

    async def drain(self) -> None:
        """Read the rest of the body after the service's last event, so that the connection
        goes back to the pool instead of being closed. Gives up (the connection is then
        closed) after ``DRAIN_S`` or at any error: the reply is already complete."""
        if self._eof or self._at_end():
            self._eof = True
            return
        deadline = min(self._total_at, asyncio.get_running_loop().time() + DRAIN_S)
        try:
            async with asyncio.timeout_at(deadline):
                while await self._bytes():
                    pass
        except (TimeoutError, *TRANSPORT_ERRORS):
            return
        self._eof = True

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if not self._reading:
            return  # no read is waiting: the next one arms the timer again
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._expire)
            return
        self._expired = True
        self._content.set_exception(TimeoutError())

    def _timeout(self, deadline: float) -> ProviderError:
        if deadline >= self._total_at:
            return timeout_error(self._provider, "total", self._limits.total)
        if self._token:
            return timeout_error(self._provider, "idle", self._limits.idle)
        return timeout_error(self._provider, "first-token", self._limits.first_token)

"""``GET /api/v1/messages/{id}/stream``: a reply as Server-Sent Events, relayed from its Redis Stream.

The consumer only relays; the reply is generated elsewhere (``chat.replies``), maybe in another
process. Its relay loop runs as a task of its own, so the consumer keeps receiving
``http.disconnect`` while it streams and stops the relay the moment the client goes.

It is a raw ASGI application, not a Channels consumer: Channels' ``AsyncHttpConsumer`` started a
task and an ``asyncio.wait`` for every message it received, looked up a channel layer, and passed
every send (one per relayed batch of tokens) through two more calls. The access stack in front
of it (``project.edge.websocket.access_stack``) is plain ASGI middleware and stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import parse_qs

from redis.exceptions import RedisError

from chat import streams
from chat.apis import INTERNAL_ERROR
from chat.models import Message
from chat.selectors import one_or_none
from chat.services import reply_finish_orphan, terminal_event
from chat.streams import ReplyEvent
from orchestration.access.admission import Caller
from orchestration.access.keys import REFUSALS
from orchestration.access.revocation import access_watch
from orchestration.database import database_call
from orchestration.errors import error_body
from orchestration.requestids import request_id_from
from orchestration.sse import PING, STREAM_HEADERS, event_id_from, sse_retry

logger = logging.getLogger(__name__)

# The browser waits this long before reconnecting a dropped stream.
RETRY_MS = 2000
# Well under the 60 s idle timeout of common proxies and load balancers (docs/architecture.md, decision 4).
PING_S = 15.0
# How long one read waits for events; between reads the relay renews its attachment.
READ_BLOCK_S = 5.0


class StreamRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class MessageStreamConsumer:
    """One client's ``GET`` of a reply's stream (``as_asgi()`` is the route's ASGI application)."""

    def __init__(self, scope: dict[str, Any], send: Any) -> None:
        self.scope = scope
        self._send = send
        self.relay: asyncio.Task[None] | None = None
        self.request_id = ""
        self.request_headers: dict[str, str] = {}
        self.sent_through = 0  # the id of the last event the client was sent
        self.closing: asyncio.Task[None] | None = None
        self.answered = False  # the response's status line is out

    @classmethod
    def as_asgi(cls) -> Callable[[dict[str, Any], Any, Any], Awaitable[None]]:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await cls(scope, send).serve(receive)

        return app

    async def serve(self, receive: Any) -> None:
        """Wait for the whole request, relay in a task of its own, and stop it when the client
        goes (the server also says ``http.disconnect`` once the response has ended)."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message["type"] == "http.request" and not message.get("more_body"):
                break
        self.request_headers = self._headers()
        self.request_id = request_id_from(self.request_headers)
        self.relay = asyncio.create_task(self.relay_run())
        try:
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            if not self.relay.done():
                self.relay.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.relay

    # --- sending ----------------------------------------------------------------------------

    async def send_headers(self, *, status: int = 200, headers: list[tuple[bytes, bytes]]) -> None:
        self.answered = True
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        await self._send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def send_response(self, status: int, body: bytes, *, headers: list[tuple[bytes, bytes]]) -> None:
        await self.send_headers(status=status, headers=headers)
        await self.send_body(body)

    # --- the relay ------------------------------------------------------------------------

    async def relay_run(self) -> None:
        try:
            await self._relay_run()
        except asyncio.CancelledError:
            raise
        except Exception:
            # Never leave a client hanging on a response that will not go on (a body without its
            # status line is dropped by the server: the client waited for an answer until it gave up).
            logger.exception("stream of %s failed", self.scope.get("path"))
            with contextlib.suppress(Exception):
                if self.answered:
                    await self.send_body(b"", more_body=False)
                else:
                    await self._refuse(StreamRefused(500, *INTERNAL_ERROR))

    async def _relay_run(self) -> None:
        try:
            message_id, saved, after = await self._admit()
        except StreamRefused as refused:
            await self._refuse(refused)
            return
        if saved is not None and saved.is_final and after >= len(saved.content) + 1:
            await self.send_response(204, b"", headers=self._base_headers())  # EventSource stops here
            return
        await self.send_headers(status=200, headers=self._stream_headers())
        await self.send_body(sse_retry(RETRY_MS), more_body=True)
        try:
            await self._relay(message_id, saved, after)
        except RedisError as error:
            logger.warning("stream of message %s: Redis failed: %s", message_id, error)
            unavailable = "The reply's stream cannot be read right now; reconnect to resume it."
            failed = ReplyEvent(after + 1, streams.ERROR, {"code": "stream_unavailable", "message": unavailable})
            await self.send_body(failed.sse())

    async def _relay(self, message_id: int, saved: Message | None, after: int) -> None:
        """Relay the reply from its stream; ``saved``: its row, None when it streams here."""
        if saved is not None and saved.is_final and not await streams.stream_exists(message_id):
            await self._replay_saved(saved, after)
            return
        relay_id = uuid.uuid4().hex
        hub = streams.stream_hub()
        subscription = await hub.subscribe(message_id, after)
        # A reply produced by this process knows its local followers itself (the sweeper counts
        # them); only a relay of another process's reply says in Redis that it watches.
        attached = not subscription.local
        if attached:
            await streams.relay_attach(message_id, relay_id)
        caller: Caller = self.scope["caller"]
        watch = access_watch(user_id=caller.user_id, api_key_id=caller.api_key_id, on_lost=self._access_lost)
        ended = False
        try:
            ended = await self._follow(message_id, subscription, relay_id)
        finally:
            watch.close()
            hub.unsubscribe(subscription)
            if attached and not ended:  # after the end nobody reads attachments: they expire
                with contextlib.suppress(RedisError, asyncio.CancelledError):
                    await asyncio.shield(streams.relay_detach(message_id, relay_id))

    async def _follow(self, message_id: int, subscription: streams.Subscription, relay_id: str) -> bool:
        """Relay the reply's events until its end (True) or its producer is found lost (False)."""
        last_write = last_attach = time.monotonic()
        # Wait no longer than half the time a silent producer is trusted, so a dead one is noticed soon.
        block_s = min(READ_BLOCK_S, streams.producer_ttl_s() / 2)
        while True:
            events = await subscription.next(block_s)
            now = time.monotonic()
            if now - last_attach >= block_s and not subscription.local:
                await streams.relay_attach(message_id, relay_id)
                last_attach = now
            if events:
                ended = events[-1].is_terminal
                await self.send_body(b"".join(event.sse() for event in events), more_body=not ended)
                self.sent_through = events[-1].id
                last_write = now
                if ended:
                    return True
                continue
            if not await streams.producer_alive(message_id) and await self._settle_lost(message_id, subscription.after):
                return False
            if now - last_write >= PING_S:
                await self.send_body(PING, more_body=True)
                last_write = now

    async def _settle_lost(self, message_id: int, after: int) -> bool:
        """The producer is gone: end the reply as failed. True when the response was ended here."""
        await reply_finish_orphan(message_id, status=Message.Status.FAILED, code="producer_lost")
        if await streams.stream_exists(message_id):
            # Its end is in the stream, yet this relay was handed nothing for a whole read: read
            # the rest at once rather than trust the hub to hand it over (a follower must never
            # wait forever on a reply that has ended).
            rest = await streams.events_after(message_id, after)
            if not rest and await streams.ended_within(message_id, after):
                # The client has (or says it has) the whole reply, its end included: nothing is
                # left to send, and waiting for more would never end.
                await self.send_body(b"", more_body=False)
                return True
            if not rest or not rest[-1].is_terminal:
                return False  # the end is not written yet: the next read relays it
            await self.send_body(b"".join(event.sse() for event in rest))
            self.sent_through = rest[-1].id
            return True
        message = await _db(Message.objects.filter(pk=message_id).first)()
        if message is None:
            gone = ReplyEvent(after + 1, streams.ERROR, {"code": "message_deleted", "message": "It was deleted."})
            await self.send_body(gone.sse())
        else:
            await self._replay_saved(message, after)
        return True

    async def _replay_saved(self, message: Message, after: int) -> None:
        """The stream expired: the saved message answers, as one token event and its end."""
        rest = message.content[after:]
        body = b""
        if rest:
            body += ReplyEvent(len(message.content), streams.TOKEN, {"delta": rest}).sse()
        body += terminal_event(message).sse()
        await self.send_body(body)

    # --- admission ------------------------------------------------------------------------

    def _access_lost(self, code: str) -> None:
        """The stream's key or account may no longer be used: end the stream with an ``error`` event."""
        if self.closing is None:
            self.closing = asyncio.get_running_loop().create_task(self._end_for(code))

    async def _end_for(self, code: str) -> None:
        relay = self.relay
        if relay is not None and not relay.done():
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        lost = ReplyEvent(self.sent_through, streams.ERROR, {"code": code, "message": REFUSALS[code]})
        with contextlib.suppress(Exception):
            await self.send_body(lost.sse())

    async def _admit(self) -> tuple[int, Message | None, int]:
        """(the reply's id, its saved row, the id of the last event the client has). The row is
        None when its producer runs here: it streams, and it is this caller's (no database read,
        and no model instance: building one cost a tenth of a stream's relay setup)."""
        if self.scope["method"] != "GET":
            raise StreamRefused(405, "method_not_allowed", "Use GET for a stream.")
        after = self._last_event_id()
        user_id = self._caller().user_id
        message_id = int(self.scope["url_route"]["kwargs"]["message_id"])
        if streams.stream_hub().streaming_here(message_id, user_id):
            return message_id, None, after
        message = await _db(_message_of)(user_id, message_id)
        if message is None:
            raise StreamRefused(404, "message_not_found", f"No message {message_id}.")
        return message_id, message, after

    def _caller(self) -> Caller:
        """Who asks, as the access stack found them (``project.edge.websocket.AccessMiddleware``)."""
        refusal = self.scope.get("access_refusal")
        if refusal is not None:
            raise StreamRefused(401, refusal.code, refusal.message)
        caller = self.scope.get("caller")
        if caller is None:
            raise StreamRefused(401, "not_authenticated", "Authentication credentials were not provided.")
        return cast(Caller, caller)

    def _last_event_id(self) -> int:
        raw = self.request_headers.get("Last-Event-ID", "")
        if not raw:
            query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
            raw = (query.get("last_event_id") or [""])[0]
        if not raw:
            return 0
        after = event_id_from(raw)  # an event id is a length in characters
        if after is None:
            raise StreamRefused(400, "invalid_last_event_id", "Last-Event-ID must be an event id from this stream.")
        return after

    # --- HTTP plumbing --------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        """The two headers the relay reads, by the names it reads them with."""
        headers = {}
        for raw_name, raw_value in self.scope.get("headers", ()):
            name = _READ_HEADERS.get(raw_name.lower())
            if name is not None:
                headers[name] = raw_value.decode("latin-1")
        return headers

    def _base_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"X-Request-ID", self.request_id.encode()), (b"Cache-Control", b"no-cache")]

    def _stream_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"X-Request-ID", self.request_id.encode()), *STREAM_HEADERS]

    async def _refuse(self, refused: StreamRefused) -> None:
        body = json.dumps(error_body(refused.status, refused.code, refused.message, self.request_id)).encode()
        headers = [*self._base_headers(), (b"Content-Type", b"application/json")]
        if refused.status == 401:
            headers.append((b"WWW-Authenticate", b'Bearer realm="switchyard"'))
        if refused.status == 405:
            headers.append((b"Allow", b"GET"))
        await self.send_response(refused.status, body, headers=headers)


_READ_HEADERS = {b"x-request-id": "X-Request-ID", b"last-event-id": "Last-Event-ID"}


def _db(function: Any) -> Any:
    """Run ORM work in the default thread pool, not the one shared thread: clients must not queue."""
    return database_call(function)


def _message_of(user_id: int, message_id: int) -> Message | None:
    return one_or_none(Message.objects.of_owner(user_id).filter(pk=message_id, role=Message.Role.ASSISTANT))

"""Graceful shutdown of a web process under daphne: SIGTERM drains it, then stops it.

Left to itself, daphne stops at SIGTERM at once (Twisted's handler stops the reactor): every
open connection's application is cancelled, and the chat replies this process generates die
with it, to be declared lost by their relays seconds later. Instead, SIGTERM here:

1. stops listening and closes idle keep-alive connections (busy ones close after their
   response), so the proxy sends every new request to the other web processes;
2. waits, at most ``SWITCHYARD_DRAIN_S`` seconds, until the replies generated here have ended
   and no request is in flight except resumable streams (chat replies, task events), whose
   clients keep reading here or resume elsewhere from Redis;
3. ends the replies still running as failed (``producer_lost``) at once, rather than after the
   relays' producer-lost timeout, and stops the server: daphne closes what is left, and the
   clients of resumable streams reconnect through the proxy with ``Last-Event-ID``.

A second SIGTERM, or SIGINT, stops at once. WebSocket sessions are not waited for (a console
stays connected for hours): they close at the end, which cancels an interactive task, as
closing always does. Under any server but daphne this module does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
from typing import Any, cast

from django.conf import settings

logger = logging.getLogger(__name__)

# The streams a client resumes on another process (nginx's unbuffered SSE location).
RESUMABLE = re.compile(rb"^/api/v1/(messages/[^/]+/stream|tasks/[^/]+/events)$")
POLL_S = 0.1
# How long cancelled replies get to let go of their upstream calls before the loop stops.
CANCEL_WAIT_S = 2.0


def drain_on_sigterm() -> None:
    """Make SIGTERM drain this process before it stops (called once, by the ASGI module)."""
    if "twisted.internet.reactor" not in sys.modules:
        return  # not under daphne: the server in charge decides what SIGTERM does
    from twisted.internet import reactor

    # Twisted installs its own SIGTERM handler as the reactor starts; this replaces it after.
    reactor.callWhenRunning(_install, reactor)


def _install(reactor: Any) -> None:
    drain = Drain(reactor)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(drain.begin))


class Drain:
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        if self.task is not None:
            logger.warning("SIGTERM again: stopping now")
            self.stop()
            return
        servers = listeners_close(self.reactor)
        connections_wind_down(self.reactor)
        limit = float(cast(float, settings.SWITCHYARD["DRAIN_S"]))
        logger.info("SIGTERM: no longer accepting; draining for at most %g s", limit)
        self.task = asyncio.get_running_loop().create_task(self.run(servers, limit))

    async def run(self, servers: list[Any], limit: float) -> None:
        try:
            await work_drained(servers, limit)
            await replies_end()
        finally:
            self.stop()

    def stop(self) -> None:
        if self.reactor.running:
            self.reactor.stop()


def listeners_close(reactor: Any) -> list[Any]:
    """Stop accepting connections; return the daphne servers that were listening."""
    from twisted.internet.interfaces import IListeningPort

    servers = []
    for reader in list(reactor.getReaders()):
        if IListeningPort.providedBy(reader):
            server = getattr(getattr(reader, "factory", None), "server", None)
            if server is not None and server not in servers:
                servers.append(server)
            reader.stopListening()
    return servers


def connections_wind_down(reactor: Any) -> None:
    """Close idle keep-alive connections now, and busy ones after their current response."""
    from twisted.web.http import HTTPChannel

    for reader in list(reactor.getReaders()):
        channel = getattr(getattr(reader, "protocol", None), "_channel", None)
        if not isinstance(channel, HTTPChannel):
            continue  # a WebSocket, or the reactor's own pipes
        if channel.requests:
            channel.persistent = False
        else:
            channel.loseConnection()


def requests_in_flight(servers: list[Any]) -> int:
    """Requests still being answered, not counting resumable streams and WebSockets."""
    from daphne.http_protocol import WebRequest

    count = 0
    for server in servers:
        for protocol, details in list(server.connections.items()):
            application = details.get("application_instance")
            if not isinstance(protocol, WebRequest) or details.get("disconnected") or application is None:
                continue
            if not application.done() and not RESUMABLE.match(protocol.path or b""):
                count += 1
    return count


async def work_drained(servers: list[Any], limit: float) -> None:
    """Wait until this process generates no reply and answers no request, or ``limit`` passed."""
    from chat.replies import runner_for

    loop = asyncio.get_running_loop()
    runner = runner_for(loop)
    until = loop.time() + limit
    # Polled: neither chat's runner nor daphne's connection table says when it empties.
    while loop.time() < until and (runner.running or requests_in_flight(servers)):  # noqa: ASYNC110
        await asyncio.sleep(POLL_S)


async def replies_end() -> None:
    """End the replies still running as failed now: their clients need not wait to find out."""
    from chat.models import Message
    from chat.replies import runner_for
    from chat.services import reply_finish_orphan

    runner = runner_for(asyncio.get_running_loop())
    tasks = [running.task for running in runner.running.values()]
    for message_id in list(runner.running):
        logger.warning("reply %s: still running at the end of the drain; ended as failed", message_id)
        await reply_finish_orphan(message_id, status=Message.Status.FAILED, code="producer_lost")
        runner.cancel(message_id)
    if tasks:
        await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)

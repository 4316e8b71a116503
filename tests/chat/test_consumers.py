"""The stream consumer itself, driven as an ASGI application in the test's event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.testing import HttpCommunicator

from chat import streams
from chat.consumers import MessageStreamConsumer
from orchestration.access.admission import Caller
from orchestration.access.limits import Limits


def stream_app(message_id: int, user_id: int) -> Any:
    """The consumer with the scope the URL router and the access stack would give it."""
    consumer = MessageStreamConsumer.as_asgi()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        caller = Caller(user_id=user_id, limits=Limits(user_id=user_id))
        scope = {**scope, "caller": caller, "url_route": {"args": (), "kwargs": {"message_id": message_id}}}
        await consumer(scope, receive, send)

    return app


async def test_a_follower_handed_nothing_reads_the_end_another_process_wrote_once_the_producer_is_gone(
    settings: Any,
) -> None:
    # The reply is produced here, so its followers here are handed its events by its producer;
    # but its producer went quiet, its claim lapsed, and another process's relay ended it (the
    # ``producer_lost`` end, written straight to the stream). The follower must not wait on.
    settings.SWITCHYARD = {**settings.SWITCHYARD, "CHAT_PRODUCER_LOST_S": 0.4}
    hub = streams.stream_hub()
    hub.production_start(61, owner_id=7)
    communicator = HttpCommunicator(stream_app(61, 7), "GET", "/api/v1/messages/61/stream")
    events = streams.key(61, "events")
    client = streams.sync_client()
    client.xadd(events, {"e": streams.TOKEN, "d": '{"delta":"hi"}'}, id="0-2")
    client.xadd(events, {"e": streams.ERROR, "d": '{"code":"producer_lost","message":"Lost."}'}, id="0-3")
    try:
        response = await communicator.get_response(timeout=5)
    finally:
        hub.production_end(61)
    assert response["status"] == 200
    body = response["body"].decode()
    assert "id: 2\nevent: token" in body and body.rstrip().endswith('data: {"code":"producer_lost","message":"Lost."}')


def request_scope(message_id: int) -> dict[str, Any]:
    path = f"/api/v1/messages/{message_id}/stream"
    return {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}


async def test_a_client_gone_before_its_request_ended_is_sent_nothing() -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    received.put_nowait({"type": "http.request", "body": b"", "more_body": True})
    received.put_nowait({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(stream_app(71, 7)(request_scope(71), received.get, send), 5)
    assert sent == []


async def test_a_client_gone_mid_stream_stops_its_relay_and_leaves_its_reply() -> None:
    hub = streams.stream_hub()
    hub.production_start(72, owner_id=7)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    received.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    started = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            started.set()  # the status line and the retry hint are out: it follows the reply now

    try:
        app = asyncio.create_task(stream_app(72, 7)(request_scope(72), received.get, send))
        await asyncio.wait_for(started.wait(), 5)
        assert hub.local.get(72)
        received.put_nowait({"type": "http.disconnect"})
        await asyncio.wait_for(app, 5)
        assert not hub.local.get(72)  # its subscription ended with it
        assert hub.streaming_here(72, 7)  # the reply goes on for whoever comes back
    finally:
        hub.production_end(72)

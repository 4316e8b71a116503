"""The stream consumer itself, driven as an ASGI application in the test's event loop."""

from __future__ import annotations

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

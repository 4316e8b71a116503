"""Chat replies streamed by real server processes, over real HTTP, from the real simulator."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from chat.models import Message
from tests.chat.conftest import MODEL, WebFactory, api
from tests.chat.sse import read_stream, read_to_end

pytestmark = pytest.mark.live


def post_message(client: httpx.Client, content: str = "Tell me about streams.") -> dict[str, Any]:
    conversation = client.post("/api/v1/conversations", json={"model": MODEL})
    assert conversation.status_code == 201, conversation.text
    posted = client.post(f"/api/v1/conversations/{conversation.json()['id']}/messages", json={"content": content})
    assert posted.status_code == 201, posted.text
    return posted.json()


def saved(message_id: int, *, until_final: float = 10.0) -> Message:
    deadline = time.monotonic() + until_final
    message = Message.objects.get(pk=message_id)
    while message.status == Message.Status.STREAMING and time.monotonic() < deadline:
        time.sleep(0.05)
        message.refresh_from_db()
    return message


def test_a_streamed_reply_equals_the_saved_message(web: WebFactory, alice_key: str, simulator: Any) -> None:
    simulator.configure(MODEL, tokens_per_s=200)
    server = web()
    with api(server.url, alice_key) as client:
        posted = post_message(client)
        assert posted["assistant_message"]["status"] == "streaming"
        read = read_stream(client, posted["stream_url"])
    assert read.status == 200
    assert read.headers["content-type"].startswith("text/event-stream")
    assert read.headers["cache-control"] == "no-cache"
    assert read.headers["x-accel-buffering"] == "no"
    assert read.retry is not None
    assert all(event.id for event in read.events)
    assert read.end is not None and read.end.type == "done", read.events[-3:]
    message = saved(posted["assistant_message"]["id"])
    assert message.status == "complete"
    assert read.text == message.content and message.content
    done = read.end.data
    assert done["message_id"] == message.pk
    assert done["finish_reason"] == message.finish_reason
    assert done["usage"]["output_tokens"] == message.output_tokens > 0
    assert done["cost_usd"] == format(message.cost_usd.normalize(), "f")
    assert message.provider == "sim" and message.simulated


def test_a_dropped_stream_resumes_from_last_event_id_with_nothing_lost_or_repeated(
    web: WebFactory, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=40)
    server = web()
    with api(server.url, alice_key) as client:
        posted = post_message(client)
        first = read_stream(client, posted["stream_url"], stop_after_tokens=3)
        assert len(first.events) == 3 and first.end is None
        events = read_to_end(client, posted["stream_url"], first=first)
    message = saved(posted["assistant_message"]["id"])
    text = "".join(e.data["delta"] for e in events if e.type == "token")
    assert events[-1].type == "done"
    assert text == message.content
    assert len({e.id for e in events}) == len(events)

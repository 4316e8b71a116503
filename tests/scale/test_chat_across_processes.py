"""Chat replies across two web processes: resumed on the other one, and surviving a crash."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chat.models import Message
from tests.chat.sse import read_stream, read_to_end
from tests.scale.chat import conversation_start, joined, message_post, saved
from tests.scale.conftest import CHAT_MODEL, api
from tests.scale.fleet import Fleet

pytestmark = pytest.mark.scale

LONG_REPLY = " ".join(f"word{n}" for n in range(120))


def test_a_reply_started_on_one_process_resumes_on_the_other(fleet: Fleet, alice_key: str, simulator: Any) -> None:
    simulator.configure(CHAT_MODEL, tokens_per_s=30)
    first, second = fleet.webs
    with api(first.url, alice_key) as on_first, api(second.url, alice_key) as on_second:
        posted = message_post(on_first, conversation_start(on_first), "Tell me about load balancers.")
        head = read_stream(on_first, posted["stream_url"], stop_after_tokens=3)
        assert len(head.events) == 3 and head.end is None
        events = read_to_end(on_second, posted["stream_url"], first=head)
    message = saved(posted["assistant_message"]["id"])
    assert events[-1].type == "done", events[-3:]
    assert message.status == "complete"
    assert joined(events) == message.content and message.content
    assert len({e.id for e in events}) == len(events)


def test_a_killed_web_process_loses_no_saved_data_and_its_reply_ends_failed_through_the_other(
    fleet: Fleet, alice_key: str, simulator: Any
) -> None:
    simulator.configure(CHAT_MODEL, tokens_per_s=200)
    producer = fleet.webs[0]
    with api(fleet.proxy, alice_key) as proxy, api(producer.url, alice_key) as direct:
        conversation = conversation_start(proxy)
        earlier = message_post(proxy, conversation, "A first question.")
        assert read_to_end(proxy, earlier["stream_url"])[-1].type == "done"

        simulator.configure(CHAT_MODEL, tokens_per_s=8, reply=LONG_REPLY)
        posted = message_post(direct, conversation, "A second question.")
        head = read_stream(proxy, posted["stream_url"], stop_after_tokens=3)
        producer.kill()
        started = time.monotonic()
        events = read_to_end(proxy, posted["stream_url"], first=head)
        waited = time.monotonic() - started
        listed = proxy.get(f"/api/v1/conversations/{conversation}/messages")
        again = proxy.post(f"/api/v1/conversations/{conversation}/messages", json={"content": "Once more."})

    assert events[-1].type == "error" and events[-1].data["code"] == "producer_lost", events[-3:]
    assert waited < 10, waited
    message = saved(posted["assistant_message"]["id"])
    assert message.status == "failed" and message.error_code == "producer_lost"
    assert joined(events) == message.content and message.content
    assert 0 < len(message.content) < len(LONG_REPLY)
    assert listed.status_code == 200, listed.text
    rows = listed.json()["results"] if isinstance(listed.json(), dict) else listed.json()
    assert [(row["role"], row["status"]) for row in rows][:4] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "failed"),
    ]
    assert rows[1]["content"] == Message.objects.get(pk=earlier["assistant_message"]["id"]).content != ""
    assert again.status_code == 201, again.text

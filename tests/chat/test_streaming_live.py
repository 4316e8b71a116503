"""Chat replies streamed by real server processes, over real HTTP, from the real simulator."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from chat import streams
from chat.models import Message
from tests.chat.conftest import MODEL, WebFactory, api, fallback_add, model_row
from tests.chat.sse import StreamRead, parse, read_stream, read_to_end
from tests.support import ManagedProcess

pytestmark = pytest.mark.live


def post_message(client: httpx.Client, content: str = "Tell me about streams.") -> dict[str, Any]:
    conversation = client.post("/api/v1/conversations", json={"model": MODEL})
    assert conversation.status_code == 201, conversation.text
    posted = client.post(f"/api/v1/conversations/{conversation.json()['id']}/messages", json={"content": content})
    assert posted.status_code == 201, posted.text
    return posted.json()


def eventually(check: Any, within: float = 3.0) -> bool:
    """The simulator notices a closed connection when it next writes: give it that moment."""
    deadline = time.monotonic() + within
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(check())


def saved(message_id: int, *, until_final: float = 10.0) -> Message:
    deadline = time.monotonic() + until_final
    message = Message.objects.get(pk=message_id)
    while message.status == Message.Status.STREAMING and time.monotonic() < deadline:
        time.sleep(0.05)
        message.refresh_from_db()
    return message


def test_a_streamed_reply_equals_the_saved_message(shared_web: ManagedProcess, alice_key: str, simulator: Any) -> None:
    simulator.configure(MODEL, tokens_per_s=200)
    server = shared_web
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


def test_a_null_character_from_the_model_reaches_client_and_saved_reply_alike_as_u_fffd(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    # PostgreSQL cannot store U+0000: the reply was never saved and its stream never ended.
    simulator.configure(MODEL, tokens_per_s=200, reply="Nul\x00here and more words.")
    with api(shared_web.url, alice_key) as client:
        posted = post_message(client)
        read = read_stream(client, posted["stream_url"])
    assert read.end is not None and read.end.type == "done", read.events[-3:]
    message = saved(posted["assistant_message"]["id"])
    assert message.status == "complete"
    assert read.text == message.content == "Nul\ufffdhere and more words."


def test_a_dropped_stream_resumes_from_last_event_id_with_nothing_lost_or_repeated(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=40)
    server = shared_web
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


def test_a_reply_resumes_on_a_second_server_process(
    shared_web: ManagedProcess, web: WebFactory, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=40)
    first_server, second_server = shared_web, web()
    with api(first_server.url, alice_key) as first, api(second_server.url, alice_key) as second:
        posted = post_message(first)
        head = read_stream(first, posted["stream_url"], stop_after_tokens=4)
        events = read_to_end(second, posted["stream_url"], first=head)
    message = saved(posted["assistant_message"]["id"])
    assert events[-1].type == "done"
    assert "".join(e.data["delta"] for e in events if e.type == "token") == message.content


def test_a_finished_reply_replays_then_ends_and_past_its_end_there_is_nothing(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=0)
    server = shared_web
    with api(server.url, alice_key) as client:
        posted = post_message(client)
        whole = read_stream(client, posted["stream_url"])
        message = saved(posted["assistant_message"]["id"])
        middle = whole.events[len(whole.events) // 2]
        rest = read_stream(client, posted["stream_url"], last_event_id=middle.id)
        past_end = read_stream(client, posted["stream_url"], last_event_id=whole.last_id)
        query = client.get(f"{posted['stream_url']}?last_event_id={middle.id}").text
        superscript = client.get(f"{posted['stream_url']}?last_event_id=%C2%B2")  # "²": isdigit, yet no int
    assert superscript.status_code == 400 and superscript.json()["error"]["code"] == "invalid_last_event_id"
    assert whole.text == message.content
    head = "".join(e.data["delta"] for e in whole.events if e.type == "token" and int(e.id) <= int(middle.id))
    assert head + rest.text == message.content
    assert rest.events[-1].data == whole.events[-1].data
    assert past_end.status == 204
    assert query.endswith(rest.events[-1].data and query[query.rindex("id: ") :])


@pytest.mark.timeout(60)  # before the fix the stream pinged for ever
@pytest.mark.parametrize("last_event_id", ["100000", str(10**20), "9" * 5000])
def test_a_stream_resumed_past_the_replys_length_ends_when_the_reply_does(
    shared_web: ManagedProcess, alice_key: str, simulator: Any, last_event_id: str
) -> None:
    """A client that says it has more than the reply will hold is sent nothing, and its stream
    ends with the reply (it waited for ever; past 2**64 the stream failed on Redis's refusal; past
    the 4300 digits int() reads, the client got no answer at all)."""
    simulator.configure(MODEL, tokens_per_s=20)
    with api(shared_web.url, alice_key) as client:
        posted = post_message(client)
        beyond = read_stream(client, posted["stream_url"], last_event_id=last_event_id)
    assert beyond.status == 200 and beyond.events == [] and beyond.end is None
    assert saved(posted["assistant_message"]["id"]).status == "complete"


def test_the_upstream_call_is_cancelled_when_no_client_comes_back_within_the_grace_period(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=8, reply=" ".join(["word"] * 200))
    server = shared_web
    with api(server.url, alice_key) as client:
        posted = post_message(client)
        head = read_stream(client, posted["stream_url"], stop_after_tokens=2)
    message = saved(posted["assistant_message"]["id"], until_final=15)
    assert message.status == "cancelled"
    assert message.error_code == "client_gone"
    assert message.content.startswith(head.text) and len(message.content) < len(" ".join(["word"] * 200))
    assert eventually(lambda: simulator.stats(MODEL)["disconnects"] == 1)


def test_a_client_that_stays_keeps_its_reply_past_the_grace_period(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=10, reply=" ".join(["word"] * 50))
    server = shared_web
    with api(server.url, alice_key) as client:
        posted = post_message(client)
        read = read_stream(client, posted["stream_url"])
    assert read.end is not None and read.end.type == "done"
    assert saved(posted["assistant_message"]["id"]).status == "complete"


def test_cancel_stops_the_reply_at_once_and_keeps_the_partial_text(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=8, reply=" ".join(["word"] * 200))
    server = shared_web
    with api(server.url, alice_key) as client:
        posted = post_message(client)
        head = read_stream(client, posted["stream_url"], stop_after_tokens=2)
        started = time.monotonic()
        cancelled = client.post(f"/api/v1/messages/{posted['assistant_message']['id']}/cancel")
        took = time.monotonic() - started
        events = read_to_end(client, posted["stream_url"], first=head)
        again = client.post(f"/api/v1/messages/{posted['assistant_message']['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert took < 2.0
    message = saved(posted["assistant_message"]["id"])
    assert events[-1].type == "done" and events[-1].data["finish_reason"] == "cancelled"
    assert "".join(e.data["delta"] for e in events if e.type == "token") == message.content
    assert message.content.startswith(head.text)
    assert eventually(lambda: simulator.stats(MODEL)["disconnects"] == 1)
    assert again.status_code == 409


def test_an_upstream_failure_before_the_first_token_falls_back_unseen(
    web: WebFactory, alice_key: str, simulator: Any, chat_model: Any
) -> None:
    fallback_add(chat_model, model_row("chat-sim-backup", chat_model.provider))
    simulator.configure(MODEL, error_status=503)
    server = web()
    with api(server.url, alice_key) as client:
        posted = post_message(client)
        read = read_stream(client, posted["stream_url"])
    message = saved(posted["assistant_message"]["id"])
    assert [e.type for e in read.events].count("error") == 0
    assert read.end is not None and read.end.type == "done"
    assert message.status == "complete" and read.text == message.content
    assert message.model == "chat-sim-backup" and message.fallback_from == MODEL


def test_an_upstream_failure_after_the_first_token_ends_with_an_error_and_a_failed_message(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=50, drop_after_tokens=3)
    server = shared_web
    with api(server.url, alice_key) as client:
        posted = post_message(client)
        read = read_stream(client, posted["stream_url"])
    message = saved(posted["assistant_message"]["id"])
    assert read.end is not None and read.end.type == "error"
    assert read.end.data["code"] == "upstream_error" and read.end.data["message"]
    assert message.status == "failed" and message.error_code == "upstream_error"
    assert read.text == message.content and message.content


def test_a_killed_producer_does_not_leave_its_client_waiting(web: WebFactory, alice_key: str, simulator: Any) -> None:
    simulator.configure(MODEL, tokens_per_s=5, reply=" ".join(["word"] * 200))
    producer, survivor = web(SWITCHYARD_CHAT_PRODUCER_LOST_S="2"), web(SWITCHYARD_CHAT_PRODUCER_LOST_S="2")
    with api(producer.url, alice_key) as first, api(survivor.url, alice_key) as second:
        posted = post_message(first)
        head = read_stream(first, posted["stream_url"], stop_after_tokens=2)
        producer.kill()
        started = time.monotonic()
        events = read_to_end(second, posted["stream_url"], first=head)
        waited = time.monotonic() - started
        retry = second.post(
            f"/api/v1/conversations/{posted['user_message']['conversation']}/messages", json={"content": "again"}
        )
    message = saved(posted["assistant_message"]["id"])
    assert events[-1].type == "error" and events[-1].data["code"] == "producer_lost"
    assert waited < 12
    assert message.status == "failed" and message.error_code == "producer_lost"
    assert "".join(e.data["delta"] for e in events if e.type == "token") == message.content
    assert retry.status_code == 201


def test_deleting_the_conversation_stops_its_streaming_reply_and_ends_the_open_stream(
    shared_web: ManagedProcess, alice_key: str, simulator: Any
) -> None:
    simulator.configure(MODEL, tokens_per_s=8, reply=" ".join(["word"] * 200))
    with api(shared_web.url, alice_key) as client, api(shared_web.url, alice_key) as other:
        posted = post_message(client)
        headers = {"Accept": "text/event-stream"}
        with client.stream("GET", posted["stream_url"], headers=headers, timeout=30.0) as response:
            lines = response.iter_lines()
            read = StreamRead(response.status_code, response.headers)
            parse(lines, read, stop_after_tokens=2)
            conversation_id = posted["user_message"]["conversation"]
            assert other.delete(f"/api/v1/conversations/{conversation_id}").status_code == 204
            assert streams.reply_ended(posted["assistant_message"]["id"])  # nothing runs on after the answer
            started = time.monotonic()
            parse(lines, read)
            took = time.monotonic() - started
    assert read.end is not None and read.end.type == "error", read.events[-3:]
    assert read.end.data["code"] == "message_deleted" and read.end.data["message"]
    assert took < 2.0  # not the 25 s the rest of the reply would have taken
    assert eventually(lambda: simulator.stats(MODEL)["disconnects"] == 1)
    assert not Message.objects.filter(pk=posted["assistant_message"]["id"]).exists()

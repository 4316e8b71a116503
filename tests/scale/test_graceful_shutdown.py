"""SIGTERM on a web process (what docker stop and Kubernetes send): it stops accepting, lets the
replies it generates finish, and its stream clients resume on the other process, nothing lost."""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import pytest

from tests.chat.sse import StreamRead, parse, read_to_end
from tests.scale.chat import conversation_start, joined, message_post, saved
from tests.scale.conftest import CHAT_MODEL, api
from tests.scale.fleet import Fleet
from tests.support import ManagedProcess

pytestmark = pytest.mark.scale

# The fleet's web processes drain for this long (SWITCHYARD_DRAIN_S).
DRAIN_S = 5.0


def read_until_cut(client: httpx.Client, url: str, *, stop_after_tokens: int | None = None) -> StreamRead:
    """One connection of a stream; a connection the server drops ends the read, as in a browser."""
    with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        read = StreamRead(response.status_code, response.headers)
        try:
            parse(response.iter_lines(), read, stop_after_tokens)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            pass
    return read


def sigterm(web: ManagedProcess) -> None:
    assert web.process is not None
    web.process.send_signal(signal.SIGTERM)


def refusing(web: ManagedProcess) -> bool:
    try:
        httpx.get(f"{web.url}/healthz", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_sigterm_lets_the_reply_finish_and_its_client_resumes_on_the_other_process(
    fleet: Fleet, alice_key: str, simulator: Any
) -> None:
    simulator.configure(CHAT_MODEL, tokens_per_s=15, reply=" ".join(f"word{n}" for n in range(40)))
    stopping = fleet.webs[0]
    with api(stopping.url, alice_key) as direct, api(fleet.proxy, alice_key) as proxy:
        posted = message_post(direct, conversation_start(direct), "Explain graceful shutdown.")
        head = read_until_cut(direct, posted["stream_url"], stop_after_tokens=3)
        sigterm(stopping)
        wait_for(lambda: refusing(stopping), 3, "the stopping process to refuse connections")
        events = read_to_end(proxy, posted["stream_url"], first=head)
    message = saved(posted["assistant_message"]["id"])
    assert events[-1].type == "done", events[-3:]
    assert message.status == "complete"  # its producer ran on through the drain
    assert joined(events) == message.content
    assert len({e.id for e in events}) == len(events)
    assert stopping.process is not None and stopping.process.wait(timeout=DRAIN_S + 10) == 0


def test_sigterm_closes_streams_relayed_for_other_processes_and_their_clients_resume(
    fleet: Fleet, alice_key: str, simulator: Any
) -> None:
    simulator.configure(CHAT_MODEL, tokens_per_s=10, reply=" ".join(f"word{n}" for n in range(40)))
    stopping, producer = fleet.webs
    with api(producer.url, alice_key) as on_producer, api(stopping.url, alice_key) as direct:
        posted = message_post(on_producer, conversation_start(on_producer), "Explain load balancing.")
        # Reading from the stopping process in a thread would complicate nothing worth it: the
        # relay there has nothing of its own to finish, so SIGTERM closes it within the second.
        with direct.stream("GET", posted["stream_url"], headers={"Accept": "text/event-stream"}) as response:
            read = StreamRead(response.status_code, response.headers)
            lines = response.iter_lines()
            parse(lines, read, stop_after_tokens=2)
            sigterm(stopping)
            started = time.monotonic()
            try:
                parse(lines, read)
            except (httpx.RemoteProtocolError, httpx.ReadError):
                pass
            cut_after = time.monotonic() - started
    assert read.end is None and cut_after < 3, (read.events[-2:], cut_after)
    with api(fleet.proxy, alice_key) as proxy:
        events = read_to_end(proxy, posted["stream_url"], first=read)
    message = saved(posted["assistant_message"]["id"])
    assert events[-1].type == "done" and message.status == "complete"
    assert joined(events) == message.content
    assert len({e.id for e in events}) == len(events)
    assert stopping.process is not None and stopping.process.wait(timeout=10) == 0


def test_a_reply_longer_than_the_drain_ends_failed_at_once_and_nothing_hangs(
    fleet: Fleet, alice_key: str, simulator: Any
) -> None:
    long_reply = " ".join(f"word{n}" for n in range(200))
    simulator.configure(CHAT_MODEL, tokens_per_s=8, reply=long_reply)
    stopping, survivor = fleet.webs
    with api(stopping.url, alice_key) as direct, api(survivor.url, alice_key) as other:
        posted = message_post(direct, conversation_start(direct), "Tell me everything.")
        head = read_until_cut(other, posted["stream_url"], stop_after_tokens=2)
        sigterm(stopping)
        started = time.monotonic()
        events = read_to_end(other, posted["stream_url"], first=head)
        ended_after = time.monotonic() - started
    message = saved(posted["assistant_message"]["id"])
    assert events[-1].type == "error" and events[-1].data["code"] == "producer_lost", events[-3:]
    assert DRAIN_S - 1 < ended_after < DRAIN_S + 4, ended_after
    assert message.status == "failed" and joined(events) == message.content
    assert 0 < len(message.content) < len(long_reply)
    assert stopping.process is not None and stopping.process.wait(timeout=10) == 0

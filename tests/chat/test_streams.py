"""The Redis side of a reply: ordered ids, one terminal event, fencing, attachment, grace."""

from __future__ import annotations

import asyncio

import pytest

from chat import streams
from chat.replies import GraceWatch
from chat.services import Fenced, TokenWriter
from chat.streams import ReplyEvent


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_an_event_is_one_sse_block_with_its_id() -> None:
    event = ReplyEvent(12, "token", {"delta": "héllo\nworld"})
    assert event.sse() == 'id: 12\nevent: token\ndata: {"delta":"héllo\\nworld"}\n\n'.encode()


async def test_events_are_read_after_the_given_id_in_order() -> None:
    for offset, delta in ((5, "Hello"), (11, " world"), (12, "!")):
        assert await streams.event_append(1, ReplyEvent(offset, "token", {"delta": delta}))
    assert await streams.event_append(1, ReplyEvent(13, "done", {"finish_reason": "stop"}))
    hub = streams.stream_hub()
    late, early = await hub.subscribe(1, 13), await hub.subscribe(1, 5)
    after = await early.next(5.0)
    assert [(e.id, e.type) for e in after] == [(11, "token"), (12, "token"), (13, "done")]
    assert await late.next(0.05) == []
    hub.unsubscribe(late)
    hub.unsubscribe(early)


async def test_the_hub_hands_each_follower_what_arrives_on_its_stream_while_it_waits() -> None:
    hub = streams.stream_hub()
    first, second = await hub.subscribe(21, 0), await hub.subscribe(22, 0)
    waiting = asyncio.ensure_future(first.next(5.0))
    await asyncio.sleep(0.05)
    assert await streams.event_append(21, ReplyEvent(2, "token", {"delta": "hi"}))
    assert [e.data for e in await waiting] == [{"delta": "hi"}]
    assert await second.next(0.05) == []
    assert await streams.event_append(22, ReplyEvent(3, "token", {"delta": "yo!"}))
    assert [e.id for e in await second.next(5.0)] == [3]
    hub.unsubscribe(first)
    hub.unsubscribe(second)


async def test_nothing_follows_the_terminal_event() -> None:
    assert await streams.event_append(2, ReplyEvent(3, "token", {"delta": "abc"}))
    assert await streams.event_append(2, ReplyEvent(4, "error", {"code": "x", "message": ""}))
    assert not await streams.event_append(2, ReplyEvent(9, "token", {"delta": "late!"}))
    assert not await streams.event_append(2, ReplyEvent(10, "done", {}))
    assert [e.type for e in await streams.events_all(2)] == ["token", "error"]


async def test_a_closed_stream_refuses_tokens_but_takes_its_ending() -> None:
    assert await streams.event_append(3, ReplyEvent(1, "token", {"delta": "a"}))
    await streams.stream_close(3)
    assert not await streams.event_append(3, ReplyEvent(2, "token", {"delta": "b"}))
    assert await streams.event_append(3, ReplyEvent(2, "error", {"code": "producer_lost", "message": ""}))


async def test_an_out_of_order_event_is_refused() -> None:
    assert await streams.event_append(4, ReplyEvent(10, "token", {"delta": "0123456789"}))
    assert not await streams.event_append(4, ReplyEvent(10, "token", {"delta": "again"}))


async def test_a_finished_stream_expires_after_the_configured_time(redis_client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SWITCHYARD = {**settings.SWITCHYARD, "CHAT_STREAM_TTL_S": 42}
    await streams.event_append(5, ReplyEvent(1, "token", {"delta": "a"}))
    assert redis_client.ttl(streams.key(5, "events")) > 42
    await streams.event_append(5, ReplyEvent(2, "done", {}))
    assert 0 < redis_client.ttl(streams.key(5, "events")) <= 42


async def test_a_reply_is_watched_while_a_relay_is_attached() -> None:
    clock = FakeClock()
    await streams.relay_attach(6, "relay-a", clock)
    assert (await streams.replies_sweep([6, 7], clock))[6].watched
    assert not (await streams.replies_sweep([6, 7], clock))[7].watched
    clock.now += streams.ATTACHMENT_TTL_S + 1  # a relay that died without detaching
    assert not (await streams.replies_sweep([6], clock))[6].watched
    await streams.relay_attach(6, "relay-b", clock)
    await streams.relay_detach(6, "relay-b")
    assert not (await streams.replies_sweep([6], clock))[6].watched


async def test_the_sweep_renews_the_producer_heartbeat_and_reports_cancel_requests() -> None:
    assert not await streams.producer_alive(8)
    state = (await streams.replies_sweep([8]))[8]
    assert await streams.producer_alive(8) and not state.cancel_requested
    streams.cancel_request(8)
    assert (await streams.replies_sweep([8]))[8].cancel_requested


@pytest.mark.parametrize(
    ("pattern", "abandoned_at"),
    [
        ([False, False, False, False], 3),  # never attached: cancelled grace_s after the start
        ([True, True, False, False, False, False], 4),  # last seen at t=1: cancelled at t=1+3
        ([True, False, False, True, False, False], None),  # came back in time
    ],
)
def test_the_grace_watch_cancels_only_after_grace_without_any_client(
    pattern: list[bool], abandoned_at: int | None
) -> None:
    clock = FakeClock(0.0)
    watch = GraceWatch(3.0, clock)
    verdicts = []
    for second, watched in enumerate(pattern):
        clock.now = float(second)
        verdicts.append(watch.abandoned(watched))
    first = verdicts.index(True) if True in verdicts else None
    assert first == abandoned_at


async def test_followers_of_a_reply_produced_here_are_handed_its_events_then_read_redis_once_it_ends() -> None:
    hub = streams.stream_hub()
    hub.production_start(31)
    assert await streams.event_append(31, ReplyEvent(2, "token", {"delta": "hi"}))
    follower = await hub.subscribe(31, 0)
    assert follower.local and 31 not in hub.followers  # no XREAD for it
    assert [e.id for e in await follower.next(5.0)] == [2]
    assert await streams.event_append(31, ReplyEvent(5, "token", {"delta": "yo!"}))
    assert [e.data for e in await follower.next(0.0)] == [{"delta": "yo!"}]  # handed over, not read
    hub.production_end(31)
    await streams.stream_close(31)  # another party ends the reply: only Redis knows
    assert await streams.event_append(31, ReplyEvent(6, "error", {"code": "producer_lost", "message": ""}))
    assert [(e.id, e.type) for e in await follower.next(5.0)] == [(6, "error")]
    hub.unsubscribe(follower)


async def test_live_events_handed_over_while_the_earlier_ones_are_read_wait_for_them() -> None:
    follower = streams.Subscription(32, 1, local=True)
    follower.deliver([ReplyEvent(7, "token", {"delta": "late"})])
    follower.backfilled([ReplyEvent(1, "token", {"delta": "a"}), ReplyEvent(3, "token", {"delta": "bc"})])
    follower.deliver([ReplyEvent(3, "token", {"delta": "bc"})])
    assert [e.id for e in await follower.next(0.0)] == [3, 7]


async def test_tokens_stay_their_own_events_and_reach_redis_in_few_appends() -> None:
    writer = TokenWriter(41)
    for delta in ("Hel", "lo", " wor", "ld"):
        writer.add(delta)
    await writer.flush()
    events = [(e.id, e.data["delta"]) for e in await streams.events_all(41)]
    assert events == [(3, "Hel"), (5, "lo"), (9, " wor"), (11, "ld")]
    assert "".join(writer.parts) == "Hello world"
    assert len(writer.parts) == 4


async def test_followers_here_are_handed_each_batch_of_tokens_as_it_lands_and_late_ones_read_what_they_missed() -> None:
    hub = streams.stream_hub()
    hub.production_start(44, owner_id=7)
    early = await hub.subscribe(44, 0)
    writer = TokenWriter(44, every_s=60.0)
    writer.add("ab")  # the first append leaves at once
    writer.add("cd")  # the next waits for its batch (every_s)
    await asyncio.sleep(0.05)
    assert [e.data["delta"] for e in await early.next(0.0)] == ["ab"]
    assert [e.id for e in await streams.events_all(44)] == [2]
    await writer.flush()
    assert [e.data["delta"] for e in await early.next(0.0)] == ["cd"]
    late = await hub.subscribe(44, 2)  # resumes after "ab": reads "cd" from Redis once
    assert [e.data["delta"] for e in await late.next(0.0)] == ["cd"]
    assert hub.streaming_here(44, 7) and not hub.streaming_here(44, 8)
    hub.unsubscribe(early)
    hub.unsubscribe(late)
    hub.production_end(44)


async def test_a_writer_whose_stream_was_closed_by_another_party_is_fenced() -> None:
    await streams.stream_close(42)
    writer = TokenWriter(42)
    writer.add("a")
    with pytest.raises(Fenced):
        await writer.flush()
    with pytest.raises(Fenced):
        writer.add("b")


async def test_a_stopped_writer_sends_nothing_more_and_keeps_what_landed() -> None:
    writer = TokenWriter(43)
    writer.add("a")
    writer.add("b")
    await writer.stop()
    assert [e.data["delta"] for e in await streams.events_all(43)] == ["a"]
    assert writer.parts == ["a"]


async def test_a_follower_that_comes_before_the_first_token_is_handed_every_event() -> None:
    hub = streams.stream_hub()
    hub.production_start(34)
    follower = await hub.subscribe(34, 0)
    for offset, delta in ((1, "a"), (3, "bc")):
        assert await streams.event_append(34, ReplyEvent(offset, "token", {"delta": delta}))
    assert [e.data["delta"] for e in await follower.next(0.0)] == ["a", "bc"]
    hub.production_end(34)
    hub.unsubscribe(follower)


async def test_a_follower_that_comes_while_the_last_reader_winds_down_is_still_read() -> None:
    # A reply produced here ends, and its one follower leaves, before the reader it was handed to
    # started: that reader starts for nobody and winds down (it deletes its wake stream). A
    # follower that subscribes meanwhile must get a reader of its own, not a wake-up nobody reads.
    hub = streams.stream_hub()
    hub.production_start(51)
    leaving = await hub.subscribe(51, 0)
    hub.production_end(51)  # hands it to the reader, started soon
    hub.unsubscribe(leaving)  # gone before that reader starts
    await asyncio.gather(*streams._waking)  # the hand-over's wake-up starts the reader, which finds nobody
    winding_down = hub._task
    await asyncio.sleep(0)  # the reader is now in its last round trip
    follower = await hub.subscribe(52, 0)
    assert await streams.event_append(52, ReplyEvent(2, "token", {"delta": "hi"}))
    assert [e.data["delta"] for e in await follower.next(3.0)] == ["hi"]
    hub.unsubscribe(follower)
    if winding_down is not None:
        await asyncio.gather(winding_down, return_exceptions=True)


async def test_appends_that_come_soon_after_a_pipeline_left_wait_for_company_and_leave_together() -> None:
    clock = FakeClock()
    waits: list[float] = []
    released = asyncio.Event()

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await released.wait()

    batcher = streams.AppendBatcher(every_s=0.005, clock=clock, sleep=sleep)

    def append(message_id: int) -> asyncio.Future[int]:
        payload = streams.token_event(1, "a").payload()
        return batcher.append(streams._append_keys(message_id), ["0", streams.LIVE_TTL_S, 1, "token", payload])

    assert await append(61) == 1  # after a quiet moment: at once
    clock.now += 0.001
    second, third = append(62), append(63)
    for _ in range(5):
        await asyncio.sleep(0)
    assert waits == [pytest.approx(0.004)] and not second.done() and not third.done()
    clock.now += 0.004
    released.set()
    await asyncio.wait((second, third))
    assert (second.result(), third.result()) == (1, 1)
    clock.now += 1.0
    assert await append(64) == 1 and len(waits) == 1  # quiet again: no wait
    assert [e.id for e in await streams.events_all(63)] == [1]


async def test_appends_after_redis_forgot_its_scripts_load_them_again_and_land() -> None:
    assert await streams.event_append(71, ReplyEvent(1, "token", {"delta": "a"}))  # the script is loaded
    streams.sync_client().script_flush()
    assert await streams.event_append(71, ReplyEvent(2, "token", {"delta": "b"}))  # alone
    streams.sync_client().script_flush()
    together = [streams.event_append_start(72 + n, ReplyEvent(1, "token", {"delta": "c"})) for n in range(3)]
    await asyncio.wait(together)  # in one pipeline
    assert [streams.append_landed(future) for future in together] == [True, True, True]
    assert [e.id for e in await streams.events_all(71)] == [1, 2]


async def test_a_sweep_of_many_replies_goes_in_slices_and_counts_no_clients_of_those_followed_here() -> None:
    clock = FakeClock()
    ids = list(range(1000, 1000 + 2 * streams.SWEEP_SLICE + 7))  # three slices
    watched, followed_here, cancelled = ids[5], ids[streams.SWEEP_SLICE + 3], ids[-1]
    await streams.relay_attach(watched, "relay-a", clock)
    await streams.relay_attach(followed_here, "relay-b", clock)
    streams.cancel_request(cancelled)
    streams.sync_client().script_flush()  # the sweep's script is loaded again as needed
    states = await streams.replies_sweep(ids, clock, followed_here={followed_here})
    assert list(states) == ids
    assert [i for i, state in states.items() if state.watched] == [watched]  # not counted: followed here
    assert [i for i, state in states.items() if state.cancel_requested] == [cancelled]
    assert all([await streams.producer_alive(i) for i in (ids[0], ids[streams.SWEEP_SLICE], ids[-1])])


async def test_a_sweep_that_comes_after_a_reply_ended_does_not_claim_it_again() -> None:
    streams.producer_claim(81)
    assert await streams.event_append(81, ReplyEvent(1, "done", {}))  # the end releases the claim
    assert not await streams.producer_alive(81)
    await streams.replies_sweep([81])  # swept by a pass that began before the end
    assert not await streams.producer_alive(81)


async def test_appends_that_go_together_land_each_with_its_own_answer() -> None:
    # One pipeline for the appends of many replies, timed as one round trip.
    results = await asyncio.gather(
        *(streams.event_append(300 + n, ReplyEvent(1, "token", {"delta": f"r{n}"})) for n in range(40)),
        streams.event_append(300, ReplyEvent(1, "token", {"delta": "a repeat of r0's id"})),
    )
    assert results == [True] * 40 + [False]  # the repeat is out of order: refused, alone
    assert [e.data for e in await streams.events_all(317)] == [{"delta": "r17"}]


async def test_an_append_that_redis_never_answers_fails_at_the_round_trips_limit(
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import redis

    from orchestration.redisclients import redis_async_close

    # A server that answers a new connection's handshake, then never answers a command again.
    async def silent_after_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(b"+OK\r\n" * data.count(b"SETINFO"))

    server = await asyncio.start_server(silent_after_handshake, "127.0.0.1", 0)
    settings.REDIS_URL = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    monkeypatch.setattr(streams, "SCRIPTS_ROUND_TRIP_S", 0.3)
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(redis.TimeoutError, match=r"did not answer within 0\.3 s"):
            await streams.event_append(400, ReplyEvent(1, "token", {"delta": "lost"}))
        assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        await redis_async_close()
        server.close()
        await server.wait_closed()

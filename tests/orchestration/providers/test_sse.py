"""The Server-Sent Events parser: events however the bytes are split."""

from __future__ import annotations

from orchestration.providers.sse import SseEvent, SseParser


def test_events_split_across_reads_come_out_whole() -> None:
    parser = SseParser()

    first = parser.feed(b'event: message_start\ndata: {"a"')
    second = parser.feed(b": 1}\n\ndata: [DONE]\n\n")

    assert first == []
    assert second == [SseEvent("message_start", b'{"a": 1}'), SseEvent("", b"[DONE]")]


def test_crlf_lines_comments_and_multi_line_data() -> None:
    parser = SseParser()

    events = parser.feed(b": keep-alive\r\n\r\ndata: one\r\ndata: two\r\nid: 7\r\n\r\n")

    assert events == [SseEvent("", b"one\ntwo")]


def test_the_event_name_does_not_leak_into_the_next_event() -> None:
    parser = SseParser()

    events = parser.feed(b"event: ping\ndata: {}\n\ndata: {}\n\n")

    assert [event.event for event in events] == ["ping", ""]


def test_close_gives_a_last_event_that_lacks_its_blank_line() -> None:
    parser = SseParser()
    parser.feed(b"data: first\n\ndata: last")

    assert parser.close() == [SseEvent("", b"last")]
    assert parser.close() == []

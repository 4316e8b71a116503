"""An event stream's headers, kept as wire bytes: what goes out is what Django would send."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import BadHeaderError

from orchestration.sse import EventStreamResponse, header_set


async def _events() -> AsyncGenerator[bytes, None]:
    yield b"data: {}\n\n"


def _as_django_sends(response: StreamingHttpResponse) -> list[tuple[bytes, bytes]]:
    return [(name.encode("ascii"), value.encode("latin-1")) for name, value in response.items()]


def _django_twin(headers: dict[str, str]) -> StreamingHttpResponse:
    """The response Django's own API builds from the same headers."""
    twin = StreamingHttpResponse(_events(), content_type="text/event-stream; charset=utf-8")
    twin["Cache-Control"] = "no-cache"
    twin["X-Accel-Buffering"] = "no"
    for name, value in headers.items():
        twin[name] = value
    return twin


HEADERS = {"x-ratelimit-remaining-requests": "59", "X-Served-Model": "sim-fast", "X-Cache": "miss"}


def test_the_wire_headers_are_the_ones_django_would_send() -> None:
    response = EventStreamResponse(_events(), headers=HEADERS)
    header_set(response, "X-Request-ID", "req-1")

    expected = _django_twin({**HEADERS, "X-Request-ID": "req-1"})
    assert response.wire_headers() == _as_django_sends(expected)


def test_headers_taken_for_the_head_are_kept_no_longer() -> None:
    response = EventStreamResponse(_events(), headers=HEADERS)
    header_set(response, "X-Request-ID", "req-1")
    expected = response.wire_headers()

    assert response.take_wire_headers() == expected
    assert response.wire_headers() == [] and not response.has_header("X-Served-Model")


def test_djangos_header_api_sees_them_and_nothing_goes_out_twice() -> None:
    response = EventStreamResponse(_events(), headers=HEADERS)

    assert response["x-served-model"] == "sim-fast"  # the first read moves them into Django's headers
    response["X-Cache"] = "hit"
    header_set(response, "Vary", "Origin")

    sent = response.wire_headers()
    assert len(sent) == len({name.lower() for name, _ in sent}) == 7
    assert (b"X-Cache", b"hit") in sent and (b"Vary", b"Origin") in sent
    assert response.has_header("Cache-Control") and response["Content-Type"].startswith("text/event-stream")


def test_a_value_django_refuses_is_refused() -> None:
    with pytest.raises(BadHeaderError):
        EventStreamResponse(_events(), headers={"X-Served-Model": "evil\r\nSet-Cookie: x=1"})
    response = EventStreamResponse(_events())
    with pytest.raises(BadHeaderError):
        header_set(response, "X-Request-ID", "a\nb")


def test_a_value_beyond_latin_1_is_encoded_as_django_encodes_it() -> None:
    response = EventStreamResponse(_events(), headers={"X-Served-Model": "模型"})

    assert response.wire_headers() == _as_django_sends(_django_twin({"X-Served-Model": "模型"}))
    assert (b"X-Served-Model", b"=?utf-8?b?5qih5Z6L?=") in response.wire_headers()


def test_a_value_that_is_not_text_is_made_text_as_django_makes_it() -> None:
    response = EventStreamResponse(_events(), headers={"X-RateLimit-Limit-Requests": 60})  # type: ignore[dict-item]
    header_set(response, "openai-processing-ms", 12)  # type: ignore[arg-type]

    assert (b"X-RateLimit-Limit-Requests", b"60") in response.wire_headers()
    assert response["openai-processing-ms"] == "12"


def test_header_set_on_any_other_response_is_djangos() -> None:
    response = HttpResponse(b"{}")

    header_set(response, "X-Request-ID", "req-2")

    assert response["X-Request-ID"] == "req-2"

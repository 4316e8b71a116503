"""How HTTP failures are classified, whatever the provider's wording, and how long to wait."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from orchestration.providers.errors import kind_for_status, retry_after_s
from orchestration.types import ErrorKind

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "3"}, 0.25),
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW + 10, UTC), usegmt=True)}, 10.0),
        ({"retry-after": format_datetime(datetime.fromtimestamp(NOW - 10, UTC), usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_milliseconds_and_http_dates(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_s(headers, now=NOW) == seconds


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (400, "This model's maximum context length is 128000 tokens.", ErrorKind.CONTEXT_WINDOW),
        (400, "prompt is too long: 208310 tokens > 200000 maximum", ErrorKind.CONTEXT_WINDOW),
        (400, "The input token count (1048600) exceeds the maximum number of tokens allowed", ErrorKind.CONTEXT_WINDOW),
        (400, "the request exceeds the available context size exceed_context_size_error", ErrorKind.CONTEXT_WINDOW),
        (400, "Your request was rejected as a result of our safety system.", ErrorKind.CONTENT_POLICY),
        (400, "Output blocked by content filtering policy", ErrorKind.CONTENT_POLICY),
        (403, "Your chosen model requires moderation and your input was flagged", ErrorKind.CONTENT_POLICY),
        (422, "Invalid 'temperature'", ErrorKind.BAD_REQUEST),
        (401, "invalid x-api-key", ErrorKind.AUTH),
        (403, "PERMISSION_DENIED", ErrorKind.AUTH),
        (429, "Rate limit reached for requests", ErrorKind.RATE_LIMITED),
        (429, "You exceeded your current quota. insufficient_quota", ErrorKind.AUTH),
        (404, "model_not_found", ErrorKind.NOT_FOUND),
        (408, "", ErrorKind.TIMEOUT),
        (500, "context length", ErrorKind.SERVER),
        (529, "overloaded_error", ErrorKind.SERVER),
    ],
)
def test_status_and_wording_decide_the_kind(status: int, text: str, kind: ErrorKind) -> None:
    assert kind_for_status(status, text) is kind

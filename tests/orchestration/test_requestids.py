"""Request ids: a client's sane id is echoed; a new one sorts by the time it was made."""

from __future__ import annotations

import re
import time

from orchestration.requestids import request_id_from

NEW_ID = re.compile(r"^req_[0-9a-f]{32}$")


def test_a_sane_client_id_is_echoed_and_anything_else_replaced() -> None:
    assert request_id_from({"X-Request-ID": "trace-1:a.b_c"}) == "trace-1:a.b_c"
    for sent in ("", "has space", "x" * 129, "new\nline"):
        assert NEW_ID.match(request_id_from({"X-Request-ID": sent}))


def test_new_ids_are_unique_and_begin_with_the_millisecond_they_were_made() -> None:
    before = time.time_ns() // 1_000_000
    made = [request_id_from({}) for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == len(made)
    assert all(NEW_ID.match(one) for one in made)
    stamps = [int(one[4:16], 16) for one in made]
    assert all(before <= stamp <= after for stamp in stamps)
    assert stamps == sorted(stamps)  # so the request log's index of them grows at its end

"""What PostgreSQL cannot store: a null character (U+0000) in text or ``jsonb``
(``orchestration.database.without_null_characters`` and ``null_character_path``)."""

from __future__ import annotations

import time

import pytest

from orchestration.caching.exact import _row, cache_index_write
from orchestration.database import null_character_path, without_null_characters
from orchestration.models import CacheEntry, RequestLog
from orchestration.requestlog import LogEntry, log_entry_from, requestlog_write
from orchestration.types import ChatResponse, Served


def test_a_document_keeps_its_shape_with_each_null_character_replaced() -> None:
    document = {"a\x00": ["x\x00y", {"n": 1, "t": None, "ok": "fine"}], "b": 2.5}
    assert without_null_characters(document) == {"a\ufffd": ["x\ufffdy", {"n": 1, "t": None, "ok": "fine"}], "b": 2.5}
    clean = {"a": ["b", {"c": "d"}]}
    assert without_null_characters(clean) == clean and without_null_characters("plain") == "plain"


def test_the_path_of_the_first_null_character_is_named_as_a_parameter() -> None:
    assert null_character_path({"input": [{"role": "user", "content": "a\x00"}]}) == "input[0].content"
    assert null_character_path({"metadata": {"k\x00": "v"}}) == "metadata.k\x00"
    assert null_character_path({"input": "fine", "n": [1, 2]}) is None


@pytest.mark.django_db(transaction=True)
def test_a_request_log_row_with_a_null_character_is_written_with_the_others() -> None:
    # One such row failed its whole batch on PostgreSQL (the suite runs on both databases).
    def logged(request_id: str, model: str, detail: str = "") -> LogEntry:
        return log_entry_from(
            request_id=request_id,
            endpoint="completion",
            model_requested=model,
            served=Served(),
            api_key_id=None,
            user_id=None,
            status="error",
            error_kind="upstream",
            latency_ms=1.0,
            error_detail=detail,
        )

    requestlog_write([logged("req-a", "plain"), logged("req-b", "nul\x00model", detail="upstream said \x00")])
    row = RequestLog.objects.get(request_id="req-b")
    assert (row.model_requested, row.error_detail) == ("nul\ufffdmodel", "upstream said \ufffd")
    assert RequestLog.objects.filter(request_id="req-a").exists()


@pytest.mark.django_db(transaction=True)
def test_a_cache_index_row_with_a_null_character_is_written_with_the_others() -> None:
    answer = ChatResponse(id="r", model="m", content="An\x00swer.")
    rows = [
        _row("exact:plain", "exact", "m", "", "plain question", answer, time.time() + 60),
        _row("exact:nul", "exact", "m", "", "nul\x00question", answer, time.time() + 60),
    ]
    cache_index_write(rows)
    stored = CacheEntry.objects.get(key="exact:nul")
    assert (stored.question_preview, stored.answer_preview) == ("nul\ufffdquestion", "An\ufffdswer.")
    assert CacheEntry.objects.filter(key="exact:plain").exists()

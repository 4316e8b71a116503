"""The request log: queued on the hot path, written in batches by a background thread."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestration.access.keys import api_key_create
from orchestration.models import RequestLog
from orchestration.requestlog import LogEntry, log_entry_from, requestlog_flush, requestlog_record, requestlog_write
from orchestration.types import FallbackHop, Served, Usage


def entry(request_id: str, **fields: Any) -> LogEntry:
    return LogEntry(request_id=request_id, endpoint="completion", model_requested="m", **fields)


@pytest.mark.django_db(transaction=True)
def test_flush_writes_every_queued_row_with_its_fields(alice: Any) -> None:
    served = Served(
        model="small",
        provider="backup",
        attempts=3,
        fallbacks=[FallbackHop("server", "big", "small")],
        cache="MISS",
        cost_usd=Decimal("0.00012300"),
        usage=Usage(input_tokens=12, output_tokens=30),
        ttft_ms=42.0,
    )
    requestlog_record(
        log_entry_from(
            request_id="req-1",
            endpoint="chat",
            model_requested="big",
            served=served,
            api_key_id=None,
            user_id=alice.pk,
            status="ok",
            error_kind="",
            latency_ms=250.0,
            prompt_template="support",
            prompt_version=2,
        )
    )
    assert requestlog_flush()
    row = RequestLog.objects.get(request_id="req-1")
    assert (row.endpoint, row.model_requested, row.model_served, row.provider_served) == (
        "chat",
        "big",
        "small",
        "backup",
    )
    assert (row.attempts, row.cache_status, row.input_tokens, row.output_tokens) == (3, "MISS", 12, 30)
    assert row.fallbacks == [{"reason": "server", "from": "big", "to": "small"}]
    assert (row.cost_usd, row.latency_ms, row.ttft_ms, row.status) == (Decimal("0.000123"), 250.0, 42.0, "ok")
    assert (row.user_id, row.prompt_template, row.prompt_version) == (alice.pk, "support", 2)


@pytest.mark.django_db(transaction=True)
def test_recording_costs_microseconds_and_never_waits_for_the_database() -> None:
    started = time.perf_counter()
    for number in range(2000):
        requestlog_record(entry(f"fast-{number}"))
    per_call = (time.perf_counter() - started) / 2000
    assert per_call < 0.0005
    assert requestlog_flush()
    assert RequestLog.objects.filter(request_id__startswith="fast-").count() == 2000


@pytest.mark.django_db
def test_a_batch_is_one_prepared_insert() -> None:
    with CaptureQueriesContext(connection) as queries:
        requestlog_write([entry(f"batch-{number}") for number in range(200)])
    inserts = [query["sql"] for query in queries.captured_queries if "INSERT" in query["sql"]]
    assert len(inserts) == 1
    assert inserts[0].startswith("200 times: INSERT")  # Django's record of one executemany
    assert RequestLog.objects.filter(request_id__startswith="batch-").count() == 200


@pytest.mark.django_db(transaction=True)
def test_a_row_whose_key_was_deleted_meanwhile_is_kept_without_the_link(alice: Any) -> None:
    key, _ = api_key_create(user=alice, name="kept")
    key_id = key.pk + 1000  # a key deleted between the call and the write
    requestlog_write([entry("orphan", api_key_id=key_id, user_id=alice.pk), entry("fine", user_id=alice.pk)])
    assert RequestLog.objects.get(request_id="orphan").api_key_id is None
    assert RequestLog.objects.get(request_id="orphan").user_id is None
    assert RequestLog.objects.get(request_id="fine").user_id == alice.pk


@pytest.mark.django_db
def test_each_value_reaches_the_database_as_its_model_field_would_send_it(alice: Any) -> None:
    from django.db import DEFAULT_DB_ALIAS, connections

    from orchestration.requestlog import _insert_plan, _model_fields

    row = entry(
        "same",
        user_id=alice.pk,
        fallbacks=[{"reason": "server", "from": "big", "to": "small"}],
        cost_usd=Decimal("0.00012300"),
        latency_ms=250,  # an int where a float is kept: the field makes it one
        ttft_ms=None,
        prompt_version=2,
        message_id=None,
    )
    _, plan = _insert_plan()
    database = connections[DEFAULT_DB_ALIAS]
    for (name, prepare, plain), model_field in zip(plan, _model_fields(), strict=True):
        value = getattr(row, name)
        expected = model_field.get_db_prep_save(value, connection)
        sent = value if type(value) in plain else prepare(value, database)
        assert type(sent) is type(expected), name
        # psycopg's ``Jsonb`` wraps a JSON document and has no equality of its own.
        assert getattr(sent, "obj", sent) == getattr(expected, "obj", expected), name


@pytest.mark.django_db(transaction=True)
def test_the_writer_outlives_a_database_it_cannot_reach(
    caplog: pytest.LogCaptureFixture, django_db_blocker: Any
) -> None:
    """A writer whose database goes away (here pytest-django refuses it in every thread once the
    writer holds a connection) logs, answers its flush, and keeps running."""
    from orchestration.requestlog import _current_writer

    requestlog_record(entry("reachable-1"))
    assert requestlog_flush(timeout=5)
    with django_db_blocker.block():
        requestlog_record(entry("unreachable-1"))
        assert requestlog_flush(timeout=5)
    writer = _current_writer()
    assert writer._thread is not None and writer._thread.is_alive()
    assert "could not" in caplog.text
    writer.pending.clear()  # rows that could not be written are not the next test's

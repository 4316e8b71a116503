"""The one place ``RequestLog`` rows are written: queued by the hot path, written in batches.

``requestlog_record`` only appends to an in-memory deque (a microsecond); a writer thread wakes
every ``FLUSH_INTERVAL_S`` and inserts what has gathered, ``BATCH_SIZE`` rows at a time, with one
prepared ``INSERT`` run by ``executemany``: ``bulk_create`` compiles SQL for every field of every
row, which cost the web process more CPU (under the GIL) than the rest of the logging.
``requestlog_flush`` waits until everything queued so far is in the database (tests, job ends);
interpreter exit flushes too. A forked child (RQ work horse) starts its own writer.

The writer shares the GIL with the event loop. Half a second of calls is a few hundred rows, and
converting them for the database is Python work: written as one batch, it held the GIL for
milliseconds, and the interpreter hands a waiting thread the GIL only every 5 ms (its switch
interval), so the call that arrived then waited 8-13 ms, twice a second: the p99 of an otherwise
3 ms call at concurrency 1. So the writer inserts ``BATCH_SIZE`` rows (about half a millisecond of
conversion) per transaction and gives the GIL away between batches; and it keeps a working SQLite
connection from one wake-up to the next (``connections_release``), as opening one costs a
millisecond of CPU.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections
from django.db.models import Field
from django.utils import timezone

from orchestration.database import (
    connections_release,
    db_preparer,
    drop_broken_connections,
    plain_types,
    without_null_characters,
)
from orchestration.types import Served

logger = logging.getLogger(__name__)

BATCH_SIZE = 64
FLUSH_INTERVAL_S = 0.5
MAX_QUEUED = 100_000  # beyond this, rows are dropped (and counted) rather than memory growing


@dataclass(slots=True)
class LogEntry:
    request_id: str
    endpoint: str
    model_requested: str
    api_key_id: int | None = None
    user_id: int | None = None
    model_served: str = ""
    provider_served: str = ""
    attempts: int = 0
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    cache_status: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    usage_estimated: bool = False  # the provider did not report the usage: counted from the text
    cost_usd: Decimal = Decimal("0")
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: str = "ok"  # ok | error | cancelled
    error_kind: str = ""
    error_detail: str = ""  # what the provider said, secrets redacted: for staff only
    prompt_template: str = ""
    prompt_version: int | None = None
    deployment: str = ""
    experiment: str = ""
    variant: str = ""
    message_id: int | None = None
    created_at: datetime = field(default_factory=timezone.now)


def log_entry_from(
    *,
    request_id: str,
    endpoint: str,
    model_requested: str,
    served: Served,
    api_key_id: int | None,
    user_id: int | None,
    status: str,
    error_kind: str,
    latency_ms: float,
    error_detail: str = "",
    prompt_template: str = "",
    prompt_version: int | None = None,
    message_id: int | None = None,
) -> LogEntry:
    return LogEntry(
        request_id=request_id,
        endpoint=endpoint,
        # What a client or a provider wrote may hold a null character, which PostgreSQL cannot
        # store: one such row failed its whole batch.
        model_requested=without_null_characters(model_requested),
        api_key_id=api_key_id,
        user_id=user_id,
        model_served=served.model,
        provider_served=served.provider,
        attempts=served.attempts,
        fallbacks=[{"reason": hop.reason, "from": hop.from_model, "to": hop.to_model} for hop in served.fallbacks],
        cache_status=served.cache,
        input_tokens=served.usage.input_tokens,
        output_tokens=served.usage.output_tokens,
        usage_estimated=served.usage_estimated,
        cost_usd=served.cost_usd,
        latency_ms=latency_ms,
        ttft_ms=served.ttft_ms,
        status=status,
        error_kind=error_kind,
        error_detail=without_null_characters(error_detail),
        prompt_template=without_null_characters(prompt_template),
        prompt_version=prompt_version,
        deployment=served.deployment,
        experiment=served.experiment,
        variant=served.variant,
        message_id=message_id,
    )


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class RequestLogWriter:
    """Entries waiting in memory, and the thread that writes them to the database.

    The hot path only appends to a deque: no lock, no wake-up of the writer (waking a thread
    on every call costs more than the rest of the logging). The writer wakes every
    ``FLUSH_INTERVAL_S``, or at once for ``flush``.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.pending: deque[LogEntry] = deque()
        self.dropped = 0
        self._flushes: deque[_Flush] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, entry: LogEntry) -> None:
        if len(self.pending) >= MAX_QUEUED:
            self.dropped += 1
            return
        self.pending.append(entry)
        if self._thread is None:
            self._start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every entry recorded before this call is written; False on timeout."""
        marker = _Flush()
        self._flushes.append(marker)
        self._start()
        self._wake.set()
        return marker.done.wait(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="requestlog-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()
            # Markers taken before draining: everything recorded before their flush() is drained below.
            markers = [self._flushes.popleft() for _ in range(len(self._flushes))]
            if self.pending:
                try:
                    self._drain()
                except Exception:  # the database unreachable: the rows wait for the next turn
                    logger.exception("the request log writer could not reach the database")
            for marker in markers:
                marker.done.set()

    def _drain(self) -> None:
        drop_broken_connections()
        try:
            while self.pending:
                self._write([self.pending.popleft() for _ in range(min(BATCH_SIZE, len(self.pending)))])
                time.sleep(0)  # the GIL to the event loop: a call waits for one batch, not for the drain
        finally:
            connections_release()

    def _write(self, batch: list[LogEntry]) -> None:
        try:
            requestlog_write(batch)
        except Exception:
            logger.exception("could not write %d request log rows", len(batch))


_ENTRY_FIELDS = tuple(entry_field.name for entry_field in fields(LogEntry))


@functools.cache
def _model_fields() -> list[Field[object, object]]:
    """The model field behind each ``LogEntry`` field (same name or attname)."""
    from orchestration.models import RequestLog

    found = [RequestLog._meta.get_field(name) for name in _ENTRY_FIELDS]
    return [model_field for model_field in found if isinstance(model_field, Field)]


@functools.cache
def _insert_plan() -> tuple[str, tuple[tuple[str, Callable[[Any, Any], Any], tuple[type, ...]], ...]]:
    """The ``INSERT`` of one row, and for each of its columns the entry's field, the model field's
    conversion (``db_preparer``) and the types that need none (converting every value of every row
    was most of the writer's CPU)."""
    from orchestration.models import RequestLog

    model_fields = _model_fields()
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(model_field.column)) for model_field in model_fields)
    placeholders = ", ".join(["%s"] * len(model_fields))
    sql = f"INSERT INTO {quote(RequestLog._meta.db_table)} ({columns}) VALUES ({placeholders})"
    plan = tuple(
        (name, db_preparer(model_field), plain_types(model_field))
        for name, model_field in zip(_ENTRY_FIELDS, model_fields, strict=True)
    )
    return sql, plan


def _insert(batch: list[LogEntry]) -> None:
    """One ``INSERT`` of every entry, each value as its model field would send it."""
    sql, plan = _insert_plan()
    database = connections[DEFAULT_DB_ALIAS]
    rows = [
        [
            value if type(value := getattr(entry, name)) in plain else prepare(value, database)
            for name, prepare, plain in plan
        ]
        for entry in batch
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def requestlog_write(batch: list[LogEntry]) -> None:
    """Insert the rows (sync, database). A row whose key or user vanished meanwhile is kept
    without that link rather than failing the whole batch."""
    from django.db import transaction

    try:
        with transaction.atomic():
            _insert(batch)
    except IntegrityError:
        for entry in batch:
            try:
                with transaction.atomic():
                    _insert([entry])
            except IntegrityError:
                entry.api_key_id = entry.user_id = None
                _insert([entry])


_writer: RequestLogWriter | None = None


def _current_writer() -> RequestLogWriter:
    global _writer
    if _writer is None or _writer.pid != os.getpid():
        _writer = RequestLogWriter()
    return _writer


def requestlog_record(entry: LogEntry) -> None:
    """Queue one row; never blocks on the database."""
    _current_writer().record(entry)


def requestlog_flush(timeout: float = 10.0) -> bool:
    """Write everything queued so far before returning (False when ``timeout`` passed first)."""
    return _current_writer().flush(timeout)


def _flush_at_exit() -> None:
    if _writer is not None and _writer.pid == os.getpid() and _writer.pending:
        _writer.flush(timeout=5.0)


atexit.register(_flush_at_exit)

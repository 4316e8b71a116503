"""The one place ``RequestLog`` rows are written: queued by the hot path, written in batches.

``requestlog_record`` only appends to an in-memory queue (microseconds); a writer thread
``bulk_create``s what has gathered, at most every ``FLUSH_INTERVAL_S`` or ``BATCH_SIZE`` rows.
``requestlog_flush`` waits until everything queued so far is in the database (tests, job ends);
interpreter exit flushes too. A forked child (RQ work horse) starts its own writer.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, close_old_connections, connection
from django.utils import timezone

from orchestration.types import Served

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
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
    cost_usd: Decimal = Decimal("0")
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    status: str = "ok"  # ok | error | cancelled
    error_kind: str = ""
    prompt_template: str = ""
    prompt_version: int | None = None
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
    prompt_template: str = "",
    prompt_version: int | None = None,
) -> LogEntry:
    return LogEntry(
        request_id=request_id,
        endpoint=endpoint,
        model_requested=model_requested,
        api_key_id=api_key_id,
        user_id=user_id,
        model_served=served.model,
        provider_served=served.provider,
        attempts=served.attempts,
        fallbacks=[{"reason": hop.reason, "from": hop.from_model, "to": hop.to_model} for hop in served.fallbacks],
        cache_status=served.cache,
        input_tokens=served.usage.input_tokens,
        output_tokens=served.usage.output_tokens,
        cost_usd=served.cost_usd,
        latency_ms=latency_ms,
        ttft_ms=served.ttft_ms,
        status=status,
        error_kind=error_kind,
        prompt_template=prompt_template,
        prompt_version=prompt_version,
    )


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class RequestLogWriter:
    """A queue and the thread that empties it into the database."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.SimpleQueue[LogEntry | _Flush] = queue.SimpleQueue()
        self.dropped = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, entry: LogEntry) -> None:
        if self.queue.qsize() >= MAX_QUEUED:
            self.dropped += 1
            return
        self.queue.put(entry)
        if self._thread is None:
            self._start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every entry queued before this call is written; False on timeout."""
        marker = _Flush()
        self.queue.put(marker)
        self._start()
        return marker.done.wait(timeout)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="requestlog-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch, markers = self._gather()
            if batch:
                self._write(batch)
            for marker in markers:
                marker.done.set()

    def _gather(self) -> tuple[list[LogEntry], list[_Flush]]:
        batch: list[LogEntry] = []
        markers: list[_Flush] = []
        item = self.queue.get()
        while True:
            if isinstance(item, _Flush):
                markers.append(item)
                return batch, markers
            batch.append(item)
            if len(batch) >= BATCH_SIZE:
                return batch, markers
            try:
                item = self.queue.get(timeout=FLUSH_INTERVAL_S if len(batch) == 1 else 0.05)
            except queue.Empty:
                return batch, markers

    def _write(self, batch: list[LogEntry]) -> None:
        close_old_connections()
        try:
            requestlog_write(batch)
        except Exception:
            logger.exception("could not write %d request log rows", len(batch))
        finally:
            connection.close()


def _rows(batch: list[LogEntry]) -> list[Any]:
    from orchestration.models import RequestLog

    return [RequestLog(**asdict(entry)) for entry in batch]


def requestlog_write(batch: list[LogEntry]) -> None:
    """Insert the rows (sync, database). A row whose key or user vanished meanwhile is kept
    without that link rather than failing the whole batch."""
    from django.db import transaction

    from orchestration.models import RequestLog

    try:
        with transaction.atomic():
            RequestLog.objects.bulk_create(_rows(batch))
    except IntegrityError:
        for entry in batch:
            try:
                with transaction.atomic():
                    RequestLog.objects.bulk_create(_rows([entry]))
            except IntegrityError:
                entry.api_key_id = entry.user_id = None
                RequestLog.objects.bulk_create(_rows([entry]))


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
    if _writer is not None and _writer.pid == os.getpid() and not _writer.queue.empty():
        _writer.flush(timeout=5.0)


atexit.register(_flush_at_exit)

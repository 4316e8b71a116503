"""What writing a stream's rows costs the web process: a chat reply's settle, a request-log row.

Both are written by threads of the web process (the thread pool, the request log's writer) on the
core it runs on, so their CPU is a stream's. For each, the CPU per row (``time.thread_time``, the
least of three rounds) into the benchmark's database, into tables that already hold tens of
thousands of rows:

- a reply's settle (``chat.services._settle``), 2,000 replies in batches of 20: each row
  committed on its own, as every batch was written before, and each batch in one transaction
  (``chat.services._settle_all``), as now;
- a request-log row (``orchestration.requestlog.requestlog_write``), 4,000 rows: ids wholly random,
  as they were made before, and ids that sort by time (``orchestration.requestids``), as now; 16
  rows a transaction, as before, and 64, as now.

    python -m tests.bench database_writes

Figures: docs/benchmarks.md, "System calls and commits: what a stream paid the kernel".
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

REPLIES = 2000
SETTLE_BATCH = 20
LOG_ROWS = 4000
FILL = 20_000


def _streaming_replies(owner: Any, count: int) -> list[int]:
    from chat.models import Conversation, Message

    made = Conversation.objects.bulk_create(Conversation(owner=owner, model="bench") for _ in range(count))
    replies = Message.objects.bulk_create(
        Message(conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.STREAMING)
        for conversation in made
    )
    return [int(reply.pk) for reply in replies]


def _settled_fields() -> dict[str, Any]:
    from django.utils import timezone

    return {
        "content": "A reply of a few words, as a short answer has.",
        "status": "complete",
        "finish_reason": "stop",
        "error_code": "",
        "error_message": "",
        "model": "bench",
        "provider": "bench-upstream",
        "fallback_from": "",
        "simulated": False,
        "input_tokens": 12,
        "output_tokens": 9,
        "cost_usd": Decimal("0.0000123"),
        "latency_ms": 52.5,
        "ttft_ms": 50.2,
        "finished_at": timezone.now(),
    }


def settles(owner: Any) -> dict[str, str]:
    from chat.services import _settle, _settle_all

    _streaming_replies(owner, FILL)

    def each_committed(ids: list[int]) -> None:
        for reply in ids:
            _settle(reply, _settled_fields())

    def batch_committed(ids: list[int]) -> None:
        for start in range(0, len(ids), SETTLE_BATCH):
            _settle_all([(reply, _settled_fields()) for reply in ids[start : start + SETTLE_BATCH]])

    def least_per_reply(settle: Callable[[list[int]], None]) -> float:
        spent = []
        for _ in range(3):
            ids = _streaming_replies(owner, REPLIES)  # made uncounted: only the settles are timed
            started = time.thread_time()
            settle(ids)
            spent.append(time.thread_time() - started)
        return min(spent) / REPLIES * 1e6

    return {
        "settle, each row committed": f"{least_per_reply(each_committed):.1f} µs per reply",
        f"settle, one commit per {SETTLE_BATCH} replies": f"{least_per_reply(batch_committed):.1f} µs per reply",
    }


def log_rows(owner: Any) -> dict[str, str]:
    from orchestration.access.keys import api_key_create
    from orchestration.requestids import request_id_from
    from orchestration.requestlog import LogEntry, requestlog_write

    key = api_key_create(user=owner, name="bench-database-writes")[0]
    ids: dict[str, Callable[[], str]] = {
        "random ids": lambda: f"req_{secrets.token_hex(16)}",
        "ids sorted by time": lambda: request_id_from({}),
    }

    def entries(made: Callable[[], str], count: int) -> list[LogEntry]:
        return [
            LogEntry(
                request_id=made(),
                endpoint="completion",
                model_requested="bench",
                api_key_id=key.pk,
                user_id=owner.pk,
                model_served="bench",
                provider_served="bench-upstream",
                attempts=1,
                cache_status="MISS",
                input_tokens=12,
                output_tokens=9,
                cost_usd=Decimal("0.0000123"),
                latency_ms=52.5,
                ttft_ms=50.2,
            )
            for _ in range(count)
        ]

    filling = entries(ids["random ids"], FILL)
    for start in range(0, FILL, 500):
        requestlog_write(filling[start : start + 500])
    figures = {}
    for name, made in ids.items():
        for size in (16, 64):
            spent = []
            for _ in range(3):
                rows = entries(made, LOG_ROWS)  # made uncounted: only the writes are timed
                started = time.thread_time()
                for start in range(0, LOG_ROWS, size):
                    requestlog_write(rows[start : start + size])
                spent.append(time.thread_time() - started)
            figures[f"request-log row, {name}, {size} a transaction"] = f"{min(spent) / LOG_ROWS * 1e6:.1f} µs"
    return figures


def run() -> dict[str, str]:
    from django.contrib.auth import get_user_model

    owner, _ = get_user_model().objects.get_or_create(username="bench-database-writes")
    return {**settles(owner), **log_rows(owner)}


if __name__ == "__main__":
    from tests.bench.environment import bench_environment

    bench_environment()
    for figure, value in run().items():
        print(f"{figure}: {value}")

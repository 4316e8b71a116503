"""Monthly budgets per API key: the month's spend lives in one Redis counter per key.

The counter is incremented atomically when a call's cost is known (``project.ratelimit``
settles every call), so a budget check reads the current spend, never a stale copy. When the
counter is missing (a new month, a flushed Redis) it is rebuilt from ``RequestLog``; the
request log is written in batches, so a rebuild can miss the last second or so of calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Sum

from orchestration.models import RequestLog

# Spend is counted in integer units of 1e-8 USD: the request log's precision, and exact in Redis.
_UNIT = Decimal("0.00000001")
# A month's counter outlives the month by this much, so late settlements still find it.
_COUNTER_GRACE_S = 7 * 86400


def usd_to_units(usd: Decimal) -> int:
    return int((usd / _UNIT).to_integral_value(rounding=ROUND_HALF_UP))


def units_to_usd(units: int) -> Decimal:
    return (Decimal(units) * _UNIT).quantize(_UNIT)


def month_of(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m")


def month_start(now: datetime) -> datetime:
    now = now.astimezone(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def seconds_to_next_month(now: datetime) -> float:
    return (next_month_start(now) - now.astimezone(UTC)).total_seconds()


def counter_ttl_s(now: datetime) -> int:
    return int(seconds_to_next_month(now)) + _COUNTER_GRACE_S


def spend_counter_key(api_key_id: int, now: datetime) -> str:
    # The braces are a Redis Cluster hash tag: every key of one API key lives on one node.
    return f"sy:spend:{{{api_key_id}}}:{month_of(now)}"


def spend_from_request_log(api_key_id: int, now: datetime) -> int:
    """The month's spend of a key as the request log knows it, in units (sync: database)."""
    total = RequestLog.objects.filter(api_key_id=api_key_id, created_at__gte=month_start(now)).aggregate(
        total=Sum("cost_usd")
    )["total"]
    return usd_to_units(total or Decimal(0))

"""Monthly spend: one Redis counter per payer (an API key, or a person without one) and month.

The counter is a hash ``{units, epoch}``. ``units`` is the month's spend in 1e-8 USD, added to
atomically when a call settles (``orchestration.access.limits``), so a budget check reads the
current spend. ``epoch`` says when the counter was last checked against the request log: the
limiter sets the global ``EPOCH_KEY`` to the server's run id whenever Redis has forgotten its
scripts, which happens on every restart, so a counter restored from an old snapshot (or lost
with a Redis that keeps nothing) is rebuilt from ``RequestLog`` before the next decision on it. The embedded Valkey
also writes an append-only file every second, so a restart loses at most that second.
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

EPOCH_KEY = "sy:access:epoch"


def usd_to_units(usd: Decimal) -> int:
    return int((usd / _UNIT).to_integral_value(rounding=ROUND_HALF_UP))


def units_to_usd(units: int) -> Decimal:
    return (Decimal(units) * _UNIT).quantize(_UNIT)


def month_of(now: datetime) -> str:
    now = now.astimezone(UTC)
    return f"{now.year:04d}-{now.month:02d}"  # strftime's "%Y-%m" in a third of its time


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


def payer_tag(*, api_key_id: int | None, user_id: int | None) -> str:
    """Whose counters: ``k<id>`` for an API key, ``u<id>`` for a person calling without one."""
    if api_key_id is not None:
        return f"k{api_key_id}"
    return f"u{user_id}"


def spend_counter_key(tag: str, now: datetime) -> str:
    # The braces are a Redis Cluster hash tag: every key of one payer lives on one node.
    return f"sy:spend:{{{tag}}}:{month_of(now)}"


def spend_from_request_log(*, api_key_id: int | None, user_id: int | None, now: datetime) -> int:
    """The month's spend of a payer as the request log knows it, in units (sync: database).

    A person's own spend is what they spent without a key; a key's is what it spent."""
    rows = RequestLog.objects.filter(created_at__gte=month_start(now))
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
    else:
        rows = rows.filter(user_id=user_id or 0, api_key__isnull=True)
    total = rows.aggregate(total=Sum("cost_usd"))["total"]
    return usd_to_units(total or Decimal(0))

"""Reads for the admin's costs page: spend, latency, errors and cache use from the request log."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from orchestration.models import RequestLog, SemanticWrongHit

CACHE_HITS = ("HIT", "SEMANTIC-HIT", "STALE")
# Percentiles are computed from at most this many of the newest rows per model.
LATENCY_SAMPLE = 20_000


@dataclass(frozen=True, slots=True)
class ModelFigures:
    model: str
    requests: int
    errors: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p50_text(self) -> str:
        return duration_text(self.p50_ms)

    @property
    def p95_text(self) -> str:
        return duration_text(self.p95_ms)


@dataclass(frozen=True, slots=True)
class CostsSummary:
    since: datetime
    days: list[tuple[date, Decimal, int]]
    models: list[ModelFigures]
    keys: list[tuple[str, Decimal, int]]  # (whose spend: an API key, or a person's use without one, USD, calls)
    cache: dict[str, int] = field(default_factory=dict)
    total_cost_usd: Decimal = Decimal("0")
    requests: int = 0
    semantic_wrong_hits: int = 0  # semantic hits reported wrong (API flag or admin action)

    @property
    def cache_hit_rate(self) -> float:
        total = sum(self.cache.values())
        return sum(self.cache.get(status, 0) for status in CACHE_HITS) / total if total else 0.0


def duration_text(ms: float | None) -> str:
    """A latency as a person reads it: whole milliseconds, or seconds with one decimal from 1 s."""
    if ms is None:
        return "–"
    if round(ms) < 1000:
        return f"{round(ms)} ms"
    return f"{ms / 1000:.1f} s"


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = math.ceil(fraction * len(sorted_values))
    return sorted_values[max(0, min(len(sorted_values), rank) - 1)]


def _latencies(rows: Any, model: str) -> list[float]:
    values = rows.filter(model_served=model, status="ok").order_by("-created_at")
    return sorted(values.values_list("latency_ms", flat=True)[:LATENCY_SAMPLE])


def _per_model(rows: Any) -> list[ModelFigures]:
    grouped = (
        rows.exclude(model_served="")
        .values("model_served")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status="error")),
            cost=Sum("cost_usd"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
        .order_by("-cost", "model_served")
    )
    figures = []
    for group in grouped:
        latencies = _latencies(rows, group["model_served"])
        figures.append(
            ModelFigures(
                model=group["model_served"],
                requests=group["requests"],
                errors=group["errors"],
                cost_usd=group["cost"] or Decimal("0"),
                input_tokens=group["input_tokens"] or 0,
                output_tokens=group["output_tokens"] or 0,
                p50_ms=percentile(latencies, 0.50),
                p95_ms=percentile(latencies, 0.95),
            )
        )
    return figures


# What a call made without an API key was, by its endpoint: a person signed in to the site.
_SIGNED_IN_USE = {"chat": "web chat", "agent": "agent tasks", "responses": "responses", "embedding": "cache embeddings"}
PER_PAYER_ROWS = 25


def _signed_in_use(endpoint: str) -> str:
    return _SIGNED_IN_USE.get(endpoint, endpoint)


def _per_key(rows: Any) -> list[tuple[str, Decimal, int]]:
    """Spend per API key, and per person and use for calls made without one (the chat, the
    agent tasks, all from a browser session). Each label starts with whose spend it is, so a
    chart that cuts long labels still shows it."""
    keyed = (
        rows.filter(api_key__isnull=False)
        .values("api_key_id", "api_key__name", "api_key__prefix", "api_key__user__username")
        .annotate(cost=Sum("cost_usd"), requests=Count("id"))
        .order_by("-cost")[:PER_PAYER_ROWS]
    )
    keyless = (
        rows.filter(api_key__isnull=True)
        .values("user_id", "user__username", "endpoint")
        .annotate(cost=Sum("cost_usd"), requests=Count("id"))
        .order_by("-cost")[:PER_PAYER_ROWS]
    )
    payers = [
        (
            f"{group['api_key__user__username']}: key {group['api_key__prefix']}… {group['api_key__name']}".strip(),
            group["cost"] or Decimal("0"),
            group["requests"],
        )
        for group in keyed
    ]
    for group in keyless:
        # A deleted person's rows keep their spend but lose the link (the foreign key is SET_NULL).
        who = group["user__username"] if group["user_id"] else "(no person)"
        payers.append((f"{who}: {_signed_in_use(group['endpoint'])}", group["cost"] or Decimal("0"), group["requests"]))
    payers.sort(key=lambda payer: (-payer[1], payer[0]))
    return payers[:PER_PAYER_ROWS]


def costs_summary(*, days: int = 14) -> CostsSummary:
    """Figures over the last ``days`` days."""
    since = timezone.now() - timedelta(days=days)
    rows = RequestLog.objects.filter(created_at__gte=since)
    per_day = rows.annotate(day=TruncDate("created_at")).values("day").annotate(cost=Sum("cost_usd"), n=Count("id"))
    cache = rows.exclude(endpoint="embedding").values("cache_status").annotate(n=Count("id"))
    totals = rows.aggregate(cost=Sum("cost_usd"), n=Count("id"))
    return CostsSummary(
        since=since,
        days=[(group["day"], group["cost"] or Decimal("0"), group["n"]) for group in per_day.order_by("day")],
        models=_per_model(rows),
        keys=_per_key(rows),
        cache={group["cache_status"] or "none": group["n"] for group in cache},
        total_cost_usd=totals["cost"] or Decimal("0"),
        requests=totals["n"] or 0,
        semantic_wrong_hits=SemanticWrongHit.objects.filter(reported_at__gte=since).count(),
    )

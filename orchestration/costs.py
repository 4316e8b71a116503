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


@dataclass(frozen=True, slots=True)
class CostsSummary:
    since: datetime
    days: list[tuple[date, Decimal, int]]
    models: list[ModelFigures]
    keys: list[tuple[str, Decimal, int]]
    cache: dict[str, int] = field(default_factory=dict)
    total_cost_usd: Decimal = Decimal("0")
    requests: int = 0
    semantic_wrong_hits: int = 0  # semantic hits reported wrong (API flag or admin action)

    @property
    def cache_hit_rate(self) -> float:
        total = sum(self.cache.values())
        return sum(self.cache.get(status, 0) for status in CACHE_HITS) / total if total else 0.0


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


def _per_key(rows: Any) -> list[tuple[str, Decimal, int]]:
    grouped = (
        rows.values("api_key_id", "api_key__name", "api_key__prefix")
        .annotate(cost=Sum("cost_usd"), requests=Count("id"))
        .order_by("-cost")[:25]
    )
    return [
        (
            f"{group['api_key__prefix']}… {group['api_key__name'] or ''}".strip()
            if group["api_key_id"]
            else "(no key)",
            group["cost"] or Decimal("0"),
            group["requests"],
        )
        for group in grouped
    ]


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

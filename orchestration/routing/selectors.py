"""Reads of experiments: each variant's figures side by side, and how sure the differences are.

Figures come from the request log (one row per call, tagged with experiment and variant) and
from feedback. Each difference against the first variant (the control) has a 95% confidence
interval from the normal approximation: two proportions for error and thumbs-up rates, Welch's
for mean latency. An interval that does not contain 0 is a difference the data supports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, F, Q, Sum

from orchestration.models import Experiment, ExperimentVariant, Feedback, RequestLog

Z_95 = 1.959964


@dataclass(frozen=True)
class Interval:
    difference: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class VariantFigures:
    variant_id: int
    name: str
    target: str
    percent: int
    calls: int
    errors: int
    latency_ms: float | None
    latency_sd_ms: float | None
    ttft_ms: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    thumbs_up: int
    thumbs_down: int
    error_rate_diff: Interval | None = None  # against the control, this minus control
    latency_diff_ms: Interval | None = None
    thumbs_up_rate_diff: Interval | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def thumbs_up_rate(self) -> float | None:
        rated = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / rated if rated else None


def proportions_interval(hits_a: int, n_a: int, hits_b: int, n_b: int) -> Interval | None:
    """Rate b minus rate a, with its 95% interval (Wald, unpooled)."""
    if n_a == 0 or n_b == 0:
        return None
    p_a, p_b = hits_a / n_a, hits_b / n_b
    spread = Z_95 * math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    return Interval(p_b - p_a, p_b - p_a - spread, p_b - p_a + spread)


def means_interval(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int) -> Interval | None:
    """Mean b minus mean a, with its 95% interval (Welch, normal approximation)."""
    if n_a < 2 or n_b < 2:
        return None
    spread = Z_95 * math.sqrt(sd_a**2 / n_a + sd_b**2 / n_b)
    return Interval(mean_b - mean_a, mean_b - mean_a - spread, mean_b - mean_a + spread)


def _sd(mean: float | None, mean_of_squares: float | None, n: int) -> float | None:
    if mean is None or mean_of_squares is None or n < 2:
        return None
    return math.sqrt(max(0.0, mean_of_squares - mean * mean) * n / (n - 1))


def _figures_by_variant(experiment: Experiment) -> dict[str, dict[str, Any]]:
    rows = (
        RequestLog.objects.filter(experiment=experiment.name)
        .values("variant")
        .annotate(
            calls=Count("id"),
            errors=Count("id", filter=Q(status="error")),
            latency=Avg("latency_ms", filter=Q(status="ok")),
            latency_sq=Avg(F("latency_ms") * F("latency_ms"), filter=Q(status="ok")),
            ok=Count("id", filter=Q(status="ok")),
            ttft=Avg("ttft_ms"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost_usd"),
        )
    )
    return {str(row["variant"]): dict(row) for row in rows}


def _feedback_by_variant(experiment: Experiment) -> dict[str, tuple[int, int]]:
    rows = (
        Feedback.objects.filter(experiment=experiment.name)
        .values("variant")
        .annotate(up=Count("id", filter=Q(score__gt=0)), down=Count("id", filter=Q(score__lt=0)))
    )
    return {str(row["variant"]): (int(row["up"]), int(row["down"])) for row in rows}


def _served_by(experiment: Experiment, variant: ExperimentVariant) -> str:
    if variant.target is not None:
        return variant.target.name
    if experiment.model is not None:
        return experiment.model.name
    return f"{experiment.prompt_template} v{variant.prompt_version or 'latest'}"


def experiment_comparison(experiment: Experiment) -> list[VariantFigures]:
    """Every variant's figures in order; the first is the control the others are compared with."""
    figures = _figures_by_variant(experiment)
    feedback = _feedback_by_variant(experiment)
    found: list[VariantFigures] = []
    for variant in experiment.variants.select_related("target").order_by("position", "id"):
        row = figures.get(variant.name, {})
        ok = int(row.get("ok") or 0)
        latency = row.get("latency")
        up, down = feedback.get(variant.name, (0, 0))
        found.append(
            VariantFigures(
                variant_id=variant.pk,
                name=variant.name,
                target=_served_by(experiment, variant),
                percent=variant.percent,
                calls=int(row.get("calls") or 0),
                errors=int(row.get("errors") or 0),
                latency_ms=float(latency) if latency is not None else None,
                latency_sd_ms=_sd(latency, row.get("latency_sq"), ok),
                ttft_ms=float(row["ttft"]) if row.get("ttft") is not None else None,
                input_tokens=int(row.get("input_tokens") or 0),
                output_tokens=int(row.get("output_tokens") or 0),
                cost_usd=Decimal(row.get("cost") or 0),
                thumbs_up=up,
                thumbs_down=down,
            )
        )
    return _with_intervals(found, figures)


def _with_intervals(found: list[VariantFigures], figures: dict[str, dict[str, Any]]) -> list[VariantFigures]:
    if not found:
        return found
    control = found[0]
    control_ok = int(figures.get(control.name, {}).get("ok") or 0)
    compared = [control]
    for variant in found[1:]:
        ok = int(figures.get(variant.name, {}).get("ok") or 0)
        latency = None
        if None not in (control.latency_ms, control.latency_sd_ms, variant.latency_ms, variant.latency_sd_ms):
            latency = means_interval(
                control.latency_ms, control.latency_sd_ms, control_ok,  # type: ignore[arg-type]
                variant.latency_ms, variant.latency_sd_ms, ok,  # type: ignore[arg-type]
            )  # fmt: skip
        rated_control, rated = control.thumbs_up + control.thumbs_down, variant.thumbs_up + variant.thumbs_down
        compared.append(
            replace(
                variant,
                error_rate_diff=proportions_interval(control.errors, control.calls, variant.errors, variant.calls),
                latency_diff_ms=latency,
                thumbs_up_rate_diff=proportions_interval(control.thumbs_up, rated_control, variant.thumbs_up, rated),
            )
        )
    return compared

"""Circuit breakers, the request log and the costs page in the admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html

from orchestration.breaker import (
    BreakerView,
    breaker_force_open,
    breaker_key,
    breaker_read,
    breaker_reset,
    breaker_state_save,
)
from orchestration.costs import costs_summary
from orchestration.models import BreakerState, Provider, RequestLog
from orchestration.registry import snapshot

_STATE_COLOURS = {"closed": "#2e7d32", "half_open": "#ef6c00", "open": "#c62828"}


def _open_s(row: BreakerState) -> float:
    return row.provider.breaker_open_s


def breaker_rows_ensure() -> None:
    """A row for every breaker there can be: one that never changed state has none yet. That is
    one per provider (or per provider and model), and one per deployment of a model with several
    (``provider:upstream``, orchestration/breaker.py ``breaker_key``)."""
    providers: dict[str, Provider] = {}
    for provider in Provider.objects.filter(enabled=True).prefetch_related("models"):
        providers[provider.name] = provider
        keys = [f"{provider.name}:{m.upstream}" for m in provider.models.all()] if provider.breaker_per_model else []
        for key in keys or [provider.name]:
            BreakerState.objects.get_or_create(key=key, defaults={"provider": provider, "model": key.partition(":")[2]})
    registry = snapshot()
    for route in registry.models.values():
        for deployment in route.deployments:
            reached = registry.providers.get(deployment.route.provider)
            owner = providers.get(deployment.route.provider)
            if reached is None or owner is None:
                continue
            key = breaker_key(deployment.route, reached)
            BreakerState.objects.get_or_create(key=key, defaults={"provider": owner, "model": key.partition(":")[2]})


def _refresh(row: BreakerState) -> BreakerView | None:
    """Copy the live state from Redis into the row; None when Redis does not answer."""
    view = breaker_read(row.key, _open_s(row))
    if view is not None:
        breaker_state_save(row.key, row.provider.name, view)
    return view


@admin.register(BreakerState)
class BreakerStateAdmin(admin.ModelAdmin):
    list_display = [
        "key",
        "provider",
        "model",
        "state_badge",
        "failure_percent",
        "window_calls",
        "opened_at",
        "next_probe_at",
    ]
    list_filter = ["state", "provider"]
    search_fields = ["key"]
    actions = ["reset_breakers", "force_open_breakers"]
    list_select_related = ["provider"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        # The rows mirror Redis on transitions; refresh them so counts since then show too.
        breaker_rows_ensure()
        redis_answered = all(_refresh(row) is not None for row in BreakerState.objects.select_related("provider"))
        if not redis_answered:
            self.message_user(request, "Redis does not answer: showing the last mirrored states.", messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.display(description="state", ordering="state")
    def state_badge(self, row: BreakerState) -> str:
        return format_html(
            '<strong style="color:{}">{}</strong>', _STATE_COLOURS.get(row.state, "inherit"), row.get_state_display()
        )

    @admin.display(description="failure rate", ordering="failure_rate")
    def failure_percent(self, row: BreakerState) -> str:
        return f"{row.failure_rate:.0%}"

    @admin.action(description="Reset (close) the selected breakers", permissions=["operate"])
    def reset_breakers(self, request: HttpRequest, queryset: QuerySet[BreakerState]) -> None:
        for row in queryset.select_related("provider"):
            breaker_reset(row.key)
            _refresh(row)
        self.message_user(request, f"Reset {queryset.count()} breaker(s).", messages.SUCCESS)

    @admin.action(description="Force open the selected breakers", permissions=["operate"])
    def force_open_breakers(self, request: HttpRequest, queryset: QuerySet[BreakerState]) -> None:
        for row in queryset.select_related("provider"):
            breaker_force_open(row.key)
            _refresh(row)
        self.message_user(request, f"Opened {queryset.count()} breaker(s).", messages.SUCCESS)

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Reset and force open change what every process does: the breaker's change permission,
        although its rows themselves are never edited by hand."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def duration_text(ms: float | None) -> str:
    """A duration as people read it: 850 ms, 1.2 s, 60.0 s (the raw float stays in the row's page)."""
    if ms is None:
        return "–"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "request_id",
        "endpoint",
        "model_requested",
        "model_served",
        "provider_served",
        "deployment",
        "variant",
        "status",
        "error_kind",
        "cache_status",
        "input_tokens",
        "output_tokens",
        "usage_estimated",
        "cost_usd",
        "latency",
        "ttft",
        "attempts",
        "fallback_summary",
    ]
    list_filter = [
        "status",
        "cache_status",
        "endpoint",
        "model_served",
        "provider_served",
        "deployment",
        "experiment",
        "usage_estimated",
        "created_at",
    ]
    search_fields = ["request_id", "model_requested", "model_served"]
    date_hierarchy = "created_at"
    list_select_related = ["api_key", "user"]
    show_full_result_count = False
    change_list_template = "admin/orchestration/requestlog/change_list.html"

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, row: RequestLog) -> str:
        return duration_text(row.latency_ms)

    @admin.display(description="first token", ordering="ttft_ms")
    def ttft(self, row: RequestLog) -> str:
        return duration_text(row.ttft_ms)

    @admin.display(description="fallbacks")
    def fallback_summary(self, row: RequestLog) -> str:
        return ", ".join(f"{hop['from']}→{hop['to']} ({hop['reason']})" for hop in row.fallbacks or [])

    def get_urls(self) -> list[URLPattern]:
        costs = path("costs/", self.admin_site.admin_view(self.costs_view), name="orchestration_requestlog_costs")
        return [costs, *super().get_urls()]

    def costs_view(self, request: HttpRequest) -> TemplateResponse:
        # All spend, per model and per key: what the request log shows, so its view permission.
        if not self.has_view_permission(request):
            raise PermissionDenied("The costs page needs the permission to view the request log.")
        try:
            days = min(365, max(1, int(request.GET.get("days", "14"))))
        except ValueError:
            days = 14
        summary = costs_summary(days=days)
        context = {
            **self.admin_site.each_context(request),
            "title": "Costs",
            "opts": self.model._meta,
            "summary": summary,
            "days": days,
            "periods": _periods(days),
            "chart_data": _chart_data(summary),
        }
        return TemplateResponse(request, "admin/orchestration/costs.html", context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


_PERIODS = {1: "last day", 7: "last 7 days", 14: "last 14 days", 30: "last 30 days", 90: "last 90 days"}


def _periods(days: int) -> list[tuple[int, str]]:
    """The period picker's choices, with the one a link asked for (``?days=3``) among them: the page
    must not claim "last day" over three days of figures."""
    return sorted({**_PERIODS, days: _PERIODS.get(days, f"last {days} days")}.items())


def _chart_data(summary: Any) -> dict[str, Any]:
    return {
        "days": [{"label": day.isoformat(), "value": float(cost)} for day, cost, _ in summary.days],
        "models": [{"label": m.model, "value": float(m.cost_usd)} for m in summary.models],
        "keys": [{"label": label, "value": float(cost)} for label, cost, _ in summary.keys],
        "latency": [
            {
                "label": m.model,
                "p50": round(m.p50_ms or 0),
                "p95": round(m.p95_ms or 0),
                "p50_text": m.p50_text,
                "p95_text": m.p95_text,
            }
            for m in summary.models
        ],
        "errors": [{"label": m.model, "value": round(m.error_rate * 100, 2)} for m in summary.models],
        "cache": [{"label": status, "value": count} for status, count in sorted(summary.cache.items())],
    }

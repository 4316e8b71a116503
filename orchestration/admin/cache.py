"""Cached answers in the admin: what the caches hold, their hits, and purges that reach Redis too."""

from __future__ import annotations

from typing import Any

import redis
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.text import Truncator

from orchestration.caching.exact import cache_index_flush, cache_purge_all, cache_purge_entries, cache_purge_model
from orchestration.caching.feedback import semantic_entries_report_wrong
from orchestration.models import CacheEntry

PREVIEW_CHARS = 120
REDIS_DOWN = "Redis does not answer: nothing was purged."


@admin.register(CacheEntry)
class CacheEntryAdmin(admin.ModelAdmin):
    list_display = [
        "model",
        "kind",
        "short_scope",
        "question",
        "answer",
        "hits",
        "created_at",
        "expiry",
    ]
    list_filter = ["kind", "model"]
    search_fields = ["model", "question_preview", "answer_preview"]
    readonly_fields = [f.name for f in CacheEntry._meta.fields]
    actions = ["purge_selected", "purge_models_of_selected", "report_wrong_semantic_hits"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Deleting rows alone would leave the answers in Redis: only the purges are offered.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        cache_index_flush(timeout=2.0)  # show what this process stored a moment ago
        return super().changelist_view(request, extra_context)

    @admin.display(description="scope")
    def short_scope(self, row: CacheEntry) -> str:
        return row.scope[:12]

    # The list shows the start of each preview; the entry's page shows all of it.
    @admin.display(description="question", ordering="question_preview")
    def question(self, row: CacheEntry) -> str:
        return Truncator(row.question_preview).chars(PREVIEW_CHARS)

    @admin.display(description="answer", ordering="answer_preview")
    def answer(self, row: CacheEntry) -> str:
        return Truncator(row.answer_preview).chars(PREVIEW_CHARS)

    @admin.display(description="expires", ordering="expires_at")
    def expiry(self, row: CacheEntry) -> str:
        if row.expires_at is None:
            return "-"
        return f"{row.expires_at:%Y-%m-%d %H:%M}" + (" (expired)" if row.expires_at < timezone.now() else "")

    # Purges delete answers, so they need the delete permission, as the purge-all page does.
    @admin.action(description="Purge selected cached answers (Redis too)", permissions=["delete"])
    def purge_selected(self, request: HttpRequest, queryset: QuerySet[CacheEntry]) -> None:
        entries = list(queryset.values_list("key", "model"))
        self._purged(request, lambda: cache_purge_entries(entries))

    @admin.action(description="Purge every cached answer of the selected rows' models", permissions=["delete"])
    def purge_models_of_selected(self, request: HttpRequest, queryset: QuerySet[CacheEntry]) -> None:
        models = sorted(set(queryset.values_list("model", flat=True)))
        self._purged(request, lambda: sum(cache_purge_model(model) for model in models), f" of {', '.join(models)}")

    @admin.action(
        description="Mark selected semantic answers as wrong hits (evict; the model's policy learns)",
        permissions=["delete"],
    )
    def report_wrong_semantic_hits(self, request: HttpRequest, queryset: QuerySet[CacheEntry]) -> None:
        entries = list(queryset.filter(kind=CacheEntry.Kind.SEMANTIC))
        exact = queryset.exclude(kind=CacheEntry.Kind.SEMANTIC).count()
        try:
            count = semantic_entries_report_wrong(entries)
        except (redis.RedisError, OSError):
            self.message_user(request, REDIS_DOWN, messages.ERROR)
            return
        note = f" ({exact} exact answer(s) left alone: only semantic hits can be wrong this way)" if exact else ""
        self.message_user(request, f"Marked {count} semantic answer(s) as wrong hits and evicted them{note}.")

    def _purged(self, request: HttpRequest, purge: Any, detail: str = "") -> None:
        try:
            count = purge()
        except (redis.RedisError, OSError):
            self.message_user(request, REDIS_DOWN, messages.ERROR)
            return
        self.message_user(request, f"Purged {count} cached answer(s){detail}.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        purge_all = path(
            "purge-all/", self.admin_site.admin_view(self.purge_all_view), name="orchestration_cacheentry_purge_all"
        )
        return [purge_all, *super().get_urls()]

    def purge_all_view(self, request: HttpRequest) -> HttpResponse:
        """GET asks for confirmation; POST purges every cached answer of every model."""
        if not self.has_delete_permission(request):
            return HttpResponseRedirect(reverse("admin:orchestration_cacheentry_changelist"))
        if request.method == "POST":
            self._purged(request, cache_purge_all)
            return HttpResponseRedirect(reverse("admin:orchestration_cacheentry_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Purge every cached answer?",
            "opts": self.model._meta,
            "entries": CacheEntry.objects.count(),
        }
        return TemplateResponse(request, "admin/orchestration/cacheentry/purge_all.html", context)

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agents import services
from agents.models import KnowledgeArticle, SupportTicket, Task, TaskEvent


class TaskEventInline(admin.TabularInline):
    model = TaskEvent
    extra = 0
    can_delete = False
    ordering = ["seq"]
    fields = ("seq", "type", "content", "data", "at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "agent", "owner", "status", "progress", "origin", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "agent", "origin"]
    search_fields = ["id", "input", "owner__username", "idempotency_key"]
    date_hierarchy = "created_at"
    list_select_related = ["owner"]
    inlines = [TaskEventInline]
    actions = ["cancel_tasks"]
    readonly_fields = [field.name for field in Task._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Cancel the selected unfinished tasks", permissions=["change"])
    def cancel_tasks(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        cancelled = sum(
            services.task_cancel(task_id=task_id, message="Cancelled by an administrator.")
            for task_id in queryset.values_list("pk", flat=True)
        )
        skipped = queryset.count() - cancelled
        self.message_user(request, f"Cancelled {cancelled} task(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"{skipped} task(s) had already finished.", messages.WARNING)


@admin.register(KnowledgeArticle)
class KnowledgeArticleAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "tags", "published", "updated_at"]
    list_filter = ["published"]
    search_fields = ["title", "body", "tags"]
    prepopulated_fields = {"slug": ["title"]}


@admin.register(SupportTicket)
class SupportTicketAdmin(admin.ModelAdmin):
    list_display = ["id", "subject", "owner", "priority", "category", "status", "created_at"]
    list_filter = ["status", "priority", "category"]
    search_fields = ["subject", "description", "owner__username"]
    raw_id_fields = ["task"]

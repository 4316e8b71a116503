"""Admin screens: conversations with their messages, and every reply with what it cost."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from chat.models import Conversation, Message

_REPLY_FIELDS = (
    "conversation",
    "role",
    "status",
    "content",
    "model",
    "provider",
    "fallback_from",
    "simulated",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "error_code",
    "error_message",
    "created_at",
    "finished_at",
)


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("role", "status", "content", "model", "output_tokens", "cost_usd", "created_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "model", "message_count", "updated_at")
    list_filter = ("model",)
    search_fields = ("title", "owner__username", "system_prompt")
    readonly_fields = ("created_at", "updated_at")
    raw_id_fields = ("owner",)
    inlines = [MessageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).select_related("owner").annotate(message_total=Count("messages"))

    @admin.display(description="messages", ordering="message_total")
    def message_count(self, obj: Conversation) -> int:
        return getattr(obj, "message_total", 0)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Replies are a record of what happened: readable, never edited by hand."""

    list_display = (
        "id",
        "conversation",
        "role",
        "status",
        "model",
        "provider",
        "output_tokens",
        "cost_usd",
        "created_at",
    )
    list_filter = ("status", "role", "model", "provider", "simulated")
    search_fields = ("content", "conversation__title", "conversation__owner__username", "error_code")
    date_hierarchy = "created_at"
    readonly_fields = _REPLY_FIELDS
    fields = _REPLY_FIELDS
    list_select_related = ("conversation",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Message | None = None) -> bool:
        return False

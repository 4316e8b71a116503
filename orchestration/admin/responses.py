"""Stored responses of the Responses API in the admin: read-only, for looking up what was asked and answered."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from orchestration.models import StoredResponse


@admin.register(StoredResponse)
class StoredResponseAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "model", "status", "background", "created_at", "completed_at")
    list_filter = ("status", "background", "model")
    search_fields = ("id", "owner__username", "previous_response_id")
    date_hierarchy = "created_at"
    list_select_related = ("owner",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

"""The Django admin of the orchestration app, one module per area (explicit imports register them)."""

from __future__ import annotations

from django.contrib import admin

from orchestration.admin import cache, experiments, keys, observability, prompts, registry, responses  # noqa: F401
from orchestration.admin.changelist import changelists_check_lookups

changelists_check_lookups()

admin.site.site_header = "Switchyard administration"
admin.site.site_title = "Switchyard admin"
admin.site.index_title = "Registry, traffic and operations"

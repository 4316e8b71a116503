"""Prompt templates in the admin: editing the text saves a new version; the history is read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from orchestration.errors import ServiceError
from orchestration.models import LanguageModel, PromptTemplate, PromptVersion
from orchestration.prompts import PARAMETERS, prompt_version_create
from orchestration.types import OrchestrationError
from orchestration.validation import completion_input_from


class PromptTemplateForm(forms.ModelForm):
    system_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 100}),
        help_text="Variables as {name}; {{ and }} for literal braces. Saving a change creates a new version.",
    )
    default_model = forms.ModelChoiceField(queryset=LanguageModel.objects.all(), required=False)
    parameters = forms.JSONField(
        required=False, initial=dict, help_text=f"Defaults for: {', '.join(sorted(PARAMETERS))}."
    )

    class Meta:
        model = PromptTemplate
        fields = ["name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        latest = self.instance.versions.order_by("-version").first() if self.instance.pk else None
        if latest is not None:
            self.initial.update(
                system_prompt=latest.system_prompt,
                default_model=latest.default_model_id,
                parameters=latest.parameters,
            )

    def clean_parameters(self) -> dict[str, Any]:
        value = self.cleaned_data.get("parameters") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Parameters must be a JSON object.")
        unknown = sorted(set(value) - PARAMETERS)
        if unknown:
            raise forms.ValidationError(f"Unknown parameters: {', '.join(unknown)}.")
        # Each default goes into every request that names the template: checked as a request's own
        # value would be, or a bad one (max_tokens -5) would fail each of those calls upstream.
        try:
            completion_input_from({"model": "template", "messages": [{"role": "user", "content": "."}], **value})
        except ServiceError as error:
            raise forms.ValidationError(error.message) from None
        return value


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    fields = ["version", "system_prompt", "variables", "default_model", "parameters", "created_at", "created_by"]
    readonly_fields = [
        "version",
        "system_prompt",
        "variables",
        "default_model",
        "parameters",
        "created_at",
        "created_by",
    ]
    extra = 0
    can_delete = False
    ordering = ["-version"]
    verbose_name_plural = "history (versions are immutable)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    form = PromptTemplateForm
    list_display = ["name", "description", "latest_version", "created_at"]
    search_fields = ["name", "description"]
    inlines = [PromptVersionInline]
    fields = ["name", "description", "system_prompt", "default_model", "parameters"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The request log names templates: renaming one would orphan what it logged.
        return ["name"] if obj is not None else []

    @admin.display(description="latest version")
    def latest_version(self, template: PromptTemplate) -> int | None:
        latest = template.versions.order_by("-version").first()
        return latest.version if latest else None

    def save_model(self, request: HttpRequest, obj: PromptTemplate, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        data = form.cleaned_data
        latest = obj.versions.order_by("-version").first()
        wanted = (data["system_prompt"], data["default_model"], data["parameters"] or {})
        if latest is not None and (latest.system_prompt, latest.default_model, latest.parameters) == wanted:
            return
        try:
            prompt_version_create(
                template=obj,
                system_prompt=data["system_prompt"],
                default_model=data["default_model"],
                parameters=data["parameters"] or {},
                created_by=request.user,
            )
        except OrchestrationError as error:
            self.message_user(request, error.message, level="error")

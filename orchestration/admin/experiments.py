"""Experiments in the admin: variants inline, the side-by-side comparison with confidence
intervals, pause / resume / end actions, and promoting a winner (with a confirmation page)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString

from orchestration.errors import ServiceError
from orchestration.models import Experiment, ExperimentVariant, Feedback
from orchestration.routing.selectors import experiment_comparison
from orchestration.routing.services import (
    experiment_end,
    experiment_pause,
    experiment_promote,
    experiment_resume,
    variants_check,
)


class VariantFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        variants = [
            {
                "name": data["name"],
                "percent": data["percent"],
                "parameters": data.get("parameters") or {},
                "prompt_version": data.get("prompt_version"),
            }
            for data in (getattr(form, "cleaned_data", None) for form in self.forms)
            if data and not data.get("DELETE") and data.get("name") is not None and data.get("percent") is not None
        ]
        try:
            variants_check(variants, self.instance.prompt_template)
        except ServiceError as error:
            raise forms.ValidationError(error.message) from None


class VariantInline(admin.TabularInline):
    model = ExperimentVariant
    formset = VariantFormSet
    fields = ("position", "name", "target", "prompt_version", "percent", "parameters")
    ordering = ("position", "id")
    extra = 2


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "model", "prompt_template", "sticky_by", "status", "winner", "created_at", "ended_at")
    list_filter = ("status",)
    search_fields = ("name", "model__name", "prompt_template__name")
    inlines = (VariantInline,)
    readonly_fields = ("status", "winner", "created_at", "ended_at", "comparison")
    fields = (
        "name",
        "model",
        "prompt_template",
        "sticky_by",
        "status",
        "winner",
        "created_at",
        "ended_at",
        "comparison",
    )
    actions = ("pause", "resume", "end")

    @admin.display(description="variants side by side")
    def comparison(self, experiment: Experiment) -> SafeString:
        if experiment.pk is None:
            return SafeString("Save the experiment to see its figures.")
        context = {
            "experiment": experiment,
            "variants": experiment_comparison(experiment),
            "live": experiment.status != Experiment.Status.ENDED,
        }
        return SafeString(render_to_string("admin/orchestration/experiment/comparison.html", context))

    def _each(self, request: HttpRequest, queryset: QuerySet[Experiment], change: Any, done: str) -> None:
        for experiment in queryset:
            try:
                change(experiment=experiment)
            except ServiceError as error:
                self.message_user(request, error.message, messages.WARNING)
            else:
                self.message_user(request, f"{experiment.name}: {done}.", messages.SUCCESS)

    @admin.action(description="Pause (every call gets the model as configured)", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, experiment_pause, "paused")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, experiment_resume, "running again")

    @admin.action(description="End without a winner", permissions=["change"])
    def end(self, request: HttpRequest, queryset: QuerySet[Experiment]) -> None:
        self._each(request, queryset, experiment_end, "ended")

    def get_urls(self) -> list[URLPattern]:
        promote = path(
            "<int:experiment_id>/promote/<int:variant_id>/",
            self.admin_site.admin_view(self.promote_view),
            name="orchestration_experiment_promote",
        )
        return [promote, *super().get_urls()]

    def promote_view(self, request: HttpRequest, experiment_id: int, variant_id: int) -> HttpResponse:
        """GET asks for confirmation; POST ends the experiment with this variant as the default."""
        experiment = get_object_or_404(Experiment.objects.select_related("model", "prompt_template"), pk=experiment_id)
        variant = get_object_or_404(ExperimentVariant.objects.select_related("target"), pk=variant_id)
        back = reverse("admin:orchestration_experiment_change", args=[experiment.pk])
        if not self.has_change_permission(request, experiment):
            return HttpResponseRedirect(back)
        if request.method == "POST":
            try:
                experiment_promote(experiment=experiment, variant=variant)
            except ServiceError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                split = experiment.model or experiment.prompt_template
                self.message_user(request, f"{variant.name} is now the default of {split}.")
            return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Promote {variant.name}?",
            "opts": self.model._meta,
            "experiment": experiment,
            "variant": variant,
            "back": back,
        }
        return TemplateResponse(request, "admin/orchestration/experiment/promote.html", context)


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "score", "model", "deployment", "experiment", "variant", "request_id")
    list_filter = ("score", "experiment")
    search_fields = ("request_id", "comment", "user__username")
    readonly_fields = [field.name for field in Feedback._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

"""The model registry in the admin: providers (with a write-only secret), models with their
ordered fallbacks, and a "test connection" action that asks the provider for a tiny answer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.db.models import Max, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from orchestration.caching.policy import operating_point_text
from orchestration.llmconfig import registry_number_problems
from orchestration.models import Deployment, Fallback, LanguageModel, Provider
from orchestration.providers.base import CallTimeout
from orchestration.registry import provider_config
from orchestration.routing.services import model_mirror_first_deployment
from orchestration.secrets import api_key_env_allowed, api_key_env_rule, secret_encrypt
from orchestration.types import ChatRequest, EmbeddingRequest, Message, ProviderError

PROBE_TIMEOUT_S = 15.0


# --- the connection test ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    text: str


def probe_model(provider: Provider) -> LanguageModel | None:
    """The model a provider is tested with: an enabled chat model first, else any of its models."""
    models = list(provider.models.order_by("-enabled", "name"))
    chat = [model for model in models if "embeddings" not in (model.capabilities or [])]
    candidates = chat or models
    return candidates[0] if candidates else None


def provider_probe(provider: Provider, model: LanguageModel | None = None) -> ProbeResult:
    """Ask the provider for the smallest useful answer and describe what it said."""
    model = model or probe_model(provider)
    if model is None:
        return ProbeResult(False, f"{provider.name}: no model is registered on it to test with")
    try:
        text = async_to_sync(_probe)(provider, model)
    except ProviderError as error:
        status = f" (HTTP {error.status})" if error.status else ""
        return ProbeResult(False, f"{provider.name} / {model.name}: failed, {error.kind}{status}: {error}")
    return ProbeResult(True, f"{provider.name} / {model.name}: {text}")


async def _probe(provider: Provider, model: LanguageModel) -> str:
    # Imported here, as the Orchestrator does: the adapters load only when a call is made.
    from orchestration.providers import provider_for

    # The process's shared adapter: not closed here, its pools close with their event loop.
    adapter = provider_for(provider_config(provider))
    timeout = CallTimeout(total=PROBE_TIMEOUT_S, connect=5.0, first_token=PROBE_TIMEOUT_S, idle=PROBE_TIMEOUT_S)
    if "embeddings" in (model.capabilities or []):
        vectors = await adapter.embed(EmbeddingRequest(model=model.upstream, inputs=["ping"]), timeout=timeout)
        return f"answered with a {len(vectors.vectors[0])}-dimensional embedding"
    request = ChatRequest(
        model=model.upstream,
        messages=[Message(role="user", content="Reply with the single word OK.")],
        max_tokens=8,
        temperature=0,
    )
    reply = await adapter.complete(request, timeout=timeout)
    usage = reply.usage
    return f"answered {reply.content!r} ({usage.input_tokens} tokens in, {usage.output_tokens} out)"


def _report(modeladmin: admin.ModelAdmin, request: HttpRequest, results: list[ProbeResult]) -> None:
    for result in results:
        modeladmin.message_user(request, result.text, messages.SUCCESS if result.ok else messages.ERROR)


# --- providers ------------------------------------------------------------------------------------


def secret_status(provider: Provider) -> str:
    if provider.api_key_env:
        present = "set" if os.environ.get(provider.api_key_env) else "not set in this process"
        return f"from ${provider.api_key_env} ({present})"
    if provider.api_key_encrypted:
        return "stored encrypted"
    return "none"


def _numbers_checked(form: forms.ModelForm, section: str) -> None:  # type: ignore[type-arg]
    """Each number of ``form`` that a registry file could not hold (``section`` "providers" or
    "models"), as an error on its field: what the admin saves, ``llmconfig dump`` writes and loads back."""
    for name, problem in registry_number_problems(section, form.cleaned_data or {}).items():
        if name in form.fields:
            form.add_error(name, problem)


class ProviderForm(forms.ModelForm):
    base_url = forms.URLField(
        label="Base URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Empty: the kind's default (the public endpoint of OpenAI, Anthropic or Gemini; Ollama on "
        "127.0.0.1:11434 for OpenAI-compatible; SWITCHYARD_SIMULATOR_URL for the simulator).",
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: stored encrypted, never shown again. Leave empty to keep the current one. "
        "An API key variable, when set, takes precedence.",
    )
    clear_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    class Meta:
        model = Provider
        fields = "__all__"

    def clean_api_key_env(self) -> str:
        name = str(self.cleaned_data.get("api_key_env") or "").strip()
        if name and not api_key_env_allowed(name):
            raise forms.ValidationError(
                f"{name} may not hold a provider secret: {api_key_env_rule()} (SWITCHYARD_API_KEY_ENV_ALLOW)."
            )
        return name

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        _numbers_checked(self, "providers")
        return cleaned

    def save(self, commit: bool = True) -> Provider:
        provider: Provider = super().save(commit=False)
        if self.cleaned_data.get("clear_api_key"):
            provider.api_key_encrypted = ""
        if self.cleaned_data.get("api_key"):
            provider.api_key_encrypted = secret_encrypt(self.cleaned_data["api_key"])
        if commit:
            provider.save()
        return provider


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "kind", "base_url", "secret", "timeout_s", "max_retries", "model_count", "enabled")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url")
    readonly_fields = ("secret", "created_at", "updated_at")
    actions = ("test_connection",)
    fieldsets = (
        (None, {"fields": ("name", "kind", "base_url", "enabled")}),
        ("Secret", {"fields": ("secret", "api_key_env", "api_key", "clear_api_key")}),
        ("Calls", {"fields": ("timeout_s", "max_retries", "retry_base_s")}),
        (
            "Circuit breaker",
            {"fields": ("breaker_failure_rate", "breaker_window", "breaker_open_s", "breaker_per_model")},
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Provider]:
        return super().get_queryset(request).prefetch_related("models")

    @admin.display(description="secret")
    def secret(self, provider: Provider) -> str:
        return secret_status(provider)

    @admin.display(description="models")
    def model_count(self, provider: Provider) -> int:
        return len(provider.models.all())

    @admin.action(description="Test connection", permissions=["change"])  # a real (paid) call
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        _report(self, request, [provider_probe(provider) for provider in queryset])


# --- models ---------------------------------------------------------------------------------------


class FallbackFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        positions: set[int] = set()
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE"):
                continue
            if data.get("target") is not None and data["target"].pk == self.instance.pk:
                raise forms.ValidationError("A model cannot fall back to itself.")
            position = data.get("position")
            if position in positions:
                raise forms.ValidationError(f"Two fallbacks share position {position}: give each its own.")
            positions.add(position)

    def save_existing_objects(self, commit: bool = True) -> list[Fallback]:
        # Rows are saved one by one, and (model, position) is unique: swapping two positions would
        # write the first onto the second's. The rows that move or go step aside to free positions first.
        if commit:
            moving = [
                form.instance.pk
                for form in self.initial_forms
                if form.instance.pk is not None and (form in self.deleted_forms or "position" in form.changed_data)
            ]
            if moving:
                held = Fallback.objects.filter(model=self.instance).aggregate(top=Max("position"))["top"] or 0
                wanted = [form.cleaned_data.get("position") or 0 for form in self.forms if form.is_valid()]
                start = max(held, *wanted) + 1
                for offset, pk in enumerate(moving):
                    Fallback.objects.filter(pk=pk).update(position=start + offset)
        return super().save_existing_objects(commit)


class FallbackInline(admin.TabularInline):
    model = Fallback
    fk_name = "model"
    formset = FallbackFormSet
    fields = ("position", "target")
    ordering = ("position",)
    extra = 1
    verbose_name = "fallback"
    verbose_name_plural = "fallbacks, tried in order of position"


class DeploymentInline(admin.TabularInline):
    model = Deployment
    fk_name = "model"  # its unique names per model are checked by the formset (Meta.constraints)
    fields = (
        "position",
        "name",
        "provider",
        "upstream",
        "weight",
        "rpm_limit",
        "tpm_limit",
        "region",
        "tag",
        "input_per_mtok",
        "output_per_mtok",
        "enabled",
    )
    ordering = ("position", "id")
    extra = 0
    verbose_name_plural = (
        "deployments (none: the provider and upstream above are the one deployment; with some, those mirror the first)"
    )


class LanguageModelForm(forms.ModelForm):
    class Meta:
        model = LanguageModel
        fields = "__all__"

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        _numbers_checked(self, "models")
        return cleaned


@admin.register(LanguageModel)
class LanguageModelAdmin(admin.ModelAdmin):
    form = LanguageModelForm
    list_display = (
        "name",
        "provider",
        "upstream",
        "input_per_mtok",
        "output_per_mtok",
        "context_window",
        "routing_strategy",
        "deployment_names",
        "fallback_chain",
        "enabled",
    )
    list_filter = ("provider", "enabled", "cache_semantic")
    search_fields = ("name", "upstream", "description")
    list_select_related = ("provider",)
    inlines = (DeploymentInline, FallbackInline)
    actions = ("test_connection",)
    readonly_fields = ("created_at", "updated_at", "semantic_operating_point")
    fieldsets = (
        (None, {"fields": ("name", "provider", "upstream", "description", "enabled", "chat_default")}),
        ("Routing across deployments", {"fields": ("routing_strategy",)}),
        ("Prices (USD per million tokens)", {"fields": ("input_per_mtok", "output_per_mtok")}),
        (
            "Limits",
            {"fields": ("context_window", "max_output_tokens", "deadline_s", "tokens_per_second", "capabilities")},
        ),
        ("Content-policy fallback", {"fields": ("content_policy_fallback",)}),
        (
            "Cache",
            {
                "fields": (
                    "cache_exact_enabled",
                    "cache_exact_ttl_s",
                    "cache_semantic",
                    "cache_semantic_error_budget",
                    "cache_semantic_threshold",
                    "semantic_operating_point",
                    "cache_semantic_learned_floor",
                    "cache_semantic_max_turns",
                )
            },
        ),
        ("History", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[LanguageModel]:
        return super().get_queryset(request).prefetch_related("fallbacks__target", "deployments")

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        model_mirror_first_deployment(model=form.instance)

    @admin.display(description="deployments")
    def deployment_names(self, model: LanguageModel) -> str:
        rows = sorted(model.deployments.all(), key=lambda row: (row.position, row.pk))
        return ", ".join(f"{row.name} ({row.weight})" for row in rows) or model.provider.name

    @admin.display(description="fallbacks")
    def fallback_chain(self, model: LanguageModel) -> str:
        chain = sorted(model.fallbacks.all(), key=lambda link: link.position)
        return " → ".join(link.target.name for link in chain) or "—"

    @admin.display(description="semantic threshold in force")
    def semantic_operating_point(self, model: LanguageModel) -> str:
        # Imported here: the embedder module brings numpy, which a web process without the semantic cache never loads.
        from orchestration.caching.embedders import get_embedder

        return operating_point_text(
            model.cache_semantic_threshold,
            model.cache_semantic_error_budget,
            get_embedder().name,
            model.cache_semantic_learned_floor,
        )

    @admin.action(description="Test connection", permissions=["change"])  # a real (paid) call
    def test_connection(self, request: HttpRequest, queryset: QuerySet[LanguageModel]) -> None:
        _report(self, request, [provider_probe(model.provider, model) for model in queryset.select_related("provider")])

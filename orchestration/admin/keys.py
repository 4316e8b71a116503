"""API keys in the admin: created here with the secret shown once, listed with limits and spend,
revoked in bulk. The hash is never shown; the prefix identifies a key."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import redis
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q, QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone

from orchestration.access.budgets import month_start, spend_counter_key, units_to_usd
from orchestration.access.keys import api_key_create, api_key_revoke
from orchestration.models import AccessPolicy, ApiKey, LanguageModel
from orchestration.redisclients import FAST, redis_sync


def _model_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in LanguageModel.objects.order_by("name").values_list("name", flat=True)]


def _allowed_models_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=_model_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked means every model.",
    )


class LimitsFormMixin(forms.ModelForm):
    """Limits as the gateway reads them: a rate of 0 would mean no limit at all and a negative budget
    no budget at all, so neither is taken; empty is the way to say "no limit" (or "the default")."""

    def clean_rpm(self) -> int | None:
        return self._at_least("rpm", 1, "Use at least 1 request per minute, or leave it empty.")

    def clean_tpm(self) -> int | None:
        return self._at_least("tpm", 1, "Use at least 1 token per minute, or leave it empty.")

    def clean_monthly_budget_usd(self) -> Decimal | None:
        return self._at_least("monthly_budget_usd", 0, "A budget cannot be negative: 0 stops every call.")

    def _at_least(self, name: str, least: int, message: str) -> Any:
        value = self.cleaned_data.get(name)
        if value is not None and value < least:
            raise forms.ValidationError(message)
        return value


class ApiKeyForm(LimitsFormMixin):
    allowed_models = _allowed_models_field()

    class Meta:
        model = ApiKey
        fields = ["user", "name", "allowed_models", "rpm", "tpm", "monthly_budget_usd", "expires_at", "enabled"]


class RevokedFilter(admin.SimpleListFilter):
    title = "revoked"
    parameter_name = "revoked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Revoked"), ("no", "Not revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() in ("yes", "no"):
            return queryset.filter(revoked_at__isnull=self.value() == "no")
        return queryset


def _spend_counters(keys: list[int]) -> dict[int, Decimal]:
    """The live spend counters the budget check reads, for the keys that have one."""
    if not keys:
        return {}
    now = timezone.now()
    client = redis_sync(FAST)
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(spend_counter_key(f"k{key}", now), "units")
            values = pipe.execute()
    except redis.RedisError:
        return {}
    return {key: units_to_usd(int(value)) for key, value in zip(keys, values, strict=True) if value is not None}


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = [
        "prefix",
        "name",
        "user",
        "rpm",
        "tpm",
        "monthly_budget_usd",
        "spend_this_month",
        "last_used_at",
        "enabled",
        "revoked_at",
    ]
    list_filter = ["enabled", RevokedFilter]
    search_fields = ["prefix", "name", "user__username", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ["user", "name", "allowed_models", "rpm", "tpm", "monthly_budget_usd", "expires_at"]
        return ["prefix", "user", "name", "allowed_models", "rpm", "tpm", "monthly_budget_usd", "expires_at",
                "enabled", "created_at", "last_used_at", "revoked_at"]  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        # A key never moves to another owner: its log and spend are that person's.
        return [*self.readonly_fields, "user"] if obj is not None else []

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        logged = Sum("requestlog__cost_usd", filter=Q(requestlog__created_at__gte=month_start(timezone.now())))
        return super().get_queryset(request).annotate(logged_spend=logged)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        # One MGET for the page; the rows are the instances the list then renders.
        counters = _spend_counters([key.pk for key in changelist.result_list])
        for key in changelist.result_list:
            key.live_spend = counters.get(key.pk)
        return changelist

    @admin.display(description="spend this month (USD)")
    def spend_this_month(self, obj: ApiKey) -> Decimal:
        """The budget's counter in Redis; the request log's sum where Redis has none."""
        live = getattr(obj, "live_spend", None)
        if live is not None:
            return live
        return (getattr(obj, "logged_spend", None) or Decimal(0)).quantize(Decimal("0.00000001"))

    def save_model(self, request: HttpRequest, obj: ApiKey, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, secret = api_key_create(
            user=obj.user,
            name=obj.name,
            rpm=obj.rpm,
            tpm=obj.tpm,
            allowed_models=list(obj.allowed_models or []),
            monthly_budget_usd=obj.monthly_budget_usd,
            expires_at=obj.expires_at,
        )
        obj.pk, obj.prefix, obj.key_hash, obj.created_at = key.pk, key.prefix, key.key_hash, key.created_at
        messages.warning(request, f"The new API key is {secret} — copy it now: it is shown only this once.")

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            api_key_revoke(key=key)
        messages.success(request, f"Revoked {len(keys)} API key(s); they stop working everywhere within a second.")


class AccessPolicyForm(LimitsFormMixin):
    allowed_models = _allowed_models_field()

    class Meta:
        model = AccessPolicy
        fields = ["user", "unlimited", "rpm", "tpm", "monthly_budget_usd", "allowed_models"]


@admin.register(AccessPolicy)
class AccessPolicyAdmin(admin.ModelAdmin):
    """What one person may do signed in, without a key; people without a row get the defaults."""

    form = AccessPolicyForm
    list_display = ["user", "unlimited", "rpm", "tpm", "monthly_budget_usd", "updated_at"]
    list_filter = ["unlimited"]
    search_fields = ["user__username", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["updated_at"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        defaults = settings.SWITCHYARD["USER_POLICY"]
        shown = ", ".join(
            f"{name.lower()} {'no limit' if value is None else value}" for name, value in defaults.items()
        )
        messages.info(request, f"Without a policy of their own, people get the defaults: {shown}.")
        return super().changelist_view(request, extra_context)

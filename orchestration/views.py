"""The person's own API keys page: create (shown once), revoke, usage this month."""

from __future__ import annotations

from decimal import Decimal
from typing import cast

from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db.models import Count, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from orchestration.access.keys import api_key_create, api_key_revoke
from orchestration.access.policy import user_policy
from orchestration.models import ApiKey, RequestLog


class KeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Name",
        error_messages={"required": "Give the key a name, so you can tell it apart from your other keys later."},
    )


def _month_usage(keys: list[ApiKey]) -> dict[int, dict[str, object]]:
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rows = (
        RequestLog.objects.filter(api_key__in=keys, created_at__gte=start)
        .values("api_key")
        .annotate(
            requests=Count("id"), tokens_in=Sum("input_tokens"), tokens_out=Sum("output_tokens"), cost=Sum("cost_usd")
        )
    )
    return {
        row["api_key"]: {
            "requests": row["requests"],
            "tokens": (row["tokens_in"] or 0) + (row["tokens_out"] or 0),
            "cost": row["cost"] or Decimal("0"),
        }
        for row in rows
    }


def _person(request: HttpRequest) -> User:
    return cast(User, request.user)  # behind login_required: never anonymous


@login_required
def keys_page(request: HttpRequest) -> HttpResponse:
    form = KeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # A key made here carries the person's own limits (their access policy): a key must not
        # be a way around what the person may spend in the browser.
        limits = user_policy(_person(request).pk).limits
        _key, secret = api_key_create(
            user=_person(request),
            name=form.cleaned_data["name"],
            rpm=limits.rpm,
            tpm=limits.tpm,
            monthly_budget_usd=limits.monthly_budget_usd,
        )
        # Post/redirect/get, with the secret carried once in the session: a reload can
        # neither create a second key nor show this one again.
        request.session["new_api_key"] = secret
        return redirect("keys")
    new_secret = request.session.pop("new_api_key", None)
    keys = list(ApiKey.objects.filter(user=_person(request), revoked_at__isnull=True))
    usage = _month_usage(keys)
    rows = [(key, usage.get(key.pk, {"requests": 0, "tokens": 0, "cost": Decimal("0")})) for key in keys]
    response = render(request, "orchestration/keys.html", {"form": form, "rows": rows, "new_secret": new_secret})
    response["Cache-Control"] = "no-store"  # the page may hold a secret shown once
    return response


@login_required
@require_POST
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = ApiKey.objects.filter(pk=key_id, user=_person(request), revoked_at__isnull=True).first()
    if key is None:
        raise Http404("No such key")
    api_key_revoke(key=key)
    return redirect("keys")

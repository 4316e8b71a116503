"""API keys in the admin: the secret shown once after creation, never the hash; limits, spend, revoke."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from orchestration.access.budgets import spend_counter_key, usd_to_units
from orchestration.access.keys import api_key_create, api_key_find
from orchestration.models import ApiKey, LanguageModel, Provider

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(django_user_model: Any) -> Client:
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")
    client = Client()
    client.force_login(root)
    return client


def test_a_key_made_in_the_admin_shows_its_secret_once(admin_client: Client, alice: Any) -> None:
    provider = Provider.objects.create(name="sim", kind="simulator")
    LanguageModel.objects.create(name="gpt-sim", provider=provider, upstream="gpt-sim")
    response = admin_client.post(
        "/admin/orchestration/apikey/add/",
        {
            "user": alice.pk,
            "name": "ci",
            "allowed_models": ["gpt-sim"],
            "rpm": "20",
            "tpm": "",
            "monthly_budget_usd": "5",
        },
        follow=True,
    )
    assert response.status_code == 200
    secrets = re.findall(r"sy-[A-Za-z0-9_\-]{20,}", response.content.decode())
    assert len(set(secrets)) == 1
    key = api_key_find(secrets[0])
    assert key is not None and key.user == alice
    assert (key.name, key.rpm, key.tpm, key.allowed_models) == ("ci", 20, None, ["gpt-sim"])
    assert key.monthly_budget_usd == Decimal("5")
    again = admin_client.get(f"/admin/orchestration/apikey/{key.pk}/change/").content.decode()
    assert secrets[0] not in again and key.key_hash not in again and key.prefix in again


def test_the_list_shows_limits_and_this_months_spend(admin_client: Client, alice: Any, redis_client: Any) -> None:
    key, _ = api_key_create(user=alice, name="busy", rpm=60, tpm=9000, monthly_budget_usd=Decimal("10"))
    redis_client.hset(spend_counter_key(f"k{key.pk}", datetime.now(UTC)), "units", usd_to_units(Decimal("1.25")))
    page = admin_client.get("/admin/orchestration/apikey/").content.decode()
    assert key.prefix in page and "9000" in page and "1.25" in page
    assert key.key_hash not in page


def test_revoking_from_the_list_disables_the_keys(admin_client: Client, alice: Any) -> None:
    keys = [api_key_create(user=alice)[1] for _ in range(2)]
    ids = list(ApiKey.objects.values_list("pk", flat=True))
    response = admin_client.post(
        "/admin/orchestration/apikey/", {"action": "revoke", "_selected_action": ids}, follow=True
    )
    assert "Revoked 2 API key(s)" in response.content.decode()
    assert all(api_key_find(secret) is None for secret in keys)


def test_an_access_policy_is_edited_in_the_admin_and_the_defaults_are_shown(admin_client: Client, alice: Any) -> None:
    from orchestration.access.policy import user_policy
    from orchestration.models import AccessPolicy

    listed = admin_client.get("/admin/orchestration/accesspolicy/", follow=True).content.decode()
    assert "Without a policy of their own, people get the defaults: rpm 60" in listed
    response = admin_client.post(
        "/admin/orchestration/accesspolicy/add/",
        {"user": alice.pk, "rpm": "5", "tpm": "", "monthly_budget_usd": "1.50", "allowed_models": []},
        follow=True,
    )
    assert response.status_code == 200
    policy = AccessPolicy.objects.get(user=alice)
    assert (policy.rpm, policy.tpm, policy.monthly_budget_usd) == (5, None, Decimal("1.50"))
    limits = user_policy(alice.pk).limits  # the saved row wins over the defaults at once in this process
    assert (limits.rpm, limits.tpm, limits.monthly_budget_usd) == (5, 200_000, Decimal("1.50"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("rpm", "0"), ("tpm", "0"), ("monthly_budget_usd", "-5")],
)
def test_a_limit_that_would_mean_no_limit_is_refused(admin_client: Client, alice: Any, field: str, value: str) -> None:
    """The gateway reads a rate of 0 and a negative budget as no limit at all: the form says so
    instead of saving a key that a careless 0 or minus sign has left unlimited."""
    data = {"user": alice.pk, "name": "careless", "rpm": "", "tpm": "", "monthly_budget_usd": "", field: value}

    response = admin_client.post("/admin/orchestration/apikey/add/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field]
    assert not ApiKey.objects.filter(name="careless").exists()


def test_a_budget_of_zero_is_kept_it_stops_every_call(admin_client: Client, alice: Any) -> None:
    data = {"user": alice.pk, "name": "frozen", "rpm": "", "tpm": "", "monthly_budget_usd": "0"}

    response = admin_client.post("/admin/orchestration/apikey/add/", data)

    assert response.status_code == 302
    assert ApiKey.objects.get(name="frozen").monthly_budget_usd == Decimal("0")


def test_an_access_policy_refuses_a_rate_of_zero(admin_client: Client, alice: Any) -> None:
    from orchestration.models import AccessPolicy

    data = {"user": alice.pk, "rpm": "0", "tpm": "", "monthly_budget_usd": ""}

    response = admin_client.post("/admin/orchestration/accesspolicy/add/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["rpm"]
    assert not AccessPolicy.objects.exists()

"""``manage.py createapikey``: prints a working key once, refuses bad input clearly."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from orchestration.access.keys import api_key_find
from orchestration.models import ApiKey, LanguageModel, Provider

pytestmark = pytest.mark.django_db


def create(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("createapikey", *args, stdout=out, stderr=err)
    return out.getvalue().strip(), err.getvalue()


@pytest.fixture
def gpt(db: None) -> LanguageModel:
    provider = Provider.objects.create(name="sim", kind="simulator", base_url="http://127.0.0.1:9/v1")
    return LanguageModel.objects.create(name="gpt-sim", provider=provider, upstream="gpt-sim")


def test_it_prints_a_key_that_authenticates_and_stores_only_its_hash(alice, gpt) -> None:  # type: ignore[no-untyped-def]
    secret, note = create("--user", "alice", "--name", "ci", "--rpm", "20", "--tpm", "5000", "--models", "gpt-sim")
    key = api_key_find(secret)
    assert key is not None and key.user == alice
    assert (key.name, key.rpm, key.tpm, key.allowed_models) == ("ci", 20, 5000, ["gpt-sim"])
    assert secret not in str(ApiKey.objects.values().get())
    assert key.prefix in note and "once" in note


def test_defaults_are_no_limits_and_every_model(alice) -> None:  # type: ignore[no-untyped-def]
    key = api_key_find(create("--user", "alice")[0])
    assert key is not None
    assert (key.rpm, key.tpm, key.allowed_models, key.monthly_budget_usd) == (None, None, [], None)


def test_it_takes_a_monthly_budget(alice) -> None:  # type: ignore[no-untyped-def]
    key = api_key_find(create("--user", "alice", "--budget", "12.50")[0])
    assert key is not None and key.monthly_budget_usd == Decimal("12.50")


def test_an_unknown_user_is_named_in_the_error(db: None) -> None:
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        create("--user", "nobody")


@pytest.mark.parametrize(("option", "value"), [("--rpm", "many"), ("--rpm", "0"), ("--tpm", "-5"), ("--budget", "x")])
def test_bad_numbers_are_refused_before_anything_is_made(alice, option: str, value: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match=option.lstrip("-")):
        create("--user", "alice", option, value)
    assert not ApiKey.objects.exists()


def test_unknown_models_are_refused(alice, gpt) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match=r"Unknown model.*gpt-9"):
        create("--user", "alice", "--models", "gpt-sim,gpt-9")
    assert not ApiKey.objects.exists()

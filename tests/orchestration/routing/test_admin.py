"""The admin: deployments inline on a model, experiments with their variants and actions."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from orchestration.models import Deployment, Experiment, LanguageModel, Provider
from orchestration.registry import snapshot_load
from orchestration.routing.services import experiment_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def accounts() -> tuple[Provider, Provider]:
    return (
        Provider.objects.create(name="east", kind="openai", base_url="https://east.example.com/v1"),
        Provider.objects.create(name="west", kind="openai", base_url="https://west.example.com/v1"),
    )


def _model_form(client: Client, model: LanguageModel, deployments: list[dict[str, Any]]) -> dict[str, Any]:
    page = client.get(reverse("admin:orchestration_languagemodel_change", args=[model.pk]))
    data = {
        key: value
        for key, value in page.context["adminform"].form.initial.items()
        if key not in {"created_at", "updated_at", "content_policy_fallback"} and value is not None
    }
    data.update(provider=model.provider.pk, capabilities='["chat"]', routing_strategy="cost")
    data.update({"fallbacks-TOTAL_FORMS": "0", "fallbacks-INITIAL_FORMS": "0"})
    data.update({"deployments-TOTAL_FORMS": str(len(deployments)), "deployments-INITIAL_FORMS": "0"})
    for index, row in enumerate(deployments):
        for key, value in {"weight": 1, "position": index, "enabled": "on", **row}.items():
            data[f"deployments-{index}-{key}"] = value
    return data


def test_deployments_saved_inline_route_the_model_and_its_provider_mirrors_the_first(
    admin_client: Client, accounts: tuple[Provider, Provider]
) -> None:
    east, west = accounts
    model = LanguageModel.objects.create(name="pool", provider=east, upstream="old")
    rows = [
        {"name": "w", "provider": west.pk, "upstream": "gpt-w", "weight": 3, "rpm_limit": 60},
        {"name": "e", "provider": east.pk, "upstream": "gpt-e", "region": "eu"},
    ]
    url = reverse("admin:orchestration_languagemodel_change", args=[model.pk])
    response = admin_client.post(url, _model_form(admin_client, model, rows))
    assert response.status_code == 302, response.content.decode()[:3000]
    model.refresh_from_db()
    assert (model.provider, model.upstream, model.routing_strategy) == (west, "gpt-w", "cost")
    route = snapshot_load().models["pool"]
    assert [(d.name, d.route.provider, d.weight, d.rpm_limit) for d in route.deployments] == [
        ("w", "west", 3, 60),
        ("e", "east", 1, None),
    ]
    listing = admin_client.get(reverse("admin:orchestration_languagemodel_changelist")).content.decode()
    assert "w (3), e (1)" in listing


def test_two_deployments_with_one_name_are_refused_with_a_message(
    admin_client: Client, accounts: tuple[Provider, Provider]
) -> None:
    east, west = accounts
    model = LanguageModel.objects.create(name="pool", provider=east, upstream="old")
    rows = [
        {"name": "same", "provider": west.pk, "upstream": "a"},
        {"name": "same", "provider": east.pk, "upstream": "b"},
    ]
    url = reverse("admin:orchestration_languagemodel_change", args=[model.pk])
    response = admin_client.post(url, _model_form(admin_client, model, rows))
    assert response.status_code == 200
    assert "Please correct the duplicate data for name." in response.content.decode()
    assert not Deployment.objects.exists()


def test_an_experiment_whose_variants_do_not_add_up_to_100_is_refused(
    admin_client: Client, accounts: tuple[Provider, Provider]
) -> None:
    model = LanguageModel.objects.create(name="pool", provider=accounts[0], upstream="u")
    data = {
        "name": "split",
        "model": model.pk,
        "sticky_by": "user",
        "variants-TOTAL_FORMS": "2",
        "variants-INITIAL_FORMS": "0",
        "variants-0-name": "a",
        "variants-0-percent": "60",
        "variants-0-position": "0",
        "variants-0-parameters": "{}",
        "variants-1-name": "b",
        "variants-1-percent": "30",
        "variants-1-position": "1",
        "variants-1-parameters": "{}",
    }
    response = admin_client.post(reverse("admin:orchestration_experiment_add"), data)
    assert response.status_code == 200
    assert "must add up to 100" in response.content.decode()
    data["variants-1-percent"] = "40"
    response = admin_client.post(reverse("admin:orchestration_experiment_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert snapshot_load().experiments["pool"].name == "split"


def test_the_pause_action_stops_the_split_and_resume_starts_it_again(
    admin_client: Client, accounts: tuple[Provider, Provider]
) -> None:
    model = LanguageModel.objects.create(name="pool", provider=accounts[0], upstream="u")
    experiment = experiment_create(
        name="split",
        model=model,
        sticky_by="user",
        variants=[{"name": "a", "percent": 50}, {"name": "b", "percent": 50}],
    )
    changelist = reverse("admin:orchestration_experiment_changelist")
    admin_client.post(changelist, {"action": "pause", "_selected_action": [experiment.pk]})
    assert Experiment.objects.get().status == "paused" and "pool" not in snapshot_load().experiments
    admin_client.post(changelist, {"action": "resume", "_selected_action": [experiment.pk]})
    assert Experiment.objects.get().status == "running" and "pool" in snapshot_load().experiments

"""Deployments seen from an API client: ``/v1/models`` lists them, and the reply names the one that served."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient

from orchestration.models import Deployment, Provider
from orchestration.registry import snapshot_invalidate
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    bearer,
    chat_body,
    in_thread,
    make_key,
    post_json,
    sim_models,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _two_deployments(sim_models: Any) -> None:
    provider = Provider.objects.get(name="sim")
    Deployment.objects.create(model=sim_models.chat, name="eu", provider=provider, upstream="gpt-sim", region="eu-west")
    Deployment.objects.create(
        model=sim_models.chat, name="us", provider=provider, upstream="gpt-sim-us", weight=0, tag="spare", position=1
    )
    snapshot_invalidate()


async def test_models_lists_each_models_deployments_in_an_extension_field(sim_models: Any, make_key: Any) -> None:
    await in_thread(_two_deployments, sim_models)
    secret = await in_thread(make_key)
    listed = {m["id"]: m for m in (await AsyncClient().get("/v1/models", headers=bearer(secret))).json()["data"]}
    assert listed["gpt-sim"]["switchyard"] == {
        "routing": "weighted",
        "deployments": [
            {"name": "eu", "provider": "sim", "region": "eu-west", "tag": "", "weight": 1},
            {"name": "us", "provider": "sim", "region": "", "tag": "spare", "weight": 0},
        ],
    }
    assert listed["gpt-sim-mini"]["switchyard"]["deployments"] == [
        {"name": "sim", "provider": "sim", "region": "", "tag": "", "weight": 1}
    ]


async def test_a_reply_names_the_deployment_that_served_it(sim_models: Any, make_key: Any, simulator: Any) -> None:
    await in_thread(_two_deployments, sim_models)
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), "/v1/chat/completions", chat_body(), secret)
    assert response.status_code == 200, response.content
    assert (response["X-Served-Deployment"], response["X-Served-Provider"]) == ("eu", "sim")
    assert simulator.stats("gpt-sim-us")["requests"] == 0  # weight 0: only a spare

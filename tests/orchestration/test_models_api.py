"""``GET /v1/models``: the models this key may use, in OpenAI's list shape."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

import pytest
from django.test import AsyncClient

from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    assert_error,
    bearer,
    in_thread,
    make_key,
    sim_models,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_lists_every_routable_model_for_an_unrestricted_key(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = await AsyncClient().get("/v1/models", headers=bearer(secret))
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["embed-sim", "gpt-sim", "gpt-sim-mini"]
    first = body["data"][0]
    assert first["object"] == "model" and first["owned_by"] == "sim" and isinstance(first["created"], int)


async def test_a_restricted_key_sees_only_its_models(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, allowed_models=["gpt-sim-mini", "retired-model"])
    response = await AsyncClient().get("/v1/models", headers=bearer(secret))
    assert [m["id"] for m in response.json()["data"]] == ["gpt-sim-mini"]


async def test_disabled_models_and_providers_are_not_listed(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    sim_models.mini.enabled = False
    await sim_models.mini.asave()
    secret = await in_thread(make_key)
    response = await AsyncClient().get("/v1/models", headers=bearer(secret))
    assert "gpt-sim-mini" not in [m["id"] for m in response.json()["data"]]
    provider = sim_models.chat.provider
    provider.enabled = False
    await provider.asave()
    assert (await AsyncClient().get("/v1/models", headers=bearer(secret))).json()["data"] == []


async def test_one_model_is_retrieved_by_name_and_others_are_404(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key, allowed_models=["gpt-sim"])
    response = await AsyncClient().get("/v1/models/gpt-sim", headers=bearer(secret))
    assert response.status_code == 200 and response.json()["id"] == "gpt-sim"
    assert_error(await AsyncClient().get("/v1/models/gpt-sim-mini", headers=bearer(secret)), 404, "model_not_found")
    assert_error(await AsyncClient().get("/v1/models/nope", headers=bearer(secret)), 404, "model_not_found")


async def test_listing_needs_a_key_and_a_get(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    assert_error(await AsyncClient().get("/v1/models"), 401, "missing_api_key")
    secret = await in_thread(make_key)
    assert_error(await AsyncClient().post("/v1/models", headers=bearer(secret)), 405, "method_not_allowed")

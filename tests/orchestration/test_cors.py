"""CORS on ``/v1``: off by default; an allowed origin gets its preflight and its answers marked."""

# The fixtures imported from tests.orchestration.gateway are redefined as arguments:
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient

from project.env import env_origins
from tests.orchestration.gateway import (  # noqa: F401 - fixtures used by name
    _fresh_process_caches,
    chat_body,
    in_thread,
    make_key,
    post_json,
    sim_models,
)

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/v1/chat/completions"
APP = "https://app.example.com"
PREFLIGHT = {"Origin": APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}


async def test_without_configured_origins_no_cors_header_is_sent(sim_models, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(), secret, Origin=APP)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    preflight = await AsyncClient().options(URL, headers=PREFLIGHT)
    assert "Access-Control-Allow-Origin" not in preflight


async def test_an_allowed_origin_gets_its_preflight_and_marked_answers(sim_models, make_key, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SWITCHYARD = {**settings.SWITCHYARD, "CORS_ORIGINS": [APP]}
    preflight = await AsyncClient().options(URL, headers=PREFLIGHT)
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == APP
    assert preflight["Access-Control-Allow-Methods"] == "POST"
    assert preflight["Access-Control-Allow-Headers"] == "authorization"
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(), secret, Origin=APP)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP and response["Vary"] == "Origin"
    assert "x-ratelimit-remaining-requests" in response["Access-Control-Expose-Headers"]
    refused = await post_json(AsyncClient(), URL, chat_body(), None, Origin=APP)
    assert refused.status_code == 401 and refused["Access-Control-Allow-Origin"] == APP


async def test_another_origin_gets_nothing(sim_models, make_key, settings) -> None:  # type: ignore[no-untyped-def]
    settings.SWITCHYARD = {**settings.SWITCHYARD, "CORS_ORIGINS": [APP]}
    secret = await in_thread(make_key)
    response = await post_json(AsyncClient(), URL, chat_body(), secret, Origin="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in response
    preflight = await AsyncClient().options(URL, headers={**PREFLIGHT, "Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in preflight and preflight.status_code == 405


def test_the_setting_takes_origins_or_a_star_and_refuses_anything_else(monkeypatch: Any) -> None:
    monkeypatch.setenv("SWITCHYARD_CORS_ORIGINS", "https://a.example.com, http://localhost:5173/")
    assert env_origins("SWITCHYARD_CORS_ORIGINS") == ["https://a.example.com", "http://localhost:5173"]
    monkeypatch.setenv("SWITCHYARD_CORS_ORIGINS", "*")
    assert env_origins("SWITCHYARD_CORS_ORIGINS") == ["*"]
    for bad in ("a.example.com", "https://a.example.com/path", "ftp://a.example.com"):
        monkeypatch.setenv("SWITCHYARD_CORS_ORIGINS", bad)
        with pytest.raises(ImproperlyConfigured, match="SWITCHYARD_CORS_ORIGINS"):
            env_origins("SWITCHYARD_CORS_ORIGINS")
